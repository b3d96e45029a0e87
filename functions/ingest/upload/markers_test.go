package upload

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/scte35"
	"github.com/smoothcast/smoothcast/shared/store/storetest"
)

// emsgSessions open sessions that keep, for each media segment fed, the
// emsg boxes before its moof and its start.
type emsgSessions struct {
	mu   sync.Mutex
	feds []fedSegment
}

type fedSegment struct {
	file  string
	start uint64
	emsgs []*mp4.EmsgBox
}

func (f *emsgSessions) Open(channel, rendition, remote string) (Session, error) { return f, nil }
func (f *emsgSessions) Close(bool, error)                                       {}

func (f *emsgSessions) Feed(_ context.Context, seg Segment) error {
	if _, ok := mp4box.Find(seg.Body, "moov"); ok {
		return nil
	}
	var fs fedSegment
	fs.file = seg.File
	for box, err := range mp4box.All(seg.Body) {
		if err != nil {
			return err
		}
		switch box.Type {
		case "emsg":
			e, err := fmp4.DecodeEmsg(box.Data)
			if err != nil {
				return err
			}
			fs.emsgs = append(fs.emsgs, e)
		case "moof":
			m, err := fmp4.DecodeMoofTracks(box.Data, 16)
			if err != nil {
				return err
			}
			fs.start = m.Traf.Tfdt.BaseMediaDecodeTime()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.feds = append(f.feds, fs)
	return nil
}

// playlistOf is a media playlist of segments 0 to n-1 with extra lines
// before segment k (lines[k]).
func playlistOf(n int, lines map[int]string) []byte {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init-stream0.m4s\"\n")
	for k := range n {
		if l, ok := lines[k]; ok {
			b.WriteString(l + "\n")
		}
		fmt.Fprintf(&b, "#EXTINF:2.0,\n%s\n", segName(k))
	}
	return []byte(b.String())
}

// An uploaded playlist's CUE-OUT on a segment uploaded before it rides
// the rendition's next segment, at the start of its own segment; a CUE-IN
// on a segment still to come rides that segment; a marker listed again
// by the next playlists goes once.
func TestPlaylistMarkersRideTheSegments(t *testing.T) {
	m := renditions(t, 5)[0]
	sess := &emsgSessions{}
	u := New(sess, &storetest.Mem{}, Config{Log: quiet})
	defer u.Close()
	put := func(file string, body []byte) {
		t.Helper()
		if _, err := u.Put(File{Channel: "ch", Name: file, Body: body, Release: func() {}}); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	out := map[int]string{1: "#EXT-X-CUE-OUT:30"}
	both := map[int]string{1: "#EXT-X-CUE-OUT:30", 3: "#EXT-X-CUE-IN"}
	put("init-stream0.m4s", m.init)
	put(segName(0), m.segments[0])
	put(segName(1), m.segments[1])
	put("stream0.m3u8", playlistOf(2, out))
	put(segName(2), m.segments[2])
	put("stream0.m3u8", playlistOf(4, both)) // lists segment 3 before it comes, the CUE-IN on it
	put(segName(3), m.segments[3])
	put("stream0.m3u8", playlistOf(4, both))
	put(segName(4), m.segments[4])
	put("stream0.m3u8", slices.Concat(playlistOf(5, both), []byte("#EXT-X-ENDLIST\n")))

	waitFor(t, "five segments fed", func() bool { sess.mu.Lock(); defer sess.mu.Unlock(); return len(sess.feds) == 5 })
	sess.mu.Lock()
	defer sess.mu.Unlock()
	starts := map[string]uint64{}
	for _, f := range sess.feds {
		starts[f.file] = f.start
	}
	want := map[string][]struct {
		at  uint64
		out bool
	}{segName(2): {{starts[segName(1)], true}}, segName(3): {{starts[segName(3)], false}}}
	for _, f := range sess.feds {
		w := want[f.file]
		if len(f.emsgs) != len(w) {
			t.Errorf("%s fed with %d emsg boxes, want %d", f.file, len(f.emsgs), len(w))
			continue
		}
		for i, e := range f.emsgs {
			info, err := scte35.Parse(e.MessageData)
			if err != nil || e.Version != 1 || e.SchemeIDURI != scte35.Scheme || e.PresentationTime != w[i].at || (info.Kind == scte35.Out) != w[i].out {
				t.Errorf("%s: emsg v%d %s at %d (%+v, %v), want at %d out %v", f.file, e.Version, e.SchemeIDURI, e.PresentationTime, info, err, w[i].at, w[i].out)
			}
			if w[i].out && (info.Duration != 30*time.Second || e.EventDuration != uint32(30*e.TimeScale)) {
				t.Errorf("%s: CUE-OUT:30 became a break of %v (emsg duration %d/%d)", f.file, info.Duration, e.EventDuration, e.TimeScale)
			}
		}
	}
}

package upload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/packager"
	"github.com/smoothcast/smoothcast/shared/store/storetest"
)

// tsSegments are ffmpeg's HLS upload of 2.4 s of H.264 and AAC in 0.2 s
// TS segments (testdata/ts: ffmpeg -f hls -hls_time 0.2 -g 2),
// index0.ts to index11.ts.
func tsSegments(t testing.TB) [][]byte {
	t.Helper()
	var segs [][]byte
	for k := range 12 {
		b, err := os.ReadFile(filepath.Join("testdata", "ts", fmt.Sprintf("index%d.ts", k)))
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, b)
	}
	return segs
}

// tsPlaylist is ffmpeg's media playlist once it lists segments 0 to n-1
// of name's stem.
func tsPlaylist(name string, n int) []byte {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n")
	stem := strings.TrimSuffix(name, ".m3u8")
	for k := range n {
		fmt.Fprintf(&b, "#EXTINF:0.200000,\n%s%d.ts\n", stem, k)
	}
	return []byte(b.String())
}

func tsName(k int) string { return fmt.Sprintf("index%d.ts", k) }

// ffmpeg's -f hls: each segment, then the playlist that lists it. The
// first waits for the playlist (202); the next ones are placed by the
// playlist's name; all go to one session, the packager's init segment
// first, one segment after the other in media time.
func TestTSSegmentsGoToTheirPlaylistsRendition(t *testing.T) {
	segs := tsSegments(t)
	h := newHarness(t, Config{})
	for k := range 4 {
		a := h.put("c", tsName(k), segs[k])
		want := Done
		if k == 0 {
			want = Held
		}
		if a.err != nil || a.result != want {
			t.Fatalf("%s: %v %v, want %v", a.file, a.result, a.err, want)
		}
		if a := h.put("c", "index.m3u8", tsPlaylist("index.m3u8", k+1)); a.err != nil {
			t.Fatal(a.err)
		}
	}
	ss := h.sessions.sessions()
	if len(ss) != 1 || ss[0].rendition != "index.m3u8" {
		t.Fatalf("sessions %v, want one of index.m3u8", ss)
	}
	var fed []uint64
	var files []string
	waitFor(t, "4 segments fed", func() bool { fed, files, _, _ = ss[0].state(); return len(fed) == 4 })
	if !slices.IsSorted(fed) || !slices.Equal(files, []string{"index0.ts", "index1.ts", "index2.ts", "index3.ts"}) {
		t.Errorf("fed %v %v, want the 4 segments in order", files, fed)
	}
}

// The names of -var_stream_map's variants run together: a segment goes to
// the one playlist whose name and a number make its name, or waits for a
// playlist to list it.
func TestTSPlacement(t *testing.T) {
	var h hints
	for _, pl := range []string{"stream_0.m3u8", "stream_1.m3u8"} {
		if _, err := h.learnPlaylist(pl, tsPlaylist(pl, 1)); err != nil {
			t.Fatal(err)
		}
	}
	for file, want := range map[string]string{
		"stream_00.ts":  "stream_0.m3u8", // listed
		"stream_010.ts": "stream_0.m3u8", // variant 0, segment 10
		"stream_10.ts":  "stream_1.m3u8", // listed: variant 1, segment 0
		"stream_17.ts":  "stream_1.m3u8",
		"other_3.ts":    "",
	} {
		if got := h.placeTS(file); got != want {
			t.Errorf("placeTS(%s) = %q, want %q", file, got, want)
		}
	}
	// Before any playlist, a name alone places nothing.
	var none hints
	if got := none.placeTS("index0.ts"); got != "" {
		t.Errorf("placeTS before any playlist = %q", got)
	}
	// A TS playlist's segments never go to an fMP4 rendition's init.
	if got := h.place("stream_05.ts", slices.Values([]string{"init_0.mp4"})); got != "" {
		t.Errorf("place(stream_05.ts) = %q, want none", got)
	}
}

// What an encoder gets for a TS segment the relay cannot take: 400 (a
// *ingest.ProtocolError or ErrMalformed) saying why, nothing of it fed;
// the rendition takes the next good segment.
func TestBadTSSegmentsAreRefusedAndStoreNothing(t *testing.T) {
	segs := tsSegments(t)
	nokey, err := os.ReadFile(filepath.Join("testdata", "ts", "nokey.ts"))
	if err != nil {
		t.Fatal(err)
	}
	garbage := slices.Clone(segs[3])
	garbage[188*5] = 0x00 // the sync byte of its sixth packet
	backwards := slices.Clone(segs[4])
	first, second := videoPES(backwards, 0), videoPES(backwards, 1)
	copy(second[9:14], first[9:14]) // the second frame's PTS: the first's
	h := newHarness(t, Config{})
	pl := append(tsPlaylist("index.m3u8", 12), "#EXTINF:0.3,\nnokey.ts\n"...)
	if a := h.put("c", "index.m3u8", pl); a.err != nil {
		t.Fatal(a.err)
	}
	for _, step := range []struct {
		name, file string
		body       []byte
		want       error // nil: stored
		says       string
	}{
		{"a good segment", tsName(0), segs[0], nil, ""},
		{"a segment cut short", tsName(1), segs[1][:len(segs[1])-100], ErrMalformed, "not whole 188-byte packets"},
		{"a segment without a key frame", "nokey.ts", nokey, packager.ErrNoKeyFrame, "key frame"},
		{"the next", tsName(2), segs[2], nil, ""},
		{"a packet without its sync byte", tsName(3), garbage, ErrMalformed, "sync byte"},
		{"timestamps going backwards inside", tsName(4), backwards, nil, "backwards"},
		{"the next good one", tsName(5), segs[5], nil, ""},
	} {
		a := h.put("c", step.file, step.body)
		switch {
		case step.says == "" && a.err != nil:
			t.Fatalf("%s: %v", step.name, a.err)
		case step.says != "":
			var pe *ingest.ProtocolError
			if a.err == nil || !strings.Contains(a.err.Error(), step.says) ||
				step.want != nil && !errors.Is(a.err, step.want) || step.want == nil && !errors.As(a.err, &pe) {
				t.Fatalf("%s: %v, want a refusal that says %q", step.name, a.err, step.says)
			}
			t.Logf("%s: %v", step.name, a.err)
		}
	}
	_, files, _, _ := h.sessions.sessions()[0].state()
	if !slices.Equal(files, []string{"index0.ts", "index2.ts", "index5.ts"}) {
		t.Errorf("fed %v, want the good segments alone", files)
	}
}

// An encoder that starts again sends its first segments again: while
// the relay remembers them (a reconnect), they are resends and nothing is
// fed twice; once it does not (a restart from further back), the
// rendition starts again with a new session that keeps the tracks'
// bitrates.
func TestARestartedEncodersTSSegments(t *testing.T) {
	segs := tsSegments(t)
	h := newHarness(t, Config{})
	if a := h.put("c", "index.m3u8", tsPlaylist("index.m3u8", 12)); a.err != nil {
		t.Fatal(a.err)
	}
	upload := func(ks ...int) {
		t.Helper()
		for _, k := range ks {
			if a := h.put("c", tsName(k), segs[k]); a.err != nil {
				t.Fatalf("%s: %v", a.file, a.err)
			}
		}
	}
	upload(0, 1, 2, 3)
	upload(0, 1, 2, 3, 4) // a reconnect that resends
	ss := h.sessions.sessions()
	if _, files, _, _ := ss[0].state(); len(ss) != 1 || len(files) != 5 {
		t.Fatalf("%d sessions, fed %v: want one, 5 segments once each", len(ss), files)
	}
	upload(5, 6, 7, 8, 9, 10, 11)
	upload(0, 1) // segment 0 is no longer remembered: a restart
	waitFor(t, "a second session", func() bool { return len(h.sessions.sessions()) == 2 })
	ss = h.sessions.sessions()
	waitFor(t, "the first session ended", func() bool { _, _, closed, _ := ss[0].state(); return closed })
	if _, _, _, clean := ss[0].state(); clean {
		t.Error("the first session ended cleanly; want a drop")
	}
	var files []string
	waitFor(t, "the restart's 2 segments", func() bool { _, files, _, _ = ss[1].state(); return len(files) == 2 })
	r1, r2 := declared(t, ss[0]), declared(t, ss[1])
	if len(r1) != 2 || r1[0] == 0 || r1[1] == 0 || !slices.Equal(r1, r2) {
		t.Errorf("bitrates %v then %v, want the same two", r1, r2)
	}
}

// declared is the bitrate each track of a session's init segment
// declares (btrt, esds).
func declared(t *testing.T, s *fakeSession) []int {
	t.Helper()
	s.mu.Lock()
	init := s.initBody
	s.mu.Unlock()
	box, ok := mp4box.Find(init, "moov")
	if !ok {
		t.Fatal("no init segment fed")
	}
	m, err := mp4box.Decode(box)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, trak := range m.(*mp4.MoovBox).Traks {
		out = append(out, fmp4.DeclaredBitrate(trak))
	}
	return out
}

// videoPES returns the header of the n-th video PES (PID 0x100) of an
// ffmpeg TS segment, from its start code.
func videoPES(b []byte, n int) []byte {
	for i := 0; i+188 <= len(b); i += 188 {
		p := b[i : i+188]
		if uint16(p[1]&0x1f)<<8|uint16(p[2]) != 0x100 || p[1]&0x40 == 0 {
			continue
		}
		if n > 0 {
			n--
			continue
		}
		at := 4
		if p[3]&0x20 != 0 {
			at += 1 + int(p[4])
		}
		return p[at:]
	}
	panic("no such PES")
}

// A relay started again (another Uploads over the same store) keeps a TS
// rendition's bitrates: the first relay recorded the packaged init
// segment, and the next one takes the bitrates from it, so the tracks'
// keys stay the same.
func TestATSRenditionsBitratesOutliveTheRelay(t *testing.T) {
	segs := tsSegments(t)
	h := newHarness(t, Config{Live: func(context.Context, string) (bool, error) { return true, nil }})
	if a := h.put("c", "index.m3u8", tsPlaylist("index.m3u8", 12)); a.err != nil {
		t.Fatal(a.err)
	}
	for k := range 2 {
		if a := h.put("c", tsName(k), segs[k]); a.err != nil {
			t.Fatal(a.err)
		}
	}
	waitFor(t, "the TS rendition recorded", func() bool {
		o, err := h.store.Get(context.Background(), layout.UploadsStateKey("c"))
		return err == nil && bytes.Contains(o.Body, []byte(`"ts:index.m3u8"`))
	})
	first := declared(t, h.sessions.sessions()[0])

	// The relay started again, and a segment that measures otherwise
	// (segment 5, as a relay with no record shows).
	restart := func(st Store) []int {
		again := &fakeSessions{}
		u := New(again, st, Config{Log: quiet, Live: func(context.Context, string) (bool, error) { return true, nil }})
		defer u.Close()
		for _, f := range []struct {
			name string
			body []byte
		}{{"index.m3u8", tsPlaylist("index.m3u8", 12)}, {tsName(5), segs[5]}} {
			if _, err := u.Put(File{Channel: "c", Name: f.name, Body: f.body}); err != nil {
				t.Fatalf("%s: %v", f.name, err)
			}
		}
		ss := again.sessions()
		if len(ss) != 1 {
			t.Fatalf("%d sessions after the restart", len(ss))
		}
		return declared(t, ss[0])
	}
	if second := restart(h.store); !slices.Equal(first, second) {
		t.Errorf("bitrates %v, then %v after the relay started again", first, second)
	}
	if fresh := restart(&storetest.Mem{}); slices.Equal(first, fresh) {
		t.Errorf("segment 5 alone measures %v too: the test shows nothing", fresh)
	}
}

// After a TS rendition ended (EXT-X-ENDLIST), a late segment of its run
// is refused; a segment from its start again (the encoder started again)
// starts a new session.
func TestAfterATSRenditionEnded(t *testing.T) {
	segs := tsSegments(t)
	h := newHarness(t, Config{Linger: time.Millisecond})
	for k := range 4 {
		if a := h.put("c", tsName(k), segs[k]); a.err != nil {
			t.Fatal(a.err)
		}
	}
	if a := h.put("c", "index.m3u8", append(tsPlaylist("index.m3u8", 4), "#EXT-X-ENDLIST\n"...)); a.err != nil {
		t.Fatal(a.err)
	}
	first := h.sessions.sessions()[0]
	waitFor(t, "the rendition ended", func() bool { _, _, closed, _ := first.state(); return closed })
	if _, _, _, clean := first.state(); !clean {
		t.Error("the rendition did not end cleanly")
	}
	if a := h.put("c", tsName(2), segs[2]); !errors.Is(a.err, ErrConflict) {
		t.Errorf("a late segment of the ended run: %v, want %v", a.err, ErrConflict)
	}
	if a := h.put("c", tsName(0), segs[0]); a.err != nil {
		t.Fatalf("the encoder's first segment again: %v", a.err)
	}
	if ss := h.sessions.sessions(); len(ss) != 2 {
		t.Fatalf("%d sessions, want a new one", len(ss))
	}
}

// An encoder started again whose first segment starts where the
// rendition's did but is another segment (new media at the same
// timestamps) starts a new session at once: a TS rendition has no init
// segment to wait for.
func TestATSSegmentAgainButOtherStartsANewSession(t *testing.T) {
	segs := tsSegments(t)
	h := newHarness(t, Config{})
	if a := h.put("c", "index.m3u8", tsPlaylist("index.m3u8", 12)); a.err != nil {
		t.Fatal(a.err)
	}
	for k := range 3 {
		if a := h.put("c", tsName(k), segs[k]); a.err != nil {
			t.Fatal(a.err)
		}
	}
	other := slices.Clone(segs[0])
	other[len(other)-1] ^= 0xff // the last byte of its last packet: stuffing or media, demultiplexed alike
	if a := h.put("c", tsName(0), other); a.err != nil || a.result != Done {
		t.Fatalf("the new encoder's first segment: %v %v", a.result, a.err)
	}
	waitFor(t, "a second session", func() bool { return len(h.sessions.sessions()) == 2 })
	if _, files, _, _ := h.sessions.sessions()[1].state(); !slices.Equal(files, []string{"index0.ts"}) {
		t.Errorf("the new session was fed %v", files)
	}
}

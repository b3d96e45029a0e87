package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// muxedVariant is one HLS variant as ffmpeg's hls muxer uploads it
// without -var_stream_map: one init segment declaring video and audio,
// and media segments whose one moof carries a traf of each.
func muxedVariant(t testing.TB, n int, declared bool) (init []byte, segs [][]byte) {
	t.Helper()
	s, err := synth.New(synth.Config{CMAF: true, Muxed: true, NoBitrateBoxes: !declared, Tracks: []synth.Track{
		{Kind: timeline.Video, Bitrate: 800_000},
		{Kind: timeline.Audio, Bitrate: 96_000},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if init, err = s.Header(); err != nil {
		t.Fatal(err)
	}
	for k := range n {
		seg, err := s.AppendFragment(nil, k)
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, seg)
	}
	return init, segs
}

// hlsMedia is ffmpeg's media playlist of a variant whose init segment is
// init.mp4 and segments index{k}.m4s.
func hlsMedia(upTo int, end bool) []byte {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI=\"init.mp4\"\n")
	for k := range upTo {
		fmt.Fprintf(&b, "#EXTINF:2.000000,\nindex%d.m4s\n", k)
	}
	if end {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return []byte(b.String())
}

// An HLS upload whose segments carry several tracks (ffmpeg -f hls
// -hls_segment_type fmp4 without -var_stream_map) is one rendition whose
// session splits each segment per track: every track's fragments are
// stored under its own name and bitrate (its sample entry's, or measured
// from its own part of each segment: not the variant's total), and the
// playlist's end ends every track.
func TestMuxedUploadIsStoredPerTrack(t *testing.T) {
	const n = 3
	for _, tc := range []struct {
		name     string
		declared bool
	}{{"bitrates declared (btrt, esds)", true}, {"bitrates measured", false}} {
		t.Run(tc.name, func(t *testing.T) {
			init, segs := muxedVariant(t, n, tc.declared)
			hs, st, _ := setup(t)
			ch := hs.URL + "/live/mux.isml/"
			ups := []upload{{"index.m3u8", hlsMedia(0, false), 200}, {"init.mp4", init, 200}}
			for k := range n {
				ups = append(ups, upload{fmt.Sprintf("index%d.m4s", k), segs[k], 200}, upload{"index.m3u8", hlsMedia(k+1, false), 200})
			}
			ups = append(ups, upload{"index.m3u8", hlsMedia(n, true), 200})
			for _, u := range ups {
				if code, msg := testtool.Do(t, http.MethodPut, ch+u.file, u.body, true); code != u.status {
					t.Fatalf("PUT %s: %d %s, want %d", u.file, code, msg, u.status)
				}
			}
			var frags map[string]int
			var eos int
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if frags, eos = stored(t, st, "mux"); eos == 2 || time.Now().After(deadline) {
					break
				}
			}
			if eos != 2 || len(frags) != 2 {
				t.Fatalf("fragments %v, %d end-of-stream markers; want two tracks, each ended", frags, eos)
			}
			for track, count := range frags {
				name, rate, _ := strings.Cut(track, "@")
				bitrate, _ := strconv.Atoi(rate)
				if count != n {
					t.Errorf("%s: %d fragments, want %d", track, count, n)
				}
				want := map[string]int{"video": 800_000, "audio": 96_000}[name]
				if tc.declared && bitrate != want || !tc.declared && (bitrate < want*8/10 || bitrate > want*12/10) {
					t.Errorf("%s: bitrate %d, want about %d (the track's own, not the variant's)", track, bitrate, want)
				}
			}
			// One rendition: one init segment recorded, with both tracks.
			o, err := st.Get(context.Background(), layout.UploadsStateKey("mux"))
			if err != nil {
				t.Fatal(err)
			}
			var rec struct {
				Inits map[string]json.RawMessage `json:"inits"`
			}
			if err := json.Unmarshal(o.Body, &rec); err != nil || len(rec.Inits) != 1 || rec.Inits["init.mp4"] == nil {
				t.Errorf("uploads record %s (%v): want init.mp4 alone", o.Body, err)
			}
		})
	}
}

// A relay started again restores a muxed rendition from the record like
// any other: the encoder's next segment is stored at once, every track of
// it.
func TestMuxedUploadSurvivesARelayRestart(t *testing.T) {
	init, segs := muxedVariant(t, 3, true)
	first, st, _, rl := newRelay(t, relay.DefaultConfig())
	for _, u := range []upload{{"index.m3u8", hlsMedia(0, false), 200}, {"init.mp4", init, 200}, {"index0.m4s", segs[0], 200}, {"index1.m4s", segs[1], 200}} {
		if code, msg := testtool.Do(t, http.MethodPut, first.URL+"/live/r.isml/"+u.file, u.body, true); code != u.status {
			t.Fatalf("%s: %d %s", u.file, code, msg)
		}
	}
	rl.CloseUploads()
	first.Close()
	putState(t, st, "r", layout.TrackID{Name: "video", Bitrate: 800_000}, 30*time.Second, false)
	second, _ := relayOn(t, st)
	if code, msg := testtool.Do(t, http.MethodPut, second.URL+"/live/r.isml/index2.m4s", segs[2], true); code != http.StatusOK {
		t.Fatalf("the next segment after a restart: %d %s, want 200", code, msg)
	}
	frags, _ := stored(t, st, "r")
	if frags["video@800000"] != 3 || frags["audio@96000"] != 3 {
		t.Errorf("fragments %v, want 3 of each track", frags)
	}
}

// A push whose moofs carry every track (ffmpeg -f mp4 -movflags
// empty_moov+default_base_moof+frag_keyframe POSTed to Streams(x), or a
// muxed Smooth push) is stored as the same push with a moof per track is.
func TestMuxedPushIsStoredPerTrack(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  synth.Config
	}{
		{"CMAF", synth.Config{CMAF: true}},
		{"Smooth, with the live server manifest", synth.Config{SMIL: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Muxed = true
			tc.cfg.Tracks = []synth.Track{
				{Kind: timeline.Video, Bitrate: 800_000},
				{Kind: timeline.Video, Bitrate: 300_000, Width: 320, Height: 180},
				{Kind: timeline.Audio, Bitrate: 96_000},
			}
			s, err := synth.New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			if _, err := s.WriteTo(context.Background(), &body, synth.Range{Count: 3, End: true}); err != nil {
				t.Fatal(err)
			}
			hs, st, _ := setup(t)
			if code, msg := testtool.Do(t, http.MethodPost, hs.URL+"/live/mp.isml/Streams(enc)", body.Bytes(), true); code != http.StatusOK {
				t.Fatalf("push: %d %s", code, msg)
			}
			frags, eos := stored(t, st, "mp")
			for _, track := range []string{"video@800000", "video@300000", "audio@96000"} {
				if frags[track] != 3 {
					t.Errorf("%s: %d fragments, want 3 (%v)", track, frags[track], frags)
				}
			}
			if eos != 3 {
				t.Errorf("%d end-of-stream markers, want one per track", eos)
			}
		})
	}
}

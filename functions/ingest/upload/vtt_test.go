package upload

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/webvtt"
)

// ffmpeg 5.1's -f hls -var_stream_map "v:0,a:0,s:0,sgroup:subs,language:eng"
// from subs.srt: a WebVTT segment per A/V segment, cue times in the
// output's time, no X-TIMESTAMP-MAP, an empty segment where no cue is.
var ffmpegVTT = []string{
	"WEBVTT\n\n00:00.580 --> 00:02.080\nHello world\n",
	"WEBVTT\n\n00:03.080 --> 00:05.580\nSecond cue\nline two\n",
	"WEBVTT\n",
	"WEBVTT\n\n00:07.080 --> 00:08.080\nThird\n",
}

// vttPlaylist is ffmpeg's subtitle playlist once it lists segments 0 to
// n-1, 2 s each.
func vttPlaylist(n int, ended bool) []byte {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n")
	for k := range n {
		fmt.Fprintf(&b, "#EXTINF:2.000000,\nout_0%d.vtt\n", k)
	}
	if ended {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return []byte(b.String())
}

const ffmpegMaster = `#EXTM3U
#EXT-X-VERSION:3
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",DEFAULT=YES,FORCED=NO,LANGUAGE="eng",URI="out_0_vtt.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=75900,RESOLUTION=320x180,CODECS="avc1.f4000c,mp4a.40.2",SUBTITLES="subs"
out_0.m3u8
`

// fedCues are the cues of the wvtt fragments a session was fed, in media
// time (ms), and each fragment's range.
func fedCues(t *testing.T, s *fakeSession) (cues []webvtt.Cue, ranges [][2]uint64) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var samples []webvtt.Sample
	for _, b := range s.bodies {
		got, err := webvtt.FragmentSamples(b, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		last := got[len(got)-1]
		ranges = append(ranges, [2]uint64{got[0].Time, last.Time + last.Duration})
		samples = append(samples, got...)
	}
	return webvtt.Join(samples, 1000), ranges
}

// ffmpeg's order: each WebVTT segment before its A/V segment, the
// subtitle playlist after the media playlist, the multivariant playlist
// after the first ones. Each WebVTT segment waits (202) for the playlist
// that lists it, the first ones for the multivariant playlist too, then
// they go, in order, to one text session: an init
// segment of a wvtt track with EXT-X-MEDIA's language, name and default,
// then a fragment per segment (an empty one too), each the segment's
// range, its cues at their times (a cue that lasts past its segment,
// which ffmpeg writes in that segment only, in the fragments after too):
// the output's time, plus 1.4 s when the A/V is MPEG-TS (ffmpeg's mpegts
// muxer starts there), which the variant's media playlist tells, whenever
// it comes.
func TestFFmpegsWebVTTSegmentsBecomeATextRendition(t *testing.T) {
	for _, tc := range []struct {
		name  string
		avTS  bool
		shift uint64 // ms
	}{
		{"with MPEG-TS A/V", true, 1400},
		{"with fMP4 A/V", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			// The variant's media playlist: MPEG-TS segments, or fMP4 ones
			// (EXT-X-MAP).
			avPlaylist := tsPlaylist("out_0.m3u8", 0)
			if !tc.avTS {
				avPlaylist = []byte("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init_0.mp4\"\n")
			}
			for k, seg := range ffmpegVTT {
				// Each waits for the playlist that lists it (its EXTINF).
				if a := h.put("c", fmt.Sprintf("out_0%d.vtt", k), []byte(seg)); a.err != nil || a.result != Held {
					t.Fatalf("%s: %v %v, want held", a.file, a.result, a.err)
				}
				files := []string{"out_0.m3u8", "out_0_vtt.m3u8"}
				if k == 0 {
					// Uploads on parallel connections: the variant's
					// playlist may come last, and the first segments
					// wait for it.
					files = []string{"out_0_vtt.m3u8", "master.m3u8", "out_0.m3u8"}
				}
				for _, f := range files {
					body := map[string][]byte{"out_0.m3u8": avPlaylist, "out_0_vtt.m3u8": vttPlaylist(k+1, false), "master.m3u8": []byte(ffmpegMaster)}[f]
					if a := h.put("c", f, body); a.err != nil {
						t.Fatalf("%s: %v", f, a.err)
					}
					if k == 0 && f == "master.m3u8" && len(h.sessions.sessions()) != 0 {
						t.Fatal("the text rendition started before its variant's playlist said what its A/V is")
					}
				}
			}
			var text *fakeSession
			for _, s := range h.sessions.sessions() {
				if s.rendition == "out_0_vtt.m3u8" {
					text = s
				}
			}
			if text == nil {
				t.Fatal("no session for out_0_vtt.m3u8")
			}
			waitFor(t, "4 fragments fed", func() bool { fed, _, _, _ := text.state(); return len(fed) == 4 })
			_, files, _, _ := text.state()
			if !reflect.DeepEqual(files, []string{"out_00.vtt", "out_01.vtt", "out_02.vtt", "out_03.vtt"}) {
				t.Errorf("fed %v", files)
			}
			cues, ranges := fedCues(t, text)
			ms := func(n uint64) time.Duration { return time.Duration(n+tc.shift) * time.Millisecond }
			want := []webvtt.Cue{
				{Start: ms(580), End: ms(2080), Text: "Hello world"}, // in the fragment after too
				{Start: ms(3080), End: ms(5580), Text: "Second cue\nline two"},
				{Start: ms(7080), End: ms(8000), Text: "Third"}, // cut at the last fragment's end
			}
			if !reflect.DeepEqual(cues, want) {
				t.Errorf("cues %+v\nwant %+v", cues, want)
			}
			for k, r := range ranges {
				if w := [2]uint64{uint64(2000*k) + tc.shift, uint64(2000*(k+1)) + tc.shift}; r != w {
					t.Errorf("fragment %d: %v, want %v", k, r, w)
				}
			}
			text.mu.Lock()
			init := text.initBody
			text.mu.Unlock()
			f, err := mp4.DecodeFile(bytes.NewReader(init))
			if err != nil {
				t.Fatal(err)
			}
			trak := f.Init.Moov.Trak
			if trak.Mdia.Minf.Stbl.Stsd.Children[0].Type() != "wvtt" || trak.Mdia.Mdhd.GetLanguage() != "eng" || trak.Tkhd.Flags&1 == 0 || trak.Mdia.Mdhd.Timescale != 1000 {
				t.Errorf("init: %s, %s, tkhd flags %#x, timescale %d", trak.Mdia.Minf.Stbl.Stsd.Children[0].Type(), trak.Mdia.Mdhd.GetLanguage(), trak.Tkhd.Flags, trak.Mdia.Mdhd.Timescale)
			}
		})
	}
}

// A segment's X-TIMESTAMP-MAP maps its cue times to media time (MPEGTS,
// unwrapped across 2^33 from the segment before); the segments' range
// follows the playlist's durations, from the media sequence's start.
func TestWebVTTSegmentsWithATimestampMap(t *testing.T) {
	h := newHarness(t, Config{})
	// MPEGTS near 2^33: the second segment's has wrapped.
	near := uint64(1<<33) - 90000 // 1 s before the wrap
	segs := []string{
		fmt.Sprintf("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:%d,LOCAL:00:00:00.000\n\n00:00.500 --> 00:01.000\na\n", near),
		fmt.Sprintf("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:%d,LOCAL:00:00:00.000\n\n00:03.000 --> 00:03.500\nb\n", near), // MPEGTS as the first: no wrap yet
		"WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:01.000\n\n00:05.000 --> 00:05.500\nc\n",                     // 2^33 ↔ 1 s: wrapped
	}
	for f, body := range map[string][]byte{"master.m3u8": []byte(ffmpegMaster), "out_0.m3u8": tsPlaylist("out_0.m3u8", 0)} {
		if a := h.put("c", f, body); a.err != nil {
			t.Fatal(a.err)
		}
	}
	for k, seg := range segs {
		h.put("c", fmt.Sprintf("out_0%d.vtt", k), []byte(seg))
		if a := h.put("c", "out_0_vtt.m3u8", vttPlaylist(k+1, k == len(segs)-1)); a.err != nil {
			t.Fatal(a.err)
		}
	}
	ss := h.sessions.sessions()
	if len(ss) != 1 {
		t.Fatalf("%d sessions", len(ss))
	}
	waitFor(t, "3 fragments fed and the rendition ended", func() bool { fed, _, closed, _ := ss[0].state(); return len(fed) == 3 && closed })
	if _, _, _, clean := ss[0].state(); !clean {
		t.Error("EXT-X-ENDLIST did not end the rendition cleanly")
	}
	cues, _ := fedCues(t, ss[0])
	base := time.Duration(near) * time.Second / 90000
	var got []time.Duration
	for _, c := range cues {
		got = append(got, (c.Start - base).Round(time.Millisecond))
	}
	want := []time.Duration{500 * time.Millisecond, 3 * time.Second, 5 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cue starts less the map's %v: %v, want %v", base, got, want)
	}
}

// What an upload of WebVTT refuses, and what it waits for.
func TestWebVTTUploadsRefusedOrHeld(t *testing.T) {
	h := newHarness(t, Config{Hold: time.Minute})
	if a := h.put("c", "bad.vtt", []byte("WEBVTT\n\n00:01,000 --> 00:02,000\nsrt times\n")); a.err == nil || !strings.Contains(a.err.Error(), "line 3") {
		t.Errorf("a segment that does not parse: %v, want refused naming its line", a.err)
	}
	// Listed, but no multivariant playlist yet: it waits.
	if a := h.put("c", "out_0_vtt.m3u8", vttPlaylist(1, false)); a.err != nil {
		t.Fatal(a.err)
	}
	if a := h.put("c", "out_00.vtt", []byte(ffmpegVTT[0])); a.err != nil || a.result != Held {
		t.Errorf("before the multivariant playlist: %v %v, want held", a.result, a.err)
	}
	if n := len(h.sessions.sessions()); n != 0 {
		t.Errorf("%d sessions before the multivariant playlist", n)
	}
}

func TestIsVTTPlaylist(t *testing.T) {
	if !isWebVTT([]byte("WEBVTT\n")) || !isWebVTT([]byte("WEBVTT")) || isWebVTT([]byte("WEBVTTX")) {
		t.Error("isWebVTT")
	}
	if k := classify([]byte("\xef\xbb\xbfWEBVTT\r\n")); k != vttSegment {
		t.Errorf("a WebVTT file with a BOM is a %v", k)
	}
}

// A relay started again mid-stream never sees the multivariant playlist
// again (ffmpeg uploads it once): the WebVTT rendition's track, recorded
// with the channel's uploads, is described and timed as before, its
// segments not held for a playlist that never comes.
func TestAWebVTTRenditionsTrackOutlivesTheRelay(t *testing.T) {
	live := func(context.Context, string) (bool, error) { return true, nil }
	h := newHarness(t, Config{Live: live})
	for _, f := range []string{"master.m3u8", "out_0.m3u8"} {
		body := map[string][]byte{"master.m3u8": []byte(ffmpegMaster), "out_0.m3u8": tsPlaylist("out_0.m3u8", 0)}[f]
		if a := h.put("c", f, body); a.err != nil {
			t.Fatal(a.err)
		}
	}
	h.put("c", "out_00.vtt", []byte(ffmpegVTT[0]))
	if a := h.put("c", "out_0_vtt.m3u8", vttPlaylist(1, false)); a.err != nil {
		t.Fatal(a.err)
	}
	waitFor(t, "the WebVTT rendition recorded", func() bool {
		o, err := h.store.Get(context.Background(), layout.UploadsStateKey("c"))
		return err == nil && bytes.Contains(o.Body, []byte(`"vtt+ts:out_0_vtt.m3u8"`))
	})

	again := &fakeSessions{}
	u := New(again, h.store, Config{Log: quiet, Live: live, Hold: time.Minute})
	defer u.Close()
	if r, err := u.Put(File{Channel: "c", Name: "out_01.vtt", Body: []byte(ffmpegVTT[1])}); err != nil || r != Held {
		t.Fatalf("out_01.vtt: %v %v, want held for its playlist", r, err)
	}
	if _, err := u.Put(File{Channel: "c", Name: "out_0_vtt.m3u8", Body: vttPlaylist(2, false)}); err != nil {
		t.Fatal(err)
	}
	ss := again.sessions()
	if len(ss) != 1 {
		t.Fatalf("%d sessions after the restart, want the WebVTT rendition's", len(ss))
	}
	waitFor(t, "out_01.vtt fed", func() bool { fed, _, _, _ := ss[0].state(); return len(fed) == 1 })
	ss[0].mu.Lock()
	init := ss[0].initBody
	ss[0].mu.Unlock()
	tr, err := fmp4.ParseInit(init)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Language != "eng" || tr.Label != "English" || !tr.Default {
		t.Errorf("restored as %+v, want eng, English, default", tr)
	}
	// Its cues as before the restart: beside MPEG-TS A/V (1.4 s later).
	if cues, _ := fedCues(t, ss[0]); len(cues) != 1 || cues[0].Start != 4480*time.Millisecond {
		t.Errorf("cues %+v, want the second cue at 4.48 s", cues)
	}
}

package relay_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
	"github.com/smoothcast/smoothcast/shared/webvtt"
)

// textObjects are a channel's stored text tracks: each one's init
// segment, and its fragments' and WebVTT files' keys by start.
type textObjects struct {
	init      []byte
	fragments map[uint64]bool
	vtt       map[uint64]string
}

func storedText(t *testing.T, st *store.Store, channel string) map[layout.TrackID]*textObjects {
	t.Helper()
	ctx := context.Background()
	out := map[layout.TrackID]*textObjects{}
	get := func(id layout.TrackID) *textObjects {
		if out[id] == nil {
			out[id] = &textObjects{fragments: map[uint64]bool{}, vtt: map[uint64]string{}}
		}
		return out[id]
	}
	for _, k := range testtool.Keys(t, st) {
		base, isVTT := strings.CutSuffix(k, ".vtt")
		obj, err := layout.Parse(base)
		if err != nil || obj.Channel != channel || !strings.HasPrefix(obj.Track.Name, "text") {
			continue
		}
		o, err := st.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case isVTT:
			if o.ContentType != "text/vtt" {
				t.Errorf("%s: Content-Type %s", k, o.ContentType)
			}
			get(obj.Track).vtt[obj.Start] = string(o.Body)
		case obj.Kind == layout.KindInit:
			get(obj.Track).init = o.Body
		case obj.Kind == layout.KindFragment:
			get(obj.Track).fragments[obj.Start] = true
		}
	}
	return out
}

// put uploads files in order, each answered as said.
func putAll(t *testing.T, base string, ups []upload) {
	t.Helper()
	for _, u := range ups {
		if code, msg := testtool.Do(t, http.MethodPut, base+u.file, u.body, true); code != u.status {
			t.Fatalf("PUT %s: %d %s, want %d", u.file, code, msg, u.status)
		}
	}
}

// An HLS upload with WebVTT subtitles, in ffmpeg's order (each .vtt
// before its playlist lists it, the multivariant playlist after the
// first segments): the subtitles become a text track named by its
// language, described by EXT-X-MEDIA (label, default), a fragment per
// segment, and beside each the WebVTT file HLS players read, its cues at
// the segment's times.
func TestHLSSubtitlesUploadIsATextTrack(t *testing.T) {
	const n = 3
	inits, segs := cmafRenditions(t, n)
	hs, st, _ := setup(t)
	vtts := []string{
		"WEBVTT\n\n00:00.500 --> 00:01.500\nHello\n",
		"WEBVTT\n",
		"WEBVTT\n\n00:04.250 --> 00:05.000\nBye\n",
	}
	playlist := func(upTo int, end bool) []byte {
		var b strings.Builder
		b.WriteString("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n")
		for k := range upTo {
			fmt.Fprintf(&b, "#EXTINF:2.000000,\nout_0%d.vtt\n", k)
		}
		if end {
			b.WriteString("#EXT-X-ENDLIST\n")
		}
		return []byte(b.String())
	}
	master := `#EXTM3U
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",DEFAULT=YES,LANGUAGE="eng",URI="out_0_vtt.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=900000,CODECS="avc1.64001f,mp4a.40.2",SUBTITLES="subs"
out_0.m3u8
`
	// The variant's media playlist (fMP4: its EXT-X-MAP), which tells
	// the subtitles' cue times are its media time.
	ups := []upload{{"out_0.m3u8", []byte("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init-stream0.m4s\"\n"), 200},
		{"init-stream0.m4s", inits[0], 200}}
	for k := range n {
		ups = append(ups, upload{fmt.Sprintf("out_0%d.vtt", k), []byte(vtts[k]), http.StatusAccepted},
			upload{fmt.Sprintf("chunk-stream0-%05d.m4s", k+1), segs[0][k], 200},
			upload{"out_0_vtt.m3u8", playlist(k+1, k == n-1), 200})
		if k == 0 {
			ups = append(ups, upload{"master.m3u8", []byte(master), 200})
		}
	}
	putAll(t, hs.URL+"/live/subs.isml/", ups)

	var text map[layout.TrackID]*textObjects
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		text = storedText(t, st, "subs")
		done := len(text) == 1
		for _, o := range text {
			done = done && len(o.fragments) == n && len(o.vtt) == n
		}
		if done || time.Now().After(deadline) {
			break
		}
	}
	if len(text) != 1 {
		t.Fatalf("text tracks %v, want one", text)
	}
	for id, o := range text {
		if id.Name != "text_eng" {
			t.Errorf("track %s, want text_eng", id)
		}
		tr, err := fmp4.ParseInit(o.init)
		if err != nil {
			t.Fatal(err)
		}
		if tr.Kind != timeline.Text || tr.Codecs != "wvtt" || tr.Language != "eng" || tr.Label != "English" || !tr.Default {
			t.Errorf("described as %+v", tr)
		}
		want := map[uint64]string{
			0:    "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n00:00:00.500 --> 00:00:01.500\nHello\n\n",
			2000: "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:180000,LOCAL:00:00:02.000\n\n",
			4000: "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:360000,LOCAL:00:00:04.000\n\n00:00:04.250 --> 00:00:05.000\nBye\n\n",
		}
		for start, body := range want {
			if !o.fragments[start] || o.vtt[start] != body {
				t.Errorf("at %d: fragment %v, WebVTT file\n%s\nwant\n%s", start, o.fragments[start], o.vtt[start], body)
			}
		}
	}
}

// A DASH upload's text AdaptationSets (DASH-IF ingest interface 2: wvtt
// and stpp tracks in fMP4 segments, named as ffmpeg's dash muxer names
// them) are stored as any rendition's: a track each, every segment, and
// a WebVTT file beside each wvtt fragment only.
func TestDASHUploadOfTextTracks(t *testing.T) {
	const n = 3
	cfg := synth.Config{CMAF: true, Tracks: []synth.Track{
		{Kind: timeline.Video, Bitrate: 300_000, Width: 320, Height: 180},
		{Kind: timeline.Text, Language: "eng", TextOptions: synth.TextOptions{Codec: "wvtt", CueEvery: 2}},
		{Kind: timeline.Text, Language: "fra", TextOptions: synth.TextOptions{Codec: "stpp"}},
	}}
	hs, st, _ := setup(t)
	var ups []upload
	var streams []*synth.Stream
	for r, c := range cfg.Split() {
		s, err := synth.New(c)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
		hdr, err := s.Header()
		if err != nil {
			t.Fatal(err)
		}
		ups = append(ups, upload{fmt.Sprintf("init-stream%d.m4s", r), hdr, 200})
	}
	for k := range n {
		for r, s := range streams {
			seg, err := s.AppendFragment(nil, k)
			if err != nil {
				t.Fatal(err)
			}
			ups = append(ups, upload{fmt.Sprintf("chunk-stream%d-%05d.m4s", r, k+1), seg, 200})
		}
	}
	putAll(t, hs.URL+"/live/dashtext.isml/", ups)
	text := storedText(t, st, "dashtext")
	if len(text) != 2 {
		t.Fatalf("text tracks %v, want two", text)
	}
	for id, o := range text {
		tr, err := fmp4.ParseInit(o.init)
		if err != nil {
			t.Fatal(err)
		}
		wantVTT := 0
		if tr.Codecs == "wvtt" {
			wantVTT = n
			for start, body := range o.vtt {
				f, err := webvtt.Parse([]byte(body))
				if err != nil || f.Map == nil {
					t.Errorf("%s at %d: %v, map %v", id, start, err, f)
				}
			}
		}
		if len(o.fragments) != n || len(o.vtt) != wantVTT {
			t.Errorf("%s (%s): %d fragments, %d WebVTT files, want %d and %d", id, tr.Codecs, len(o.fragments), len(o.vtt), n, wantVTT)
		}
	}
}

// A multivariant playlist's CLOSED-CAPTIONS, uploaded before its
// variant's init segment, reaches the stored video init segment, which
// the manifests describe the track from (Track.Captions).
func TestHLSClosedCaptionsReachTheStoredVideoInit(t *testing.T) {
	inits, segs := cmafRenditions(t, 1)
	hs, st, _ := setup(t)
	master := `#EXTM3U
#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="English",LANGUAGE="eng",INSTREAM-ID="CC1"
#EXT-X-STREAM-INF:BANDWIDTH=900000,CLOSED-CAPTIONS="cc"
out_0.m3u8
`
	putAll(t, hs.URL+"/live/cc.isml/", []upload{
		{"master.m3u8", []byte(master), 200},
		{"out_0.m3u8", []byte("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init_0.mp4\"\n"), 200},
		{"init_0.mp4", inits[0], 200},
		{"out_00.m4s", segs[0][0], 200},
	})
	var found bool
	for _, k := range testtool.Keys(t, st) {
		obj, err := layout.Parse(k)
		if err != nil || obj.Channel != "cc" || obj.Kind != layout.KindInit {
			continue
		}
		o, err := st.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := fmp4.ParseInit(o.Body)
		if err != nil {
			t.Fatal(err)
		}
		found = true
		if tr.Kind != timeline.Video || tr.Captions != "CC1=eng" {
			t.Errorf("%s: %s with captions %q, want a video with CC1=eng", k, tr.Kind, tr.Captions)
		}
	}
	if !found {
		t.Error("no init segment stored")
	}
}

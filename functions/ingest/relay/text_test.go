package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// A CMAF push (DASH-IF ingest interface 1: a POST per track) of video,
// a WebVTT track and an IMSC1 track is stored as the contract between
// the ingest and the manifests says: each text track's init segment
// (application/mp4) describes as wvtt or stpp, with its language, role,
// label and default flag as the encoder wrote them; its fragments are
// stored, none in its gap; every track gets its end of stream.
func TestCMAFPushWithTextTracks(t *testing.T) {
	const n = 8
	video := synth.Track{Kind: timeline.Video, Bitrate: 300_000, Width: 320, Height: 180}
	wvtt := synth.Track{Kind: timeline.Text, Language: "eng", Label: "English",
		TextOptions: synth.TextOptions{Codec: "wvtt", Default: true, CueEvery: 2, Gap: synth.Gap{From: 2, Count: 4}}}
	stpp := synth.Track{Kind: timeline.Text, Language: "deu", Role: "caption", Bitrate: 2000,
		TextOptions: synth.TextOptions{Codec: "stpp", Gap: synth.Gap{From: 1, Count: -1}}}
	cfg := synth.Config{CMAF: true, Tracks: []synth.Track{video, wvtt, stpp}}
	hs, st, _ := setup(t)
	for i, c := range cfg.Split() {
		s, err := synth.New(c)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		if _, err := s.WriteTo(context.Background(), &body, synth.Range{Count: n}); err != nil {
			t.Fatal(err)
		}
		if code, msg := testtool.Do(t, http.MethodPost, fmt.Sprintf("%s/live/tx.isml/Streams(track%d)", hs.URL, i), body.Bytes(), true); code != http.StatusOK {
			t.Fatalf("push of track %d: %d %s", i, code, msg)
		}
	}
	want := map[string]struct {
		desc  timeline.Track
		frags int
	}{
		"text_eng@": {timeline.Track{Kind: timeline.Text, Timescale: 10_000_000, Codecs: "wvtt", Language: "eng", Label: "English", Default: true}, n - 4},
		"text_deu_caption@2000": {timeline.Track{Kind: timeline.Text, Timescale: 10_000_000, Codecs: "stpp.ttml.im1t", FourCC: "TTML",
			Language: "deu", Role: "caption"}, 1},
	}
	frags, eos := stored(t, st, "tx")
	inits := 0
	for _, k := range testtool.Keys(t, st) {
		obj, err := layout.Parse(k)
		if err != nil || obj.Kind != layout.KindInit || obj.Track.Name == "video" {
			continue
		}
		inits++
		o, err := st.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		id := obj.Track.String()
		if obj.Track.Name == "text_eng" {
			id = "text_eng@" // measured: whatever it is
		}
		w, ok := want[id]
		if !ok {
			t.Errorf("unexpected text track %s", obj.Track)
			continue
		}
		got, err := fmp4.ParseInit(o.Body)
		if err != nil || got != w.desc {
			t.Errorf("%s: described\n%+v, %v; want\n%+v", obj.Track, got, err, w.desc)
		}
		if o.ContentType != "application/mp4" {
			t.Errorf("%s: init segment's Content-Type %q, want application/mp4", obj.Track, o.ContentType)
		}
		if frags[obj.Track.String()] != w.frags {
			t.Errorf("%s: %d fragments, want %d (%v)", obj.Track, frags[obj.Track.String()], w.frags, frags)
		}
	}
	if inits != 2 || eos != 3 {
		t.Errorf("%d text init segments, %d end-of-stream markers; want 2 and one per track", inits, eos)
	}
}

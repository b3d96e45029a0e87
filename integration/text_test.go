package integration_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// A CMAF push (a POST per track) of video, audio and a WebVTT track that
// sends two cues and then nothing for three minutes, its connection left
// open: the video and audio timelines advance to the end as they come,
// the text track's lists its two fragments with no hole and nothing
// pending, and once the video and audio end the stream the channel ends
// (final manifests) though the text connection is still open.
func TestQuietTextTrackNeitherStallsNorHoldsTheChannel(t *testing.T) {
	const n = 20 // fragments of 10 s: 200 s
	_, st := testtool.Store(t, "relay-test")
	hcfg := handler.DefaultConfig()
	hcfg.Retention = 0
	nt := newNotifier(t, st, hcfg, time.Now().Add(-2*time.Second))
	hs := httptest.NewServer(relay.New(nt, relay.DefaultConfig(), quiet).Handler())
	t.Cleanup(hs.Close)

	text, err := synth.New(synth.Config{CMAF: true, FragmentDuration: 10 * time.Second, Tracks: []synth.Track{
		{Kind: timeline.Text, Language: "eng", TextOptions: synth.TextOptions{Codec: "wvtt", Gap: synth.Gap{From: 2, Count: -1}}}}})
	if err != nil {
		t.Fatal(err)
	}
	av, err := synth.New(synth.Config{CMAF: true, Muxed: true, FragmentDuration: 10 * time.Second, Tracks: []synth.Track{
		{Kind: timeline.Video, Bitrate: 100_000, Width: 160, Height: 90},
		{Kind: timeline.Audio, Bitrate: 32_000},
	}})
	if err != nil {
		t.Fatal(err)
	}
	push := testtool.OpenPush(t, hs.URL, "/live/quiet.isml/Streams(text)")
	push.Send(t, synthBody(t, text, seq(0, n), false)) // fragments 0 and 1: the gap holds the rest
	deadline := time.Now().Add(10 * time.Second)
	for {
		frags, _ := fragmentsOf(t, st, "quiet", "text_eng")
		if len(frags) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("text fragments stored: %v, want 2", frags)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var textID layout.TrackID // its bitrate measured
	for _, k := range testtool.Keys(t, st) {
		if obj, err := layout.Parse(k); err == nil && obj.Kind == layout.KindInit && obj.Track.Name == "text_eng" {
			textID = obj.Track
		}
	}
	if code, msg := testtool.Do(t, http.MethodPost, hs.URL+"/live/quiet.isml/Streams(av)", synthBody(t, av, seq(0, n), false), true); code != http.StatusOK {
		t.Fatalf("video and audio push: %d %s", code, msg)
	}
	ids := []layout.TrackID{{Name: "video", Bitrate: 100_000}, {Name: "audio", Bitrate: 32_000}}
	for _, id := range ids {
		state := trackState(t, st, "quiet", id)
		if got := timeline.DurationOf(state.Timeline.End(), synthSecond); state.Timeline.Len() != n || got < 199*time.Second || got > 201*time.Second || len(state.Pending) != 0 {
			t.Errorf("%s: %d fragments to %v (%d pending), want %d to 200 s", id.Name, state.Timeline.Len(), got, len(state.Pending), n)
		}
	}
	if ts := trackState(t, st, "quiet", textID); ts.Timeline.Len() != 2 || len(ts.Timeline.Runs) != 1 || ts.Timeline.Runs[0].Gap || len(ts.Pending) != 0 || len(ts.Ends) != 0 {
		t.Errorf("text state %+v, %d pending, ends %v; want its 2 fragments in one run, and no end (its connection is open)", ts.Timeline, len(ts.Pending), ts.Ends)
	}
	nt.advance(time.Minute) // past the grace after the end of stream
	p, err := nt.h.Presentation(context.Background(), "quiet")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Ended {
		t.Error("the channel is live after its video and audio ended: the quiet text track holds it")
	}
	if smooth := get(t, nt.h, layout.SmoothManifestPath("quiet")); !strings.Contains(smooth, `IsLive="FALSE"`) {
		t.Errorf("Smooth manifest not final:\n%s", smooth)
	}
	if mpd := get(t, nt.h, layout.DASHManifestPath("quiet")); !strings.Contains(mpd, `type="static"`) {
		t.Errorf("MPD not final:\n%s", mpd)
	}
	push.Conn().Close()
}

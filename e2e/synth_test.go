package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// The synthetic encoder pushes the same ladder as the ffmpeg test (two
// video bitrates and AAC, 2 s fragments) as fast as the relay takes it:
// once multiplexed in one POST, as ffmpeg does, and once with a POST per
// track, as Expression Encoder and hardware encoders do, and once as CMAF
// tracks (DASH-IF Live Media Ingest interface 1). The result must play the
// same way.
func TestSynthPushPlaysAsSmoothAndHLS(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	cfg := synth.Config{SMIL: true, AudioOffset: -21333 * time.Microsecond, Tracks: []synth.Track{
		{Kind: timeline.Video, Bitrate: 800_000, Name: "video"},
		{Kind: timeline.Video, Bitrate: 300_000, Name: "video", Width: 320, Height: 180},
		{Kind: timeline.Audio, Bitrate: 96_000, Name: "audio"},
	}}
	rng := synth.Range{Count: pushSeconds / 2, End: true}
	for _, tc := range []struct {
		name    string
		streams []synth.Config
	}{
		{"one POST for all tracks", []synth.Config{cfg}},
		{"one POST per track", cfg.Split()},
		{"CMAF, one POST per track (DASH-IF interface 1)", cmafTracks(cfg)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := startStack(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var wg sync.WaitGroup
			errs := make([]error, len(tc.streams))
			for i, c := range tc.streams {
				s, err := synth.New(c)
				if err != nil {
					t.Fatal(err)
				}
				url := fmt.Sprintf("%s/live/synth.isml/Streams(s%d)", st.IngestURL, i)
				wg.Go(func() { errs[i] = synth.Push(ctx, http.DefaultClient, url, s, rng) })
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			st.Settle(context.Background())
			base := st.EdgeURL + "/live/synth.isml/"
			checkSmooth(t, base)
			checkHLSWithFFmpeg(t, ffmpeg, base+"master.m3u8")
			checkRequestCost(t, st, false)
		})
	}
}

// cmafTracks is cfg as CMAF, a stream per track (audio from zero: a tfdt
// cannot be negative).
func cmafTracks(cfg synth.Config) []synth.Config {
	cfg.CMAF, cfg.SMIL, cfg.AudioOffset = true, false, 0
	return cfg.Split()
}

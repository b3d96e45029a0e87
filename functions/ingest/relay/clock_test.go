package relay

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

func TestChannelClock(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	_, st := testtool.Store(t, "clock-test")
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := &channelClock{st: st, channel: "ch", maxDrift: 10 * time.Second, now: func() time.Time { return now }, log: quiet}

	if off, err := clock.Offset(ctx, ingest.ClockQuery{Start: 0, End: 2 * time.Second}); err != nil || off != 0 {
		t.Fatalf("new channel: offset %v, %v; want 0 (its first fragments set the clock)", off, err)
	}
	// The channel started 60.5 s ago; its video has published 40 s (the
	// relay was down for the last 20).
	video := layout.TrackID{Name: "video", Bitrate: 100000}
	body, _ := timeline.MarshalChannel(&timeline.Channel{Version: timeline.StateVersion, Name: "ch", Epoch: now.Add(-60500 * time.Millisecond),
		Tracks: []timeline.Track{{ID: video, Kind: timeline.Video, Timescale: 10}}})
	if _, err := st.Put(ctx, layout.ChannelStateKey("ch"), body, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	state := timeline.TrackState{Timeline: timeline.Timeline{Runs: []timeline.Run{{Start: 0, Duration: 20, Count: 20}}}}
	body, _ = timeline.MarshalTrackState(&state)
	if _, err := st.Put(ctx, layout.TrackStateKey("ch", video), body, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		encoderEnd time.Duration // of a 2 s fragment
		after      time.Duration // the end of what the session stored of the track
		want       time.Duration
	}{
		{"an encoder on the clock", 58 * time.Second, 0, 0},
		{"a reconnect after an outage resends where the channel stopped", 40 * time.Second, 0, 0},
		{"a redundant encoder a little behind what was published", 31 * time.Second, 0, 0},
		{"an encoder ahead of the clock", 80 * time.Second, 0, -19 * time.Second},
		{"a restarted encoder: its end moves to now, rounded up to a second", 2 * time.Second, 0, 59 * time.Second},
		{"the same encoder's other connection finds the same offset", 2200 * time.Millisecond, 0, 59 * time.Second},
		{"another restart far from that offset gets a new one", 300 * time.Second, 0, -239 * time.Second},
		// The session stored up to 70 s, ahead of the clock (60.5 s) and of
		// the published state (40 s, which lags): ending the fragment at
		// now would put it over what the session stored.
		{"a jump inside a session ahead of the clock starts after what it stored", 202 * time.Second, 70 * time.Second, -130 * time.Second},
		{"its other track, ending a little later, finds the same offset", 202100 * time.Millisecond, 70100 * time.Millisecond, -130 * time.Second},
		{"a track that stored further on than that offset reaches gets a new one", 202 * time.Second, 73500 * time.Millisecond, -126 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := ingest.ClockQuery{Start: tc.encoderEnd - 2*time.Second, End: tc.encoderEnd, After: tc.after}
			off, err := clock.Offset(ctx, q)
			if err != nil || off != tc.want {
				t.Fatalf("offset %v, %v; want %v", off, err, tc.want)
			}
			if tc.after > 0 && q.Start+off < tc.after {
				t.Errorf("the fragment starts at %v, before what the session stored (%v)", q.Start+off, tc.after)
			}
		})
	}
}

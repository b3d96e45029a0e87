package relay

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool"
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

	if off, err := clock.Offset(ctx, 2*time.Second); err != nil || off != 0 {
		t.Fatalf("new channel: offset %v, %v; want 0 (its first fragments set the clock)", off, err)
	}
	// The channel has played for 60.5 s.
	body, _ := timeline.MarshalChannel(&timeline.Channel{Version: timeline.StateVersion, Name: "ch", Epoch: now.Add(-60500 * time.Millisecond)})
	if _, err := st.Put(ctx, layout.ChannelStateKey("ch"), body, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		encoderEnd time.Duration
		want       time.Duration
	}{
		{"an encoder on the clock (a reconnect)", 58 * time.Second, 0},
		{"a redundant encoder a little behind", 51 * time.Second, 0},
		{"a restarted encoder: its end moves to now, rounded up to a second", 2 * time.Second, 59 * time.Second},
		{"the same encoder's other connection finds the same offset", 2200 * time.Millisecond, 59 * time.Second},
		{"another restart far from that offset gets a new one", 300 * time.Second, -239 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			off, err := clock.Offset(ctx, tc.encoderEnd)
			if err != nil || off != tc.want {
				t.Fatalf("offset %v, %v; want %v", off, err, tc.want)
			}
		})
	}
}

package relay_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/synth"
)

// feedLive feeds a live stream the header and fragments [0, n) of s, box
// by box, as a live source's packager would.
func feedLive(t *testing.T, l *relay.Live, s *synth.Stream, n int) {
	t.Helper()
	b, err := s.Header()
	if err != nil {
		t.Fatal(err)
	}
	for k := range n {
		if b, err = s.AppendFragment(b, k); err != nil {
			t.Fatal(err)
		}
	}
	for box, err := range mp4box.All(b) {
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Box(l.Context(), box); err != nil {
			t.Fatalf("box %s: %v", box.Type, err)
		}
	}
	l.Read(len(b))
}

// Whether a live source's publish opens is decided as a push's is: the
// channel's secret (given in the stream key or ID), the limits of pushes
// in progress, and shutdown; what the encoder is told gives nothing away.
func TestOpenLiveAdmitsAsAPushWould(t *testing.T) {
	secrets := relay.Secrets{PerChannel: map[string]string{"news": "news-secret-0123456789"}}
	cases := []struct {
		name       string
		secrets    relay.Secrets
		perChannel int
		req        relay.LiveRequest
		shutdown   bool
		wantReason string // "" opens
		wantRetry  bool
	}{
		{name: "authentication off opens any channel", req: relay.LiveRequest{Kind: "rtmp", Channel: "open"}},
		{name: "the channel's secret opens it", secrets: secrets, req: relay.LiveRequest{Kind: "srt", Channel: "news", Secret: "news-secret-0123456789"}},
		{name: "no secret is refused", secrets: secrets, req: relay.LiveRequest{Kind: "rtmp", Channel: "news"}, wantReason: "authentication required"},
		{name: "a wrong secret is refused", secrets: secrets, req: relay.LiveRequest{Kind: "rtmp", Channel: "news", Secret: "not-the-secret-0123456789"}, wantReason: "wrong secret"},
		{name: "a stream the operator configured opens without a secret", secrets: secrets, req: relay.LiveRequest{Kind: "srt", Channel: "news", Configured: true}},
		{name: "a configured stream still keeps to the pushes per channel", perChannel: -1, req: relay.LiveRequest{Kind: "srt", Channel: "busy", Configured: true}, wantReason: "too many streams: try again later", wantRetry: true},
		{name: "a configured stream still needs a channel name a path can carry", req: relay.LiveRequest{Kind: "srt", Channel: "../x", Configured: true}, wantReason: `ingest protocol: channel name "../x": letters, digits, - and _ only, 1 to 64 of them`},
		{name: "a channel without a secret reads as a wrong secret", secrets: secrets, req: relay.LiveRequest{Kind: "rtmp", Channel: "other", Secret: "news-secret-0123456789"}, wantReason: "wrong secret"},
		{name: "over the pushes per channel", perChannel: -1, req: relay.LiveRequest{Kind: "srt", Channel: "busy"}, wantReason: "too many streams: try again later", wantRetry: true},
		{name: "while shutting down", shutdown: true, req: relay.LiveRequest{Kind: "rtmp", Channel: "late"}, wantReason: "relay shutting down: publish to another relay", wantRetry: true},
		{name: "a channel name no path can carry", req: relay.LiveRequest{Kind: "rtmp", Channel: "../x"}, wantReason: `ingest protocol: channel name "../x": letters, digits, - and _ only, 1 to 64 of them`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := relay.DefaultConfig()
			cfg.Secrets = tc.secrets
			if tc.perChannel < 0 {
				cfg.MaxStreamsPerChannel = 1
			}
			_, _, rec, rl := newRelay(t, cfg)
			if tc.perChannel < 0 {
				first, err := rl.OpenLive(context.Background(), relay.LiveRequest{Kind: "rtmp", Channel: tc.req.Channel})
				if err != nil {
					t.Fatal(err)
				}
				defer first.Close(nil)
			}
			if tc.shutdown {
				if err := rl.Shutdown(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			l, err := rl.OpenLive(context.Background(), tc.req)
			if tc.wantReason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if got := rl.Active(); got != 1 {
					t.Errorf("Active() = %d, want 1", got)
				}
				l.Close(nil)
				if got := rl.Active(); got != 0 {
					t.Errorf("after Close, Active() = %d, want 0", got)
				}
				return
			}
			if err == nil {
				l.Close(nil)
				t.Fatal("opened")
			}
			reason, retry := relay.LiveRefusal(err)
			if reason != tc.wantReason || retry != tc.wantRetry {
				t.Errorf("LiveRefusal = %q, %v; want %q, %v", reason, retry, tc.wantReason, tc.wantRetry)
			}
			if lines := strings.Join(rec.Lines(), "\n"); !strings.Contains(lines, "WARN "+tc.req.Kind+" publish ") {
				t.Errorf("the refusal is not logged:\n%s", lines)
			}
			if got := len(rl.Status().RecentErrors); got != 1 {
				t.Errorf("%d recent errors, want 1", got)
			}
		})
	}
}

// A live stream stores what its packager makes as a push would, shows on
// /status while it runs, and its end writes the tracks' end markers: an
// end of stream when the encoder ended it, a drop otherwise.
func TestLiveStreamStoresAndEnds(t *testing.T) {
	for _, tc := range []struct {
		name       string
		why        error
		ends, drop int
	}{
		{"the encoder ends the stream", nil, 3, 0},
		{"the connection drops", errors.New("connection reset"), 0, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, st, _, rl := newRelay(t, relay.DefaultConfig())
			s, err := synth.New(synth.Config{Tracks: synth.Ladder()[:3], FragmentDuration: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			l, err := rl.OpenLive(context.Background(), relay.LiveRequest{Kind: "rtmp", Channel: "live", Stream: "obs", Remote: "192.0.2.7:50000"})
			if err != nil {
				t.Fatal(err)
			}
			feedLive(t, l, s, 4)
			status := rl.Status()
			if len(status.Channels) != 1 || len(status.Channels[0].Streams) != 1 {
				t.Fatalf("status: %+v", status)
			}
			ss := status.Channels[0].Streams[0]
			if ss.Kind != "rtmp" || ss.Stream != "obs" || ss.Remote != "192.0.2.7:50000" || ss.Bytes == 0 || len(ss.Tracks) != 3 || ss.Tracks[0].Fragments != 4 {
				t.Errorf("status stream: %+v", ss)
			}
			l.Close(tc.why)
			l.Close(tc.why) // twice: nothing more
			got := storedEnds(t, st, "live")
			if got.fragments != 12 || got.ends != tc.ends || got.drops != tc.drop {
				t.Errorf("stored %+v; want 12 fragments, %d ends, %d drops", got, tc.ends, tc.drop)
			}
			if n := len(rl.Status().Channels); n != 0 {
				t.Errorf("%d channels on /status after Close", n)
			}
		})
	}
}

// Shutdown stops a live stream at its next fragment boundary (Stopping),
// waits for its Close, and cuts it at once (Context) when its deadline
// comes first.
func TestShutdownStopsLiveStreams(t *testing.T) {
	t.Run("at the boundary", func(t *testing.T) {
		_, st, _, rl := newRelay(t, relay.DefaultConfig())
		s, err := synth.New(synth.Config{Tracks: synth.Ladder()[:1], FragmentDuration: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		l, err := rl.OpenLive(context.Background(), relay.LiveRequest{Kind: "srt", Channel: "stop"})
		if err != nil {
			t.Fatal(err)
		}
		feedLive(t, l, s, 2)
		done := make(chan error, 1)
		go func() { done <- rl.Shutdown(context.Background()) }()
		<-l.Stopping()
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned before the stream closed: %v", err)
		default:
		}
		l.Close(fmt.Errorf("stopped: %w", relay.ErrShuttingDown))
		if err := <-done; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if got := storedEnds(t, st, "stop"); got.fragments != 2 || got.drops != 1 || got.ends != 0 {
			t.Errorf("stored %+v; want 2 fragments and a drop (the encoder reconnects elsewhere)", got)
		}
		if n := len(rl.Status().RecentErrors); n != 0 {
			t.Errorf("a shutdown is not an error: %+v", rl.Status().RecentErrors)
		}
	})
	t.Run("cut at the deadline", func(t *testing.T) {
		_, _, _, rl := newRelay(t, relay.DefaultConfig())
		l, err := rl.OpenLive(context.Background(), relay.LiveRequest{Kind: "rtmp", Channel: "stuck"})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			<-l.Context().Done() // a source that never reaches a boundary
			l.Close(l.Context().Err())
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
		defer cancel()
		err = rl.Shutdown(ctx)
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown: %v", err)
		}
		if rl.Active() != 0 {
			t.Errorf("Active() = %d after Shutdown", rl.Active())
		}
	})
}

package integration_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/internal/testtool/logtest"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// Two redundant encoders push the same channel to one relay, under two
// stream names, with identical timestamps and content, fragment for
// fragment at the same time. Every fragment object is written once (the
// other encoder's PUT is refused as existing), the manifest function
// lists each fragment once, and when one encoder stops halfway (it ends
// the stream, or its connection drops between fragments or inside one)
// the other's fragments go on with no gap and no discontinuity, up to
// final manifests of every fragment once.
func TestRedundantEncodersOnOneRelay(t *testing.T) {
	const total, half = 12, 6
	for _, tc := range []struct {
		name string
		stop string // how encoder 1 stops after fragment half-1
		code int    // what it is answered
	}{
		{"encoder 1 ends the stream halfway", "end", http.StatusOK},
		{"encoder 1 drops between fragments halfway", "drop", 0},
		{"encoder 1 drops inside a fragment halfway", "cut", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, st := testtool.Store(t, "relay-test")
			hcfg := handler.DefaultConfig()
			hcfg.Retention = 0
			n := newNotifier(t, st, hcfg, time.Now().Add(-2*time.Second))
			rec := logtest.New()
			hs := httptest.NewServer(relay.New(n, relay.DefaultConfig(), slog.New(rec)).Handler())
			t.Cleanup(hs.Close)

			s, err := synth.New(synth.Config{FragmentDuration: 2 * time.Second, SMIL: true,
				Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 300_000}, {Kind: timeline.Audio, Bitrate: 64_000}}})
			if err != nil {
				t.Fatal(err)
			}
			ids := []layout.TrackID{{Name: "video", Bitrate: 300_000}, {Name: "audio", Bitrate: 64_000}}
			header, err := s.Header()
			if err != nil {
				t.Fatal(err)
			}
			frags := make([][]byte, total)
			for k := range frags {
				if frags[k], err = s.AppendFragment(nil, k); err != nil {
					t.Fatal(err)
				}
			}
			key := func(i, k int) string { return layout.FragmentKey("red", ids[i], uint64(s.Start(i, k))) }
			// attempts waits until every track's fragment k has had want
			// PUTs (written or refused).
			attempts := func(k, want int) {
				t.Helper()
				deadline := time.Now().Add(10 * time.Second)
				for {
					n.mu.Lock()
					done := true
					for i := range ids {
						done = done && n.puts[key(i, k)]+n.refused[key(i, k)] >= want
					}
					n.mu.Unlock()
					if done {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("fragment %d: fewer than %d PUTs per track", k, want)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}

			encs := []*testtool.SteppedPush{testtool.OpenPush(t, hs.URL, "/live/red.isml/Streams(enc1)"), testtool.OpenPush(t, hs.URL, "/live/red.isml/Streams(enc2)")}
			for _, e := range encs {
				e.Send(t, header)
			}
			for k := range half {
				var wg sync.WaitGroup
				for _, e := range encs {
					wg.Go(func() { e.Send(t, frags[k]) })
				}
				wg.Wait()
				attempts(k, 2)
			}
			switch tc.stop {
			case "end":
				encs[0].Send(t, s.Trailer())
				if code, msg := encs[0].Finish(t); code != tc.code {
					t.Fatalf("encoder 1: %d %s, want %d", code, msg, tc.code)
				}
			case "drop":
				encs[0].Conn().Close()
			case "cut":
				encs[0].Send(t, frags[half][:len(frags[half])/2])
				encs[0].Conn().Close()
			}
			// What the relay logs of each encoder's push.
			ended := map[string]slog.Level{"push ended": slog.LevelInfo}
			stopped := map[string]slog.Level{"push dropped": slog.LevelWarn}
			if tc.stop == "end" {
				stopped = ended
			}
			logged := func(stream string, how map[string]slog.Level) map[string]string {
				for msg, level := range how {
					return rec.Wait(t, level, msg, map[string]string{"stream": stream})
				}
				return nil
			}
			logged("enc1", stopped) // the relay is done with encoder 1
			for k := half; k < total; k++ {
				encs[1].Send(t, frags[k])
				attempts(k, 1)
				// Published at once: the other encoder's fragments continue
				// the chain, so nothing waits for the gap timeout.
				for i, id := range ids {
					if st := trackState(t, st, "red", id); st.Timeline.End() != uint64(s.Start(i, k+1)) || len(st.Pending) != 0 {
						t.Errorf("after fragment %d: %s published to %d (%d pending), want to %d", k, id.Name, st.Timeline.End(), len(st.Pending), s.Start(i, k+1))
					}
				}
			}
			encs[1].Send(t, s.Trailer())
			if code, msg := encs[1].Finish(t); code != http.StatusOK {
				t.Fatalf("encoder 2: %d %s", code, msg)
			}

			// Each fragment object written once; the other encoder's
			// PUT of a fragment both sent was refused.
			n.mu.Lock()
			for i := range ids {
				for k := range total {
					wantRefused := 0
					if k < half {
						wantRefused = 1
					}
					if p, r := n.puts[key(i, k)], n.refused[key(i, k)]; p != 1 || r != wantRefused {
						t.Errorf("%s fragment %d: %d PUTs written, %d refused; want 1 and %d", ids[i].Name, k, p, r, wantRefused)
					}
				}
			}
			n.mu.Unlock()
			var written, dupes int
			for stream, how := range map[string]map[string]slog.Level{"enc1": stopped, "enc2": ended} {
				as := logged(stream, how)
				var w, d int
				fmt.Sscan(as["written"], &w)
				fmt.Sscan(as["duplicates"], &d)
				written, dupes = written+w, dupes+d
			}
			if written != total*len(ids) || dupes != half*len(ids) {
				t.Errorf("the relay logged %d fragments written and %d duplicates, want %d and %d", written, dupes, total*len(ids), half*len(ids))
			}

			// The manifests: every fragment once, no gap, no discontinuity,
			// and final once the grace after encoder 2's end has passed.
			n.advance(time.Minute)
			for i, id := range ids {
				state := trackState(t, st, "red", id)
				if state.Timeline.Len() != total || len(state.Timeline.Runs) != 1 || state.Timeline.Runs[0].Gap || state.Timeline.Runs[0].Break || len(state.Pending) != 0 {
					t.Errorf("%s state: %+v (%d pending), want %d fragments in one run", id.Name, state.Timeline, len(state.Pending), total)
				}
				pl := parsePlaylist(t, get(t, n.h, layout.MediaPlaylistPath("red", id)))
				var want []uint64
				for k := range total {
					want = append(want, uint64(s.Start(i, k)))
				}
				if fmt.Sprint(pl.starts) != fmt.Sprint(want) || len(pl.discBefore) != 0 || pl.discSeq != 0 || !pl.endList {
					t.Errorf("%s playlist: %v, discontinuities before %v (sequence %d), end %v; want %v, none, final", id.Name, pl.starts, pl.discBefore, pl.discSeq, pl.endList, want)
				}
			}
			mpd := get(t, n.h, layout.DASHManifestPath("red"))
			if periods := strings.Count(mpd, "<Period "); periods != 1 || !strings.Contains(mpd, `type="static"`) {
				t.Errorf("MPD: %d Periods, want 1, static:\n%s", periods, mpd)
			}
			if smooth := get(t, n.h, layout.SmoothManifestPath("red")); !strings.Contains(smooth, `IsLive="FALSE"`) {
				t.Errorf("Smooth manifest not final:\n%s", smooth)
			}
		})
	}
}

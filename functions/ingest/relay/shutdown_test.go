package relay_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
)

// stopped is what a channel's store holds after a shutdown: its fragments,
// and its end markers by what they say.
type stopped struct {
	fragments, drops, ends int
}

func storedEnds(t *testing.T, st *store.Store, channel string) stopped {
	t.Helper()
	var s stopped
	for _, k := range testtool.Keys(t, st) {
		obj, err := layout.Parse(k)
		if err != nil || obj.Channel != channel {
			continue
		}
		switch obj.Kind {
		case layout.KindFragment:
			s.fragments++
		case layout.KindEnd:
			o, err := st.Get(context.Background(), k)
			if err != nil {
				t.Fatal(err)
			}
			switch string(o.Body) {
			case `{"eos":false}`:
				s.drops++
			case `{"eos":true}`:
				s.ends++
			default:
				t.Errorf("end marker %s: %q", k, o.Body)
			}
		}
	}
	return s
}

// streamBytes is what the relay has read of the one push to channel.
func streamBytes(rl *relay.Relay, channel string) int64 {
	for _, c := range rl.Status().Channels {
		if c.Channel == channel && len(c.Streams) == 1 {
			return c.Streams[0].Bytes
		}
	}
	return -1
}

// waitFor polls ok for up to five seconds.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// httpGet answers GET url with its status and body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	return testtool.Do(t, "GET", url, nil, false)
}

// A relay that shuts down while an encoder pushes lets the push finish the
// fragment it is receiving and stores it, then ends the push as a drop
// (end markers that do not end the stream, so the channel stays live
// while the encoder reconnects elsewhere) and answers it 503; a push
// between fragments stops at once. Meanwhile new pushes and uploads get
// 503 and /healthz says so.
func TestShutdown(t *testing.T) {
	body := fixture(t)
	boxes := topBoxes(t, body)
	end := func(i int) int { return boxes[i].at + boxes[i].size } // where box i ends
	// boxes: ftyp, uuid, moov, then moof and mdat of six fragments (3 to
	// 14), mfra.
	for _, tc := range []struct {
		name string
		sent int // of the body, before Shutdown
		// inFlight: the push is inside a fragment, which Shutdown waits for
		// (the rest of the body comes after it was called).
		inFlight  bool
		fragments int // stored, in all
		tracks    int // with fragments, so with a drop marker
	}{
		{"inside a fragment's mdat", boxes[6].at + 1000, true, 2, 2},
		{"between a moof and its mdat", end(7), true, 3, 3},
		{"inside a moof", boxes[9].at + 10, true, 4, 3},
		{"inside a box header", boxes[9].at + 4, true, 4, 3},
		{"between fragments", end(6), false, 2, 2},
		{"after the moov", end(2), false, 0, 0},
		{"before any byte", 0, false, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs, st, _, rl := newRelay(t, relay.DefaultConfig())
			admin := httptest.NewServer(rl.AdminHandler())
			t.Cleanup(admin.Close)
			p := testtool.OpenPush(t, hs.URL, "/live/ch1.isml/Streams(enc1)")
			if tc.sent > 0 {
				p.Send(t, body[:tc.sent])
			}
			waitFor(t, "the relay to read what was sent", func() bool { return streamBytes(rl, "ch1") == int64(tc.sent) })

			done := make(chan error, 1)
			called := time.Now()
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				done <- rl.Shutdown(ctx)
			}()
			waitFor(t, "shutting down", rl.ShuttingDown)
			if tc.inFlight {
				select {
				case err := <-done:
					t.Fatalf("Shutdown returned (%v) before the fragment in flight came", err)
				case <-time.After(200 * time.Millisecond):
				}
				// Meanwhile: nothing new.
				if code, msg := httpGet(t, admin.URL+"/healthz"); code != 503 || !strings.Contains(msg, "shutting down") {
					t.Errorf("/healthz while shutting down: %d %q", code, msg)
				}
				if code, msg := testtool.Do(t, "POST", hs.URL+"/live/ch2.isml/Streams(enc1)", body, true); code != 503 || !strings.Contains(msg, "shutting down") {
					t.Errorf("a new push while shutting down: %d %q, want 503", code, msg)
				}
				if code, _ := testtool.Do(t, "PUT", hs.URL+"/live/ch2.isml/init.m4s", body[:end(2)], false); code != 503 {
					t.Errorf("a new upload while shutting down: %d, want 503", code)
				}
				p.Send(t, body[tc.sent:]) // the rest, and then some
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Shutdown: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Shutdown did not return")
			}
			if took := time.Since(called); !tc.inFlight && took > time.Second {
				t.Errorf("Shutdown took %v with the push between fragments", took)
			}
			if code, msg := p.Answer(t, 5*time.Second); code != 503 || !strings.Contains(msg, "shutting down") {
				t.Errorf("push answered %d %q, want 503 shutting down", code, msg)
			}
			if n := rl.Active(); n != 0 {
				t.Errorf("%d pushes in progress after Shutdown", n)
			}
			want := stopped{fragments: tc.fragments, drops: tc.tracks}
			if got := storedEnds(t, st, "ch1"); got != want {
				t.Errorf("stored %+v, want %+v", got, want)
			}
			if got := storedEnds(t, st, "ch2"); got != (stopped{}) {
				t.Errorf("the push refused during shutdown stored %+v", got)
			}
			if code, _ := httpGet(t, admin.URL+"/healthz"); code != 503 {
				t.Errorf("/healthz after Shutdown: %d", code)
			}
			if got := scrape(t, rl); got[`smoothcast_errors_total{kind="shutdown"}`] != map[bool]float64{true: 2}[tc.inFlight] ||
				got[`smoothcast_errors_total{kind="read"}`]+got[`smoothcast_errors_total{kind="timeout"}`] != 0 {
				t.Errorf("errors: shutdown %v, read %v, timeout %v", got[`smoothcast_errors_total{kind="shutdown"}`],
					got[`smoothcast_errors_total{kind="read"}`], got[`smoothcast_errors_total{kind="timeout"}`])
			}
		})
	}
}

// A push stuck inside a fragment does not hold the shutdown past its
// timeout: it is cut (that fragment is lost) a little before, its tracks'
// end markers are still written, and Shutdown says it ran out of time.
func TestShutdownTimeoutCutsAStuckPush(t *testing.T) {
	body := fixture(t)
	boxes := topBoxes(t, body)
	hs, st, _, rl := newRelay(t, relay.DefaultConfig())
	p := testtool.OpenPush(t, hs.URL, "/live/ch1.isml/Streams(enc1)")
	sent := boxes[6].at + 1000 // inside the second fragment, for ever
	p.Send(t, body[:sent])
	waitFor(t, "the relay to read what was sent", func() bool { return streamBytes(rl, "ch1") == int64(sent) })
	const timeout = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	err := rl.Shutdown(ctx)
	took := time.Since(start)
	// Near its deadline, not when the stuck push ends (never): a second
	// of slack for a loaded machine running the race detector.
	if !errors.Is(err, context.DeadlineExceeded) || took > 2*timeout {
		t.Fatalf("Shutdown: %v after %v, want the deadline's error after %v", err, took, timeout)
	}
	waitFor(t, "the push to end", func() bool { return rl.Active() == 0 })
	waitFor(t, "its end marker", func() bool { return storedEnds(t, st, "ch1").drops == 1 })
	if got := storedEnds(t, st, "ch1"); got != (stopped{fragments: 1, drops: 1}) {
		t.Errorf("stored %+v, want the first fragment and a drop", got)
	}
}

// Upload renditions end as drops on shutdown; segments uploaded
// meanwhile get 503.
func TestShutdownEndsUploads(t *testing.T) {
	inits, segments := cmafRenditions(t, 3)
	hs, st, _, rl := newRelay(t, relay.DefaultConfig())
	for i, b := range [][]byte{inits[0], segments[0][0], segments[0][1]} {
		if code, msg := testtool.Do(t, "PUT", hs.URL+fmt.Sprintf("/live/up.isml/file-%d.m4s", i), b, false); code != 200 {
			t.Fatalf("upload %d: %d %s", i, code, msg)
		}
	}
	if n := rl.Active(); n != 1 {
		t.Fatalf("%d sessions, want the rendition's", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rl.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := rl.Active(); n != 0 {
		t.Errorf("%d sessions after Shutdown", n)
	}
	if got := storedEnds(t, st, "up"); got != (stopped{fragments: 2, drops: 1}) {
		t.Errorf("stored %+v, want 2 fragments and a drop", got)
	}
	if code, _ := testtool.Do(t, "PUT", hs.URL+"/live/up.isml/file-3.m4s", segments[0][2], false); code != 503 {
		t.Errorf("a segment after Shutdown: %d, want 503", code)
	}
	if s := rl.Status(); len(s.Channels) != 0 || !s.ShuttingDown {
		t.Errorf("status after Shutdown: %+v", s)
	}
}

package srt

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	gosrt "github.com/datarhei/gosrt"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
)

// fakeEncoder is an SRT encoder in listener mode: it accepts the relay's
// calls and hands each connection to the test.
type fakeEncoder struct {
	addr  string
	conns chan gosrt.Conn
}

// listenEncoder listens on addr ("127.0.0.1:0" for any port) as an
// encoder does, with passphrase when set, until the test ends.
func listenEncoder(t *testing.T, addr, passphrase string) *fakeEncoder {
	t.Helper()
	cfg := gosrt.DefaultConfig()
	cfg.PeerIdleTimeout = time.Second
	ln, err := gosrt.Listen("srt", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &fakeEncoder{addr: ln.Addr().String(), conns: make(chan gosrt.Conn, 4)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			req, err := ln.Accept2()
			if err != nil {
				return
			}
			if passphrase != "" {
				if !req.IsEncrypted() {
					req.Reject(gosrt.REJ_UNSECURE)
					continue
				}
				if err := req.SetPassphrase(passphrase); err != nil {
					req.Reject(gosrt.REJ_BADSECRET)
					continue
				}
			} else if req.IsEncrypted() {
				req.Reject(gosrt.REJ_UNSECURE)
				continue
			}
			c, err := req.Accept()
			if err != nil {
				continue
			}
			e.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(e.conns)
		for c := range e.conns {
			c.Close()
		}
	})
	return e
}

// accepted waits for the relay's call.
func (e *fakeEncoder) accepted(t *testing.T) gosrt.Conn {
	t.Helper()
	select {
	case c := <-e.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(20 * time.Second):
		t.Fatal("the relay did not call the encoder")
		return nil
	}
}

// pullServer is a relay over the embedded store and an SRT server that
// only pulls (no listener), with what its pullers tell of their waits.
type pullServer struct {
	*testServer
	waits chan pullWait
}

type pullWait struct {
	wait time.Duration
	err  error
}

// startPulls starts a relay (adjusted by rcfg) and a Server that only
// pulls (cfg.Pull; no listener), whose pullers retry as retry says and
// tell the test of each wait; Close is the test's, or at its end.
func startPulls(t *testing.T, rcfg relay.Config, cfg Config, retry retryPolicy) *pullServer {
	t.Helper()
	cfg.Addr = ""
	waits := make(chan pullWait, 64)
	ts := startServerWith(t, rcfg, cfg, func(s *Server) {
		s.retry = retry
		s.onWait = func(_ Pull, wait time.Duration, err error) {
			select {
			case waits <- pullWait{wait, err}:
			default: // the test no longer listens
			}
		}
	})
	return &pullServer{testServer: ts, waits: waits}
}

// waited is the puller's next wait before it dials again.
func (ps *pullServer) waited(t *testing.T) pullWait {
	t.Helper()
	select {
	case w := <-ps.waits:
		return w
	case <-time.After(30 * time.Second):
		t.Fatal("the puller did not wait to dial again")
		return pullWait{}
	}
}

// pullGoroutines is the stacks of the goroutines of channel's puller that
// run code of this package (gosrt's own goroutines, which it started
// from the puller's, are the library's to end: see the report on its
// Dial).
func pullGoroutines(channel string) []string {
	var b bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
	var out []string
	for rec := range strings.SplitSeq(b.String(), "\n\n") {
		if strings.Contains(rec, `"srt_pull":"`+channel+`"`) && strings.Contains(rec, "functions/ingest/srt.") {
			out = append(out, rec)
		}
	}
	return out
}

// checkNoPuller checks that channel's puller has ended: its goroutines
// end with Close, the last within moments of it.
func checkNoPuller(t *testing.T, channel string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		left := pullGoroutines(channel)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the puller's goroutines outlive Close:\n%s", strings.Join(left, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var testRetry = retryPolicy{min: 10 * time.Millisecond, max: 40 * time.Millisecond, dialTimeout: 300 * time.Millisecond}

// The relay calls an encoder that listens and takes its stream into the
// channel as it takes a caller's: no secret asked (authentication is on:
// the operator configured the pull), with or without encryption; the
// stream shows on /status as "srt-pull" from the encoder's address;
// every fragment is stored, and the encoder's close is the end of
// stream. Then the puller dials again.
func TestPullTakesAListeningEncodersStream(t *testing.T) {
	const pass = "pull-passphrase-0123"
	ts := fixture(t)
	for _, tc := range []struct{ name, passphrase string }{
		{"in the clear", ""},
		{"encrypted", pass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			enc := listenEncoder(t, "127.0.0.1:0", tc.passphrase)
			rcfg := relay.DefaultConfig()
			rcfg.Secrets = relay.Secrets{Default: "ingest-secret-0123456789"}
			cfg := DefaultConfig()
			cfg.Pull = []Pull{{Channel: "pulled", Addr: enc.addr, Passphrase: tc.passphrase}}
			s := startPulls(t, rcfg, cfg, retryPolicy{min: time.Minute, max: time.Minute, dialTimeout: 5 * time.Second})
			c := enc.accepted(t)
			write(t, c, ts)
			waitSent(t, c)
			waitRead(t, s.rl, "pulled", 20*188)
			ch := s.rl.Status().Channels[0]
			if st := ch.Streams[0]; ch.Channel != "pulled" || st.Stream != "srt-pull" || st.Kind != "srt" || st.Remote != enc.addr {
				t.Errorf("/status shows %+v in %s; want the srt-pull stream from %s", st, ch.Channel, enc.addr)
			}
			c.Close()
			if w := s.waited(t); w.err != nil {
				t.Errorf("the stream ended with %v", w.err)
			}
			got := storedOf(t, s.store, "pulled")
			if want := map[string]int{"video": 8, "audio": 8}; !maps.Equal(got.counts(), want) {
				t.Errorf("fragments %v, want %v\n%s", got.counts(), want, strings.Join(s.rec.Lines(), "\n"))
			}
			if want := map[string]bool{"video": true, "audio": true}; !maps.Equal(got.ends, want) {
				t.Errorf("end markers (eos) %v, want %v", got.ends, want)
			}
			s.rec.Wait(t, slog.LevelInfo, "srt publish ended", map[string]string{"stream": "srt-pull", "end_of_stream": "true"})
			for _, l := range s.rec.Lines() {
				if strings.Contains(l, pass) {
					t.Errorf("the passphrase in the log: %s", l)
				}
			}
		})
	}
}

// An encoder that is not there yet: the dials fail (logged once, not at
// each try), the waits double up to the cap, and when the encoder
// appears the puller connects and the channel gets its stream; after it
// the wait is back to the least.
func TestPullWaitsForAnEncoderThatIsNotThereYet(t *testing.T) {
	addr := testtool.FreeUDPAddr(t)
	cfg := DefaultConfig()
	cfg.Pull = []Pull{{Channel: "later", Addr: addr}}
	s := startPulls(t, relay.DefaultConfig(), cfg, testRetry)
	var waits []time.Duration
	for range 4 {
		w := s.waited(t)
		if w.err == nil || !strings.Contains(w.err.Error(), "no answer: is the encoder listening") {
			t.Fatalf("a dial to nothing failed with %v", w.err)
		}
		waits = append(waits, w.wait)
	}
	if want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 40 * time.Millisecond}; !slices.Equal(waits, want) {
		t.Errorf("waits %v, want %v (doubling to the cap)", waits, want)
	}
	logged := 0
	for _, r := range s.rec.Records() {
		if r.Message == "srt pull: no stream from the encoder; retrying" {
			logged++
		}
	}
	if logged != 1 {
		t.Errorf("%d log lines for 4 failed dials of one reason; want 1", logged)
	}
	enc := listenEncoder(t, addr, "")
	c := enc.accepted(t)
	write(t, c, fixture(t))
	waitSent(t, c)
	c.Close()
	for {
		if w := s.waited(t); w.err == nil {
			// The stream ended (failed dials before it may be queued).
			if w.wait != testRetry.min {
				t.Errorf("after a stream that carried media the puller waits %v; want the least, %v", w.wait, testRetry.min)
			}
			break
		}
	}
	if got := storedOf(t, s.store, "later").counts(); !maps.Equal(got, map[string]int{"video": 8, "audio": 8}) {
		t.Errorf("fragments %v, want 8 of each track", got)
	}
}

// An encoder whose network vanishes inside a GOP is a drop (nothing of
// that GOP stored, the channel stays live); the puller calls it again,
// and when it answers the channel continues with its stream, which ends
// with its close.
func TestPullContinuesTheChannelAfterADropMidGOP(t *testing.T) {
	ts := fixture(t)
	enc := listenEncoder(t, "127.0.0.1:0", "")
	proxy := newUDPProxy(t, enc.addr)
	cfg := DefaultConfig()
	cfg.PeerIdleTimeout = time.Second
	cfg.Pull = []Pull{{Channel: "again", Addr: proxy.addr}}
	retry := testRetry
	retry.dialTimeout = time.Second
	s := startPulls(t, relay.DefaultConfig(), cfg, retry)

	first := upTo(t, ts, 4.5)
	c1 := enc.accepted(t)
	write(t, c1, first)
	waitSent(t, c1)
	proxy.blackhole()
	if w := s.waited(t); w.err != nil {
		t.Fatalf("the dropped stream: %v", w.err)
	}
	s.rec.Wait(t, slog.LevelWarn, "srt publish dropped", map[string]string{"err": "connection lost"})
	proxy.restore()
	c2 := enc.accepted(t)
	write(t, c2, ts[len(first):]) // from inside the cut GOP: its end is dropped until a key frame
	waitSent(t, c2)
	c2.Close()
	for {
		if w := s.waited(t); w.err == nil {
			break
		}
	}
	got := storedOf(t, s.store, "again")
	frames := 0
	for _, f := range got.fragments["video"] {
		frames += f.Samples
	}
	// 4 whole GOPs before the drop, then the 3 from the next key frame
	// (5 s) of the stream that continued from 4.5 s.
	if len(got.fragments["video"]) != 7 || frames != 70 {
		t.Errorf("%d video fragments of %d frames; want 7 of 70 (the cut GOP not stored): %+v\n%s", len(got.fragments["video"]), frames, got.fragments["video"], strings.Join(s.rec.Lines(), "\n"))
	}
	if want := map[string]bool{"video": true, "audio": true}; !maps.Equal(got.ends, want) {
		t.Errorf("end markers (eos) %v, want %v", got.ends, want)
	}
}

// Close ends a puller at once while it waits to dial again, and the
// relay's Shutdown ends one inside a stream (what it received stored, the
// channel left live) without another dial; either way none of its
// goroutines is left.
func TestShutdownEndsPullersPromptly(t *testing.T) {
	t.Run("waiting to dial again", func(t *testing.T) {
		t.Parallel()
		cfg := DefaultConfig()
		cfg.Pull = []Pull{{Channel: "backoff", Addr: testtool.FreeUDPAddr(t)}}
		s := startPulls(t, relay.DefaultConfig(), cfg, retryPolicy{min: time.Hour, max: time.Hour, dialTimeout: 200 * time.Millisecond})
		if w := s.waited(t); w.err == nil || w.wait != time.Hour {
			t.Fatalf("wait %v after %v; want an hour after a failed dial", w.wait, w.err)
		}
		if err := s.rl.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		closed := make(chan struct{})
		go func() {
			_ = s.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(time.Second):
			t.Fatal("Close did not end the puller's wait within a second")
		}
		checkNoPuller(t, "backoff")
	})
	t.Run("inside a stream", func(t *testing.T) {
		t.Parallel()
		ts := fixture(t)
		enc := listenEncoder(t, "127.0.0.1:0", "")
		cfg := DefaultConfig()
		cfg.Pull = []Pull{{Channel: "stopped", Addr: enc.addr}}
		s := startPulls(t, relay.DefaultConfig(), cfg, testRetry)
		c := enc.accepted(t)
		first := upTo(t, ts, 3.5)
		write(t, c, first)
		waitRead(t, s.rl, "stopped", len(first))
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.rl.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		_ = s.Close()
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Shutdown and Close took %v inside a stream", d)
		}
		checkNoPuller(t, "stopped")
		select {
		case w := <-s.waits:
			t.Errorf("the puller waited to dial again (%v, %v) after the relay's Shutdown", w.wait, w.err)
		default:
		}
		s.rec.Wait(t, slog.LevelInfo, "srt publish stopped: the relay is shutting down", map[string]string{"stream": "srt-pull"})
		got := storedOf(t, s.store, "stopped")
		if want := map[string]int{"video": 4, "audio": 4}; !maps.Equal(got.counts(), want) {
			t.Errorf("fragments %v, want %v (what was received, flushed)", got.counts(), want)
		}
		if want := map[string]bool{"video": false, "audio": false}; !maps.Equal(got.ends, want) {
			t.Errorf("end markers (eos) %v, want drops %v", got.ends, want)
		}
	})
}

// A dial the encoder refuses says why in SRT's terms, with what it
// usually means.
func TestPullDialRefusalSaysWhy(t *testing.T) {
	enc := listenEncoder(t, "127.0.0.1:0", "encoder-passphrase-01")
	for _, tc := range []struct {
		name, passphrase, says string
	}{
		{"no passphrase", "", "REJ_UNSECURE (one side encrypts and the other does not"},
		{"another passphrase", "another-passphrase-01", "REJ_BADSECRET (the passphrase is not the encoder's)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Pull = []Pull{{Channel: "refused", Addr: enc.addr, Passphrase: tc.passphrase}}
			s := startPulls(t, relay.DefaultConfig(), cfg, retryPolicy{min: time.Hour, max: time.Hour, dialTimeout: 5 * time.Second})
			w := s.waited(t)
			if w.err == nil || !strings.Contains(w.err.Error(), tc.says) {
				t.Errorf("dial failed with %v; want it to say %q", w.err, tc.says)
			}
			s.rec.Wait(t, slog.LevelWarn, "srt pull: no stream from the encoder; retrying", nil)
			if errors.Is(w.err, relay.ErrShuttingDown) {
				t.Error("a refusal taken for a shutdown")
			}
		})
	}
}

package relay_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/internal/testtool/logtest"
	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// Store modes of downStore.
const (
	storeUp      = iota // takes every write and keeps nothing
	storeFailing        // answers every request with 503 SlowDown
	storeHanging        // holds every request until its context ends
)

// downStore is a store that works, keeping nothing (so that it costs no
// memory), until it is taken down.
type downStore struct {
	mode      atomic.Int32
	fragments atomic.Int64 // fragments stored while up

	mu       sync.Mutex
	endTried map[string]time.Time // channel: the latest end marker PUT, up or down
}

// slowDown is S3's 503 as the SDK reports it (the relay retries it).
type slowDown struct{}

func (slowDown) Error() string       { return "api error SlowDown: please reduce your request rate (503)" }
func (slowDown) HTTPStatusCode() int { return http.StatusServiceUnavailable }

func (d *downStore) down(ctx context.Context) error {
	switch d.mode.Load() {
	case storeFailing:
		return slowDown{}
	case storeHanging:
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (d *downStore) PutParts(ctx context.Context, key string, _ [][]byte, _ store.PutOptions) (string, error) {
	obj, perr := layout.Parse(key)
	if perr == nil && obj.Kind == layout.KindEnd {
		d.mu.Lock()
		if d.endTried == nil {
			d.endTried = map[string]time.Time{}
		}
		d.endTried[obj.Channel] = time.Now()
		d.mu.Unlock()
	}
	if err := d.down(ctx); err != nil {
		return "", err
	}
	if perr == nil && obj.Kind == layout.KindFragment {
		d.fragments.Add(1)
	}
	return `"etag"`, nil
}

func (d *downStore) Get(ctx context.Context, _ string) (store.Object, error) {
	if err := d.down(ctx); err != nil {
		return store.Object{}, err
	}
	return store.Object{}, store.ErrNotFound
}

// countingBody counts what the relay reads of a request body.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// smallBuffers gives accepted connections a small, fixed receive buffer:
// what the kernel holds for the relay then stays small beside what the
// relay itself reads.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(64 << 10)
	}
	return c, err
}

// rawEncoder pushes body in one chunk over a connection of its own,
// counting the bytes the connection accepts, and reads the answer
// meanwhile (the relay may answer before the body ends). It waits on gate
// once it has written gateAt bytes of the body.
type rawEncoder struct {
	conn     net.Conn
	accepted atomic.Int64
	answer   chan encoderAnswer
}

type encoderAnswer struct {
	status int
	msg    string
	err    error
	at     time.Time
}

func startEncoder(t *testing.T, addr, path string, body []byte, gateAt int, gate <-chan struct{}) *rawEncoder {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.(*net.TCPConn).SetWriteBuffer(64 << 10)
	e := &rawEncoder{conn: conn, answer: make(chan encoderAnswer, 1)}
	go func() {
		if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: relay\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n", path, len(body)); err != nil {
			return
		}
		for at := 0; at < len(body); {
			if at == gateAt {
				<-gate
			}
			end := min(at+64<<10, len(body))
			if gateAt > at {
				end = min(end, gateAt)
			}
			n, err := conn.Write(body[at:end])
			e.accepted.Add(int64(n))
			if err != nil {
				return // the relay answered and closed
			}
			at = end
		}
		_, _ = io.WriteString(conn, "\r\n0\r\n\r\n")
	}()
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			e.answer <- encoderAnswer{err: err, at: time.Now()}
			return
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		e.answer <- encoderAnswer{status: resp.StatusCode, msg: string(msg), at: time.Now()}
	}()
	return e
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// While the store stays down, eight pushes at 4 Mbit/s (1 MB fragments)
// keep sending. The relay holds the fragment in hand of each and reads
// nothing more: its memory stays about one fragment per push (bounded by
// two, plus a constant), however much the encoders try to send, and the
// encoders' writes block (the bytes their connections accept stop
// growing). Once StoreTimeout has passed, each push fails with 503 and
// the reason, and the relay logs it.
func TestStoreDownBoundsMemoryAndFailsThePushes(t *testing.T) {
	const pushes = 8
	const fragments = 20 // each encoder tries to send 20 MB
	for _, tc := range []struct {
		name string
		up   int // fragments each push stores before the store goes down
		mode int32
	}{
		{"S3 answers 503 to everything from the start", 0, storeFailing},
		{"the store fails every request after two fragments", 2, storeFailing},
		{"every store request hangs after two fragments", 2, storeHanging},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := relay.DefaultConfig()
			cfg.StoreTimeout, cfg.AttemptTimeout = 6*time.Second, 200*time.Millisecond
			var st relay.ObjectStore
			var down func()
			ds := &downStore{}
			if tc.up == 0 {
				// The embedded S3 server behind the SDK, failing every
				// request (503 SlowDown or 500 InternalError).
				srv, s3 := testtool.Store(t, "relay-test")
				srv.SetFaults(s3local.Faults{ErrorRate: 1})
				st = s3
			} else {
				st = ds
				down = func() { ds.mode.Store(tc.mode) }
			}
			rec := logtest.New()
			rl := relay.New(st, cfg, slog.New(rec))
			var reads [pushes]atomic.Int64
			h := rl.Handler()
			hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				obj := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/live/down"), ".isml/Streams(enc)")
				i, err := strconv.Atoi(obj)
				if err != nil || i < 0 || i >= pushes {
					http.Error(w, "bad test path", http.StatusNotFound)
					return
				}
				r.Body = countingBody{r.Body, &reads[i]}
				h.ServeHTTP(w, r)
			}))
			hs.Listener = smallBuffers{hs.Listener}
			hs.Start()
			t.Cleanup(hs.Close)

			s, err := synth.New(synth.Config{FragmentDuration: 2 * time.Second, Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 4_000_000}}})
			if err != nil {
				t.Fatal(err)
			}
			header, err := s.Header()
			if err != nil {
				t.Fatal(err)
			}
			var pushed bytes.Buffer
			if _, err := s.WriteTo(context.Background(), &pushed, synth.Range{Count: fragments, End: true}); err != nil {
				t.Fatal(err)
			}
			body := pushed.Bytes()
			// ends[k] is where fragment k ends in the body.
			ends := make([]int, fragments)
			for k, at := 0, len(header); k < fragments; k++ {
				frag, err := s.AppendFragment(nil, k)
				if err != nil {
					t.Fatal(err)
				}
				at += len(frag)
				ends[k] = at
			}
			fragSize := ends[0] - len(header)
			if fragSize < 900_000 || fragSize > 1_100_000 {
				t.Fatalf("fragments of %d bytes, want about 1 MB", fragSize)
			}
			gateAt := -1
			if tc.up > 0 {
				gateAt = ends[tc.up-1]
			}

			base := liveHeap()
			gate := make(chan struct{})
			encs := make([]*rawEncoder, pushes)
			addr := strings.TrimPrefix(hs.URL, "http://")
			start := time.Now()
			for i := range encs {
				encs[i] = startEncoder(t, addr, fmt.Sprintf("/live/down%d.isml/Streams(enc)", i), body, gateAt, gate)
			}
			downAt := start
			if tc.up > 0 {
				// Let every push store its first fragments, then take the
				// store down and let the encoders go on.
				deadline := time.Now().Add(20 * time.Second)
				for ds.fragments.Load() < int64(pushes*tc.up) {
					if time.Now().After(deadline) {
						t.Fatalf("%d fragments stored, want %d", ds.fragments.Load(), pushes*tc.up)
					}
					time.Sleep(10 * time.Millisecond)
				}
				down()
				downAt = time.Now()
				close(gate)
			}

			// Wait until nothing moves: the relay reads nothing, the
			// encoders' connections accept nothing.
			snapshot := func() (read, acc [pushes]int64) {
				for i := range encs {
					read[i], acc[i] = reads[i].Load(), encs[i].accepted.Load()
				}
				return read, acc
			}
			var read, acc [pushes]int64
			for stable, deadline := time.Now(), time.Now().Add(10*time.Second); ; {
				time.Sleep(50 * time.Millisecond)
				r, a := snapshot()
				if r != read || a != acc {
					read, acc, stable = r, a, time.Now()
				} else if time.Since(stable) >= 300*time.Millisecond {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the pushes never stall: relay read %v, connections accepted %v", r, a)
				}
			}
			stalled := rl.Active()
			heap1 := liveHeap()
			time.Sleep(500 * time.Millisecond)
			heap2 := liveHeap()
			read2, acc2 := snapshot()
			t.Logf("stalled %v after the store went down (%d pushes in progress); heap %.1f MB then %.1f MB over %.1f MB; relay read %v; accepted %v",
				time.Since(downAt).Round(time.Millisecond), stalled, mb(heap1-min(base, heap1)), mb(heap2-min(base, heap2)), mb(base), read, acc)
			// The relay's retries may give up early (when the next wait
			// would pass StoreTimeout), rarely this soon; most pushes must
			// still be holding their fragment for the figures to mean
			// anything.
			if stalled < pushes/2 {
				t.Errorf("%d pushes in progress during the stall, want %d", stalled, pushes)
			}
			if read2 != read || acc2 != acc {
				t.Errorf("the relay went on reading (%v, then %v) or the connections accepting (%v, then %v)", read, read2, acc, acc2)
			}
			limit := uint64(pushes*2*fragSize + 8<<20)
			for _, heap := range []uint64{heap1, heap2} {
				if heap > base && heap-base > limit {
					t.Errorf("live heap grew by %.1f MB during the stall, want at most %.1f MB (2 fragments per push and 8 MB); the encoders tried to send %.0f MB",
						mb(heap-base), mb(limit), mb(uint64(pushes*len(body))))
				}
			}
			for i := range encs {
				// What the relay read: the header, the fragments stored and
				// the one in hand (and a few bytes of the next).
				if inHand := int64(ends[tc.up]); read[i] < inHand || read[i] > inHand+64<<10 {
					t.Errorf("push %d: the relay read %d bytes, want the header and %d fragments (%d bytes)", i, read[i], tc.up+1, inHand)
				}
				// What the connection accepted: that and the kernel's buffers.
				if acc[i] > read[i]+1<<20 {
					t.Errorf("push %d: the connection accepted %d bytes, %d more than the relay read", i, acc[i], acc[i]-read[i])
				}
			}

			answered := make([]time.Time, pushes)
			for i, e := range encs {
				select {
				case a := <-e.answer:
					answered[i] = a.at
					if a.err != nil || a.status != http.StatusServiceUnavailable || !strings.Contains(a.msg, "store unavailable") || !strings.Contains(a.msg, "store failing for") {
						t.Errorf("push %d: %d %q (%v), want 503 with the reason", i, a.status, a.msg, a.err)
					}
					// The answer comes once StoreTimeout has passed (a
					// last attempt may still be under way then), not
					// after the end markers' own retries too (twice
					// StoreTimeout); 3 s of slack for a loaded machine
					// (7.6 s was seen on a fresh machine at load 5.6).
					if took := a.at.Sub(downAt); took > cfg.StoreTimeout+cfg.AttemptTimeout+3*time.Second {
						t.Errorf("push %d: answered %v after the store went down, want about StoreTimeout (%v)", i, took.Round(time.Millisecond), cfg.StoreTimeout)
					}
				case <-time.After(3 * cfg.StoreTimeout):
					t.Fatalf("push %d: no answer %v after the store went down", i, time.Since(downAt).Round(time.Millisecond))
				}
				rec.Wait(t, slog.LevelError, "push failed: store", map[string]string{"channel": fmt.Sprintf("down%d", i), "err": "store failing for"})
			}
			if tc.up == 0 {
				return // nothing stored: no end markers
			}
			// The end markers of the fragments stored before the outage are
			// still tried, after the answer (the store comes back, so that
			// the relay is done with them sooner).
			ds.mode.Store(storeUp)
			for deadline := time.Now().Add(2 * cfg.StoreTimeout); rl.Active() > 0; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d pushes still in progress", rl.Active())
				}
			}
			ds.mu.Lock()
			defer ds.mu.Unlock()
			for i := range encs {
				if at, ok := ds.endTried[fmt.Sprintf("down%d", i)]; !ok || at.Before(answered[i]) {
					t.Errorf("push %d: end marker last tried at %v, answered at %v; want it tried after the answer", i, at, answered[i])
				}
			}
		})
	}
}

func mb(n uint64) float64 { return float64(n) / (1 << 20) }

// Package s3local runs an S3-compatible server in the process (gofakes3,
// in memory or in files of a data directory) and turns every object it
// stores into the S3 event notification JSON that AWS would send,
// delivered to a handler the way Lambda delivers asynchronous invocations:
// concurrently, at least once, retried on error.
//
// In memory an object's body is a slice nothing changes once stored; in
// the data directory it is a file written aside and renamed into place,
// and read from the file a reader opened. Either way, under any mix of
// concurrent writes, overwrites, deletes and reads, a read returns one
// whole version that was written, a conditional write (If-None-Match,
// If-Match) is decided atomically with respect to every other writer of
// its key, and a write replaces the object whole, metadata included, as
// in S3.
package s3local

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/johannesboyne/gofakes3"
)

// Credentials the embedded server accepts (it does not check them).
const (
	AccessKey = "smoothcast"
	SecretKey = "smoothcast-local"
)

// Notify receives one S3 event (one record, as S3 sends them).
type Notify func(ctx context.Context, ev events.S3Event) error

// Options configure a Server.
type Options struct {
	// Addr to listen on; "127.0.0.1:0" picks a free port.
	Addr string
	// Bucket is created at start.
	Bucket string
	// DataDir, when set, keeps objects in files under DataDir/s3 (one
	// server at a time: it is locked while in use); empty keeps them in
	// memory.
	DataDir string
	// Filter, when set, says which created objects send an event, as an
	// S3 notification's filter rules do (layout.Notifies); nil: all.
	Filter func(key string) bool
	// Notify, when set, receives an event for every object created that
	// passes Filter.
	Notify Notify
	// Workers is how many events are handled at once (default 4): S3 and
	// Lambda make no promise of order, and neither does this.
	Workers int
	// Retries is how often a failed event is retried (default 2, as Lambda
	// does for asynchronous invocations).
	Retries int
	// FaultSeed seeds the generator that draws every fault decision (see
	// Faults). Tests log it, and take it from an environment variable to
	// replay a failed run (testtool.FaultSeed).
	FaultSeed uint64
	Log       *slog.Logger
}

// Server is a running embedded S3 server.
type Server struct {
	URL   string // http://host:port
	opts  Options
	srv   *http.Server
	ln    net.Listener
	store *backend

	queue chan events.S3Event
	wg    sync.WaitGroup
	// inflight counts events queued and not yet handled. It is a counter,
	// not a WaitGroup: objects keep arriving while a test drains.
	inflight atomic.Int64
	seq      atomic.Uint64
	closeMu  sync.RWMutex
	closed   bool

	// Requests counts requests by S3 operation ("PUT", "GET", "HEAD", ...),
	// for tests that count what the stack costs.
	mu       sync.Mutex
	requests map[string]int
	faults   Faults
	rng      *rand.Rand // fault decisions, seeded with Options.FaultSeed; under mu
}

// Faults are what the server does wrong on purpose, as S3 and its event
// delivery do on a bad day. Rates are probabilities per request or event.
//
// Every decision (whether this request fails, with which error, whether
// it stalls; whether this event is delivered twice, how long each copy
// waits) is drawn from one generator, seeded with Options.FaultSeed and
// shared by the server's goroutines under a mutex; no draw is made for a
// rate of zero. The same seed therefore makes the same sequence of
// decisions: the n-th draw is the same in every run. Which request or
// event meets the n-th draw depends on the order in which concurrent
// requests and events arrive, which the seed does not fix.
type Faults struct {
	// ErrorRate fails a request before it reaches the store: 503 SlowDown
	// or 500 InternalError, half each. A failed PUT stores nothing.
	ErrorRate float64
	// StallRate holds a request for Stall before serving it (the client
	// may time out while the write still happens, as with S3).
	StallRate float64
	Stall     time.Duration
	// Latency delays every request.
	Latency time.Duration
	// DuplicateRate delivers an event twice; EventDelay holds each event
	// for a random time up to itself, so that events overtake each other.
	DuplicateRate float64
	EventDelay    time.Duration
}

// SetFaults changes the injected faults (the zero Faults: none).
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

func (s *Server) currentFaults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// FaultSeed is the seed of the fault decisions (Options.FaultSeed).
func (s *Server) FaultSeed() uint64 { return s.opts.FaultSeed }

// chance draws whether an event of probability p happens: never for a p
// of zero, which draws nothing.
func (s *Server) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64() < p
}

// draw returns a number in [0, n) from the fault generator.
func (s *Server) draw(n int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Int64N(n)
}

// inject applies the request faults; it reports whether it answered the
// request (with an error) itself.
func (s *Server) inject(w http.ResponseWriter, r *http.Request) bool {
	f := s.currentFaults()
	if f.Latency > 0 {
		time.Sleep(f.Latency)
	}
	if s.chance(f.StallRate) {
		select {
		case <-time.After(f.Stall):
		case <-r.Context().Done():
		}
	}
	if s.chance(f.ErrorRate) {
		code, status := "SlowDown", http.StatusServiceUnavailable
		if s.draw(2) == 0 {
			code, status = "InternalError", http.StatusInternalServerError
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected fault</Message></Error>`, code)
		return true
	}
	return false
}

// Start starts the server and its event workers.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	} else if opts.Retries == 0 {
		opts.Retries = 2
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	s := &Server{opts: opts, requests: map[string]int{}, queue: make(chan events.S3Event, 4096),
		rng: rand.New(rand.NewPCG(opts.FaultSeed, opts.FaultSeed^0x5eed))}
	if opts.DataDir != "" {
		if old := filepath.Join(opts.DataDir, "s3.db"); fileExists(old) {
			opts.Log.Warn("embedded S3: the bucket of an older smoothcast (a bbolt file) is not read any more: remove it", "file", old)
		}
		d, err := openDir(filepath.Join(opts.DataDir, "s3"), opts.Log)
		if err != nil {
			return nil, err
		}
		s.store = d
	} else {
		s.store = inMemory(opts.Log)
	}
	if err := s.store.CreateBucket(opts.Bucket); err != nil && !gofakes3.IsAlreadyExists(err) {
		_ = s.store.Close()
		return nil, fmt.Errorf("s3local: create bucket %s: %w", opts.Bucket, err)
	}
	faker := gofakes3.New(s.store, gofakes3.WithLogger(gofakes3.DiscardLog()), gofakes3.WithTimeSkewLimit(0))
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		_ = s.store.Close()
		return nil, fmt.Errorf("s3local: listen %s: %w", opts.Addr, err)
	}
	s.ln = ln
	s.URL = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s.middleware(faker.Server()), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			opts.Log.Error("embedded S3 server stopped", "err", err)
		}
	}()
	for range opts.Workers {
		s.wg.Add(1)
		go s.worker(context.WithoutCancel(ctx))
	}
	return s, nil
}

// Requests returns a copy of the request counts, by method ("PUT") and by
// method and status ("PUT 200", "PUT 412").
func (s *Server) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.requests))
	for k, v := range s.requests {
		out[k] = v
	}
	return out
}

// Drain waits until every event queued so far has been handled.
func (s *Server) Drain() { s.drain(context.Background()) }

// drain waits until no event is in flight, or ctx ends.
func (s *Server) drain(ctx context.Context) {
	for s.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Close stops taking events, waits for the queued ones (their handlers
// still reach the store), then stops the server.
func (s *Server) Close(ctx context.Context) error {
	s.closeMu.Lock()
	was := s.closed
	s.closed = true
	s.closeMu.Unlock()
	if was {
		return nil
	}
	done := make(chan struct{})
	go func() { s.drain(ctx); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	close(s.queue)
	s.wg.Wait()
	// Close, not Shutdown: an SDK client may hold a connection that never
	// carries a request, which Shutdown would wait out for 5 s.
	return errors.Join(s.srv.Close(), s.store.Close())
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

// WriteHeader passes the first status on; gofakes3 sometimes writes a
// second one (an error after a header), which net/http would only log.
func (w *statusWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	w.status = code
	// gofakes3 keeps only X-Amz-* and a few content headers; Cache-Control
	// travels under a stand-in name (see middleware) and is restored here.
	if cc := w.Header().Get(cacheControlStandIn); cc != "" {
		w.Header().Set("Cache-Control", cc)
		w.Header().Del(cacheControlStandIn)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// cacheControlStandIn carries an object's Cache-Control through gofakes3,
// which would otherwise drop it; S3 stores and returns it.
const cacheControlStandIn = "X-Amz-Smoothcast-Cache-Control"

func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cc := r.Header.Get("Cache-Control"); r.Method == http.MethodPut && cc != "" {
			r.Header.Set(cacheControlStandIn, cc)
		}
		sw := &statusWriter{ResponseWriter: w}
		if !s.inject(sw, r) {
			next.ServeHTTP(sw, r)
		}
		if sw.status == 0 {
			// Nothing written (a HEAD): answer 200 here, not in net/http,
			// so that WriteHeader restores Cache-Control.
			sw.WriteHeader(http.StatusOK)
		}
		s.mu.Lock()
		s.requests[r.Method]++
		s.requests[r.Method+" "+strconv.Itoa(sw.status)]++
		s.mu.Unlock()
		if r.Method != http.MethodPut || sw.status != http.StatusOK || r.URL.Query().Has("partNumber") {
			return
		}
		bucket, key, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if !ok || key == "" || bucket != s.opts.Bucket || s.opts.Notify == nil || s.opts.Filter != nil && !s.opts.Filter(key) {
			return
		}
		name := "ObjectCreated:Put"
		if r.Header.Get("X-Amz-Copy-Source") != "" {
			name = "ObjectCreated:Copy"
		}
		size := r.ContentLength
		if d := r.Header.Get("X-Amz-Decoded-Content-Length"); d != "" {
			if v, err := strconv.ParseInt(d, 10, 64); err == nil {
				size = v
			}
		}
		s.enqueue(Event(bucket, key, name, size, strings.Trim(sw.Header().Get("ETag"), `"`), s.seq.Add(1), time.Now()))
	})
}

func (s *Server) enqueue(ev events.S3Event) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return
	}
	f := s.currentFaults()
	n := 1
	if s.chance(f.DuplicateRate) {
		n = 2
	}
	for range n {
		s.inflight.Add(1)
		if f.EventDelay <= 0 {
			s.queue <- ev
			continue
		}
		delay := time.Duration(s.draw(int64(f.EventDelay)))
		go func() {
			time.Sleep(delay)
			s.closeMu.RLock()
			defer s.closeMu.RUnlock()
			if s.closed {
				s.inflight.Add(-1) // dropped at Close, as a late event would be
				return
			}
			s.queue <- ev
		}()
	}
}

func (s *Server) worker(ctx context.Context) {
	defer s.wg.Done()
	for ev := range s.queue {
		key := ev.Records[0].S3.Object.Key
		for attempt := 0; ; attempt++ {
			err := s.opts.Notify(ctx, ev)
			if err == nil {
				break
			}
			if attempt >= s.opts.Retries {
				s.opts.Log.Error("event failed, giving up", "key", key, "attempts", attempt+1, "err", err)
				break
			}
			s.opts.Log.Warn("event failed, retrying", "key", key, "attempt", attempt+1, "err", err)
			time.Sleep(time.Duration(attempt+1) * time.Second) // Lambda waits minutes; the idea is the same
		}
		s.inflight.Add(-1)
	}
}

// Event builds the notification AWS sends for an object created in bucket
// at key: one record, the key URL-encoded the way S3 encodes it.
func Event(bucket, key, name string, size int64, etag string, seq uint64, at time.Time) events.S3Event {
	return events.S3Event{Records: []events.S3EventRecord{{
		EventVersion:      "2.1",
		EventSource:       "aws:s3",
		AWSRegion:         "us-east-1",
		EventTime:         at.UTC(),
		EventName:         name,
		PrincipalID:       events.S3UserIdentity{PrincipalID: "smoothcast-local"},
		RequestParameters: events.S3RequestParameters{SourceIPAddress: "127.0.0.1"},
		ResponseElements: map[string]string{
			"x-amz-request-id": fmt.Sprintf("%016X", seq),
			"x-amz-id-2":       "smoothcast-local",
		},
		S3: events.S3Entity{
			SchemaVersion:   "1.0",
			ConfigurationID: "smoothcast-fragments",
			Bucket: events.S3Bucket{
				Name:          bucket,
				OwnerIdentity: events.S3UserIdentity{PrincipalID: "smoothcast-local"},
				Arn:           "arn:aws:s3:::" + bucket,
			},
			Object: events.S3Object{
				Key:       EncodeKey(key),
				Size:      size,
				ETag:      etag,
				Sequencer: strings.ToUpper(hex.EncodeToString([]byte{byte(seq >> 56), byte(seq >> 48), byte(seq >> 40), byte(seq >> 32), byte(seq >> 24), byte(seq >> 16), byte(seq >> 8), byte(seq)})),
			},
		},
	}}}
}

// EncodeKey encodes an object key as S3 event notifications do: each path
// segment form-encoded (space as '+'), slashes kept.
func EncodeKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.QueryEscape(p)
	}
	return strings.Join(parts, "/")
}

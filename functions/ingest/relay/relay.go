// Package relay is the ingest relay: an HTTP server that accepts Smooth
// Streaming pushes (POST or PUT to /live/{channel}.isml/Streams({stream}),
// one long chunked request), splits each body per track into init segments
// and fragments as it streams in, and writes them to the store. It holds
// about one fragment per stream in memory and writes a fragment only when it
// is complete.
package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// ObjectStore is what the relay needs of the store: it writes media and
// markers, and reads the channel's clock.
type ObjectStore interface {
	// PutParts writes the concatenation of parts: a fragment goes out as
	// its new head and the media as it arrived, never copied into one.
	PutParts(ctx context.Context, key string, parts [][]byte, o store.PutOptions) (string, error)
	Get(ctx context.Context, key string) (store.Object, error)
}

// Config holds the relay's limits.
type Config struct {
	// MaxBox is the largest box (in practice, fragment mdat) accepted.
	MaxBox int
	// MaxTracks is the most tracks one stream may declare.
	MaxTracks int
	// ReadTimeout drops an encoder that sends nothing for this long; a slow
	// but live one is kept (the deadline rolls with every read).
	ReadTimeout time.Duration
	// MaxDrift is how far an encoder's timestamps may stray from the
	// channel's clock before the relay rebases them (a restarted encoder);
	// it is also the largest forward skip that is not a discontinuity.
	MaxDrift time.Duration
	// StoreTimeout is how long a store request may keep failing (retried
	// with backoff) before the relay fails the encoder's request.
	StoreTimeout time.Duration
	// AttemptTimeout bounds one store request (with the SDK's own retries).
	AttemptTimeout time.Duration
	// Secrets authenticate encoders (zero: no authentication).
	Secrets Secrets
	// MaxStreams bounds the pushes in progress, in all and per channel;
	// one more is refused with 429.
	MaxStreams, MaxStreamsPerChannel int
	// MinRate (bytes per second, averaged over RateWindow) drops an encoder
	// that trickles: a real one sends its bitrate; a slow client holding a
	// connection open does not.
	MinRate    float64
	RateWindow time.Duration
	// ReorderWait is how long an uploaded segment that would leave a gap
	// after its rendition's newest waits for the segments before it: an
	// encoder uploads on parallel connections, and the segment it sent
	// first may arrive second. Zero stores it at once.
	ReorderWait time.Duration
}

// DefaultConfig returns the defaults: 64 MiB boxes, 16 tracks, 30 s of
// silence, 10 s of drift, 30 s of store failures, 10 s per store request,
// 16 pushes per channel and 256 in all, at least 1000 bytes/s a minute,
// 2 s for an uploaded segment to wait for the ones before it.
func DefaultConfig() Config {
	return Config{MaxBox: 64 << 20, MaxTracks: 16, ReadTimeout: 30 * time.Second, MaxDrift: 10 * time.Second,
		StoreTimeout: 30 * time.Second, AttemptTimeout: 10 * time.Second, MaxStreams: 256, MaxStreamsPerChannel: 16,
		MinRate: 1000, RateWindow: time.Minute, ReorderWait: 2 * time.Second}
}

// Relay serves the ingest endpoints (Handler) and the operator's
// (AdminHandler: metrics, health, status).
type Relay struct {
	Store ObjectStore
	Cfg   Config
	Log   *slog.Logger

	active  atomic.Int64
	retries atomic.Int64
	store   *retrying
	metrics *metrics

	mu        sync.Mutex
	perStream map[string]int            // pushes in progress per channel
	uploads   map[string]*uploadChannel // interface 2 uploads, per channel
	// streams in progress, for /status; a push's reader stops it.
	streams   map[*stream]*sessionReader
	closing   bool          // Shutdown was called
	inflight  int           // ingest requests in progress
	drained   chan struct{} // closed once closing and no request is in progress
	drainOnce sync.Once

	errMu  sync.Mutex
	recent []ErrorStatus // the latest errors, oldest first
}

// New returns a relay that writes to st.
func New(st ObjectStore, cfg Config, log *slog.Logger) *Relay {
	if log == nil {
		log = slog.Default()
	}
	def := DefaultConfig()
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = def.StoreTimeout
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = def.AttemptTimeout
	}
	rl := &Relay{Store: st, Cfg: cfg, Log: log, metrics: newMetrics(), drained: make(chan struct{})}
	rl.store = &retrying{st: st, cfg: cfg, log: log, retries: &rl.retries, m: rl.metrics}
	return rl
}

// admit counts a push in, or says which limit it would break.
func (rl *Relay) admit(channel string) string {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if m := rl.Cfg.MaxStreams; m > 0 && rl.active.Load() >= int64(m) {
		return fmt.Sprintf("too many pushes in progress (limit %d)", m)
	}
	if m := rl.Cfg.MaxStreamsPerChannel; m > 0 && rl.perStream[channel] >= m {
		return fmt.Sprintf("too many pushes to channel %s in progress (limit %d)", channel, m)
	}
	if rl.perStream == nil {
		rl.perStream = map[string]int{}
	}
	rl.perStream[channel]++
	rl.active.Add(1)
	return ""
}

func (rl *Relay) leave(channel string) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.perStream[channel]--; rl.perStream[channel] <= 0 {
		delete(rl.perStream, channel)
	}
	rl.active.Add(-1)
}

// Active counts the pushes in progress: requests being read, or finishing
// their writes after the encoder has hung up.
func (rl *Relay) Active() int64 { return rl.active.Load() }

// Retries counts store requests retried since the relay started.
func (rl *Relay) Retries() int64 { return rl.retries.Load() }

// Handler routes ingest requests: POST and PUT to a stream URL push; PUT,
// POST and DELETE of a file under a channel upload (see serveUpload); any
// other method there is 405; anything else is 404.
func (rl *Relay) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/live/", rl.serveStream)
	mux.HandleFunc(tokenPrefix, rl.serveStream)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		refuse(w, "not found: push to /live/{channel}.isml/Streams({stream})", http.StatusNotFound)
	})
	return mux
}

// refuse answers a request whose body is not read, and closes the
// connection: otherwise net/http would first try to drain the body, and a
// client whose body never ends would wait for its answer forever.
func refuse(w http.ResponseWriter, reason string, code int) {
	w.Header().Set("Connection", "close")
	http.Error(w, reason, code)
}

func (rl *Relay) serveStream(w http.ResponseWriter, r *http.Request) {
	if !rl.enter() {
		rl.noteError(errShutdown, "", "", r.RemoteAddr, fmt.Errorf("%s %s refused: %w", r.Method, r.URL.Path, errShuttingDown))
		w.Header().Set("Retry-After", "5")
		refuse(w, "shutting down: push to another relay", http.StatusServiceUnavailable)
		return
	}
	defer rl.exit()
	token, path := splitToken(r.URL.Path)
	ip, err := layout.ParseIngestPath(path)
	if err != nil {
		if up, uerr := layout.ParseUploadPath(path); uerr == nil {
			rl.serveUpload(w, r, up, token)
			return
		}
		refuse(w, err.Error()+" (or upload files to /live/{channel}.isml/{file})", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		refuse(w, "method not allowed: push with POST or PUT", http.StatusMethodNotAllowed)
		return
	}
	log := rl.Log.With("channel", ip.Channel, "stream", ip.Stream, "remote", r.RemoteAddr)
	if code, reason := rl.authorize(r, ip.Channel, token); code != 0 {
		log.Warn("push refused: authentication", "status", code, "reason", reason)
		rl.noteError(errAuth, ip.Channel, ip.Stream, r.RemoteAddr, errors.New(reason))
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="smoothcast ingest"`)
		}
		refuse(w, reason, code)
		return
	}
	if reason := rl.admit(ip.Channel); reason != "" {
		log.Warn("push refused: limit", "reason", reason)
		rl.noteError(errLimit, ip.Channel, ip.Stream, r.RemoteAddr, errors.New(reason))
		w.Header().Set("Retry-After", "5")
		refuse(w, reason, http.StatusTooManyRequests)
		return
	}
	defer rl.leave(ip.Channel)
	rc := http.NewResponseController(w)
	st := &stream{channel: ip.Channel, name: ip.Stream, kind: kindPush, remote: r.RemoteAddr, started: time.Now()}
	rd := &sessionReader{r: r.Body, st: st, count: rl.metrics.bytes.WithLabelValues(kindPush), rc: rc, readTimeout: rl.Cfg.ReadTimeout}
	body := io.Reader(rd)
	if rl.Cfg.ReadTimeout > 0 || rl.Cfg.MinRate > 0 {
		// Above rd, so that a deadline rd moves to interrupt a read is
		// not moved back before the read.
		body = &deadlineReader{r: rd, rc: rc, d: rl.Cfg.ReadTimeout,
			minRate: rl.Cfg.MinRate, window: rl.Cfg.RateWindow, since: time.Now()}
	}
	rl.register(st, rd)
	defer rl.unregister(st)
	answered := false
	answer := func(stats ingest.Stats, written, dupes int, started time.Time, err error) {
		answered = true
		attrs := []any{"bytes", stats.Bytes, "fragments", stats.Fragments, "written", written, "duplicates", dupes, "seconds", time.Since(started).Seconds()}
		if err != nil {
			// Do not drain what is left of a body that failed: close.
			w.Header().Set("Connection", "close")
		}
		if err == nil {
			if stats.Bytes > 0 {
				log.Info("push ended", append(attrs, "end_of_stream", stats.Ended)...)
			}
			w.WriteHeader(http.StatusOK)
			return
		}
		code, what := errorStatus(err)
		if errors.Is(err, errShuttingDown) {
			// Not an error: the encoder may reconnect to another relay.
			log.Info(what, attrs...)
			http.Error(w, "shutting down: push to another relay", code)
			// Once answered, read no more of the body: net/http would
			// otherwise drain it, holding the server's own Shutdown.
			_ = rc.Flush()
			_ = rc.SetReadDeadline(time.Unix(1, 0))
			return
		}
		rl.streamError(st, errorKind(err), err)
		if code == http.StatusServiceUnavailable {
			log.Error(what, append(attrs, "err", err)...)
			// A whole answer, sent now: the end markers come after it.
			msg := "store unavailable: " + err.Error() + "\n"
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Header().Set("Content-Length", strconv.Itoa(len(msg)))
			w.WriteHeader(code)
			_, _ = io.WriteString(w, msg)
			_ = http.NewResponseController(w).Flush()
			return
		}
		log.Warn(what, append(attrs, "err", err)...)
		http.Error(w, err.Error(), code)
	}
	// A store that kept failing for StoreTimeout is answered at once:
	// the end markers' own retries may take as long again.
	stats, written, dupes, started, err := rl.runSessionThen(r.Context(), st, rd, body, log, answer)
	if !answered {
		answer(stats, written, dupes, started, err)
	}
}

// runSession splits what body reads into init segments and fragments
// and stores them for the stream's channel, then writes the end markers
// of the tracks it stored (a clean end of body is the end of the stream).
// It returns what the session did, the fragments written and refused as
// existing, when it started, and the error that ended it.
func (rl *Relay) runSession(ctx context.Context, st *stream, body *sessionReader, log *slog.Logger) (ingest.Stats, int, int, time.Time, error) {
	return rl.runSessionThen(ctx, st, body, body, log, nil)
}

// runSessionThen is runSession reading body (rd, or a reader over it);
// when the store failing ended the session, storeDown, if set, is called
// with what runSession returns before the end markers are written, whose
// own retries may take another StoreTimeout: the encoder need not wait
// for them.
func (rl *Relay) runSessionThen(ctx context.Context, st *stream, rd *sessionReader, body io.Reader, log *slog.Logger,
	storeDown func(ingest.Stats, int, int, time.Time, error)) (ingest.Stats, int, int, time.Time, error) {
	channel := st.channel
	sink := &storeSink{rl: rl, st: st, rd: rd, store: rl.store.forStream(st), channel: channel, log: log}
	clock := &channelClock{st: sink.store, channel: channel, maxDrift: rl.Cfg.MaxDrift, now: time.Now, log: log}
	sess := ingest.NewSession(sink, log, ingest.Options{MaxBox: rl.Cfg.MaxBox, MaxTracks: rl.Cfg.MaxTracks, Clock: clock, MaxJump: rl.Cfg.MaxDrift})
	started := time.Now()
	stats, err := ingest.Read(ctx, body, sess, ingest.ReadOptions{})
	if err != nil && errorKind(err) == errStore && storeDown != nil {
		storeDown(stats, sink.written, sink.dupes, started, err)
	}
	// However the connection ended, say where it left each track, so that
	// the manifest function need not wait for the next connection's
	// fragments to time out (and, after a clean end, turns the manifests
	// into VOD). The request's context may be gone: use a fresh one.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	sink.markEnds(mctx, sess.Ends(), err == nil)
	cancel()
	return stats, sink.written, sink.dupes, started, err
}

// errorStatus maps what ended a session to the HTTP status the encoder
// gets, and to what the log says.
func errorStatus(err error) (int, string) {
	var perr *ingest.ProtocolError
	switch {
	case errors.Is(err, errShuttingDown):
		// Stopped at a boundary between fragments: the channel stays live.
		return http.StatusServiceUnavailable, "push stopped: the relay is shutting down"
	case errors.As(err, &perr) && errors.Is(err, mp4box.ErrTruncated):
		// The connection broke inside a box: a drop, not an end. Nothing of
		// the incomplete fragment was written; the encoder may reconnect.
		return http.StatusBadRequest, "push dropped"
	case errors.As(err, &perr) && errors.Is(err, mp4box.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, "push refused: box too large"
	case errors.As(err, &perr):
		return http.StatusBadRequest, "push refused"
	case errors.Is(err, store.ErrPreconditionFailed), isStoreErr(err):
		return http.StatusServiceUnavailable, "push failed: store"
	}
	// Read errors: timeouts, resets, client gone.
	return http.StatusRequestTimeout, "push dropped"
}

type storeError struct{ err error }

func (e *storeError) Error() string { return e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

func isStoreErr(err error) bool {
	var se *storeError
	return errors.As(err, &se)
}

// deadlineReader extends the connection's read deadline before every read,
// and ends a body that arrives slower than minRate over a window.
type deadlineReader struct {
	r       io.Reader
	rc      *http.ResponseController
	d       time.Duration
	minRate float64
	window  time.Duration
	since   time.Time // start of the current window
	got     int64     // bytes in it
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	if d.d > 0 {
		_ = d.rc.SetReadDeadline(time.Now().Add(d.d))
	}
	n, err := d.r.Read(p)
	d.got += int64(n)
	if d.minRate > 0 && d.window > 0 {
		if el := time.Since(d.since); el >= d.window {
			if rate := float64(d.got) / el.Seconds(); rate < d.minRate {
				return n, fmt.Errorf("%w: %.0f bytes/s over %v, floor %.0f", errTooSlow, rate, el.Round(time.Second), d.minRate)
			}
			d.since, d.got = time.Now(), 0
		}
	}
	return n, err
}

// storeSink writes what a session produces. Writes are conditional
// (If-None-Match): an object that exists is never rewritten, so a fragment
// an encoder re-sends after a reconnect costs one refused PUT and no event.
type storeSink struct {
	rl      *Relay
	st      *stream
	rd      *sessionReader // when the session's bytes last came
	store   *retrying
	channel string
	log     *slog.Logger
	written int
	dupes   int
}

func contentType(k timeline.Kind) string {
	if k == timeline.Audio {
		return "audio/mp4"
	}
	return "video/mp4"
}

func (s *storeSink) Init(ctx context.Context, h ingest.TrackHeader) error {
	s.st.announced(h.ID, h.Kind)
	key := layout.InitKey(s.channel, h.ID)
	_, err := s.store.Put(ctx, key, h.Init, store.PutOptions{
		ContentType: contentType(h.Kind), CacheControl: store.CacheImmutable, IfNoneMatch: true,
	})
	if errors.Is(err, store.ErrPreconditionFailed) {
		s.log.Debug("init segment exists", "track", h.ID.String())
		return nil
	}
	if err != nil {
		return &storeError{fmt.Errorf("channel %s track %s: %w", s.channel, h.ID, err)}
	}
	return nil
}

func (s *storeSink) Fragment(ctx context.Context, f ingest.Fragment) error {
	key := layout.FragmentKey(s.channel, f.ID, f.Start)
	opts := store.PutOptions{ContentType: contentType(f.Kind), CacheControl: store.CacheImmutable, IfNoneMatch: true, Tagging: layout.ExpireTag}
	if f.HasPrev || f.Disc {
		opts.Metadata = map[string]string{}
	}
	if f.HasPrev {
		opts.Metadata[layout.MetaPrev] = strconv.FormatUint(f.Prev, 10)
	}
	if f.Disc {
		opts.Metadata[layout.MetaDisc] = "1"
	}
	_, err := s.store.PutParts(ctx, key, [][]byte{f.Head, f.Payload}, opts)
	answered := time.Now()
	dup := errors.Is(err, store.ErrPreconditionFailed)
	if err != nil && !dup {
		return &storeError{fmt.Errorf("channel %s track %s fragment %d: %w", s.channel, f.ID, f.Start, err)}
	}
	if !s.rd.lastRead.IsZero() {
		s.rl.metrics.storeDelay.Observe(answered.Sub(s.rd.lastRead).Seconds())
	}
	s.st.stored(f.ID, f.Kind, dup, answered)
	if dup {
		s.dupes++
		s.rl.metrics.fragments.WithLabelValues("duplicate").Inc()
		s.log.Debug("fragment exists", "track", f.ID.String(), "start", f.Start)
		return nil
	}
	s.written++
	s.rl.metrics.fragments.WithLabelValues("written").Inc()
	return nil
}

// EndMarker is the body of an end marker (layout.EndKey).
type EndMarker struct {
	// Stream: the encoder ended the stream (the request completed, after
	// an mfra or not); false when the connection dropped or was refused.
	Stream bool `json:"eos"`
}

// markEnds writes an end marker for each track the connection stored
// fragments of. Failures are logged: without a marker the manifest
// function falls back on its gap timeout.
func (s *storeSink) markEnds(ctx context.Context, ends []ingest.TrackEnd, stream bool) {
	body, _ := json.Marshal(EndMarker{Stream: stream})
	for _, e := range ends {
		key := layout.EndKey(s.channel, e.ID, e.End)
		if _, err := s.store.Put(ctx, key, body, store.PutOptions{ContentType: "application/json", CacheControl: store.CacheNone, Tagging: layout.ExpireTag}); err != nil {
			s.log.Error("end marker not written", "track", e.ID.String(), "end", e.End, "err", err)
			s.rl.streamError(s.st, errStore, fmt.Errorf("end marker of track %s not written: %w", e.ID, err))
		}
	}
}

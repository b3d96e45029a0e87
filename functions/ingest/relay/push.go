package relay

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/layout"
)

// servePush takes a Smooth or CMAF push: one long request whose body is
// fragmented MP4, read box by box into an ingest session. It is answered
// when the body ends (200), or when the session ends it (see outcomeOf);
// either way the tracks' end markers are written.
func (rl *Relay) servePush(w http.ResponseWriter, r *http.Request, ip layout.IngestPath, token string) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		refuse(w, "method not allowed: push with POST or PUT", http.StatusMethodNotAllowed)
		return
	}
	log := rl.Log.With("channel", ip.Channel, "stream", ip.Stream, "remote", r.RemoteAddr)
	if err := rl.authorize(r, ip.Channel, token); err != nil {
		rl.refuseBefore(w, r, log, "push", ip.Channel, ip.Stream, err)
		return
	}
	if err := rl.admit(ip.Channel); err != nil {
		rl.refuseBefore(w, r, log, "push", ip.Channel, ip.Stream, err)
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
	run := rl.newRun(st, log, func() time.Time { return rd.lastRead })
	if d, ok := body.(*deadlineReader); ok {
		d.sparse, d.sparseTimeout = run.sess.Sparse, rl.Cfg.SparseReadTimeout
	}
	stats, err := ingest.Read(r.Context(), body, run.sess, ingest.ReadOptions{Boundary: rd.boundary, Alloc: rl.mem.draw, Free: rl.mem.give})
	if err != nil && outcomeOf(err).kind == errStore {
		// A store that kept failing for StoreTimeout is answered at once:
		// the end markers' own retries may take as long again.
		rl.answerPush(w, rc, run, stats, err)
		run.end(false)
		return
	}
	run.end(err == nil)
	rl.answerPush(w, rc, run, stats, err)
}

// answerPush answers a push that ended, and logs how.
func (rl *Relay) answerPush(w http.ResponseWriter, rc *http.ResponseController, run *run, stats ingest.Stats, err error) {
	attrs := run.attrs(stats)
	if err == nil {
		if stats.Bytes > 0 {
			run.log.Info("push ended", append(attrs, "end_of_stream", stats.Ended)...)
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	// Do not drain what is left of a body that failed: close.
	w.Header().Set("Connection", "close")
	o := outcomeOf(err)
	switch o.kind {
	case errShutdown:
		// Not an error: the encoder may reconnect to another relay.
		run.log.Info("push "+o.what, attrs...)
		http.Error(w, "shutting down: push to another relay", o.status)
		// Once answered, read no more of the body: net/http would
		// otherwise drain it, holding the server's own Shutdown.
		_ = rc.Flush()
		_ = rc.SetReadDeadline(time.Unix(1, 0))
		return
	case errStore:
		rl.streamError(run.st, o.kind, err)
		run.log.Error("push "+o.what, append(attrs, "err", err)...)
		// A whole answer, sent now: the end markers come after it.
		msg := "store unavailable: " + err.Error() + "\n"
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Length", strconv.Itoa(len(msg)))
		w.WriteHeader(o.status)
		_, _ = io.WriteString(w, msg)
		_ = rc.Flush()
		return
	}
	rl.streamError(run.st, o.kind, err)
	run.log.Warn("push "+o.what, append(attrs, "err", err)...)
	if o.status == http.StatusServiceUnavailable || o.status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "5")
	}
	http.Error(w, err.Error(), o.status)
}

// deadlineReader extends the connection's read deadline before every read,
// and ends a body that arrives slower than minRate over a window. A push
// whose tracks are all text (sparse, when set, says so: it is called in
// the session's goroutine, which reads) gets sparseTimeout when longer,
// and no rate floor.
type deadlineReader struct {
	r             io.Reader
	rc            *http.ResponseController
	d             time.Duration
	minRate       float64
	window        time.Duration
	since         time.Time // start of the current window
	got           int64     // bytes in it
	sparse        func() bool
	sparseTimeout time.Duration
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	timeout, sparse := d.d, d.sparse != nil && d.sparse()
	if sparse && timeout > 0 {
		timeout = max(timeout, d.sparseTimeout)
	}
	if timeout > 0 {
		_ = d.rc.SetReadDeadline(time.Now().Add(timeout))
	}
	n, err := d.r.Read(p)
	d.got += int64(n)
	if sparse {
		// Text trickles by nature: a window starts anew at every read.
		d.since, d.got = time.Now(), 0
		return n, err
	}
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

// sessionReader is what a push's session reads: its request body. It
// counts what arrives and notes when the last bytes came: the session
// reads box by box and nothing ahead, so when a fragment reaches the
// sink, that is when its mdat was read whole. It also knows, from the
// session (boundary), whether the push is between fragments, so that a
// relay that shuts down stops the push there.
type sessionReader struct {
	r     io.Reader
	st    *stream
	count prometheus.Counter // bytes in
	rc    *http.ResponseController
	// readTimeout is the deadline to put back after an interruption that
	// came too late (0: none).
	readTimeout time.Duration

	lastRead time.Time // the session's goroutine only

	mu          sync.Mutex
	between     bool // between fragments, and no byte of the next box read
	reading     bool // a Read waits on the body
	stopping    bool // stop at the next boundary between fragments
	abort       bool // stop now
	interrupted bool // the Read in progress was interrupted
	rearm       bool // the connection's deadline was moved: put it back
	ended       bool // a Read returned an error: the session reads no more
}

// boundary is ingest.ReadOptions.Boundary: the session says, before each
// box, whether it is between fragments.
func (r *sessionReader) boundary(between bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.between = between
}

func (r *sessionReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	if r.abort || r.stopping && r.between {
		r.ended = true
		r.mu.Unlock()
		return 0, errShuttingDown
	}
	r.reading = true
	rearm := r.rearm
	r.rearm = false
	r.mu.Unlock()
	if rearm {
		var d time.Time
		if r.readTimeout > 0 {
			d = time.Now().Add(r.readTimeout)
		}
		_ = r.rc.SetReadDeadline(d)
	}
	n, err := r.r.Read(p)
	if n > 0 {
		r.lastRead = time.Now()
		r.st.bytes.Add(int64(n))
		r.count.Add(float64(n))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reading = false
	r.ended = err != nil
	if n > 0 {
		r.between = false
	}
	if r.interrupted {
		r.interrupted = false
		if err != nil {
			return n, fmt.Errorf("%w (%v)", errShuttingDown, err)
		}
		// Bytes came just as the read was interrupted: go on.
		r.rearm = true
	}
	return n, err
}

// stop asks a push to stop at its next boundary between fragments, or at
// once; a read waiting at a boundary (or any, at once) is interrupted. It
// reports whether the push was still reading. The caller holds rl.mu (the
// push's handler has not returned).
func (r *sessionReader) stop(now bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return false
	}
	r.stopping = true
	r.abort = r.abort || now
	if r.reading && !r.interrupted && (r.abort || r.between) {
		r.interrupted = true
		_ = r.rc.SetReadDeadline(time.Unix(1, 0))
	}
	return true
}

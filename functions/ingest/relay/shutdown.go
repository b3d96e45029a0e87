package relay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// errShuttingDown ends the pushes and upload renditions a relay that shuts
// down stops, and refuses the requests that come meanwhile.
var errShuttingDown = errors.New("the relay is shutting down")

// enter counts an ingest request in, unless the relay is shutting down.
func (rl *Relay) enter() bool {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.closing {
		return false
	}
	rl.inflight++
	return true
}

// exit counts an ingest request out.
func (rl *Relay) exit() {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.inflight--; rl.closing && rl.inflight == 0 {
		rl.drainOnce.Do(func() { close(rl.drained) })
	}
}

// Shutdown is how a relay stops while encoders push (on SIGTERM): it stops
// taking requests (new ones get 503 "shutting down", and /healthz 503);
// each push stores the fragment it is receiving (one between fragments
// stops at once), writes its tracks' end markers as drops, so that the
// channel stays live for the encoder's reconnect to another relay, and is
// answered 503; the other requests in flight finish; then the upload
// renditions end, as drops too. Shutdown returns nil once all that is
// done. A little before ctx's deadline (a quarter of the time left, a
// second at most) the pushes still inside a fragment are cut: that
// fragment is lost, their end markers are still written, and Shutdown's
// error wraps context.DeadlineExceeded. When ctx ends Shutdown returns
// its error without waiting further. Call it while the server still
// listens, before the server's own Shutdown.
func (rl *Relay) Shutdown(ctx context.Context) error {
	rl.mu.Lock()
	if !rl.closing {
		rl.closing = true
		if rl.inflight == 0 {
			rl.drainOnce.Do(func() { close(rl.drained) })
		}
	}
	rl.mu.Unlock()
	pushes := rl.stopAll(false)
	rl.Log.Info("relay shutting down: pushes end after the fragment in hand", "pushes", pushes, "streams", rl.Active())
	var cut <-chan time.Time
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		t := time.NewTimer(left - min(time.Second, left/4))
		defer t.Stop()
		cut = t.C
	}
	cutOff := 0
	for drained := false; !drained; {
		select {
		case <-rl.drained:
			drained = true
		case <-cut:
			cutOff = rl.stopAll(true)
			rl.Log.Warn("relay shutdown: cutting the pushes still inside a fragment", "pushes", cutOff)
			cut = nil
		case <-ctx.Done():
			_ = rl.stopAll(true)
			// Uploads too, without waiting for their end markers.
			rl.mu.Lock()
			for _, uc := range rl.uploads {
				uc.mu.Lock()
				for _, r := range uc.renditions {
					_ = r.pw.CloseWithError(errShuttingDown)
				}
				uc.mu.Unlock()
			}
			rl.mu.Unlock()
			return fmt.Errorf("relay shutdown: requests in progress: %w", ctx.Err())
		}
	}
	done := make(chan struct{})
	go func() {
		rl.CloseUploads()
		close(done)
	}()
	select {
	case <-done:
		if cutOff > 0 {
			return fmt.Errorf("relay shutdown: %d push(es) cut inside a fragment: %w", cutOff, context.DeadlineExceeded)
		}
		rl.Log.Info("relay shut down")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("relay shutdown: ending uploads: %w", ctx.Err())
	}
}

// ShuttingDown reports whether Shutdown was called.
func (rl *Relay) ShuttingDown() bool {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return rl.closing
}

// stopAll stops every push (now: at once, else at its next boundary
// between fragments) and returns how many were still reading.
func (rl *Relay) stopAll(now bool) int {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	n := 0
	for _, rd := range rl.streams {
		if rd != nil && rd.stop(now) {
			n++
		}
	}
	return n
}

// AdminHandler serves the operator's endpoints: /metrics (Prometheus),
// /healthz (200 "ok", 503 once shutting down), /status (JSON, see Status)
// and /status.html (the same as a page that refreshes itself every 2 s).
// They name channels and encoder addresses: serve them on a listener of
// their own that encoders cannot reach, not beside Handler.
func (rl *Relay) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", rl.MetricsHandler())
	mux.HandleFunc("GET /healthz", rl.serveHealth)
	mux.HandleFunc("GET /status", rl.serveStatus)
	mux.HandleFunc("GET /status.html", rl.serveStatusHTML)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "status.html", http.StatusFound)
	})
	return mux
}

func (rl *Relay) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if rl.ShuttingDown() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "shutting down\n")
		return
	}
	_, _ = io.WriteString(w, "ok\n")
}

// sessionReader is what a session reads: a push's request body, or an
// upload rendition's pipe. It counts what arrives and notes when the last
// bytes came: sessions read box by box and nothing ahead, so when a
// fragment reaches the sink, that is when its mdat was read whole. A
// push's (rc set) also follows the boxes as they pass, to stop the push
// at a boundary between fragments once the relay shuts down.
type sessionReader struct {
	r     io.Reader
	st    *stream
	count prometheus.Counter       // bytes in, when they are counted here
	rc    *http.ResponseController // a push's connection
	// readTimeout is the deadline to put back after an interruption that
	// came too late (0: none).
	readTimeout time.Duration

	lastRead time.Time // the session's goroutine only

	mu          sync.Mutex
	box         boxTracker
	reading     bool // a Read waits on the body
	stopping    bool // stop at the next boundary between fragments
	abort       bool // stop now
	interrupted bool // the Read in progress was interrupted
	rearm       bool // the connection's deadline was moved: put it back
	ended       bool // a Read returned an error: the session reads no more
}

func (r *sessionReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	if r.abort || r.stopping && r.box.between() {
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
		if r.count != nil {
			r.count.Add(float64(n))
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reading = false
	r.ended = err != nil
	if r.rc != nil {
		r.box.feed(p[:n])
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
	if r.rc == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return false
	}
	r.stopping = true
	r.abort = r.abort || now
	if r.reading && !r.interrupted && (r.abort || r.box.between()) {
		r.interrupted = true
		_ = r.rc.SetReadDeadline(time.Unix(1, 0))
	}
	return true
}

// boxTracker follows the top-level boxes of a push as its bytes pass.
type boxTracker struct {
	hdr       [16]byte
	nhdr      int    // header bytes of the current box seen
	left      uint64 // bytes of the current box's body still to come
	inBody    bool
	afterMoof bool // the last box was a moof: its mdat is to come
	lost      bool // a box to the end of the stream, or a bad size
}

// between reports whether the push is between fragments: no byte of the
// next box seen, and no moof waiting for its mdat.
func (b *boxTracker) between() bool {
	return !b.lost && b.nhdr == 0 && !b.inBody && !b.afterMoof
}

func (b *boxTracker) feed(p []byte) {
	for len(p) > 0 && !b.lost {
		if b.inBody {
			k := min(uint64(len(p)), b.left)
			b.left -= k
			p = p[k:]
			b.inBody = b.left > 0
			continue
		}
		need := 8
		if b.nhdr >= 8 && binary.BigEndian.Uint32(b.hdr[:4]) == 1 {
			need = 16 // a 64-bit size follows
		}
		k := copy(b.hdr[b.nhdr:need], p)
		b.nhdr += k
		p = p[k:]
		if b.nhdr < need {
			continue
		}
		size := uint64(binary.BigEndian.Uint32(b.hdr[:4]))
		if size == 1 {
			if need == 8 {
				continue // read the 64-bit size
			}
			size = binary.BigEndian.Uint64(b.hdr[8:16])
		}
		if size < uint64(need) { // 0: to the end of the stream
			b.lost = true
			return
		}
		b.afterMoof = string(b.hdr[4:8]) == "moof"
		b.left, b.inBody, b.nhdr = size-uint64(need), size > uint64(need), 0
	}
}

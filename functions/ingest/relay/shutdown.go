package relay

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

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
			rl.uploads.Abort()
			go rl.uploads.Close()
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
		rl.uploads.Abort()
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
	for _, sp := range rl.streams {
		if sp != nil && sp.stop(now) {
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

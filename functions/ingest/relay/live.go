package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/mp4box"
)

// Live sources are the encoders that do not speak HTTP: RTMP and SRT. A
// source's package (functions/ingest/rtmp, functions/ingest/srt) accepts
// the connection, speaks the protocol and turns what arrives into MP4
// boxes (through a packager); the relay gives each connection the same
// way into the store a push has (OpenLive): authentication, the limits of
// pushes in progress, an ingest session over the relay's sink and the
// channel's clock, /status, the metrics, the end markers, and Shutdown.

// LiveKinds are the kinds a live source may open a stream as: the kind
// label of smoothcast_active_streams and smoothcast_ingest_bytes_total,
// and the kind /status shows.
var LiveKinds = []string{kindRTMP, kindSRT}

// LiveRequest is what a live source knows of an encoder that asks to
// publish.
type LiveRequest struct {
	// Kind is one of LiveKinds ("rtmp" also for RTMPS).
	Kind    string
	Channel string
	// Stream names the connection within its channel, as /status and the
	// log show it (a push's Streams(name)); a source without one uses its
	// kind.
	Stream string
	// Remote is the encoder's address.
	Remote string
	// Secret is the credential the encoder presented ("" for none); it is
	// checked as a push's is (401 without, 403 wrong: see Live's errors).
	Secret string
	// Configured says that the operator named this stream in the relay's
	// own configuration (an SRT pull: the relay calls an encoder listed
	// in -srt-pull), so no secret is asked of it. Only a source's
	// in-process configuration sets it, never anything an encoder sends:
	// a source that answers connections leaves it false.
	Configured bool
}

// Live is one live-source connection's way into the store. Its source's
// goroutine feeds it (Box, Read) and ends it (Close); Stop, from Shutdown,
// only signals (Stopping, Context).
type Live struct {
	rl     *Relay
	run    *run
	ctx    context.Context
	cancel context.CancelFunc
	// lastRead is when the source last said bytes came (Read); the
	// source's goroutine only.
	lastRead time.Time

	stopping chan struct{} // closed by stop
	mu       sync.Mutex    // guards what follows; never held with another lock
	stopped  bool          // stop was called
	closed   bool          // Close was called
}

// OpenLive opens a stream for a live source's connection: it refuses it
// while the relay shuts down (an error outcomeOf calls shutdown), when the
// credentials do not open the channel (*authError), or over a limit of
// pushes in progress (*limitError); LiveRefusal says what to tell the
// encoder. A Live that opened must be Closed, whatever happens. ctx is
// the connection's: the Live's own context (Context) ends with it.
func (rl *Relay) OpenLive(ctx context.Context, req LiveRequest) (*Live, error) {
	if req.Kind != kindRTMP && req.Kind != kindSRT {
		return nil, fmt.Errorf("relay: live stream kind %q: want one of %v", req.Kind, LiveKinds)
	}
	log := rl.Log.With("channel", req.Channel, "stream", req.Stream, "remote", req.Remote, "source", req.Kind)
	if !layout.ValidName(req.Channel) {
		err := &ingest.ProtocolError{Err: fmt.Errorf("channel name %q: letters, digits, - and _ only, 1 to 64 of them", req.Channel)}
		rl.refuseLive(log, req, err)
		return nil, err
	}
	if !rl.enter() {
		err := fmt.Errorf("%s publish to channel %s refused: %w", req.Kind, req.Channel, errShuttingDown)
		rl.refuseLive(log, req, err)
		return nil, err
	}
	var err error
	if !req.Configured {
		err = rl.checkSecret(req.Channel, req.Secret, req.Secret != "")
	}
	var auth *authError
	if errors.As(err, &auth) && auth.status == http.StatusUnauthorized {
		err = &authError{auth.status, "credentials required: the channel's secret in the stream key (RTMP) or the stream ID (SRT)"}
	}
	if err != nil {
		rl.exit()
		rl.refuseLive(log, req, err)
		return nil, err
	}
	if err := rl.admit(req.Channel); err != nil {
		rl.exit()
		rl.refuseLive(log, req, err)
		return nil, err
	}
	st := &stream{channel: req.Channel, name: req.Stream, kind: req.Kind, remote: req.Remote, started: time.Now()}
	l := &Live{rl: rl, stopping: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(ctx)
	l.run = rl.newRun(st, log, func() time.Time { return l.lastRead })
	rl.register(st, l)
	log.Info(req.Kind + " publish started")
	return l, nil
}

// refuseLive logs, counts and keeps among the recent errors a live
// stream refused before it opened.
func (rl *Relay) refuseLive(log *slog.Logger, req LiveRequest, err error) {
	o := outcomeOf(err)
	log.Warn(req.Kind+" publish "+o.what, "reason", err.Error())
	rl.noteError(o.kind, req.Channel, req.Stream, req.Remote, err)
}

// LiveRefusal is what a live source tells an encoder OpenLive refused, in
// a few words that give nothing away (a wrong secret and a channel
// without one read alike), and whether the encoder may retry later
// (shutdown, a limit, the memory budget).
func LiveRefusal(err error) (reason string, retry bool) {
	o := outcomeOf(err)
	switch o.kind {
	case errAuth:
		if o.status == http.StatusUnauthorized {
			return "authentication required", false
		}
		return "wrong secret", false
	case errShutdown:
		return "relay shutting down: publish to another relay", true
	case errLimit:
		return "too many streams: try again later", true
	}
	return err.Error(), false
}

// Box is ingest.Session.Box for the stream's session: the packager's sink.
func (l *Live) Box(ctx context.Context, b mp4box.Box) error { return l.run.sess.Box(ctx, b) }

// Read counts n bytes received from the encoder (the status page, the
// metrics, and the fragments' store delay).
func (l *Live) Read(n int) {
	if n <= 0 {
		return
	}
	l.lastRead = time.Now()
	l.run.st.bytes.Add(int64(n))
	l.rl.metrics.bytes.WithLabelValues(l.run.st.kind).Add(float64(n))
}

// Log is the stream's logger (channel, stream, remote and source set).
func (l *Live) Log() *slog.Logger { return l.run.log }

// Context ends when the connection's does, when the stream is Closed, and
// when the relay cuts the stream at once (Shutdown's deadline).
func (l *Live) Context() context.Context { return l.ctx }

// Stopping is closed when the relay shuts down: the source ends the
// stream at its next fragment boundary (what its packager holds is
// flushed first) and Closes it with an error that wraps ErrShuttingDown,
// so that the channel stays live for the encoder's reconnect to another
// relay.
func (l *Live) Stopping() <-chan struct{} { return l.stopping }

// ErrShuttingDown is what a live source Closes a stream with when it
// stopped because the relay shuts down (Stopping).
var ErrShuttingDown = errShuttingDown

// Warn notes an error that does not end the stream (a group of pictures
// longer than the source allows, a sample it dropped): the log, /status
// (the stream's last error and the recent errors) and
// smoothcast_errors_total.
func (l *Live) Warn(err error) {
	o := outcomeOf(err)
	l.run.st.failed(o.kind, err)
	l.rl.streamError(l.run.st, o.kind, err)
	l.run.log.Warn(l.run.st.kind+" stream: "+o.what, "err", err)
}

// stop is Shutdown's: at the next boundary (Stopping), or at once
// (Context). It reports whether the stream was still open.
func (l *Live) stop(now bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	if !l.stopped {
		l.stopped = true
		close(l.stopping)
	}
	if now {
		l.cancel()
	}
	return true
}

// Close ends the stream: err nil when the encoder ended it (the
// manifests turn VOD once every track has), else why it ended (a drop, a
// protocol error, ErrShuttingDown). It writes the tracks' end markers,
// logs how it ended, counts it, and lets the relay's Shutdown go on.
// Closing twice does nothing.
func (l *Live) Close(err error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	defer l.rl.exit()
	defer l.rl.leave(l.run.st.channel)
	defer l.rl.unregister(l.run.st)
	defer l.cancel()
	l.run.end(err == nil)
	kind := l.run.st.kind
	attrs := l.run.attrs(l.run.sess.Stats())
	if err == nil {
		l.run.log.Info(kind+" publish ended", append(attrs, "end_of_stream", true)...)
		return
	}
	o := outcomeOf(err)
	if errors.Is(err, errShuttingDown) {
		l.run.log.Info(kind+" publish "+o.what, attrs...)
		return
	}
	l.rl.streamError(l.run.st, o.kind, err)
	l.run.log.Warn(kind+" publish "+o.what, append(attrs, "err", err)...)
}

// Package stack runs the whole origin on one machine: the embedded
// S3-compatible server, the relay, the manifest handler fed by the same S3
// event JSON AWS would send, and the local edge. It is what `smoothcast
// run` (and `make run`) starts, and what the end-to-end tests drive.
package stack

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/functions/ingest/rtmp"
	"github.com/smoothcast/smoothcast/functions/ingest/srt"
	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/local/edge"
	"github.com/smoothcast/smoothcast/local/janitor"
	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/tlsfile"
)

// Options configure the stack.
type Options struct {
	IngestAddr string // default 127.0.0.1:8080
	// IngestTLS, when set, makes the ingest listener HTTPS only (as the
	// relay's -tls-cert does).
	IngestTLS *tls.Config
	EdgeAddr  string // default 127.0.0.1:8081
	// AdminAddr serves the relay's /metrics, /healthz, /status and
	// /status.html; empty serves none.
	AdminAddr string
	S3Addr    string // default 127.0.0.1:0 (any free port)
	// RTMPAddr, when set, takes RTMP publishes (package rtmp); RTMPSAddr
	// with RTMPTLS, RTMPS.
	RTMPAddr, RTMPSAddr string
	RTMPTLS             *tls.Config
	RTMP                rtmp.Config
	// DataDir keeps the bucket under DataDir/s3 (s3local.Options.DataDir);
	// empty keeps it in memory.
	DataDir string
	Bucket  string // default "smoothcast"
	// EventWorkers is how many events the manifest handler processes at once.
	EventWorkers int
	Handler      handler.Config
	Relay        relay.Config
	// SRT is the relay's SRT server (functions/ingest/srt): an empty
	// SRT.Addr starts no listener, and SRT.Pull lists the encoders that
	// listen, which the relay calls; with neither, no server.
	SRT srt.Config
	// Players is the source tree's players/ folder (npm packages of the
	// player page); empty serves the page without its libraries.
	Players string
	// SweepEvery is how often the retention janitor runs (default 1 min;
	// it removes what is older than Handler.Retention).
	SweepEvery time.Duration
	// FaultSeed seeds the embedded S3 server's fault decisions
	// (s3local.Options.FaultSeed; the faults themselves: Stack.S3.SetFaults).
	FaultSeed uint64
	// EventTap, when set, sees every object-created event before the
	// manifest handler does (measurements: the event's time is when the
	// object was stored).
	EventTap func(events.S3Event)
	Log      *slog.Logger
}

// Stack is a running local origin.
type Stack struct {
	IngestURL string // http://host:port, or https:// with Options.IngestTLS (push to IngestURL + /live/{ch}.isml/Streams({s}))
	EdgeURL   string // http://host:port (play from EdgeURL + /live/{ch}.isml/Manifest)
	AdminURL  string // http://host:port of the relay's metrics and status ("" without Options.AdminAddr)
	// RTMPURL and RTMPSURL are the encoders' Server URLs (rtmp://host:port/live;
	// "" without Options.RTMPAddr, RTMPSAddr).
	RTMPURL, RTMPSURL string
	RTMP              *rtmp.Server
	S3                *s3local.Server
	Store             *store.Store
	Relay             *relay.Relay
	Handler           *handler.Handler

	// SRT is the relay's SRT server, and SRTURL its listener's
	// srt://host:port (callers add ?streamid=#!::r={channel},m=publish):
	// nil without Options.SRT.Addr or Pull, "" without Options.SRT.Addr.
	SRT    *srt.Server
	SRTURL string

	cancel  context.CancelFunc
	servers []*http.Server
	// reconciled is closed once the reconciliation of what an earlier
	// run left (reconcile) is over.
	reconciled chan struct{}
	// killed: the stack stopped as a crash stops it (crash); events not
	// handled yet are lost.
	killed atomic.Bool
}

// Start brings the stack up. Cancel ctx or call Close to stop it.
func Start(ctx context.Context, o Options) (*Stack, error) {
	if o.IngestAddr == "" {
		o.IngestAddr = "127.0.0.1:8080"
	}
	if o.EdgeAddr == "" {
		o.EdgeAddr = "127.0.0.1:8081"
	}
	if o.S3Addr == "" {
		o.S3Addr = "127.0.0.1:0"
	}
	if o.Bucket == "" {
		o.Bucket = "smoothcast"
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Handler == (handler.Config{}) {
		o.Handler = handler.DefaultConfig()
	}
	if o.Relay.MaxBox == 0 { // unset: the defaults
		o.Relay = relay.DefaultConfig()
	}
	if err := o.Handler.Validate(); err != nil {
		return nil, err
	}
	if o.SweepEvery <= 0 {
		o.SweepEvery = time.Minute
	}
	// What an earlier run stored before this one started, the
	// reconciliation looks at.
	started := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	s := &Stack{cancel: cancel}
	fail := func(err error) (*Stack, error) {
		_ = s.Close(context.Background())
		return nil, err
	}
	// The handler needs the store, which needs the S3 server, which
	// delivers events to the handler: events wait until it is made.
	var h *handler.Handler
	made := make(chan struct{})
	notify := func(ctx context.Context, ev events.S3Event) error {
		select {
		case <-made:
		case <-ctx.Done():
			return ctx.Err()
		}
		if s.killed.Load() {
			return nil // lost with the process
		}
		if o.EventTap != nil {
			o.EventTap(ev)
		}
		if s.killed.Load() {
			return nil
		}
		return h.HandleS3(ctx, ev)
	}
	// Events as the AWS stack's bucket notification sends them (infra):
	// fragments and end markers, not init segments nor the state.
	srv, err := s3local.Start(ctx, s3local.Options{
		Addr: o.S3Addr, Bucket: o.Bucket, DataDir: o.DataDir, Filter: layout.Notifies,
		Notify: notify, Workers: o.EventWorkers, FaultSeed: o.FaultSeed, Log: o.Log.With("component", "s3"),
	})
	if err != nil {
		return fail(err)
	}
	s.S3 = srv
	st, err := store.New(ctx, store.Config{
		Bucket: o.Bucket, Endpoint: srv.URL, AccessKey: s3local.AccessKey, SecretKey: s3local.SecretKey,
	})
	if err != nil {
		return fail(err)
	}
	s.Store = st
	h = handler.New(st, o.Handler, o.Log.With("component", "manifest"))
	close(made)
	s.Handler = h
	s.Relay = relay.New(st, o.Relay, o.Log.With("component", "relay"))
	ed := &edge.Edge{Store: st, Manifest: h.HandleURL, Log: o.Log.With("component", "edge"), Players: o.Players}

	ingest, err := s.serveIngest(ctx, o.IngestAddr, o.IngestTLS, o.Log.With("component", "relay"))
	if err != nil {
		return fail(fmt.Errorf("ingest: %w", err))
	}
	s.IngestURL = ingest
	if o.SRT.Addr != "" || len(o.SRT.Pull) > 0 {
		if s.SRT, err = srt.Listen(s.Relay, o.SRT); err != nil {
			return fail(err)
		}
		if o.SRT.Addr != "" {
			s.SRTURL = "srt://" + s.SRT.Addr().String()
		}
		go func() {
			if err := s.SRT.Serve(); err != nil {
				o.Log.Error("srt listener stopped", "err", err)
			}
		}()
	}
	play, err := s.serve(ctx, o.EdgeAddr, ed.Handler())
	if err != nil {
		return fail(fmt.Errorf("edge: %w", err))
	}
	if o.AdminAddr != "" {
		if s.AdminURL, err = s.serve(ctx, o.AdminAddr, s.Relay.AdminHandler()); err != nil {
			return fail(fmt.Errorf("relay admin: %w", err))
		}
	}
	s.EdgeURL = play
	if o.RTMPAddr != "" || o.RTMPSAddr != "" {
		if err := s.serveRTMP(ctx, o); err != nil {
			return fail(fmt.Errorf("rtmp: %w", err))
		}
	}
	if o.Handler.Retention > 0 {
		go janitor.Run(ctx, st, o.Handler.Retention, o.SweepEvery, o.Log.With("component", "janitor"))
	}
	s.reconciled = make(chan struct{})
	go func() {
		defer close(s.reconciled)
		log := o.Log.With("component", "reconcile")
		done, err := reconcile(ctx, st, o.Bucket, started, notify, log)
		if err != nil && ctx.Err() == nil {
			log.Error("reconciling what the last run left failed", "err", err)
		}
		if done.events > 0 || done.ended > 0 {
			log.Info("reconciled what the last run left", "events", done.events, "connections_ended", done.ended)
		}
	}()
	return s, nil
}

// serveIngest serves the relay as its main does: each connection draws
// its headers' cost from the relay's memory budget, headers past
// relay.MaxHeaderBytes are answered 431, and with tlsCfg it is HTTPS
// only.
func (s *Stack) serveIngest(ctx context.Context, addr string, tlsCfg *tls.Config, log *slog.Logger) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	if tlsCfg == nil {
		return s.serveOn(ctx, s.Relay.Listener(ln), s.Relay.Handler(), relay.MaxHeaderBytes, nil)
	}
	// A clear-text request is answered 400 by net/http, and logged once
	// per remote host.
	u, err := s.serveOn(ctx, s.Relay.TLSListener(ln, tlsCfg), s.Relay.Handler(), relay.MaxHeaderBytes, tlsfile.NewHandshakeLog(log).ErrorLog())
	return strings.Replace(u, "http://", "https://", 1), err
}

// serveRTMP takes RTMP (and RTMPS) publishes as the relay's main does.
func (s *Stack) serveRTMP(ctx context.Context, o Options) error {
	s.RTMP = rtmp.New(s.Relay, o.RTMP, o.Log.With("component", "relay"))
	for _, l := range []struct {
		addr, scheme string
		tls          *tls.Config
		url          *string
	}{{o.RTMPAddr, "rtmp", nil, &s.RTMPURL}, {o.RTMPSAddr, "rtmps", o.RTMPTLS, &s.RTMPSURL}} {
		if l.addr == "" {
			continue
		}
		ln, err := rtmp.Listen(ctx, l.addr, l.tls)
		if err != nil {
			return err
		}
		*l.url = l.scheme + "://" + ln.Addr().String() + "/" + rtmp.App
		go func() { _ = s.RTMP.Serve(ln) }()
	}
	return nil
}

func (s *Stack) serve(ctx context.Context, addr string, h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	return s.serveOn(ctx, ln, h, 0, nil)
}

// serveOn serves h on ln; errorLog, if set, is the server's ErrorLog.
func (s *Stack) serveOn(ctx context.Context, ln net.Listener, h http.Handler, maxHeaderBytes int, errorLog *log.Logger) (string, error) {
	addr := ln.Addr().String()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          errorLog,
		// Push requests run for hours; Shutdown would wait for them forever.
		// Their contexts end with the stack's.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	s.servers = append(s.servers, srv)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("server stopped", "addr", addr, "err", err)
		}
	}()
	return "http://" + ln.Addr().String(), nil
}

// Settle waits until the reconciliation of what an earlier run left is
// over, the relay has finished every push (an encoder may hang up before
// the relay has written its last fragments) and every event those writes
// caused has been handled, or ctx ends.
func (s *Stack) Settle(ctx context.Context) {
	select {
	case <-s.reconciled:
	case <-ctx.Done():
	}
	for s.Relay.Active() > 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
	s.S3.Drain()
}

// Close stops accepting, ends open pushes, waits for queued events and
// stops the embedded store.
func (s *Stack) Close(ctx context.Context) error {
	var errs []error
	if s.Relay != nil {
		// As the relay does on SIGTERM: pushes store the fragment in hand
		// and end as drops, uploads end; then the rest stops.
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := s.Relay.Shutdown(sctx); err != nil {
			errs = append(errs, fmt.Errorf("relay shutdown: %w", err))
		}
		cancel()
	}
	if s.RTMP != nil {
		errs = append(errs, s.RTMP.Close())
	}
	if s.SRT != nil {
		errs = append(errs, s.SRT.Close())
	}
	s.cancel()
	if s.reconciled != nil {
		<-s.reconciled // it stops with the stack's context
	}
	for _, srv := range s.servers {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
		cancel()
	}
	if s.Relay != nil {
		// Whatever Shutdown's deadline cut short: no upload session
		// outlives the stack (a no-op when Shutdown ended them).
		s.Relay.CloseUploads()
	}
	if s.S3 != nil {
		errs = append(errs, s.S3.Close(ctx))
	}
	return errors.Join(errs...)
}

// crash stops the stack as a SIGKILL would, for the tests of what the
// next stack makes of what it left: events not handled yet are lost (the
// queue is not drained), the embedded store goes first so that nothing
// the relay does after reaches it (no end marker, no fragment), then the
// servers close without ending a push. The data directory is left as the
// process would leave it.
func (s *Stack) crash() {
	s.killed.Store(true)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.S3.Close(gone) // drains nothing
	s.cancel()
	<-s.reconciled
	for _, srv := range s.servers {
		_ = srv.Close()
	}
	if s.RTMP != nil {
		_ = s.RTMP.Close()
	}
	if s.SRT != nil {
		_ = s.SRT.Close()
	}
	s.Relay.CloseUploads()
}

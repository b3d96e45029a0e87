// Package rtmp is the relay's RTMP and RTMPS source: the encoders most
// people own (OBS Studio, vMix, Wirecast, hardware encoders, phones, ffmpeg
// -f flv) publish to rtmp://HOST:1935/live/{stream key} (StreamKey says
// what the key carries: the channel, an encoder's name, the channel's
// secret), or over TLS to rtmps://HOST:PORT/live/{stream key}.
//
// gortmplib speaks the protocol (handshake, chunks, AMF commands, FLV and
// Enhanced RTMP tags); this package only converts. Each connection that
// publishes opens a stream through the relay (relay.OpenLive: the
// channel's secret, the limits of pushes in progress, /status, the
// metrics, Shutdown) and feeds a packager over it: H.264, HEVC or AV1
// video (legacy FLV or Enhanced RTMP) and AAC or AC-3 audio, their FLV
// timestamps (32-bit milliseconds) unwrapped and counted in 90 kHz
// ticks, cut into CMAF fragments at the encoder's key frames. The
// encoder's deleteStream (or FCUnpublish) ends the stream (the manifests
// turn VOD once every stream of the channel has ended); a connection that
// breaks is a drop, and nothing of the group of pictures it was sending
// is stored. When the relay shuts down a publish stops at once: what its
// packager holds is stored (Packager.Flush) and its tracks end as drops,
// for the encoder's reconnect to another relay.
//
// A play request, an application other than live, a stream key that
// does not parse and a second publish of a stream that is publishing are
// refused with an onStatus error whose description says why (ffmpeg
// prints it as "Server error: ..."); so are the relay's refusals
// (relay.LiveRefusal's words: "wrong secret", "too many streams: try
// again later", ...).
//
// What one connection may make the relay hold is bounded (Limits, and
// the guard in guard.go that applies them before gortmplib reads a
// byte); the handshake, connect and publish must come within
// Config.HandshakeTimeout, and a publisher silent for Config.ReadTimeout
// is dropped.
package rtmp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/shared/packager"
	"github.com/smoothcast/smoothcast/shared/tlsfile"
)

// Config holds an RTMP server's settings.
type Config struct {
	// ReadTimeout drops a publisher that sends nothing for this long
	// (default: the relay's -read-timeout).
	ReadTimeout time.Duration
	// HandshakeTimeout bounds the time from a connection's first byte to
	// its publish command (default 10 s).
	HandshakeTimeout time.Duration
	// MaxConnecting bounds the connections that have not published yet
	// (default 64); more are closed at once.
	MaxConnecting int
	// Limits bound what one connection may make the relay hold (default
	// DefaultLimits).
	Limits Limits
	// MaxGOP: key frames further apart than this end the stream with an
	// error (default packager.DefaultMaxGOP, 10 s).
	MaxGOP time.Duration
	// MinFragment is the shortest video fragment a key frame ends
	// (default packager.DefaultMinFragment, 1 s).
	MinFragment time.Duration
}

// DefaultHandshakeTimeout is Config.HandshakeTimeout's default.
const DefaultHandshakeTimeout = 10 * time.Second

// defaultStaleAfter is how long a publisher may have sent nothing before
// a new publish of its stream key takes its place: an encoder that
// reconnects after its network path broke need not wait for the read
// timeout.
const defaultStaleAfter = 5 * time.Second

// Server accepts RTMP (and, on a TLS listener, RTMPS) connections and
// publishes them through a relay. Its methods are safe for concurrent
// use.
type Server struct {
	rl  *relay.Relay
	cfg Config
	log *slog.Logger

	staleAfter time.Duration // the defaultStaleAfter; tests shorten it
	// handshakes logs the RTMPS connections that fail their TLS
	// handshake (rtmp:// to the RTMPS port), once per remote host.
	handshakes *tlsfile.HandshakeLog

	mu         sync.Mutex // guards what follows; never held with another lock
	listeners  map[net.Listener]bool
	conns      map[net.Conn]bool
	keys       map[string]*claim // the streams publishing, by channel/name
	connecting int
	closed     bool
	wg         sync.WaitGroup
}

// New returns a server that publishes through rl.
func New(rl *relay.Relay, cfg Config, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = rl.Cfg.ReadTimeout
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = relay.DefaultConfig().ReadTimeout
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxConnecting <= 0 {
		cfg.MaxConnecting = 64
	}
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits()
	}
	if cfg.MaxGOP <= 0 {
		cfg.MaxGOP = packager.DefaultMaxGOP
	}
	if cfg.MinFragment <= 0 {
		cfg.MinFragment = packager.DefaultMinFragment
	}
	log = log.With("source", "rtmp")
	return &Server{rl: rl, cfg: cfg, log: log, staleAfter: defaultStaleAfter, handshakes: tlsfile.NewHandshakeLog(log), listeners: map[net.Listener]bool{},
		conns: map[net.Conn]bool{}, keys: map[string]*claim{}}
}

// ErrServerClosed is what Serve returns once Close was called.
var ErrServerClosed = errors.New("rtmp: server closed")

// Serve accepts connections on ln until Close; a TLS listener
// (tls.NewListener, see TLSConfig) makes it RTMPS. It returns
// ErrServerClosed after Close, else the listener's error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooManyFiles) {
				// As net/http does: a full file table passes.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("rtmp accept", "err", err, "retry_in", backoff.String())
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("rtmp listener: %w", err)
		}
		backoff = 0
		if !s.track(nc) {
			_ = nc.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(nc)
			s.serveConn(nc)
		}()
	}
}

// track counts a new connection in, unless the server is closed or too
// many connections have not published yet.
func (s *Server) track(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.connecting >= s.cfg.MaxConnecting {
		s.log.Warn("rtmp connection refused: too many connections have not published yet", "remote", nc.RemoteAddr().String(), "limit", s.cfg.MaxConnecting)
		return false
	}
	s.connecting++
	s.conns[nc] = true
	return true
}

// published counts a connection out of those that have not published.
func (s *Server) published() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connecting--
}

func (s *Server) untrack(nc net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, nc)
}

// Close stops the listeners and ends every connection (a stream still
// publishing ends as a drop: call the relay's Shutdown first, which ends
// them at a fragment boundary), and waits for their goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	var errs []error
	for ln := range s.listeners {
		errs = append(errs, ln.Close())
	}
	for nc := range s.conns {
		_ = nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return errors.Join(errs...)
}

// claim is a stream key publishing: one connection at a time.
type claim struct {
	remote   string
	lastRead syncTime // when its connection last received bytes
	kick     func()   // ends its connection
}

// claimKey makes c the publisher of k, unless another connection
// publishes it and has received bytes within staleAfter; a silent one
// (its network path broke) is ended (errReplaced) and replaced. release
// undoes it.
func (s *Server) claimKey(k StreamKey, c *claim) (release func(), err error) {
	id := k.Channel + "/" + k.Name
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.keys[id]; old != nil {
		if silent := time.Since(old.lastRead.Load()); silent < s.staleAfter {
			return nil, fmt.Errorf("stream key %s is publishing from %s: a second encoder of the channel publishes as %s/{name}", k, old.remote, k.Channel)
		} else {
			s.log.Warn("rtmp publish takes the place of a silent connection", "channel", k.Channel, "stream", k.Stream(), "remote", c.remote, "silent_remote", old.remote, "silent_for", silent.Round(time.Millisecond).String())
			old.kick()
		}
	}
	s.keys[id] = c
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.keys[id] == c {
			delete(s.keys, id)
		}
	}, nil
}

// syncTime is a time read and written from several goroutines.
type syncTime struct {
	mu sync.Mutex
	t  time.Time
}

func (t *syncTime) Store(v time.Time) { t.mu.Lock(); t.t = v; t.mu.Unlock() }
func (t *syncTime) Load() time.Time   { t.mu.Lock(); defer t.mu.Unlock(); return t.t }

// TLSConfig is the RTMPS listener's TLS configuration: TLS 1.2 at least,
// the certificate chain and key read from PEM files, and read again when
// either file changes (a renewed certificate needs no restart; one that
// does not load is logged, and the one before it stays in use). See
// package tlsfile.
func TLSConfig(certFile, keyFile string, log *slog.Logger) (*tls.Config, error) {
	k, err := tlsfile.Load(certFile, keyFile, log)
	if err != nil {
		return nil, fmt.Errorf("rtmps %w", err)
	}
	return k.Config(), nil
}

// Listen opens the RTMP listener at addr, or the RTMPS one when tlsCfg is
// set.
func Listen(ctx context.Context, addr string, tlsCfg *tls.Config) (net.Listener, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	return ln, nil
}

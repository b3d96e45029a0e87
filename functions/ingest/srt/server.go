// Package srt is the relay's SRT source: MPEG-TS over SRT (Secure
// Reliable Transport), the way OBS Studio, vMix, hardware encoders and
// ffmpeg (-f mpegts srt://...) send live streams over the internet.
//
// A Server listens on a UDP port for callers (encoders in SRT's caller
// mode, the usual one) over github.com/datarhei/gosrt, and calls the
// encoders that listen (Config.Pull: see pull.go). For each connection:
//
//   - reads the stream ID (ParseStreamID: the SRT Access Control
//     convention "#!::r={channel},m=publish", the channel's ingest secret
//     in smoothcast_secret, or the bare channel name) and refuses a bad
//     one, a request to play, or a caller whose encryption does not match
//     the relay's passphrase, with the rejection reasons SRT defines
//     (a pulled stream has none of this: the operator configured its
//     channel and passphrase, and it asks for no secret);
//   - opens the stream with relay.OpenLive (kind "srt": authentication,
//     the limits of pushes in progress, /status, metrics, Shutdown), and
//     refuses what the relay refuses (relay.LiveRefusal's words in the
//     log, an SRT rejection reason to the caller);
//   - demultiplexes the transport stream (shared/tsdemux) and packages it
//     (shared/packager, fragments cut at key frames) into the stream's
//     session.
//
// How a connection ends decides what the manifests do: an encoder that
// closes its socket sends SRT's SHUTDOWN, and that is an end of stream
// (the packager flushes what it holds, the manifests turn VOD); silence
// for the peer idle timeout (a crash, kill -9, the network gone) or for
// the relay's read timeout is a drop (nothing of the GOP in hand is
// published, the channel stays live for the reconnect). See peerLog.
package srt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	gosrt "github.com/datarhei/gosrt"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/shared/ingest"
)

// Config configures a Server.
type Config struct {
	// Addr is the UDP address to listen on (host:port); empty: none (the
	// Server only calls the encoders of Pull).
	Addr string
	// Pull is the encoders that listen, which the relay calls (each on a
	// goroutine of its own from Serve to Close; see Pull).
	Pull []Pull
	// Passphrase, when set, makes SRT's AES encryption mandatory: a
	// caller must encrypt with it (any key length SRT defines, 16, 24 or
	// 32 bytes, as the caller chooses), and one without it or with
	// another is refused (REJ_UNSECURE, REJ_BADSECRET). 10 to 79
	// characters. Empty: callers must not encrypt. One passphrase for the
	// relay, not one per channel: see docs/encoders.md.
	Passphrase string
	// Latency is the least receiver latency (SRTO_RCVLATENCY) the relay
	// asks for: the time SRT has to recover lost packets. A caller that
	// asks for more gets more (zero: what the caller asks).
	Latency time.Duration
	// PeerIdleTimeout ends a connection that receives no packet at all
	// (media or keep-alive) for this long: a drop. Zero: the default.
	PeerIdleTimeout time.Duration
	// ReadTimeout ends a connection that receives no media for this long
	// (a caller that keeps the connection alive and sends nothing): a
	// drop. Zero: the relay's (relay.Config.ReadTimeout).
	ReadTimeout time.Duration
	// MaxBacklog is how many bytes a connection may hold while its
	// fragments wait for the store (see backlog). Zero: the default.
	MaxBacklog int
	// MaxGOP is the packager's limit on the time between key frames
	// (packager.Options.MaxGOP; zero: its default).
	MaxGOP time.Duration
	Log    *slog.Logger
}

// DefaultConfig returns the defaults: port 9000 on every interface, no
// passphrase, 120 ms of latency (SRT's own default), 5 s of peer idle
// timeout (libsrt's), 16 MiB of backlog per connection (27 s of a
// 5 Mbit/s stream: about the relay's StoreTimeout, 30 s, for which a push
// waits on the store).
func DefaultConfig() Config {
	return Config{Addr: ":9000", Latency: 120 * time.Millisecond, PeerIdleTimeout: 5 * time.Second, MaxBacklog: 16 << 20}
}

// Passphrase lengths SRT defines (SRTO_PASSPHRASE).
const minPassphrase, maxPassphrase = 10, 79

// Validate reports a setting the Server cannot run with.
func (c Config) Validate() error {
	if n := len(c.Passphrase); n != 0 && (n < minPassphrase || n > maxPassphrase) {
		return fmt.Errorf("srt passphrase: %d characters; SRT takes %d to %d", n, minPassphrase, maxPassphrase)
	}
	if c.Latency < 0 || c.Latency > time.Minute {
		return fmt.Errorf("srt latency %v: want 0 to 1m", c.Latency)
	}
	if c.PeerIdleTimeout < 0 {
		return fmt.Errorf("srt peer idle timeout %v: want a positive duration", c.PeerIdleTimeout)
	}
	if c.MaxBacklog < 0 {
		return fmt.Errorf("srt backlog %d: want a positive number of bytes", c.MaxBacklog)
	}
	for _, p := range c.Pull {
		if err := p.validate(); err != nil {
			return err
		}
	}
	return nil
}

// Server takes SRT callers' streams into a relay.
type Server struct {
	rl    *relay.Relay
	cfg   Config
	ln    gosrt.Listener
	log   *slog.Logger
	peers *peerLog

	// base is every connection's context: Close ends it.
	base   context.Context
	cancel context.CancelFunc
	mu     sync.Mutex     // orders startPull's Add before Close's Wait
	conns  sync.WaitGroup // connections and pullers

	// ingest turns a connection's bytes into the stream's boxes
	// (ingestTS; tests replace it).
	ingest func(c *conn) error

	// How the pullers dial and wait between tries (defaultRetry;
	// tests shorten them), and what a test is told of each wait.
	retry  retryPolicy
	onWait func(p Pull, wait time.Duration, err error)
}

// Listen opens the UDP port (unless Config.Addr is empty) and starts
// taking handshakes: call Serve to admit callers and call the encoders
// of Config.Pull, and Close (after the relay's Shutdown) to stop.
func Listen(rl *relay.Relay, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	def := DefaultConfig()
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = rl.Cfg.ReadTimeout
	}
	if cfg.PeerIdleTimeout == 0 {
		cfg.PeerIdleTimeout = def.PeerIdleTimeout
	}
	if cfg.MaxBacklog == 0 {
		cfg.MaxBacklog = def.MaxBacklog
	}
	log := cfg.Log
	if log == nil {
		log = rl.Log
	}
	log = log.With("source", "srt")
	s := &Server{rl: rl, cfg: cfg, log: log, peers: newPeerLog(log), retry: defaultRetry}
	s.ingest = ingestTS
	s.base, s.cancel = context.WithCancel(context.Background())
	if cfg.Addr == "" {
		return s, nil
	}
	gc := gosrt.DefaultConfig()
	gc.ReceiverLatency = cfg.Latency
	gc.PeerIdleTimeout = cfg.PeerIdleTimeout
	gc.Logger = s.peers
	ln, err := gosrt.Listen("srt", cfg.Addr, gc)
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("srt listener %s: %w", cfg.Addr, err)
	}
	s.ln = ln
	return s, nil
}

// Addr is the address the Server listens on (nil without a listener).
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve starts calling the encoders of Config.Pull and admits callers
// until Close (without a listener it waits for Close). Handshakes are
// decided one at a time (stream ID, passphrase, relay.OpenLive: no I/O),
// so that a flood of them costs one goroutine, and gosrt's backlog of
// 128 drops what comes faster; each admitted connection runs on a
// goroutine of its own.
func (s *Server) Serve() error {
	for _, p := range s.cfg.Pull {
		s.startPull(p)
	}
	if s.ln == nil {
		<-s.base.Done()
		return nil
	}
	for {
		req, err := s.ln.Accept2()
		if err != nil {
			if errors.Is(err, gosrt.ErrListenerClosed) {
				return nil
			}
			return fmt.Errorf("srt listener: %w", err)
		}
		s.admit(req)
	}
}

// Close stops listening and calling, ends the connections still open
// (call the relay's Shutdown first: it stops them, what each holds
// stored) and waits for them to close their streams, and for the
// pullers to end (one inside a dial ends when the dial does: gosrt's
// Dial cannot be cancelled; see pullDialTimeout).
func (s *Server) Close() error {
	if s.ln != nil {
		s.ln.Close()
	}
	s.mu.Lock()
	s.cancel()
	s.mu.Unlock()
	s.conns.Wait()
	return nil
}

// admit decides a caller's handshake: refused (with the reason SRT
// defines for it, and a log line), or accepted and served.
func (s *Server) admit(req gosrt.ConnRequest) {
	remote := req.RemoteAddr().String()
	refuse := func(what string, reason gosrt.RejectionReason, err error, attrs ...any) {
		req.Reject(onWire(reason))
		s.log.Warn("srt publish refused: "+what, append(attrs, "remote", remote, "reason", err.Error(), "srt_reject", reasonName(reason))...)
	}
	if req.Version() != 5 {
		// HSv4 (SRT before 1.3) carries no stream ID.
		refuse("version", gosrt.REJ_VERSION, errors.New("the caller speaks SRT before 1.3 (handshake v4), which carries no stream ID"))
		return
	}
	id, err := ParseStreamID(req.StreamId())
	var sid *streamIDError
	if errors.As(err, &sid) {
		refuse("stream ID", sid.reason, err)
		return
	}
	switch {
	case s.cfg.Passphrase == "" && req.IsEncrypted():
		refuse("encryption", gosrt.REJ_UNSECURE, errors.New("the caller encrypts (passphrase set) and the relay has no passphrase"), "channel", id.Channel)
		return
	case s.cfg.Passphrase != "" && !req.IsEncrypted():
		refuse("encryption", gosrt.REJ_UNSECURE, errors.New("passphrase required: the caller does not encrypt"), "channel", id.Channel)
		return
	case s.cfg.Passphrase != "":
		if err := req.SetPassphrase(s.cfg.Passphrase); err != nil {
			refuse("encryption", gosrt.REJ_BADSECRET, errors.New("wrong passphrase"), "channel", id.Channel)
			return
		}
	}
	ctx, cancel := context.WithCancel(s.base)
	live, err := s.rl.OpenLive(ctx, relay.LiveRequest{Kind: "srt", Channel: id.Channel, Stream: "srt", Remote: remote, Secret: id.Secret})
	if err != nil {
		// OpenLive logged and counted it.
		cancel()
		req.Reject(onWire(refusalReason(err)))
		return
	}
	c, err := req.Accept()
	if err != nil {
		live.Close(fmt.Errorf("srt accept: %w", err))
		cancel()
		return
	}
	s.conns.Add(1)
	go func() {
		defer s.conns.Done()
		defer cancel()
		s.serve(newConn(s, live, c))
	}()
}

// refusalReason is the SRT rejection reason (the Access Control
// guidelines' codes, HTTP's numbers plus 1000) of a stream the relay
// refused to open; relay.LiveRefusal has the words, which OpenLive
// logged.
func refusalReason(err error) gosrt.RejectionReason {
	reason, retry := relay.LiveRefusal(err)
	var perr *ingest.ProtocolError
	switch {
	case reason == "authentication required":
		return gosrt.REJX_UNAUTHORIZED
	case reason == "wrong secret":
		return gosrt.REJX_FORBIDDEN
	case errors.Is(err, relay.ErrShuttingDown):
		return gosrt.REJX_DOWN
	case retry:
		return gosrt.REJX_OVERLOAD
	case errors.As(err, &perr):
		return gosrt.REJX_BAD_REQUEST
	}
	return gosrt.REJX_ISE
}

// onWire is how a rejection reason travels in the handshake: SRT sends
// 1000 plus the reason (its URQ_FAILURE_TYPES), and gosrt's REJ_ values
// already include the 1000 (REJ_BADSECRET is 1010, reason 10) but its
// REJX_ values are the reasons themselves (REJX_BAD_MODE is 1405, which
// goes on the wire as 2405): sent as they are, a libsrt caller (ffmpeg,
// OBS) reads reason 405, unknown, and says "Unknown or erroneous".
func onWire(r gosrt.RejectionReason) gosrt.RejectionReason {
	if r >= gosrt.REJX_BAD_REQUEST {
		return r + 1000
	}
	return r
}

// reasonName names a rejection reason for the log.
func reasonName(r gosrt.RejectionReason) string {
	if name, ok := reasonNames[r]; ok {
		return name
	}
	return fmt.Sprint(uint32(r))
}

var reasonNames = map[gosrt.RejectionReason]string{
	gosrt.REJ_PEER: "REJ_PEER", gosrt.REJ_VERSION: "REJ_VERSION", gosrt.REJ_BADSECRET: "REJ_BADSECRET", gosrt.REJ_UNSECURE: "REJ_UNSECURE",
	gosrt.REJX_BAD_REQUEST: "REJX_BAD_REQUEST", gosrt.REJX_UNAUTHORIZED: "REJX_UNAUTHORIZED", gosrt.REJX_FORBIDDEN: "REJX_FORBIDDEN",
	gosrt.REJX_BAD_MODE: "REJX_BAD_MODE", gosrt.REJX_NOTSUP_MEDIA: "REJX_NOTSUP_MEDIA", gosrt.REJX_OVERLOAD: "REJX_OVERLOAD",
	gosrt.REJX_DOWN: "REJX_DOWN", gosrt.REJX_ISE: "REJX_ISE",
}

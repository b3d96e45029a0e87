package rtmp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/message"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/tlsfile"
)

// onStatus codes the relay answers a publish or play with.
const (
	codeBadName      = "NetStream.Publish.BadName"
	codeUnauthorized = "NetStream.Publish.Unauthorized"
	codeFailed       = "NetStream.Publish.Failed"
	codePlayFailed   = "NetStream.Play.Failed"
)

// writeTimeout bounds a write to the encoder (acknowledgements, answers):
// one that does not read is dropped rather than left holding a goroutine.
const writeTimeout = 10 * time.Second

// readBuffer is what a connection reads from the network at once:
// gortmplib reads chunk headers a few bytes at a time, and bodies a chunk
// at a time.
const readBuffer = 64 << 10

// lingerFor is how long a refused connection is read (and discarded)
// after its answer, so that closing it does not reset the connection
// before the encoder has read why.
const lingerFor = 2 * time.Second

// netConn is a connection as gortmplib reads and writes it: the guard
// sees every byte first, the read deadline rolls, bytes are counted.
// One goroutine (the connection's) reads and writes it; cut may come from
// another.
type netConn struct {
	nc    net.Conn
	br    *bufio.Reader // over nc: one read of the network for several of gortmplib's
	guard *guard
	// guardErr is the guard's refusal; ioErr the network's error.
	guardErr, ioErr error
	n               int64 // bytes read
	live            *relay.Live
	claim           *claim

	mu      sync.Mutex // guards what follows: the read deadline
	timeout time.Duration
	rolled  time.Time // when the read deadline was last moved
	isCut   bool
	cutWhy  error // why the read was cut: errStopped, or nil
}

// Read reads from the network, has the guard check it, and counts it.
func (c *netConn) Read(p []byte) (int, error) {
	if c.guardErr != nil {
		return 0, c.guardErr
	}
	c.roll()
	n, err := c.br.Read(p)
	if n > 0 {
		c.n += int64(n)
		if c.claim != nil {
			c.claim.lastRead.Store(time.Now())
		}
		if c.live != nil {
			c.live.Read(n)
		}
		if gerr := c.guard.Write(p[:n]); gerr != nil {
			c.guardErr = gerr
			return 0, gerr
		}
	}
	if err != nil && c.ioErr == nil {
		c.ioErr = err
	}
	return n, err
}

// roll moves the read deadline to timeout from now, at most once a
// second, unless the stream was cut.
func (c *netConn) roll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isCut || c.timeout <= 0 {
		return
	}
	if now := time.Now(); now.Sub(c.rolled) >= time.Second {
		c.rolled = now
		_ = c.nc.SetReadDeadline(now.Add(c.timeout))
	}
}

// setTimeout makes the read deadline roll by d (0: it no longer moves).
func (c *netConn) setTimeout(d time.Duration) {
	c.mu.Lock()
	c.timeout, c.rolled = d, time.Time{}
	c.mu.Unlock()
	c.roll()
}

// cut ends what the connection is reading, at once.
func (c *netConn) cut() { c.interrupt(nil) }

// interrupt ends what the connection is reading, at once, for why
// (errStopped: the relay shuts down; errReplaced: a new publish took its
// stream key; nil: the stream is cut).
func (c *netConn) interrupt(why error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.isCut {
		c.isCut, c.cutWhy = true, why
	}
	_ = c.nc.SetReadDeadline(time.Unix(1, 0))
}

// stopped reports whether the read was cut because the relay shuts down.
func (c *netConn) stopped() bool { return c.cutFor(errStopped) }

// replaced reports whether the read was cut because a new publish of the
// stream key took the connection's place.
func (c *netConn) replaced() bool { return c.cutFor(errReplaced) }

func (c *netConn) cutFor(why error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return errors.Is(c.cutWhy, why)
}

// errReplaced ends a silent publisher whose stream key a new publish
// took.
var errReplaced = errors.New("rtmp: silent, its stream key taken by a new publish")

// Write writes to the network within writeTimeout.
func (c *netConn) Write(p []byte) (int, error) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	n, err := c.nc.Write(p)
	if err != nil && c.ioErr == nil {
		c.ioErr = err
	}
	return n, err
}

// readError is what an error out of gortmplib's reading means: the
// guard's refusal, the network's failure (a drop, a timeout), or else
// what the library could not parse. Either way a *ingest.ProtocolError
// but for the network's, and its text carries no secret.
func (c *netConn) readError(err error) error {
	switch {
	case c.stopped():
		return errStopped
	case c.replaced() && c.ioErr != nil:
		return fmt.Errorf("%w (%w)", errReplaced, c.ioErr) // a timeout, for the metrics
	case c.replaced():
		return errReplaced
	case c.guardErr != nil:
		return &ingest.ProtocolError{Err: withoutSecrets(c.guardErr)}
	case c.ioErr != nil:
		if errors.Is(c.ioErr, io.EOF) {
			return fmt.Errorf("rtmp: the encoder closed the connection without ending the stream: %w", io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("rtmp: connection: %w", c.ioErr)
	case errors.Is(err, errEnded):
		return err
	}
	return &ingest.ProtocolError{Err: fmt.Errorf("rtmp: %w", withoutSecrets(err))}
}

// serveConn runs one connection: the handshake, connect and publish
// (answered within HandshakeTimeout), then the stream.
func (s *Server) serveConn(nc net.Conn) {
	defer nc.Close()
	remote := nc.RemoteAddr().String()
	log := s.log.With("remote", remote)
	c := &netConn{nc: nc, br: bufio.NewReaderSize(nc, readBuffer), guard: newGuard(s.cfg.Limits, true)}
	_ = nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	counted := true
	defer func() {
		if counted {
			s.published()
		}
	}()
	sc := &gortmplib.ServerConn{RW: c}
	err := sc.Initialize()
	if err == nil {
		err = sc.AcceptConn()
	}
	if err != nil {
		err = c.readError(err)
		// RTMPS: a handshake that failed (not a probe that closed) is
		// logged once per remote host (rtmp:// to the RTMPS port, an
		// encoder that does not trust the certificate).
		if tc, isTLS := nc.(*tls.Conn); isTLS && !tc.ConnectionState().HandshakeComplete && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			s.handshakes.Failed(remote, tlsfile.IsClearText(err), err.Error())
			return
		}
		if c.n == 0 {
			log.Debug("rtmp connection closed before its handshake", "err", err)
			return
		}
		log.Info("rtmp connection ended before publishing", "err", err.Error(), "bytes", c.n)
		return
	}
	if !sc.Publish {
		s.refuse(sc, c, log, codePlayFailed, "this relay takes publishing only: play the channel from the CDN (HLS, DASH or Smooth)", "play")
		return
	}
	key, err := ParseStreamKey(sc.URL)
	if err != nil {
		s.refuse(sc, c, log, codeBadName, err.Error(), "bad stream key")
		return
	}
	log = log.With("channel", key.Channel, "stream", key.Stream())
	cl := &claim{remote: remote, kick: func() { c.interrupt(errReplaced) }}
	cl.lastRead.Store(time.Now())
	release, err := s.claimKey(key, cl)
	if err != nil {
		s.refuse(sc, c, log, codeBadName, err.Error(), "stream publishing")
		return
	}
	defer release() // once is enough: it releases only its own claim
	c.claim = cl
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	live, err := s.rl.OpenLive(ctx, relay.LiveRequest{Kind: "rtmp", Channel: key.Channel, Stream: key.Stream(), Remote: remote, Secret: key.Secret})
	if err != nil {
		reason, _ := relay.LiveRefusal(err)
		code := codeFailed
		var perr *ingest.ProtocolError
		switch {
		case reason == "authentication required" || reason == "wrong secret":
			code = codeUnauthorized
		case errors.As(err, &perr):
			code = codeBadName
		}
		// The relay logged the refusal.
		s.answer(sc, c, code, reason)
		return
	}
	s.published()
	counted = false
	live.Read(int(c.n))
	c.live = live
	stop := context.AfterFunc(live.Context(), c.cut)
	defer stop()
	// Shutdown: the read stops at once, and what the packager holds is
	// written (publish).
	watched := make(chan struct{})
	defer close(watched)
	go func() {
		select {
		case <-live.Stopping():
			c.interrupt(errStopped)
		case <-watched:
		}
	}()
	err = s.publish(sc, c, live, key)
	// Closing the stream ends its context: the connection must stay
	// readable for the answer.
	tell := stop() && err != nil && !errors.Is(err, relay.ErrShuttingDown) && c.ioErr == nil
	live.Close(err)
	release()
	if tell {
		// The encoder still reads (ffmpeg between its writes): say why, as
		// a refusal says it.
		s.answer(sc, c, codeFailed, err.Error())
	}
}

// refuse answers a publish (or play) the relay does not take, and logs
// why.
func (s *Server) refuse(sc *gortmplib.ServerConn, c *netConn, log *slog.Logger, code, reason, what string) {
	log.Warn("rtmp publish refused: "+what, "reason", reason)
	s.answer(sc, c, code, reason)
}

// answer sends an onStatus error and lets the encoder read it before the
// connection closes: what it sends meanwhile is read and dropped. The
// reasons the relay gives never quote a secret (StreamKey.String hides
// it; gortmplib's errors are withoutSecrets).
func (s *Server) answer(sc *gortmplib.ServerConn, c *netConn, code, reason string) {
	_ = writeStatus(sc, code, reason)
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerFor))
	_, _ = io.Copy(io.Discard, io.LimitReader(c.nc, 1<<20))
}

// writeStatus sends an onStatus error on the publish's message stream
// (gortmplib's own answers use chunk stream 5 and stream ID 1, written as
// it encodes it): ffmpeg prints its description ("Server error: ..."),
// OBS logs its code.
func writeStatus(sc *gortmplib.ServerConn, code, description string) error {
	return sc.Write(&message.CommandAMF0{
		ChunkStreamID:   5,
		MessageStreamID: 0x1000000,
		Name:            "onStatus",
		Arguments: []any{nil, amf0.Object{
			{Key: "level", Value: "error"},
			{Key: "code", Value: code},
			{Key: "description", Value: description},
		}},
	})
}

package srt

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	gosrt "github.com/datarhei/gosrt"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/shared/mp4box"
)

// conn is one encoder's connection (an admitted caller, or a pulled
// encoder that listens): its SRT connection, its stream in the
// relay, and the backlog between the goroutine that reads the one and the
// one that feeds the other.
type conn struct {
	s    *Server
	live *relay.Live
	c    gosrt.Conn
	log  *slog.Logger
	in   *backlog

	timedOut atomic.Bool   // the read timeout closed the connection
	sampled  atomic.Bool   // the stream carried media: a sample
	packets  atomic.Uint64 // packets read into the backlog
	readDone chan struct{} // closed when read returns

	// media is when the stream last made progress (UnixNano): a sample
	// for the packager, or a store write done; storing is true during a
	// store write (the encoder is not to blame for its time). See read.
	media   atomic.Int64
	storing atomic.Bool
}

func newConn(s *Server, live *relay.Live, c gosrt.Conn) *conn {
	cn := &conn{s: s, live: live, c: c, log: live.Log(), in: newBacklog(s.cfg.MaxBacklog), readDone: make(chan struct{})}
	cn.progress()
	return cn
}

// progress notes that the stream made progress now.
func (c *conn) progress() { c.media.Store(time.Now().UnixNano()) }

// sample notes a sample for the packager: progress, and media carried.
func (c *conn) sample() {
	c.sampled.Store(true)
	c.progress()
}

// Box is the stream's session's (relay.Live.Box), its time out of the
// encoder's account.
func (c *conn) Box(ctx context.Context, b mp4box.Box) error {
	c.storing.Store(true)
	defer c.storing.Store(false)
	defer c.progress()
	return c.live.Box(ctx, b)
}

// Warn is relay.Live.Warn.
func (c *conn) Warn(err error) { c.live.Warn(err) }

// Read is the connection's bytes, for the ingest goroutine, counted in
// the relay (status, metrics) as they are taken.
func (c *conn) Read(p []byte) (int, error) {
	n, err := c.in.Read(p)
	c.live.Read(n)
	return n, err
}

// serve runs a connection to its end, an accepted caller's or a pulled
// encoder's alike, and closes its stream with how it ended: nil for an
// end of stream (the encoder closed the connection), the reason
// otherwise.
func (s *Server) serve(c *conn) {
	// Shutdown's deadline (or Close) cuts the stream at once: the SRT
	// connection closes, and the ingest goroutine's read ends.
	stop := context.AfterFunc(c.live.Context(), func() { _ = c.c.Close() })
	defer stop()
	// Shutdown (Stopping): the bytes received so far are read, then the
	// stream stops (ingestTS stores what the packager holds).
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-c.live.Stopping():
			c.in.close(errStopping)
		case <-done:
		}
	}()
	s.peers.watch(c.c.SocketId(), c.drain)
	go c.read()
	err := s.ingest(c)
	_ = c.c.Close()
	<-c.readDone
	c.live.Close(err)
	var st gosrt.Statistics
	c.c.Stats(&st)
	c.log.Info("srt connection closed", "packets", st.Accumulated.PktRecv, "lost", st.Accumulated.PktRecvLoss,
		"retransmitted", st.Accumulated.PktRecvRetrans, "dropped_late", st.Accumulated.PktRecvDrop,
		"undecrypted", st.Accumulated.PktRecvUndecrypt)
}

// read copies what the encoder sends into the backlog until the
// connection ends, and ends the backlog with why it ended. The read
// timeout ends a connection that brings no media for that long: one
// silent (no packet at all: a timer), and one that keeps sending what
// yields no sample (null packets, what the demultiplexer skips as lost:
// checked at each packet), while no store write is in progress.
func (c *conn) read() {
	defer close(c.readDone)
	timeout := c.s.cfg.ReadTimeout
	timer := time.AfterFunc(timeout, func() {
		c.timedOut.Store(true)
		_ = c.c.Close()
	})
	defer timer.Stop()
	for {
		p, err := c.c.ReadPacket()
		if err != nil {
			c.in.close(c.why())
			return
		}
		if !c.storing.Load() && time.Since(time.Unix(0, c.media.Load())) > timeout {
			p.Decommission()
			c.timedOut.Store(true)
			_ = c.c.Close()
			c.in.close(c.why())
			return
		}
		timer.Reset(timeout)
		werr := c.in.write(p.Data())
		p.Decommission()
		c.packets.Add(1)
		if werr != nil {
			c.in.close(fmt.Errorf("srt: connection dropped: %w", werr))
			_ = c.c.Close()
			return
		}
	}
}

// drain waits until every packet gosrt holds for the connection has been
// delivered and read into the backlog, for the SRT latency and a margin
// at most (a packet lost for good is never delivered). See peerLog.
func (c *conn) drain() {
	var st gosrt.Statistics
	c.c.Stats(&st)
	deadline := time.Now().Add(time.Duration(st.Instantaneous.MsRecvTsbPdDelay)*time.Millisecond + drainMargin)
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		c.c.Stats(&st)
		held := st.Instantaneous.PktRecvBuf
		if held == 0 && c.packets.Load() >= st.Accumulated.PktRecvUnique {
			return
		}
		select {
		case <-c.readDone:
			return
		case now := <-tick.C:
			if now.After(deadline) {
				c.log.Warn("srt end of stream: packets the encoder sent before it closed were not delivered in time", "held", held,
					"delivered", st.Accumulated.PktRecvUnique-held, "read", c.packets.Load())
				return
			}
		}
	}
}

// How long drain waits past the SRT latency, and how often it looks.
const drainMargin, drainPoll = 500 * time.Millisecond, 5 * time.Millisecond

// why says how the connection ended, once gosrt's Read has: io.EOF for
// an end of stream (the encoder sent SHUTDOWN), else the reason of a drop.
func (c *conn) why() error {
	shutdown := c.s.peers.ended(c.c.SocketId())
	switch {
	case c.live.Context().Err() != nil:
		return fmt.Errorf("srt: stream cut: %w", relay.ErrShuttingDown)
	case c.timedOut.Load():
		return fmt.Errorf("srt: no media for %v (the read timeout): %w", c.s.cfg.ReadTimeout, os.ErrDeadlineExceeded)
	case shutdown:
		return io.EOF
	}
	return fmt.Errorf("srt: connection lost: nothing from the encoder for %v (the peer idle timeout), and it did not close the connection", c.s.cfg.PeerIdleTimeout)
}

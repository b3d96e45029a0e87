package srt

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	gosrt "github.com/datarhei/gosrt"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
)

// Pulling: many hardware encoders, and ffmpeg
// (-f mpegts 'srt://0.0.0.0:PORT?mode=listener'), can listen and wait
// for the origin to call them. For each Config.Pull entry a puller, one
// goroutine from Serve to Close, dials the encoder (gosrt.Dial, the
// relay in SRT's caller mode), opens the stream with relay.OpenLive
// (kind "srt", stream "srt-pull", the encoder's address as remote,
// Configured: the operator listed it, so no secret is asked), and feeds
// it exactly as an accepted caller's connection is fed (newConn, serve:
// the backlog, the read timeout, the TS demultiplexer and the packager,
// end of stream or drop as peerLog tells them). When the stream ends,
// or the dial fails, it waits (capped exponential backoff, back to the
// least after a stream that carried media) and dials again, until Close
// or the relay's Shutdown.

// pullStream is the Stream name of a pulled stream (/status, the log):
// "srt" is an accepted caller's.
const pullStream = "srt-pull"

// pullDialTimeout is how long a dial waits for the encoder's answer
// (gosrt's default). gosrt's Dial cannot be cancelled: Close waits for a
// dial in progress this long at most.
const pullDialTimeout = 3 * time.Second

// retryPolicy is how long a puller waits before it dials again: min
// after a stream that carried media, doubling after each failure up to
// max.
type retryPolicy struct {
	min, max    time.Duration
	dialTimeout time.Duration
}

var defaultRetry = retryPolicy{min: time.Second, max: 30 * time.Second, dialTimeout: pullDialTimeout}

// startPull starts p's puller, unless the Server is closed.
func (s *Server) startPull(p Pull) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.base.Err() != nil {
		return
	}
	s.conns.Add(1)
	go pprof.Do(s.base, pprof.Labels("srt_pull", p.Channel), func(context.Context) {
		defer s.conns.Done()
		s.pull(p)
	})
}

// pull calls p's encoder until Close or the relay's Shutdown. A dial
// that fails is logged once per reason: again when the reason changes,
// or after a connection.
func (s *Server) pull(p Pull) {
	log := s.log.With("channel", p.Channel, "pull", p.Addr)
	log.Info("srt pull: calling the encoder", "encrypted", p.Passphrase != "", "stream_id", p.StreamID != "")
	wait := s.retry.min
	reason := ""
	for {
		media, err := s.pullOnce(p, log)
		switch {
		case err == nil:
			reason = ""
		case errors.Is(err, relay.ErrShuttingDown) || s.base.Err() != nil:
		case err.Error() != reason:
			reason = err.Error()
			log.Warn("srt pull: no stream from the encoder; retrying", "err", err, "retry_in", wait.String())
		}
		if s.base.Err() != nil || s.rl.ShuttingDown() {
			return
		}
		if media {
			wait = s.retry.min
		}
		if s.onWait != nil {
			s.onWait(p, wait, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-s.base.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if !media {
			wait = min(2*wait, s.retry.max)
		}
	}
}

// pullOnce dials p's encoder and, once connected, runs the stream to its
// end: media says whether it carried any; err why there was no stream
// (the dial failed, or the relay refused it: OpenLive logged that).
func (s *Server) pullOnce(p Pull, log *slog.Logger) (media bool, err error) {
	gc := gosrt.DefaultConfig()
	gc.StreamId = p.StreamID
	gc.Passphrase = p.Passphrase
	gc.ReceiverLatency = cmp.Or(p.Latency, s.cfg.Latency)
	gc.PeerIdleTimeout = s.cfg.PeerIdleTimeout
	gc.ConnectionTimeout = s.retry.dialTimeout
	gc.Logger = s.peers
	c, err := gosrt.Dial("srt", p.Addr, gc)
	if err != nil {
		return false, dialError(err)
	}
	if s.base.Err() != nil || s.rl.ShuttingDown() {
		// Closed, or the relay shutting down, during the dial.
		_ = c.Close()
		s.peers.ended(c.SocketId())
		return false, nil
	}
	remote := p.Addr
	if a := c.RemoteAddr(); a != nil {
		remote = a.String()
	}
	ctx, cancel := context.WithCancel(s.base)
	defer cancel()
	live, err := s.rl.OpenLive(ctx, relay.LiveRequest{Kind: "srt", Channel: p.Channel, Stream: pullStream, Remote: remote, Configured: true})
	if err != nil {
		_ = c.Close()
		s.peers.ended(c.SocketId())
		return false, fmt.Errorf("the relay did not open the stream: %w", err)
	}
	log.Info("srt pull: connected to the encoder", "remote", remote)
	cn := newConn(s, live, c)
	s.serve(cn)
	return cn.sampled.Load(), nil
}

// dialError is a failed dial, with what it usually means. gosrt says a
// rejection as "connection rejected: REJECT (%s)", the code in base 32.
func dialError(err error) error {
	msg := err.Error()
	if code, ok := strings.CutPrefix(msg, "connection rejected: REJECT ("); ok {
		if v, perr := strconv.ParseUint(strings.TrimSuffix(code, ")"), 32, 32); perr == nil {
			r := gosrt.RejectionReason(v)
			if r >= gosrt.REJX_BAD_REQUEST+1000 {
				r -= 1000 // onWire's, undone
			}
			return fmt.Errorf("srt dial: the encoder refused the call: %s%s", reasonName(r), rejectionHints[r])
		}
	}
	if strings.Contains(msg, "connection timeout") {
		return fmt.Errorf("srt dial: %w (no answer: is the encoder listening on that port, and is UDP open between them?)", err)
	}
	return fmt.Errorf("srt dial: %w", err)
}

// rejectionHints say what an encoder's usual rejections mean.
var rejectionHints = map[gosrt.RejectionReason]string{
	gosrt.REJ_BADSECRET: " (the passphrase is not the encoder's)",
	gosrt.REJ_UNSECURE:  " (one side encrypts and the other does not: set the same passphrase on both, or none)",
	gosrt.REJ_PEER:      " (busy with another caller, or a stream ID it does not take)",
}

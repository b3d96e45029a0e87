package srt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/shared/packager"
	"github.com/smoothcast/smoothcast/shared/tsdemux"
)

// ingestTS is a connection's pipeline: its bytes (counted in the relay
// as they are read) through the demultiplexer, whose tracks and samples
// go to a packager that cuts fragments at key frames into the stream's
// session. It returns nil when the caller ended the stream (what the
// packager held is written, then the end of stream), else how the stream
// ended: a drop (the read's error: nothing of the GOP in hand is
// written), bad input (a *ingest.ProtocolError), or, when the relay
// shuts down (the backlog ends with errStopping once what it holds is
// read), an error wrapping relay.ErrShuttingDown once what the packager
// holds is stored (Packager.Flush: nothing received is lost, and the
// channel stays live for the encoder's reconnect to another relay).
func ingestTS(c *conn) error {
	ctx := c.live.Context()
	p := newPipeline(c, c.s.cfg.MaxGOP, c.log)
	p.onSample = c.sample
	d := tsdemux.New(p, tsdemux.Options{Lossy: true, Warn: p.lossy, Log: c.log})
	// The connection's errors say "srt: ..."; the demultiplexer's and the
	// packager's are *ingest.ProtocolError.
	switch err := d.Read(ctx, c); {
	case errors.Is(err, errStopping):
		if err := p.flush(ctx); err != nil {
			return err
		}
		return fmt.Errorf("srt: stopped, what was received stored: %w", relay.ErrShuttingDown)
	case err != nil:
		return err
	}
	return p.end(ctx)
}

// errStopping ends a connection's bytes when the relay shuts down
// (relay.Live.Stopping).
var errStopping = errors.New("the relay is shutting down")

// liveSink is what a pipeline writes to and reports to: a *relay.Live.
type liveSink interface {
	packager.BoxSink
	Warn(err error)
}

// pipeline is the tsdemux.Handler between the demultiplexer and the
// packager: it makes the packager when the tracks are known and feeds it
// the samples.
type pipeline struct {
	sink   liveSink
	maxGOP time.Duration
	log    *slog.Logger
	p      *packager.Packager
	// onSample, when set, is told of each sample (the read timeout).
	onSample func()

	// What Lossy forgave (the PES packets that SRT's dropped packets
	// broke), told to the relay at most every warnEvery.
	warned   time.Time
	unwarned int
}

// warnEvery bounds how often a stream's losses reach the relay's errors.
const warnEvery = 10 * time.Second

func newPipeline(sink liveSink, maxGOP time.Duration, log *slog.Logger) *pipeline {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &pipeline{sink: sink, maxGOP: maxGOP, log: log}
}

// Tracks is tsdemux.Handler's: the packager of the program's tracks.
func (p *pipeline) Tracks(_ context.Context, tracks []packager.Track) error {
	pk, err := packager.New(p.sink, tracks, packager.Options{MaxGOP: p.maxGOP, Log: p.log})
	if err != nil {
		return err
	}
	p.p = pk
	codecs := make([]string, len(tracks))
	for i, t := range tracks {
		codecs[i] = t.Codec.String()
	}
	p.log.Info("srt stream tracks", "codecs", codecs)
	return nil
}

// Sample is tsdemux.Handler's.
func (p *pipeline) Sample(ctx context.Context, i int, s packager.Sample) error {
	if p.onSample != nil {
		p.onSample()
	}
	return p.p.Write(ctx, i, s)
}

// lossy is tsdemux.Options.Warn: a PES packet dropped because SRT lost
// packets of it (too late to be recovered within the latency).
func (p *pipeline) lossy(err error) {
	now := time.Now()
	if now.Sub(p.warned) < warnEvery {
		p.unwarned++
		return
	}
	if p.unwarned > 0 {
		err = fmt.Errorf("%w (and %d more since the last such warning)", err, p.unwarned)
	}
	p.warned, p.unwarned = now, 0
	p.sink.Warn(fmt.Errorf("srt: packets lost beyond recovery: %w", err))
}

// end ends the stream the caller ended: the packager writes what it
// holds, then the end of stream.
func (p *pipeline) end(ctx context.Context) error {
	if p.p == nil {
		// tsdemux's End fixes the tracks, or says why it cannot.
		return nil
	}
	return p.p.End(ctx)
}

// flush writes what the packager holds without ending the stream (the
// relay shuts down).
func (p *pipeline) flush(ctx context.Context) error {
	if p.p == nil {
		return nil
	}
	return p.p.Flush(ctx)
}

package srt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/mp4box"
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
// shuts down, an error wrapping relay.ErrShuttingDown once the fragment
// in hand is stored.
func ingestTS(c *conn) error {
	ctx := c.live.Context()
	p := newPipeline(c, c.s.cfg.MaxGOP, c.live.Stopping(), c.log)
	p.onSample = c.progress
	d := tsdemux.New(p, tsdemux.Options{Lossy: true, Warn: p.lossy, Log: c.log})
	// The connection's errors say "srt: ..."; the demultiplexer's and the
	// packager's are *ingest.ProtocolError.
	switch err := d.Read(ctx, c); {
	case errors.Is(err, errStopped):
		return fmt.Errorf("srt: stopped after the fragment in hand: %w", relay.ErrShuttingDown)
	case err != nil:
		return err
	}
	return p.end(ctx)
}

// errStopped ends the demultiplexer once the stream stopped at a boundary.
var errStopped = errors.New("stopped at a fragment boundary")

// liveSink is what a pipeline writes to and reports to: a *relay.Live.
type liveSink interface {
	packager.BoxSink
	Warn(err error)
}

// pipeline is the tsdemux.Handler between the demultiplexer and the
// packager: it makes the packager when the tracks are known, feeds it
// the samples, and, once the relay shuts down (stopping), lets the
// stream run until the fragment in hand is stored on every track
// (boundary), then stops it.
type pipeline struct {
	sink     liveSink
	maxGOP   time.Duration
	stopping <-chan struct{}
	log      *slog.Logger

	p        *packager.Packager
	boundary boundary
	// onSample, when set, is told of each sample (the read timeout).
	onSample func()

	// What Lossy forgave (the PES packets that SRT's dropped packets
	// broke), told to the relay at most every warnEvery.
	warned   time.Time
	unwarned int
}

// warnEvery bounds how often a stream's losses reach the relay's errors.
const warnEvery = 10 * time.Second

func newPipeline(sink liveSink, maxGOP time.Duration, stopping <-chan struct{}, log *slog.Logger) *pipeline {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &pipeline{sink: sink, maxGOP: maxGOP, stopping: stopping, log: log}
}

// Tracks is tsdemux.Handler's: the packager of the program's tracks.
func (p *pipeline) Tracks(_ context.Context, tracks []packager.Track) error {
	pk, err := packager.New(&p.boundary, tracks, packager.Options{MaxGOP: p.maxGOP, Log: p.log})
	if err != nil {
		return err
	}
	p.boundary.sink = p.sink
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
	if !p.boundary.armed {
		select {
		case <-p.stopping:
			p.boundary.arm()
		default:
		}
	}
	if err := p.p.Write(ctx, i, s); err != nil {
		return err
	}
	if p.boundary.reached {
		return errStopped
	}
	return nil
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

// boundary passes the packager's boxes to the stream's session and, once
// armed (the relay shuts down), finds the end of the fragment in hand:
// the video track's next fragment, then one of every other track (the
// packager cuts them at the first frame at or after the video's cut); an
// audio-only stream's next fragment of every track.
type boundary struct {
	sink  packager.BoxSink
	video uint32          // the video track's ID (0: none), from the moov
	ids   []uint32        // every track's ID
	armed bool            // the relay shuts down
	wait  map[uint32]bool // armed: the tracks whose fragment is still due
	// last is the track of the last moof, whose mdat ends its fragment.
	last    uint32
	reached bool // every fragment due is written
}

// arm starts looking for the boundary.
func (b *boundary) arm() {
	b.armed = true
	b.wait = map[uint32]bool{}
	if b.video != 0 {
		b.wait[b.video] = true
		return
	}
	for _, id := range b.ids {
		b.wait[id] = true
	}
}

// Box is packager.BoxSink's.
func (b *boundary) Box(ctx context.Context, box mp4box.Box) error {
	switch box.Type {
	case "moov":
		if err := b.tracks(box); err != nil {
			return err
		}
	case "moof":
		b.last = moofTrack(box)
	case "mdat":
		if b.armed && b.wait[b.last] {
			delete(b.wait, b.last)
			if b.last == b.video {
				// The video's fragment is out: the others' are due.
				for _, id := range b.ids {
					if id != b.video {
						b.wait[id] = true
					}
				}
			}
			b.reached = len(b.wait) == 0
		}
	}
	return b.sink.Box(ctx, box)
}

// tracks reads the track IDs (and which is video) of the packager's moov.
func (b *boundary) tracks(box mp4box.Box) error {
	d, err := mp4.DecodeBox(0, bytes.NewReader(box.Data))
	if err != nil {
		return &ingest.ProtocolError{Err: fmt.Errorf("srt: the packager's moov: %w", err)}
	}
	moov, ok := d.(*mp4.MoovBox)
	if !ok {
		return &ingest.ProtocolError{Err: fmt.Errorf("srt: the packager's moov decodes as %s", d.Type())}
	}
	for _, trak := range moov.Traks {
		id := trak.Tkhd.TrackID
		b.ids = append(b.ids, id)
		if trak.Mdia != nil && trak.Mdia.Hdlr != nil && trak.Mdia.Hdlr.HandlerType == "vide" {
			b.video = id
		}
	}
	if b.armed {
		b.arm() // armed before the tracks were known
	}
	return nil
}

// moofTrack is the track ID of a moof's traf (the packager writes one
// traf per moof), 0 when it has none.
func moofTrack(moof mp4box.Box) uint32 {
	for traf, err := range mp4box.All(moof.Payload()) {
		if err != nil || traf.Type != "traf" {
			continue
		}
		for tfhd, err := range mp4box.All(traf.Payload()) {
			if err == nil && tfhd.Type == "tfhd" && len(tfhd.Payload()) >= 8 {
				p := tfhd.Payload()
				return uint32(p[4])<<24 | uint32(p[5])<<16 | uint32(p[6])<<8 | uint32(p[7])
			}
		}
	}
	return 0
}

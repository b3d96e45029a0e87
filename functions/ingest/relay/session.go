package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/timeline"
	"github.com/smoothcast/smoothcast/shared/webvtt"
)

// run is one session of the relay's, whatever its source (a push, an
// upload rendition): the ingest session its source feeds, over the sink
// that stores what it makes and the channel's clock. One goroutine at a
// time uses it (the push's handler, the rendition's worker).
type run struct {
	rl      *Relay
	st      *stream
	sess    *ingest.Session
	sink    *storeSink
	log     *slog.Logger
	started time.Time
}

// newRun opens a session for st's channel. received says when the bytes
// of what is being fed last came (for smoothcast_fragment_store_delay).
func (rl *Relay) newRun(st *stream, log *slog.Logger, received func() time.Time) *run {
	sink := &storeSink{rl: rl, st: st, received: received, store: rl.store.forStream(st), channel: st.channel, log: log,
		prot: newProtection(rl.Cfg.Keys, st.channel)}
	clock := &channelClock{st: sink.store, channel: st.channel, maxDrift: rl.Cfg.MaxDrift, now: time.Now, log: log}
	sess := ingest.NewSession(sink, log, ingest.Options{MaxBox: rl.Cfg.MaxBox, MaxTracks: rl.Cfg.MaxTracks, Clock: clock, MaxJump: rl.Cfg.MaxDrift,
		Limit: boxLimit, Markers: rl.markers.tap(st.channel)})
	return &run{rl: rl, st: st, sess: sess, sink: sink, log: log, started: time.Now()}
}

// boxLimit is the relay's limit per box type, under MaxBox: a moof the
// manifest function can read once rewritten (fmp4.MaxMoofIn, 413 past
// it, at its header).
func boxLimit(typ string) int {
	if typ == "moof" {
		return fmp4.MaxMoofIn
	}
	return 0
}

// end writes the end markers of the tracks the session stored, however
// it ended (clean: the encoder ended the stream), so that the manifest
// function need not wait for the next connection's fragments to time out
// (and, after a clean end, turns the manifests into VOD). Its own context:
// the request's may be gone.
func (r *run) end(clean bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.sink.markEnds(ctx, r.sess.Ends(), clean)
}

// attrs are the log attributes of what the session did.
func (r *run) attrs(stats ingest.Stats) []any {
	return []any{"bytes", stats.Bytes, "fragments", stats.Fragments, "written", r.sink.written, "duplicates", r.sink.dupes,
		"seconds", time.Since(r.started).Seconds()}
}

// storeSink writes what a session produces. Writes are conditional
// (If-None-Match): an object that exists is never rewritten, so a fragment
// an encoder re-sends after a reconnect costs one refused PUT and no event.
type storeSink struct {
	rl       *Relay
	st       *stream
	received func() time.Time // when the bytes being fed came
	store    *retrying
	channel  string
	log      *slog.Logger
	written  int
	dupes    int
	// The session's wvtt tracks, by track: each of their fragments is
	// also stored as a WebVTT file (layout.WebVTTKey), before it.
	wvtt map[layout.TrackID]wvttTrack
	// prot encrypts the audio and video of a channel that has keys
	// (protect.go).
	prot protection
	// initVersion is, for a track whose protection changed (storeInit),
	// the version of its init segment, which its fragments name.
	initVersion map[layout.TrackID]string
}

// wvttTrack is what the WebVTT file of a wvtt fragment needs of its
// track's init segment.
type wvttTrack struct {
	timescale uint32
	trex      *mp4.TrexBox
}

// contentType is the Content-Type of a track's init segment and
// fragments: text tracks' are ISOBMFF without audio or video (RFC 4337).
func contentType(k timeline.Kind) string {
	switch k {
	case timeline.Audio:
		return "audio/mp4"
	case timeline.Text:
		return "application/mp4"
	}
	return "video/mp4"
}

// Init stores a track's init segment.
func (s *storeSink) Init(ctx context.Context, h ingest.TrackHeader) error {
	s.st.announced(h.ID, h.Kind)
	if tr, ok := wvttOf(h.Init); ok {
		if s.wvtt == nil {
			s.wvtt = map[layout.TrackID]wvttTrack{}
		}
		s.wvtt[h.ID] = tr
	}
	if encrypted, err := s.protectInit(h); encrypted || err != nil {
		return err // an encrypted track's init segment is stored with its first fragment
	}
	_, _, err := s.storeInit(ctx, h.ID, h.Kind, h.Init, "")
	return err
}

// Fragment stores a fragment, with what the manifest function needs to
// place it: the start of the one before it, and a break before it.
func (s *storeSink) Fragment(ctx context.Context, f ingest.Fragment) error {
	if err := s.protectFragment(ctx, &f); err != nil {
		return err
	}
	key := layout.FragmentKey(s.channel, f.ID, f.Start)
	opts := store.PutOptions{ContentType: contentType(f.Kind), CacheControl: store.CacheImmutable, IfNoneMatch: true, Tagging: layout.ExpireTag}
	v := s.initVersion[f.ID]
	if f.HasPrev || f.Disc || v != "" {
		opts.Metadata = map[string]string{}
	}
	if v != "" {
		opts.Metadata[layout.MetaInit] = v
	}
	if f.HasPrev {
		opts.Metadata[layout.MetaPrev] = strconv.FormatUint(f.Prev, 10)
	}
	if f.Disc {
		opts.Metadata[layout.MetaDisc] = "1"
	}
	if tr, ok := s.wvtt[f.ID]; ok {
		if err := s.webVTT(ctx, f, tr); err != nil {
			return err
		}
	}
	_, err := s.store.PutParts(ctx, key, [][]byte{f.Head, f.Payload}, opts)
	answered := time.Now()
	dup := errors.Is(err, store.ErrPreconditionFailed)
	if err != nil && !dup {
		return &storeError{fmt.Errorf("channel %s track %s fragment %d: %w", s.channel, f.ID, f.Start, err)}
	}
	if at := s.received(); !at.IsZero() {
		s.rl.metrics.storeDelay.Observe(answered.Sub(at).Seconds())
	}
	s.st.stored(f.ID, f.Kind, dup, answered)
	if dup {
		s.dupes++
		s.rl.metrics.fragments.WithLabelValues("duplicate").Inc()
		s.log.Debug("fragment exists", "track", f.ID.String(), "start", f.Start)
		return nil
	}
	s.written++
	s.rl.metrics.fragments.WithLabelValues("written").Inc()
	return nil
}

// webVTT stores the cues of a wvtt fragment as the WebVTT file HLS
// players read (contract 3 of issue 19; webvtt.ForHLS: cue times are
// media times, LOCAL the fragment's start). It is written before the fragment, conditionally as the
// fragment is, and a failure to write it fails the fragment.
func (s *storeSink) webVTT(ctx context.Context, f ingest.Fragment, tr wvttTrack) error {
	samples, err := webvtt.FragmentSamples(slices.Concat(f.Head, f.Payload), f.TrackID, tr.trex)
	if err != nil {
		return &ingest.ProtocolError{Err: fmt.Errorf("channel %s track %s fragment %d: %w", s.channel, f.ID, f.Start, err)}
	}
	body := webvtt.ForHLS(webvtt.Join(samples, tr.timescale), f.Start, tr.timescale).Bytes()
	_, err = s.store.Put(ctx, layout.WebVTTKey(s.channel, f.ID, f.Start), body, store.PutOptions{
		ContentType: "text/vtt", CacheControl: store.CacheImmutable, IfNoneMatch: true, Tagging: layout.ExpireTag})
	if err != nil && !errors.Is(err, store.ErrPreconditionFailed) {
		return &storeError{fmt.Errorf("channel %s track %s fragment %d: its WebVTT file: %w", s.channel, f.ID, f.Start, err)}
	}
	return nil
}

// wvttOf reads, from a track's init segment, whether it is a wvtt track,
// and what its fragments' WebVTT files need.
func wvttOf(init []byte) (wvttTrack, bool) {
	box, ok := mp4box.Find(init, "moov")
	if !ok {
		return wvttTrack{}, false
	}
	m, err := mp4box.Decode(box)
	moov, isMoov := m.(*mp4.MoovBox)
	if err != nil || !isMoov || moov.Trak == nil {
		return wvttTrack{}, false
	}
	trak := moov.Trak
	if trak.Mdia == nil || trak.Mdia.Mdhd == nil || trak.Mdia.Minf == nil || trak.Mdia.Minf.Stbl == nil || trak.Mdia.Minf.Stbl.Stsd == nil ||
		len(trak.Mdia.Minf.Stbl.Stsd.Children) == 0 || trak.Mdia.Minf.Stbl.Stsd.Children[0].Type() != "wvtt" || trak.Mdia.Mdhd.Timescale == 0 {
		return wvttTrack{}, false
	}
	tr := wvttTrack{timescale: trak.Mdia.Mdhd.Timescale}
	if moov.Mvex != nil {
		tr.trex = moov.Mvex.Trex
	}
	return tr, true
}

// EndMarker is the body of an end marker (layout.EndKey).
type EndMarker struct {
	// Stream: the encoder ended the stream (the request completed, after
	// an mfra or not); false when the connection dropped or was refused.
	Stream bool `json:"eos"`
}

// markEnds writes an end marker for each track the session stored
// fragments of. Failures are logged: without a marker the manifest
// function falls back on its gap timeout.
func (s *storeSink) markEnds(ctx context.Context, ends []ingest.TrackEnd, stream bool) {
	body, _ := json.Marshal(EndMarker{Stream: stream})
	for _, e := range ends {
		key := layout.EndKey(s.channel, e.ID, e.End)
		if _, err := s.store.Put(ctx, key, body, store.PutOptions{ContentType: "application/json", CacheControl: store.CacheNone, Tagging: layout.ExpireTag}); err != nil {
			s.log.Error("end marker not written", "track", e.ID.String(), "end", e.End, "err", err)
			s.rl.streamError(s.st, errStore, fmt.Errorf("end marker of track %s not written: %w", e.ID, err))
		}
	}
}

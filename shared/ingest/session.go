// Package ingest is the session below every ingest source. A source
// (a Smooth or CMAF push, a DASH or HLS upload; next, MPEG-TS, RTMP and
// SRT through a packager) only converts what its encoder sends into the
// top-level boxes of a fragmented MP4 stream and hands them, one at a
// time, to a Session (Box). The session keeps each track's header, timing
// and bitrate, splits the stream per track, rebases an encoder whose
// clock is off the channel's (Clock), rewrites each fragment into the
// object every format serves (fmp4.RewriteHead) and hands init segments
// and fragments to its Sink, which stores them. Read is the loop for a
// source whose boxes arrive on a stream (a push's request body).
//
// Nothing an encoder sends may poison the channel for the pushes after
// it: timescales, fragment durations and start times no encoder sends
// (fmp4.CheckTiming), bitrates no manifest carries (ism.CheckBitrate), a
// track that starts before zero after its first fragments, and tracks of
// one stream that start apart (Options.MaxSkew) are refused as
// *ProtocolError before the clock is asked and before the fragment (or
// its track's init segment) reaches the sink; a uuid box (the live server
// manifest) over MaxServerManifest is refused before it is read.
//
// A moof may carry several tracks (muxed fMP4: ffmpeg's -f mp4 and its
// HLS fMP4 segments without -var_stream_map, a traf per track and one
// mdat): the session splits it per traf (fmp4.Split), each track's part
// its own moof and its own samples out of the mdat, and stores each as a
// fragment of its track. A moof is refused whole, before anything of it
// is stored, when any of its parts would be.
//
// Text tracks (WebVTT wvtt, TTML/IMSC1 stpp, and 3GPP timed text tx3g,
// stored as WebVTT: fmp4.Tx3gToWebVTT) are sparse (timeline.Kind.Sparse):
// their timestamps may skip forward any distance (a pause between cues,
// not a jump), a text fragment of no duration is skipped, and a stream of
// text tracks alone says so (Sparse) so that its source may let it be
// quiet. A video track's first fragment is scanned for CEA-608/708
// captions in its SEI (fmp4.ScanCaptions) before its init segment is
// stored, which then declares them (fmp4.InitSegmentWithCaptions).
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/ism"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// ProtocolError is an error in what the encoder sent (as opposed to a
// failure to store it): the relay answers it with 400.
type ProtocolError struct{ Err error }

// Error says what was wrong with the push.
func (e *ProtocolError) Error() string { return "ingest protocol: " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *ProtocolError) Unwrap() error { return e.Err }

func protocolErr(format string, args ...any) error {
	return &ProtocolError{Err: fmt.Errorf(format, args...)}
}

// TrackHeader announces a track before its first fragment.
type TrackHeader struct {
	ID        layout.TrackID
	TrackID   uint32 // the track_ID inside the MP4 boxes
	Kind      timeline.Kind
	Timescale uint32 // the track's (its mdhd's): what Fragment times count
	Init      []byte // ftyp+moov of this track alone
}

// Fragment is one complete fragment of one track, rewritten for storage.
type Fragment struct {
	ID       layout.TrackID
	TrackID  uint32
	Kind     timeline.Kind
	Start    uint64
	Duration uint64
	// HasPrev and Prev give the start of the previous fragment of this track
	// in this session, so that the manifest function can tell a fragment
	// that continues the timeline from one that arrived early.
	HasPrev bool
	Prev    uint64
	// Disc marks a break in the encoder's timeline before this fragment: its
	// timestamps jumped, or the session was rebased onto the channel's clock.
	Disc bool
	// The stored fragment is Head (moof and mdat header) followed by
	// Payload (the media, as it arrived). Both are only valid during the
	// Sink call.
	Head, Payload []byte
}

// Size is the stored fragment's size in bytes.
func (f *Fragment) Size() int { return len(f.Head) + len(f.Payload) }

// Bytes returns the stored fragment as one new slice.
func (f *Fragment) Bytes() []byte {
	return append(append(make([]byte, 0, f.Size()), f.Head...), f.Payload...)
}

// Clock keeps a session's timestamps on the channel's clock, so that an
// encoder that restarts from zero (or whose clock jumps) continues the
// channel's timeline instead of colliding with it.
type Clock interface {
	// Offset returns what to add to the encoder's timestamps, a whole
	// number of seconds, for the fragment q describes. A session asks at
	// its first fragment and whenever a track's timestamps jump.
	Offset(ctx context.Context, q ClockQuery) (time.Duration, error)
}

// ClockQuery is the fragment a session asks its Clock about.
type ClockQuery struct {
	// Start and End are the fragment's times in the encoder's own time
	// (rounded down and up to the nanosecond, never negative).
	Start, End time.Duration
	// After, when the session already stored fragments of the track, is
	// where the last of them ends on the channel's timeline (rounded up):
	// a new offset must not move the fragment before it, where it would
	// collide with, or be dropped behind, what the session stored.
	After time.Duration
}

// TrackEnd is where a session left one track: the end time of the last
// fragment it stored.
type TrackEnd struct {
	ID  layout.TrackID
	End uint64
}

// Sink receives what a session produces. A sink error ends the session.
type Sink interface {
	Init(ctx context.Context, h TrackHeader) error
	Fragment(ctx context.Context, f Fragment) error
}

// MaxServerManifest is the largest uuid box a session takes, the live
// server manifest (SMIL) among them: ffmpeg's for three tracks is about
// 2 KB, an IIS-era encoder's a few KB per track, 16 tracks at most
// (Options.MaxTracks); 256 KiB is ten times that and costs about 1.5 MiB
// of heap to parse, where a 23 MB one cost 134 MB. A larger one is
// refused (a *ProtocolError wrapping mp4box.ErrTooLarge: 413) once its
// header is read, before it is read whole.
const MaxServerManifest = 256 << 10

// DefaultMaxSkew is Options.MaxSkew's default.
const DefaultMaxSkew = 10 * time.Second

// Options bound a session.
type Options struct {
	// MaxBox is the largest box accepted, in bytes (a fragment's mdat).
	MaxBox int
	// Limit, when set, is the largest box of type typ accepted, in bytes,
	// when positive and below MaxBox (a moof no larger than what the
	// manifest function reads). Read refuses a box over it once its header
	// is read, before allocating for it; Box refuses one in hand. uuid
	// boxes are capped at MaxServerManifest whatever Limit says.
	Limit func(typ string) int
	// MaxTracks is the most tracks one moov may declare.
	MaxTracks int
	// Clock, when set, rebases the session's timestamps (see Clock).
	Clock Clock
	// MaxJump is how far a track's timestamps may skip forward before the
	// skip counts as a discontinuity (default 10 s); any step backwards is
	// one. A text track's may skip forward any distance: a gap between
	// cues.
	MaxJump time.Duration
	// Markers, when set, hands ad markers between the connections of a
	// channel: those of a data track on a connection with no media to
	// carry them (a Smooth sparse track on a POST of its own) go to it,
	// and a connection that stores media takes them for its next moof.
	Markers MarkerQueue
	// MaxSkew bounds how far apart the tracks of one stream may start
	// (default DefaultMaxSkew): a track's first fragment must start within
	// MaxSkew of the span the stream's other tracks have covered, in the
	// encoder's time, or the stream is refused before that fragment is
	// stored or the clock asked. Only the stream's first fragment sets the
	// channel's clock; a track that disagrees with it would move the
	// channel's published end (an audio track ten years after its video
	// rebased every later push ten years ahead).
	MaxSkew time.Duration
}

// Stats count what a session did.
type Stats struct {
	Bytes     uint64 // in the boxes it was given (Read: every byte read)
	Fragments int
	Trimmed   int  // fragments whose leading samples started before zero
	Skipped   int  // fragments refused (for example wholly before zero)
	Ended     bool // the encoder signalled the end of the stream (mfra)
}

type track struct {
	trak      *mp4.TrakBox
	trex      *mp4.TrexBox
	kind      timeline.Kind
	name      string
	bitrate   int  // 0 until known
	settled   bool // bitrate measured (if need be) and made unique
	announced bool // init segment handed to the sink
	// nextRaw is where the next fragment should start in the encoder's own
	// time; hasRaw tells whether a fragment came yet.
	nextRaw int64
	hasRaw  bool
	hasPrev bool
	prev    uint64 // stored start of the previous fragment
	end     uint64 // stored end of the previous fragment
	disc    bool   // the next fragment follows a discontinuity
	desc    timeline.Track
	// lo and hi are the span the track's stored fragments covered in the
	// encoder's own time (valid once hasRaw): what the stream's other
	// tracks must agree with (Options.MaxSkew).
	lo, hi time.Duration
	// data, for a data track (a sparse SCTE-35 track, timed metadata),
	// says what its samples hold: they become ad markers, never
	// fragments (events.go).
	data *dataTrack
	// tx3g: 3GPP timed text, stored as WebVTT (fmp4.Tx3gToWebVTT).
	tx3g bool
}

// Session is one encoder connection's (or one uploaded rendition's) way
// into the store. It is not safe for concurrent use: its source's one
// goroutine feeds it.
type Session struct {
	sink     Sink
	log      *slog.Logger
	opts     Options
	smil     []ism.SMILTrack
	moov     *mp4.MoovBox
	tracks   map[uint32]*track
	outs     [][]byte // reused fragment heads, one per part of a moof
	pieces   []piece  // reused: the parts of the moof in hand
	moof     []byte   // the pending moof, copied out of the reader's buffer
	haveMoof bool
	moofAt   uint64
	stats    Stats
	clocked  bool          // the clock was asked
	offset   time.Duration // added to every timestamp (whole seconds)
	ends     []TrackEnd
	// emsgs are the in-band events (emsg boxes) that came since the last
	// moof: the next moof's fragments carry them (events.go).
	emsgs []*mp4.EmsgBox
}

// NewSession returns a session that writes to sink.
func NewSession(sink Sink, log *slog.Logger, opts Options) *Session {
	if opts.MaxBox <= 0 {
		opts.MaxBox = 64 << 20
	}
	if opts.MaxTracks <= 0 {
		opts.MaxTracks = 16
	}
	if opts.MaxJump <= 0 {
		opts.MaxJump = 10 * time.Second
	}
	if opts.MaxSkew <= 0 {
		opts.MaxSkew = DefaultMaxSkew
	}
	return &Session{sink: sink, log: log, opts: opts}
}

// limit is the largest box of type typ the session takes.
func (s *Session) limit(typ string) int {
	n := s.opts.MaxBox
	if s.opts.Limit != nil {
		if l := s.opts.Limit(typ); l > 0 {
			n = min(n, l)
		}
	}
	if typ == "uuid" {
		n = min(n, MaxServerManifest)
	}
	return n
}

// Box takes the next top-level box of the encoder's stream. It returns
// a *ProtocolError for what the encoder got wrong, and the sink's or the
// clock's errors as they are; nothing of an incomplete fragment reaches
// the sink. box.Data need not outlive the call: what the session keeps it
// copies.
func (s *Session) Box(ctx context.Context, box mp4box.Box) error {
	s.stats.Bytes += uint64(box.Size())
	if limit := s.limit(box.Type); box.Size() > limit {
		return &ProtocolError{Err: fmt.Errorf("%w: %s box of %d bytes at offset %d, limit %d", mp4box.ErrTooLarge, box.Type, box.Size(), box.Pos, limit)}
	}
	if s.haveMoof && box.Type != "mdat" {
		s.haveMoof = false
		return protocolErr("moof at offset %d is followed by %s, not mdat", s.moofAt, box.Type)
	}
	switch box.Type {
	case "ftyp", "free", "skip", "styp", "sidx", "prft", "mfro", "tfra":
	case "emsg":
		s.emsg(box)
	case "uuid":
		return s.uuid(box)
	case "moov":
		return s.readMoov(box)
	case "moof":
		if s.moov == nil {
			return protocolErr("moof at offset %d before any moov", box.Pos)
		}
		s.moof = append(s.moof[:0], box.Data...)
		s.moofAt, s.haveMoof = box.Pos, true
	case "mdat":
		if !s.haveMoof {
			return protocolErr("mdat at offset %d without a moof", box.Pos)
		}
		s.haveMoof = false
		return s.fragment(ctx, box)
	case "mfra":
		s.stats.Ended = true
	default:
		s.log.Debug("skipping unknown box", "type", box.Type, "offset", box.Pos)
	}
	return nil
}

// Between reports whether the session is between fragments: no moof
// waits for its mdat.
func (s *Session) Between() bool { return !s.haveMoof }

// Close says the encoder's stream ended here, between boxes: a moof
// still waiting for its mdat is a *ProtocolError.
func (s *Session) Close() error {
	if s.haveMoof {
		s.haveMoof = false
		return protocolErr("stream ends after a moof without its mdat")
	}
	return nil
}

// Sparse reports whether every track the stream declares (in its latest
// moov) is sparse (timeline.Kind.Sparse: text): such a stream may rightly
// send nothing for minutes, between cues. False before a moov.
func (s *Session) Sparse() bool {
	for _, t := range s.tracks {
		if !t.kind.Sparse() {
			return false
		}
	}
	return len(s.tracks) > 0
}

// Stats returns what the session did so far.
func (s *Session) Stats() Stats { return s.stats }

func (s *Session) uuid(box mp4box.Box) error {
	p := box.Payload()
	if len(p) < 16 {
		return protocolErr("uuid box at offset %d is too short", box.Pos)
	}
	var u mp4.UUID = p[:16]
	if u.String() != ism.ServerManifestUUID {
		return nil
	}
	tracks, err := ism.ParseSMIL(ism.ServerManifestDoc(p[16:]))
	if err != nil {
		return &ProtocolError{Err: err}
	}
	s.smil = tracks
	return nil
}

func (s *Session) readMoov(box mp4box.Box) error {
	// The decoded boxes keep slices of their input (SPS, PPS...): decode a
	// copy, since the reader reuses its buffer.
	box.Data = slices.Clone(box.Data)
	b, err := mp4box.Decode(box)
	if err != nil {
		return protocolErr("%w", err)
	}
	moov, ok := b.(*mp4.MoovBox)
	if !ok || len(moov.Traks) == 0 {
		return protocolErr("moov has no tracks")
	}
	if len(moov.Traks) > s.opts.MaxTracks {
		return protocolErr("moov declares %d tracks, limit %d", len(moov.Traks), s.opts.MaxTracks)
	}
	tracks := make(map[uint32]*track, len(moov.Traks))
	for _, trak := range moov.Traks {
		if trak.Tkhd == nil || trak.Mdia == nil || trak.Mdia.Hdlr == nil {
			return protocolErr("trak without tkhd or hdlr")
		}
		id := trak.Tkhd.TrackID
		if _, dup := tracks[id]; dup {
			return protocolErr("moov declares track %d twice", id)
		}
		if d := s.dataTrackOf(trak); d != nil {
			tracks[id] = &track{trak: trak, trex: trexOf(moov, id), data: d}
			continue
		}
		// 3GPP timed text (ffmpeg's mov_text) goes on as WebVTT.
		tx3g := fmp4.Tx3gToWebVTT(trak)
		// Refuse at once what no manifest could describe, and timing no
		// encoder sends.
		desc, err := fmp4.Describe(trak)
		if err != nil {
			return protocolErr("track %d: %w", id, err)
		}
		if desc.Protection != nil {
			// The relay encrypts (a channel's keys); what an encoder
			// encrypted itself would need its keys and its own boxes
			// kept through the rewrite.
			return protocolErr("track %d is encrypted by the encoder (%s): send it in the clear, and give the relay the channel's keys (-key-file, -speke-url)", id, desc.Protection.Scheme)
		}
		if err := fmp4.CheckTimescale(trak.Mdia.Mdhd.Timescale); err != nil {
			return protocolErr("track %d: %w", id, err)
		}
		t := &track{trak: trak, tx3g: tx3g}
		switch trak.Mdia.Hdlr.HandlerType {
		case "vide":
			t.kind = timeline.Video
		case "soun":
			t.kind = timeline.Audio
		default:
			t.kind = timeline.Text
		}
		t.trex = trexOf(moov, id)
		t.name = TrackName(t.kind, desc)
		for _, st := range s.smil {
			if st.TrackID == id {
				t.name = layout.SanitizeName(st.TrackName, t.name)
				t.bitrate = st.SystemBitrate // within bounds (ism.ParseSMIL)
			}
		}
		if t.bitrate == 0 {
			if t.bitrate = fmp4.DeclaredBitrate(trak); t.bitrate != 0 {
				if err := ism.CheckBitrate(t.bitrate); err != nil {
					return protocolErr("track %d: bitrate its sample entry declares (btrt or esds): %w", id, err)
				}
			}
		}
		if old, ok := s.tracks[id]; ok && old.announced && (old.desc.Codecs != desc.Codecs || old.desc.CodecPrivateData != desc.CodecPrivateData || old.desc.Timescale != desc.Timescale) {
			// Its init segment and fragments are already out under this
			// track's name: another codec would not decode against them.
			return protocolErr("track %d changes codec mid-stream (%s %s to %s %s): start a new stream name for it",
				id, old.desc.Codecs, old.desc.CodecPrivateData, desc.Codecs, desc.CodecPrivateData)
		}
		t.desc = desc
		if old, ok := s.tracks[id]; ok && old.name == t.name && old.kind == t.kind {
			// A repeated header (the encoder re-sent it): keep the chain.
			t.nextRaw, t.hasRaw, t.hasPrev, t.prev, t.end, t.disc = old.nextRaw, old.hasRaw, old.hasPrev, old.prev, old.end, old.disc
			if t.bitrate == 0 {
				t.bitrate = old.bitrate
			}
		}
		tracks[id] = t
	}
	s.moov, s.tracks = moov, tracks
	return nil
}

// piece is one track's part of the moof in hand on its way to the sink:
// checked, then rewritten, then stored.
type piece struct {
	part    fmp4.Part
	t       *track
	id      uint32
	raw     int64  // start in the encoder's time
	dur     uint64 // in the track's timescale
	dropped bool   // it starts before zero: not stored
	head    []byte
	payload []byte
	info    fmp4.FragmentInfo
	lo, hi  time.Duration // its span in the encoder's time
}

// fragment takes the moof in hand and its mdat: a fragment of one track,
// or of several (muxed fMP4: a traf per track). A muxed moof is split per
// traf (fmp4.Split: each track's own moof and its own samples out of the
// mdat, as they came), then each part goes the way a single track's
// fragment goes. Everything that can refuse the moof (its trafs, their
// data, their tracks, their timing, the bitrates measured from them) is
// checked for every part before the clock is asked and before any part
// reaches the sink: a refused moof stores nothing.
func (s *Session) fragment(ctx context.Context, mdat mp4box.Box) error {
	moof, err := fmp4.DecodeMoofTracks(s.moof, s.opts.MaxTracks)
	if err != nil {
		return &ProtocolError{Err: fmt.Errorf("moof at offset %d: %w", s.moofAt, err)}
	}
	for _, traf := range moof.Trafs {
		if id := traf.Tfhd.TrackID; s.tracks[id] == nil {
			return protocolErr("moof at offset %d names track %d, which the moov does not declare", s.moofAt, id)
		}
	}
	parts, err := fmp4.Split(moof, fmp4.Input{Moof: s.moof, MoofPos: s.moofAt, MdatHeader: mdat.HeaderSize, Mdat: mdat.Payload()},
		func(id uint32) *mp4.TrexBox { return s.tracks[id].trex })
	if err != nil {
		return &ProtocolError{Err: fmt.Errorf("moof at offset %d: %w", s.moofAt, err)}
	}
	if parts = s.dataParts(parts); len(parts) == 0 {
		return nil // a data track's fragment: its samples became ad markers
	}
	samples := 0
	for i := range parts {
		samples += parts[i].Samples()
	}
	if samples == 0 {
		return protocolErr("moof at offset %d carries no samples", s.moofAt)
	}
	ps := s.pieces[:0]
	defer func() { clear(ps); s.pieces = ps[:0] }()
	for i := range parts {
		p := &parts[i]
		if len(parts) > 1 && p.Samples() == 0 {
			s.log.Debug("traf without samples in a muxed moof", "track_id", p.TrackID, "offset", s.moofAt)
			continue
		}
		t := s.tracks[p.TrackID]
		if t.tx3g {
			p.Tx3gToWebVTT()
		}
		ts := t.trak.Mdia.Mdhd.Timescale
		raw, dur, timed := fmp4.Timing(p.Moof, t.trex)
		if !timed {
			raw = t.nextRaw
		}
		if dur == 0 && t.kind.Sparse() {
			// Text that lasts nothing shows nothing: ffmpeg ends a
			// subtitle stream with such an empty sample.
			s.stats.Skipped++
			s.log.Debug("skipping text fragment of no duration", "track", t.name, "offset", s.moofAt)
			continue
		}
		// Before the clock is asked and anything stored: timing no encoder
		// sends, and tracks that disagree (with the moof's other tracks
		// too), are refused.
		if err := s.checkTiming(t, p.TrackID, raw, dur, ps); err != nil {
			return err
		}
		ps = append(ps, piece{part: *p, t: t, id: p.TrackID, raw: raw, dur: dur, lo: fmp4.Duration(raw, ts), hi: fmp4.Duration(raw+int64(dur), ts)})
	}
	for i := range ps {
		if err := s.rewrite(ctx, &ps[i], i); err != nil {
			return err
		}
	}
	s.takeQueued()
	carriers := s.carriers(ps)
	for i := range ps {
		if carriers[i] {
			s.carry(&ps[i])
		}
		if err := s.store(ctx, &ps[i]); err != nil {
			return err
		}
	}
	s.emsgs = s.emsgs[:0]
	return nil
}

// rewrite turns piece pc (the moof's i-th) into its stored fragment: it
// tells a jump in the track's timestamps, asks the clock at the session's
// first fragment and at a jump, rewrites the part, and settles the
// track's bitrate. A part that starts before zero is dropped.
func (s *Session) rewrite(ctx context.Context, pc *piece, i int) error {
	t, id, raw := pc.t, pc.id, pc.raw
	ts := int64(t.trak.Mdia.Mdhd.Timescale)
	// A text track may leave gaps of minutes (no cue, no fragment): its
	// timestamps skipping forward are such a gap, not a jump.
	skipped := raw-t.nextRaw > int64(s.opts.MaxJump.Seconds()*float64(ts)) && !t.kind.Sparse()
	jumped := t.hasRaw && (raw < t.nextRaw || skipped)
	if jumped {
		s.log.Warn("encoder timestamps jump", "track", t.name, "expected", t.nextRaw, "got", raw)
		t.disc = true
	}
	if s.opts.Clock != nil && (!s.clocked || jumped) {
		q := ClockQuery{Start: ticksDuration(raw, ts, false), End: ticksDuration(raw+int64(pc.dur), ts, true)}
		if t.hasPrev {
			q.After = ticksDuration(int64(t.end), ts, true)
		}
		if err := s.rebase(ctx, q); err != nil {
			return err
		}
	}
	if len(s.outs) <= i {
		s.outs = append(s.outs, make([][]byte, i+1-len(s.outs))...)
	}
	out, payload, info, err := pc.part.Rewrite(s.outs[i], fmp4.TrackInput{
		Trex: t.trex, FallbackStart: uint64(max(t.nextRaw, 0)), Offset: int64(s.offset/time.Second) * ts,
	})
	s.outs[i] = out[:0]
	if errors.Is(err, fmp4.ErrNegativeStart) {
		s.stats.Skipped++
		s.log.Warn("dropping fragment that starts before time zero", "track", t.name, "err", err)
		pc.dropped = true
		return nil
	}
	if err != nil {
		return &ProtocolError{Err: fmt.Errorf("track %d fragment at offset %d: %w", id, s.moofAt, err)}
	}
	if info.Duration == 0 {
		return protocolErr("track %d fragment at offset %d has zero duration", id, s.moofAt)
	}
	pc.head, pc.payload, pc.info = out, payload, info
	if !t.settled {
		if err := s.settle(t, id, len(out)+len(payload), info.Duration); err != nil {
			return err
		}
	}
	return nil
}

// store hands piece pc's fragment (and, at the track's first, its init
// segment) to the sink, and moves the track on past it.
func (s *Session) store(ctx context.Context, pc *piece) error {
	if pc.dropped {
		return nil
	}
	t, id, info := pc.t, pc.id, pc.info
	ts := int64(t.trak.Mdia.Mdhd.Timescale)
	if info.Trimmed > 0 {
		s.stats.Trimmed++
	}
	if !t.announced {
		var captions timeline.Captions
		if t.kind == timeline.Video {
			// Before the init segment is stored: it declares them.
			captions = fmp4.ScanCaptions(t.trak, pc.head, pc.payload)
		}
		if err := s.announce(ctx, t, id, captions); err != nil {
			return err
		}
	}
	f := Fragment{
		ID: layout.TrackID{Name: t.name, Bitrate: t.bitrate}, TrackID: id, Kind: t.kind,
		Start: info.Start, Duration: info.Duration, HasPrev: t.hasPrev, Prev: t.prev, Disc: t.disc, Head: pc.head, Payload: pc.payload,
	}
	if err := s.sink.Fragment(ctx, f); err != nil {
		return err
	}
	t.hasPrev, t.prev, t.end, t.disc = true, info.Start, info.Start+info.Duration, false
	rawStart := int64(info.Start) - int64(s.offset/time.Second)*ts
	lo, hi := fmp4.Duration(rawStart, uint32(ts)), fmp4.Duration(rawStart+int64(info.Duration), uint32(ts))
	if !t.hasRaw {
		t.lo, t.hi = lo, hi
	}
	t.lo, t.hi = min(t.lo, lo), max(t.hi, hi)
	t.hasRaw, t.nextRaw = true, rawStart+int64(info.Duration)
	s.ended(f.ID, info.Start+info.Duration)
	s.stats.Fragments++
	return nil
}

// checkTiming refuses, as a *ProtocolError that says why, a fragment of
// track t (id) starting at raw in the encoder's time and lasting dur
// ticks whose timing no encoder sends (fmp4.CheckTiming); one that starts
// before zero after the track stored fragments (only a stream's first
// samples, AAC priming, may: an encoder whose every fragment says
// 2^64-1, read as -1, repeats one time for ever); and a track's first
// fragment that starts more than MaxSkew from the span the stream's other
// tracks covered, or from the other tracks' parts of the same moof
// (peers).
func (s *Session) checkTiming(t *track, id uint32, raw int64, dur uint64, peers []piece) error {
	ts := t.trak.Mdia.Mdhd.Timescale
	if err := fmp4.CheckTiming(raw, dur, ts); err != nil {
		return protocolErr("track %d fragment at offset %d: %w", id, s.moofAt, err)
	}
	start := fmp4.Duration(raw, ts)
	if raw < 0 && t.hasRaw {
		return protocolErr("track %d fragment at offset %d: %w: it starts %s before time zero, after the track's fragments up to %s: only a stream's first fragments may",
			id, s.moofAt, fmp4.ErrTiming, fmp4.DurationText(-start), fmp4.DurationText(t.hi))
	}
	if t.hasRaw {
		return nil
	}
	var near uint32
	var nearLo, nearHi time.Duration
	dist := time.Duration(math.MaxInt64)
	consider := func(oid uint32, lo, hi time.Duration) {
		if d := max(lo-start, start-hi, 0); d < dist {
			near, nearLo, nearHi, dist = oid, lo, hi, d
		}
	}
	for oid, o := range s.tracks {
		if o != t && o.hasRaw {
			consider(oid, o.lo, o.hi)
		}
	}
	for _, p := range peers {
		consider(p.id, p.lo, p.hi)
	}
	if dist != time.Duration(math.MaxInt64) && dist > s.opts.MaxSkew {
		return protocolErr("track %d fragment at offset %d: %w: the track starts at %s, %s from track %d's fragments (%s to %s): the tracks of a stream start within %v of each other",
			id, s.moofAt, fmp4.ErrTiming, fmp4.DurationText(start), fmp4.DurationText(dist), near, fmp4.DurationText(nearLo), fmp4.DurationText(nearHi), s.opts.MaxSkew)
	}
	return nil
}

// ticksDuration is t ticks of timescale ts as a duration (0 when
// negative), rounded up or down to the nanosecond, without overflow.
func ticksDuration(t, ts int64, up bool) time.Duration {
	if t <= 0 || ts <= 0 {
		return 0
	}
	frac := t % ts * int64(time.Second)
	d := time.Duration(t/ts)*time.Second + time.Duration(frac/ts)
	if up && frac%ts != 0 {
		d++
	}
	return d
}

// rebase asks the clock for the session's offset for the fragment q. A
// new offset marks a discontinuity on every track.
func (s *Session) rebase(ctx context.Context, q ClockQuery) error {
	off, err := s.opts.Clock.Offset(ctx, q)
	if err != nil {
		return err
	}
	s.clocked = true
	off = off.Truncate(time.Second)
	if off != s.offset {
		s.log.Warn("rebasing encoder timestamps onto the channel clock", "offset", off, "was", s.offset)
		s.offset = off
		for _, t := range s.tracks {
			t.disc = true
		}
	}
	return nil
}

func (s *Session) ended(id layout.TrackID, end uint64) {
	for i := range s.ends {
		if s.ends[i].ID == id {
			s.ends[i].End = end
			return
		}
	}
	s.ends = append(s.ends, TrackEnd{ID: id, End: end})
}

// Ends returns where the session left each track it stored fragments of.
func (s *Session) Ends() []TrackEnd { return s.ends }

// settle settles a track's bitrate before its first fragment is stored:
// measured from that fragment (size bytes lasting dur ticks) when
// nothing declared one, then made unique among the session's tracks of
// the same name.
func (s *Session) settle(t *track, id uint32, size int, dur uint64) error {
	if t.bitrate == 0 {
		ts := uint64(t.trak.Mdia.Mdhd.Timescale)
		bps := uint64(size) * 8 * ts / dur
		t.bitrate = int(max((bps+500)/1000*1000, ism.MinBitrate)) // at most 2^56: 64 MiB in a tick of 100 MHz
		if err := ism.CheckBitrate(t.bitrate); err != nil {
			return protocolErr("track %d: bitrate measured from its first fragment (%d bytes in %s): %w", id, size, time.Duration(dur*uint64(time.Second)/ts), err)
		}
	}
	for taken := true; taken; {
		taken = false
		for oid, o := range s.tracks {
			if oid != id && o.settled && o.name == t.name && o.bitrate == t.bitrate {
				t.bitrate++
				taken = true
			}
		}
	}
	if err := ism.CheckBitrate(t.bitrate); err != nil {
		return protocolErr("track %d: bitrate once made unique among the stream's tracks named %s: %w", id, t.name, err)
	}
	t.settled = true
	return nil
}

// announce hands a track's init segment to the sink, once its bitrate is
// settled, declaring the CEA-608 and CEA-708 caption services its first
// fragment carries (fmp4.InitSegmentWithCaptions).
func (s *Session) announce(ctx context.Context, t *track, id uint32, captions timeline.Captions) error {
	init, err := fmp4.InitSegmentWithCaptions(s.moov, id, captions)
	if err != nil {
		return &ProtocolError{Err: err}
	}
	h := TrackHeader{ID: layout.TrackID{Name: t.name, Bitrate: t.bitrate}, TrackID: id, Kind: t.kind, Timescale: t.trak.Mdia.Mdhd.Timescale, Init: init}
	if err := s.sink.Init(ctx, h); err != nil {
		return err
	}
	t.announced = true
	s.log.Info("track", "track", h.ID.String(), "kind", t.kind, "track_id", id, "init_bytes", len(init), "captions", string(captions))
	return nil
}

// TrackName names a track its encoder gave no name (no SMIL trackName:
// CMAF ingest, uploads, ffmpeg without a live manifest): its kind, then
// for audio and text its language unless undetermined, then its role
// unless main. Renditions of one language and role share the name, so
// they make one adaptation set; an English and a Spanish audio at the same
// bitrate no longer share the keys of one track.
func TrackName(kind timeline.Kind, desc timeline.Track) string {
	name := string(kind)
	if kind != timeline.Video && desc.Language != "" && desc.Language != "und" {
		name += "_" + desc.Language
	}
	if desc.Role != "" && desc.Role != "main" {
		name += "_" + desc.Role
	}
	return layout.SanitizeName(name, string(kind))
}

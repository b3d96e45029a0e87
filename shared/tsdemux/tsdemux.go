// Package tsdemux turns an MPEG transport stream (ISO/IEC 13818-1) into
// the packager's tracks and samples (shared/packager): the glue between a
// source that carries MPEG-TS (an SRT connection, an HLS upload's .ts
// segments) and the packager that cuts CMAF fragments.
//
// # Use
//
// A Demuxer demultiplexes one program for one Handler, which is told the
// tracks once (Handler.Tracks) and then each sample (Handler.Sample) in
// the order the stream completes them. It takes its input in one of two
// ways, never both:
//
//   - a continuous stream (SRT): Write with bytes as they arrive, in any
//     chunking (or Read over an io.Reader), then End when the encoder ends
//     the stream cleanly. A connection that drops simply stops: what is in
//     progress is not handed over.
//   - segments (HLS uploads): Segment with each whole segment in turn. Each
//     segment ends every PES it holds (a segment never splits an access
//     unit); the program, the tracks and the timestamps' unwrap carry from
//     one segment to the next, so one Demuxer serves one rendition.
//
// # What it maps
//
// The first program of the PAT. Its PMT's streams become tracks in PMT
// order: H.264 (stream type 0x1B), HEVC (0x24), AAC in ADTS (0x0F; the
// AudioSpecificConfig built from the first ADTS header), AC-3 (0x81, or
// 0x06 with an AC-3 descriptor or registration) and E-AC-3 (0x87, or 0x06
// with an enhanced AC-3 descriptor or registration). Every other stream
// (MP3 and MPEG audio, private data, SCTE-35, subtitles, ...) is left out
// with one log line. A track's language is the PMT's ISO 639 language
// descriptor ("und" is reported as unknown, ""). Video samples are access
// units (one per PES, as H.222 asks of H.264 and HEVC in MPEG-TS) without
// access unit delimiters; audio samples are single frames: ADTS frames
// without their header, AC-3 syncframes, E-AC-3 access units (an
// independent substream with its dependent ones), each with its own PTS
// (the PES's PTS plus the frames before it).
//
// # When the tracks are fixed
//
// The packager takes its tracks once, so the Demuxer waits, holding
// samples, until every mapped stream of the PMT has delivered its first
// PES (AAC's configuration is in its first frame), or until the wait has
// held Options.MaxProbe bytes or spanned Options.ProbeDuration of media,
// or until the first segment (or the stream) ends. A stream still silent
// then is left out with a log line, and its later data ignored. After
// that, a PMT that adds a stream is logged and the stream ignored (a late
// track cannot join the packager's tracks); a PMT that removes a track's
// stream or changes its codec is an error (ErrProgramChanged): the
// encoder must start a new stream (a new connection, a new upload
// session). A PMT repeated unchanged, or changed only in streams that are
// left out, changes nothing.
//
// # Timestamps
//
// Samples carry DTS and PTS in 90 kHz ticks, unwrapped: MPEG-TS's 33-bit
// timestamps are taken nearest to the last unwrapped one of the program
// (any track), so a stream that crosses 2^33 (26.5 hours) keeps
// increasing, and tracks stay in one epoch. The first timestamp is taken
// as it is. A track's DTS (audio: PTS) that does not increase, or a PTS
// before its DTS, is an error (ErrBackwards).
//
// # Bad input
//
// Every error about the input is a *ingest.ProtocolError wrapping one of
// this package's Err values and naming the byte offset and the PID; the
// Demuxer never panics on input (FuzzSegment, FuzzStream) and bounds what
// it holds: one PES per track up to Options.MaxPES, all of them together
// up to twice that, a PSI table up to 16 KiB, and the samples held while
// the tracks are not fixed. A packet without the sync byte, a continuity
// counter that skips, a packet with the transport error indicator, a PES
// shorter or longer than it declares, a PES without PTS and malformed
// elementary streams are errors. With Options.Lossy (a transport that may
// lose packets, as SRT does when it drops too-late packets), lost sync is
// found again and a continuity error or a packet marked in error drops the
// PES it belongs to, each told to Options.Warn, rather than ending the
// stream.
//
// # Why not a whole library demuxer
//
// PAT and PMT (sections, CRC, descriptors) are parsed by go-astits, and
// the elementary streams by mediacommon's codec packages (Annex B, ADTS,
// AC-3 and E-AC-3 sync info, random access). The packets and the PES
// headers are read here: go-astits's demuxer alone costs 2.9 cpu-s per GB
// of TS on this machine (it parses every packet into a new struct and
// copies a PES's packets again at each packet to check whether it is
// complete), more than half of what ffmpeg spends on a whole TS to fMP4
// remux of the same file (about 4 cpu-s per GB), the budget issue 17 sets;
// this demuxer costs 0.6 (0.5 with Options.Reuse). mediacommon's MPEG-TS
// reader sits on go-astits, rewinds its input to find the tracks, cannot
// see a PMT change, and takes one AC-3 frame per PES, where ffmpeg puts
// several.
package tsdemux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/packager"
)

// PacketSize is the size of an MPEG-TS packet.
const PacketSize = 188

// Defaults of Options.
const (
	DefaultMaxPES        = 8 << 20
	DefaultMaxProbe      = 8 << 20
	DefaultProbeDuration = 2 * time.Second
)

// maxPSI bounds the bytes of a PSI table (PAT, PMT) in progress: a section
// is at most 1,024 bytes.
const maxPSI = 16 << 10

// maxStreams bounds the streams taken from a PMT: more are left out.
const maxStreams = 16

// Errors about the input, each inside a *ingest.ProtocolError.
var (
	ErrPacketSize     = errors.New("not a whole number of 188-byte MPEG-TS packets")
	ErrSync           = errors.New("lost MPEG-TS sync: a packet must start with 0x47")
	ErrPacket         = errors.New("malformed MPEG-TS packet")
	ErrScrambled      = errors.New("scrambled MPEG-TS packet: encryption is not supported")
	ErrContinuity     = errors.New("MPEG-TS continuity counter skipped: packets were lost")
	ErrTransport      = errors.New("MPEG-TS packet marked in error by the transport")
	ErrTables         = errors.New("malformed PAT or PMT")
	ErrTooLarge       = errors.New("PES packet too large")
	ErrTruncated      = errors.New("PES packet truncated")
	ErrPES            = errors.New("malformed PES packet")
	ErrNoPTS          = errors.New("PES packet without PTS")
	ErrBackwards      = errors.New("timestamps go backwards")
	ErrStream         = errors.New("malformed elementary stream")
	ErrConfigChanged  = errors.New("audio configuration changed within the stream")
	ErrProgramChanged = errors.New("the program (PMT) changed its streams: start a new stream")
	ErrNoProgram      = errors.New("no program: no PAT and PMT before the end")
	ErrNoStreams      = errors.New("no stream the packager takes (H.264, HEVC, AAC, AC-3, E-AC-3)")
	ErrEmptySegment   = errors.New("a segment without a frame of the program's tracks")
)

// Handler takes what a Demuxer finds.
type Handler interface {
	// Tracks is called once, before the first sample, with the program's
	// streams the packager takes, in PMT order.
	Tracks(ctx context.Context, tracks []packager.Track) error
	// Sample is called for each sample of track i (an index into the
	// tracks), in the order the stream completes them: each track's
	// samples in decoding order. The sample's slices are the Handler's to
	// keep: the Demuxer never writes to them again.
	Sample(ctx context.Context, i int, s packager.Sample) error
}

// Options bound a Demuxer.
type Options struct {
	// MaxPES is the largest PES packet accepted, in bytes (an access unit
	// or a run of audio frames); DefaultMaxPES when 0. The PES packets in
	// progress on all tracks together are bounded by twice it.
	MaxPES int
	// MaxProbe and ProbeDuration bound the wait for each stream's first
	// PES before the tracks are fixed: the bytes of samples held, and the
	// media time they span (DefaultMaxProbe, DefaultProbeDuration when 0).
	MaxProbe      int
	ProbeDuration time.Duration
	// Lossy says the transport may lose packets (SRT's too-late packet
	// drop): lost sync is found again, and a continuity error or a packet
	// marked in error drops the PES in progress, told to Warn, rather than
	// failing.
	Lossy bool
	// Warn, when set, is told what Lossy forgives.
	Warn func(err error)
	// Reuse says the Handler keeps nothing of a sample's slices past its
	// next call into the Demuxer (Write, Segment, End): the Demuxer then
	// reuses their memory (its PES packets') instead of allocating anew,
	// once the tracks are fixed. The packager copies what it keeps, so a
	// Handler that hands samples to a packager, at once or before the
	// next segment, may set it.
	Reuse bool
	// Log, when set, gets a line for each stream left out.
	Log *slog.Logger
}

// Stats counts what a Demuxer read.
type Stats struct {
	Bytes   int64 // bytes read (Write, Segment)
	Packets int64 // 188-byte packets read
	PES     int64 // PES packets completed on the tracks
	Samples int64 // samples made
	Dropped int64 // PES packets dropped (Lossy)
}

// Demuxer demultiplexes one MPEG-TS program. It is not safe for
// concurrent use.
type Demuxer struct {
	h    Handler
	opts Options
	log  *slog.Logger

	partial  [PacketSize]byte // a packet split across Write calls
	npartial int
	mode     int // 0 unknown, modeStream, modeSegment

	ccs [8192]uint8 // each PID's last continuity counter, noCC before one

	psi       *psiDemuxer
	pmtPID    int // -1 before the PAT
	program   uint16
	psiBytes  [2]int // bytes of the PAT's and the PMT's table in progress
	pmtSeen   bool
	streams   map[uint16]*stream
	order     []*stream // PMT order
	left      map[uint16]bool
	buffered  int // bytes of PES packets in progress, all streams
	ended     bool
	segments  int
	segStart  int64  // Stats.Bytes where the current segment began
	undo      func() // puts back the state before the last segment taken
	fixed     bool
	tracks    []packager.Track
	held      []heldSample
	heldBytes int

	ref    int64 // the last unwrapped timestamp
	refSet bool

	// Reuse: PES buffers handed over since the last call, those free, and
	// how many were reused.
	used, free [][]byte
	reused     int

	stats Stats
}

const (
	modeStream = iota + 1
	modeSegment
)

const noCC = 0xff

type heldSample struct {
	st *stream
	s  packager.Sample
}

// New returns a Demuxer that hands what it finds to h.
func New(h Handler, opts Options) *Demuxer {
	if opts.MaxPES <= 0 {
		opts.MaxPES = DefaultMaxPES
	}
	if opts.MaxProbe <= 0 {
		opts.MaxProbe = DefaultMaxProbe
	}
	if opts.ProbeDuration <= 0 {
		opts.ProbeDuration = DefaultProbeDuration
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Demuxer{
		h:       h,
		opts:    opts,
		log:     log,
		pmtPID:  -1,
		streams: make(map[uint16]*stream),
		left:    make(map[uint16]bool),
	}
	d.psi = newPSIDemuxer()
	d.resetCC()
	return d
}

func (d *Demuxer) resetCC() {
	for i := range d.ccs {
		d.ccs[i] = noCC
	}
}

// Tracks returns the tracks handed to Handler.Tracks (nil before).
func (d *Demuxer) Tracks() []packager.Track { return d.tracks }

// Stats returns what the Demuxer has read so far.
func (d *Demuxer) Stats() Stats { return d.stats }

// protocolErr locates err (one of the Err values, or wrapping one) at the
// current packet.
func (d *Demuxer) protocolErr(err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	where := fmt.Sprintf("at byte %d", d.stats.Bytes)
	if d.mode == modeSegment {
		where = fmt.Sprintf("in segment %d at byte %d", d.segments+1, d.stats.Bytes-d.segStart)
	}
	if msg != "" {
		return &ingest.ProtocolError{Err: fmt.Errorf("mpeg-ts %s: %s: %w", where, msg, err)}
	}
	return &ingest.ProtocolError{Err: fmt.Errorf("mpeg-ts %s: %w", where, err)}
}

// Write demultiplexes the next bytes of a continuous stream, in any
// chunking. Its error ends the stream: the Demuxer takes no more input.
func (d *Demuxer) Write(ctx context.Context, p []byte) error {
	if err := d.enter(modeStream); err != nil {
		return err
	}
	for len(p) > 0 {
		if d.npartial > 0 {
			n := copy(d.partial[d.npartial:], p)
			d.npartial += n
			p = p[n:]
			if d.npartial < PacketSize {
				return nil
			}
			d.npartial = 0
			if err := d.packet(ctx, d.partial[:]); err != nil {
				return d.fail(err)
			}
			continue
		}
		if p[0] != syncByte {
			if !d.opts.Lossy {
				return d.fail(d.protocolErr(ErrSync, "byte 0x%02x", p[0]))
			}
			n := skipToSync(p)
			d.warn(d.protocolErr(ErrSync, "skipped %d bytes", n))
			d.stats.Bytes += int64(n)
			p = p[n:]
			continue
		}
		if len(p) < PacketSize {
			d.npartial = copy(d.partial[:], p)
			return nil
		}
		if err := d.packet(ctx, p[:PacketSize]); err != nil {
			return d.fail(err)
		}
		p = p[PacketSize:]
	}
	return nil
}

// Read demultiplexes r until it ends, then calls End; an error reading r
// is returned as it is (a dropped connection: nothing in progress is
// handed over).
func (d *Demuxer) Read(ctx context.Context, r io.Reader) error {
	buf := make([]byte, 64*PacketSize)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := r.Read(buf)
		if n > 0 {
			if werr := d.Write(ctx, buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return d.End(ctx)
		}
		if err != nil {
			return err
		}
	}
}

// End says the continuous stream ended cleanly: the PES packets in
// progress are complete, and the tracks are fixed if they were not yet.
func (d *Demuxer) End(ctx context.Context) error {
	if err := d.enter(modeStream); err != nil {
		return err
	}
	if d.npartial > 0 {
		return d.fail(d.protocolErr(ErrPacketSize, "the stream ended %d bytes into a packet", d.npartial))
	}
	if err := d.flush(ctx); err != nil {
		return d.fail(err)
	}
	d.ended = true
	return nil
}

// Segment demultiplexes one whole segment (an HLS .ts file). The segment
// must be a whole number of packets; every PES in progress ends with it.
// The program, the tracks and the timestamps continue from the previous
// segment; the tracks are fixed at the end of the first segment at the
// latest.
//
// An error in a segment after the one that fixed the tracks leaves the
// Demuxer as it was before that segment (its timestamps, its program), so
// that the next segment may follow the last good one; the Handler must
// then forget the samples the bad segment gave it. An error before the
// tracks are fixed ends the Demuxer.
func (d *Demuxer) Segment(ctx context.Context, seg []byte) error {
	if err := d.enter(modeSegment); err != nil {
		return err
	}
	d.segStart = d.stats.Bytes
	var undo func()
	if d.fixed {
		undo = d.checkpoint()
	}
	err := d.segment(ctx, seg)
	switch {
	case err == nil:
		d.segments++
		d.undo = undo
	case undo != nil:
		undo()
		d.segments++
	default:
		d.fail(err)
	}
	return err
}

// Forget puts the Demuxer back as it was before the last segment it took
// (the last without an error), when its caller refused that segment after
// all (the packager did): the next segment follows the one before. It can
// once, and only if the tracks were fixed before that segment; otherwise
// it reports false, and the caller starts a new Demuxer.
func (d *Demuxer) Forget() bool {
	if d.undo == nil || d.mode != modeSegment {
		return false
	}
	d.undo()
	d.undo = nil
	return true
}

func (d *Demuxer) segment(ctx context.Context, seg []byte) error {
	if len(seg)%PacketSize != 0 {
		return d.protocolErr(ErrPacketSize, "%d bytes", len(seg))
	}
	if len(seg) == 0 {
		return d.protocolErr(ErrPacketSize, "empty segment")
	}
	d.resetCC()
	samples := d.stats.Samples
	for p := seg; len(p) > 0; p = p[PacketSize:] {
		if err := ctx.Err(); err != nil {
			return err
		}
		if p[0] != syncByte {
			return d.protocolErr(ErrSync, "byte 0x%02x", p[0])
		}
		if err := d.packet(ctx, p[:PacketSize]); err != nil {
			return err
		}
	}
	if err := d.flush(ctx); err != nil {
		return err
	}
	if d.stats.Samples == samples {
		return d.protocolErr(ErrEmptySegment, "%d packets", len(seg)/PacketSize)
	}
	return nil
}

// checkpoint returns what puts back the state a segment may change once
// the tracks are fixed.
func (d *Demuxer) checkpoint() func() {
	type streamState struct {
		st       *stream
		last     int64
		hasLast  bool
		rate     int
		synced   bool
		lastSize int
	}
	ref, refSet, pmtPID, program := d.ref, d.refSet, d.pmtPID, d.program
	saved := make([]streamState, len(d.order))
	for i, st := range d.order {
		saved[i] = streamState{st, st.last, st.hasLast, st.rate, st.synced, st.lastSize}
	}
	return func() {
		d.ref, d.refSet, d.pmtPID, d.program = ref, refSet, pmtPID, program
		for _, s := range saved {
			if s.st.inPES {
				d.drop(s.st)
			}
			s.st.last, s.st.hasLast, s.st.rate, s.st.synced, s.st.lastSize = s.last, s.hasLast, s.rate, s.synced, s.lastSize
		}
		d.psi.reset()
		d.psiBytes = [2]int{}
	}
}

var errClosed = errors.New("tsdemux: the demuxer failed or ended: it takes no more input")

// enter checks that the Demuxer still takes input of this mode.
func (d *Demuxer) enter(mode int) error {
	if d.ended {
		return errClosed
	}
	if d.mode != 0 && d.mode != mode {
		return errors.New("tsdemux: a Demuxer takes either a stream (Write, End) or segments, not both")
	}
	d.mode = mode
	// The Handler is done with what it was given (Options.Reuse).
	for _, b := range d.used {
		if len(d.free) < maxFree {
			d.free = append(d.free, b[:0])
		}
	}
	clear(d.used)
	d.used = d.used[:0]
	return nil
}

// maxFree bounds the PES buffers kept for reuse.
const maxFree = 64

// buffer is a buffer for a PES of about size bytes: a free one (Reuse),
// else a new one.
func (d *Demuxer) buffer(size int) []byte {
	for i := len(d.free) - 1; i >= 0; i-- {
		if b := d.free[i]; cap(b) >= size {
			d.free[i] = d.free[len(d.free)-1]
			d.free[len(d.free)-1] = nil
			d.free = d.free[:len(d.free)-1]
			d.reused++
			return b
		}
	}
	return make([]byte, 0, size)
}

// fail ends the Demuxer with err.
func (d *Demuxer) fail(err error) error {
	d.ended = true
	d.held = nil
	for _, st := range d.order {
		st.pes = nil
	}
	return err
}

func (d *Demuxer) warn(err error) {
	if d.opts.Warn != nil {
		d.opts.Warn(err)
	}
}

const syncByte = 0x47

// skipToSync returns how many bytes of p come before the next sync byte
// (all of them if none).
func skipToSync(p []byte) int {
	for i := 1; i < len(p); i++ {
		if p[i] == syncByte {
			return i
		}
	}
	return len(p)
}

// flush ends every PES in progress (the end of a segment or of the
// stream) and fixes the tracks if they are not yet.
func (d *Demuxer) flush(ctx context.Context) error {
	for _, st := range d.order {
		if st.inPES {
			if err := d.endPES(ctx, st); err != nil {
				return err
			}
		}
	}
	if !d.fixed {
		if !d.pmtSeen {
			return d.protocolErr(ErrNoProgram, "")
		}
		return d.fix(ctx)
	}
	return nil
}

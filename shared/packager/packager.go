// Package packager turns elementary streams (H.264 and HEVC access units,
// AV1 temporal units, AAC, AC-3 and E-AC-3 frames) into the top-level boxes of a fragmented
// MP4 stream, one moof+mdat pair per track and fragment, and hands them to
// a BoxSink: an *ingest.Session, or a *relay.Live over one. It sits below
// the sources that carry elementary streams (MPEG-TS from HLS uploads and
// SRT, FLV from RTMP) and above the session, which names the tracks,
// measures their bitrates, rebases their clock and stores the fragments.
//
// What it writes: first an ftyp and a moov with every track (mvex and
// trex, CMAF style, no samples), then per fragment and track a moof (one
// traf: tfhd with default-base-is-moof, a tfdt of version 1, one trun)
// and its mdat, and at End an mfra (the session's end of stream).
//
// # Timing
//
// Video tracks run at 90 kHz. A video track's decode times are its DTS
// shifted by the delay of its first key frame (its PTS less its DTS), so
// that a fragment's tfdt is the presentation time of its first key frame
// and lines up with the audio's; composition offsets are signed (trun
// version 1 when one is negative, as B-frames make them). Audio tracks run
// at their sample rate; every frame lasts exactly its samples (1024 per AAC
// frame, 1536 per AC-3 frame, an E-AC-3 frame's blocks x 256) and follows
// the previous one as long as its PTS agrees within half a frame; when it
// does not, the track resynchronises: its fragment ends there and the next
// one starts at the frame's own time, a gap or an overlap that the session
// sees (and marks as a discontinuity when it is one).
//
// # Cuts
//
// Without Options.OnCut, the video track's fragments end at a key frame
// (H.264 IDR, HEVC IRAP, found from the NAL unit types; AV1, a shown
// KEY_FRAME from its frame header) once they last at
// least MinFragment, and every other track's at the first of its frames at
// or after that key frame's time, so that the fragments of all tracks line
// up; an audio-only stream cuts every 2*MinFragment. With OnCut only Cut
// ends fragments (an upload's segment is one fragment per track), and the
// video of each cut must start with a key frame.
//
// The duration of a fragment's last video sample is the distance to the
// next sample's DTS when that is known (a live cut happens at the next key
// frame); at Cut and End it is estimated as the track's previous sample
// duration (the frame rate's, for constant frame rates), 1/30 s when the
// track has no earlier sample. An audio frame's duration is always exact.
//
// # Start
//
// A video track starts at its first key frame: what comes before it is
// dropped (counted in Stats.Dropped, logged once), and so is audio that
// ends before the video starts, so that the tracks start together within
// an audio frame; audio that arrives before the video's first key frame is
// held (MaxGOP at most) until the key frame tells where the video starts.
//
// # Parameter sets
//
// Sample entries are avc1 and hvc1, with the parameter sets in the
// sample entry (the Track's, or the first key frame's own when it carries
// a complete set: what decoders see wins); AV1's is av01 with its av1C
// (the AV1CodecConfigurationRecord, or the first key frame's sequence
// header). In-band parameter sets equal to the sample entry's, and access
// unit delimiters (AV1: temporal delimiters), are stripped from the
// samples: avc1/hvc1 want them out of band (players that do not look in
// band, Smooth clients given CodecPrivateData, keep working), and an AUD
// is meaningless in MP4. A parameter set that differs from the sample
// entry's (a resolution change, a new PPS) is a *ingest.ProtocolError:
// the track's init segment is out already, and a decoder given it would
// not decode the new pictures. The encoder must start a new stream.
//
// # Bad input
//
// Every error in what the source hands over is a *ingest.ProtocolError.
// Live (without OnCut), the stream is then over: every later call returns
// the same error. With OnCut, the error discards what the packager held
// since the last cut (nothing partial reaches the sink) and the packager
// takes the next segment. Timestamps: a track's decode times increase
// strictly from sample to sample, except where a jump starts new
// fragments. Live, a video sample whose DTS repeats the previous one's is
// dropped; one whose DTS is earlier, or more than MaxGOP later, is dropped
// with the rest of its GOP (Stats.OutOfOrder), unless it is a key frame,
// which then ends every track's fragment and starts new ones at the new
// times: the session sees the jump, marks a discontinuity and, with a
// clock, rebases. Audio resynchronises (above). Dropping rather than
// refusing keeps a stream alive through a duplicated or reordered packet,
// and a key frame after a jump is where a decoder can start again anyway.
// With OnCut, such a sample is a *ingest.ProtocolError: an uploaded
// segment whose clock goes backwards is broken, and refusing it stores
// nothing of it. A fragment is bounded in bytes (MaxFragmentBytes) and in
// samples (MaxFragmentSamples).
package packager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/mp4box"
)

// BoxSink takes top-level MP4 boxes: *ingest.Session and *relay.Live are
// sinks. b.Data is valid only during the call.
type BoxSink interface {
	Box(ctx context.Context, b mp4box.Box) error
}

// Codec is an elementary stream's coding.
type Codec int

// The codecs the packager takes.
const (
	H264 Codec = iota + 1
	HEVC
	AAC
	AC3
	EAC3
	// AV1 (Enhanced RTMP): Sample.Frame carries a temporal unit.
	AV1
)

// String names the codec.
func (c Codec) String() string {
	switch c {
	case H264:
		return "H.264"
	case HEVC:
		return "HEVC"
	case AAC:
		return "AAC"
	case AC3:
		return "AC-3"
	case EAC3:
		return "E-AC-3"
	case AV1:
		return "AV1"
	}
	return fmt.Sprintf("codec %d", int(c))
}

// Video reports whether c is a video codec.
func (c Codec) Video() bool { return c == H264 || c == HEVC || c == AV1 }

// Track describes one elementary stream.
type Track struct {
	Codec Codec
	// Video: parameter sets when the source knows them out of band (RTMP's
	// sequence header); otherwise the packager takes them from the stream's
	// first key frame. H.264: SPS, PPS; HEVC: VPS, SPS, PPS (NAL units
	// without start codes).
	VPS, SPS, PPS [][]byte
	// AV1: the AV1CodecConfigurationRecord (Enhanced RTMP's sequence
	// start), or nil: the packager takes the first key frame's sequence
	// header.
	AV1Config []byte
	// AAC: the AudioSpecificConfig. AC-3/E-AC-3: nil (read from the frames).
	AudioConfig []byte
	Language    string // ISO 639-2 ("" unknown)
	Bitrate     int    // bits/s the source declares (0: the session measures it)
}

// Sample is one access unit (video) or one audio frame.
type Sample struct {
	// DTS and PTS in 90 kHz ticks (MPEG's clock; FLV milliseconds x 90),
	// unwrapped: a source undoes MPEG-TS's 33-bit wrap. Audio: PTS only
	// (DTS ignored), each frame its own: a source that gets one PTS for
	// several frames (a PES packet) gives the n-th frame PTS + n frame
	// durations.
	DTS, PTS int64
	NALUs    [][]byte // video: the access unit's NAL units, no start codes/lengths
	// Audio: one frame (raw AAC without ADTS; one AC-3 syncframe; an
	// E-AC-3 access unit: its independent substream and dependent ones).
	// AV1: one temporal unit, OBUs in the low-overhead format.
	Frame []byte
}

// Defaults of Options.
const (
	DefaultMinFragment = time.Second
	DefaultMaxGOP      = 10 * time.Second
	// DefaultMaxFragmentBytes is the relay's largest box (its mdat).
	DefaultMaxFragmentBytes = 64 << 20
	// DefaultMaxFragmentSamples keeps a fragment's moof (16 bytes a
	// sample) at 256 KiB, far below fmp4.MaxMoofIn: 10 s of 240 fps video
	// is 2,400 samples, a minute of 96 kHz AAC 5,625.
	DefaultMaxFragmentSamples = 16384
)

// Options shape a Packager's fragments.
type Options struct {
	// OnCut: fragments end only where Cut is called (uploads: a segment is a
	// fragment per track). Otherwise fragments end at key frames.
	OnCut bool
	// MinFragment: a video fragment is at least this long before a key frame
	// ends it (default 1 s); audio-only streams cut every MinFragment*2.
	MinFragment time.Duration
	// MaxGOP: key frames further apart than this end the stream with a
	// *ingest.ProtocolError wrapping ErrGOPTooLong (default 10 s). So does
	// a stream whose video sends no key frame within MaxGOP of its start.
	MaxGOP time.Duration
	// MaxFragmentBytes bounds a track's fragment's media bytes (default
	// DefaultMaxFragmentBytes); more is a *ingest.ProtocolError wrapping
	// mp4box.ErrTooLarge.
	MaxFragmentBytes int
	// MaxFragmentSamples bounds a track's fragment's samples (default
	// DefaultMaxFragmentSamples); more is a *ingest.ProtocolError wrapping
	// mp4box.ErrTooLarge.
	MaxFragmentSamples int
	Log                *slog.Logger
}

// Errors the packager's *ingest.ProtocolError may wrap.
var (
	// ErrGOPTooLong: key frames further apart than Options.MaxGOP.
	ErrGOPTooLong = errors.New("key frames too far apart")
	// ErrNoKeyFrame: with OnCut, a cut's video does not start with a key frame.
	ErrNoKeyFrame = errors.New("segment's video does not start with a key frame")
	// ErrParameterSets: a video track's parameter sets are missing, unreadable
	// or change mid-stream.
	ErrParameterSets = errors.New("video parameter sets")
	// ErrBadFrame: an audio frame that is not of its track's codec, or an
	// AV1 temporal unit whose OBUs do not parse.
	ErrBadFrame = errors.New("malformed frame")
	// ErrTimestamps: timestamps the packager cannot keep in order.
	ErrTimestamps = errors.New("timestamps out of order")
)

// errEnded is returned by calls after End.
var errEnded = errors.New("packager: stream already ended")

// Stats count what a Packager did.
type Stats struct {
	Samples   int // samples Write took
	Fragments int // moof+mdat pairs written
	// Dropped counts samples not written because the stream could not use
	// them: before the video's first key frame, audio before the video
	// starts, access units without a picture, frames of a track the init
	// segment left out, video between a Flush and its next key frame.
	Dropped int
	// OutOfOrder counts video samples dropped because their DTS did not
	// follow the track's previous one, with the rest of their GOP.
	OutOfOrder int
	// Resyncs counts audio frames whose PTS disagreed with the frames
	// before them by more than half a frame.
	Resyncs int
}

// Packager packages one stream's elementary streams. It is not safe for
// concurrent use: its source's one goroutine feeds it.
type Packager struct {
	sink   BoxSink
	opts   Options
	log    *slog.Logger
	tracks []*track
	video  *track // the video track, nil for audio only
	pos    uint64 // bytes written to the sink
	inited bool   // ftyp+moov written
	ended  bool
	// cutNext: Cut was called without OnCut: the next key frame cuts.
	cutNext bool
	err     error // sticky: the stream is over
	stats   Stats
	logged  map[string]bool
	buf     []byte // moof encoding
}

// maxTime bounds a timestamp, in 90 kHz ticks: fmp4.MaxMediaTime, which
// also keeps every rescaled time within 64 bits.
const maxTime = int64(fmp4.MaxMediaTime/time.Second) * 90000

// New returns a packager of tracks that writes to sink. It refuses tracks
// it cannot package (an unknown codec, AAC without its AudioSpecificConfig,
// more than one video track) with an error that says which.
func New(sink BoxSink, tracks []Track, opts Options) (*Packager, error) {
	if opts.MinFragment <= 0 {
		opts.MinFragment = DefaultMinFragment
	}
	if opts.MaxGOP <= 0 {
		opts.MaxGOP = DefaultMaxGOP
	}
	if opts.MaxFragmentBytes <= 0 || opts.MaxFragmentBytes > 1<<31 {
		opts.MaxFragmentBytes = DefaultMaxFragmentBytes
	}
	if opts.MaxFragmentSamples <= 0 || opts.MaxFragmentSamples > fmp4.MaxMoofIn/16 {
		opts.MaxFragmentSamples = DefaultMaxFragmentSamples
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if len(tracks) == 0 {
		return nil, &ingest.ProtocolError{Err: errors.New("packager: no tracks")}
	}
	if len(tracks) > 16 {
		return nil, &ingest.ProtocolError{Err: fmt.Errorf("packager: %d tracks, at most 16", len(tracks))}
	}
	p := &Packager{sink: sink, opts: opts, log: opts.Log, logged: map[string]bool{}}
	for i, tr := range tracks {
		t, err := newTrack(i, tr)
		if err != nil {
			return nil, &ingest.ProtocolError{Err: err}
		}
		if t.video {
			if p.video != nil {
				return nil, &ingest.ProtocolError{Err: fmt.Errorf("packager: tracks %d and %d are both video: send one video track per stream", p.video.idx, i)}
			}
			p.video = t
		}
		p.tracks = append(p.tracks, t)
	}
	return p, nil
}

// Stats returns what the packager did so far.
func (p *Packager) Stats() Stats { return p.stats }

// Write adds a sample of track i (index into tracks). Its slices need not
// outlive the call: the packager copies what it keeps.
func (p *Packager) Write(ctx context.Context, i int, s Sample) error {
	if err := p.usable(); err != nil {
		return err
	}
	if i < 0 || i >= len(p.tracks) {
		return fmt.Errorf("packager: no track %d (%d tracks)", i, len(p.tracks))
	}
	p.stats.Samples++
	t := p.tracks[i]
	var err error
	if t.video {
		err = p.writeVideo(ctx, t, s)
	} else {
		err = p.writeAudio(ctx, t, s)
	}
	return p.fail(err)
}

// Cut ends every track's fragment here (OnCut). The video's fragment
// must start with a key frame: otherwise the cut is refused with a
// *ingest.ProtocolError wrapping ErrNoKeyFrame, and nothing of it reaches
// the sink. A cut with nothing held writes nothing.
//
// Without OnCut, fragments must start at key frames: Cut makes the
// video's next key frame end the fragments, however short (an audio-only
// stream's end now).
func (p *Packager) Cut(ctx context.Context) error {
	if err := p.usable(); err != nil {
		return err
	}
	if !p.opts.OnCut && p.video != nil {
		p.cutNext = true
		return nil
	}
	return p.fail(p.cut(ctx))
}

// Flush writes what every track holds now, as Cut does with OnCut, and
// goes on: for a source that must stop at once without ending the stream
// (the relay shutting down: Flush, then relay.Live.Close with
// relay.ErrShuttingDown), so that nothing it took is lost. Live, the
// video's fragment, which starts with a key frame, ends early, and the
// video's next one starts at its next key frame (the frames before it are
// dropped).
func (p *Packager) Flush(ctx context.Context) error {
	if err := p.usable(); err != nil {
		return err
	}
	if err := p.fail(p.cut(ctx)); err != nil {
		return err
	}
	if v := p.video; v != nil && !p.opts.OnCut && v.clock.started {
		v.clock.flushed = true
	}
	return nil
}

// End says the encoder ended the stream: the packager writes the fragments
// it holds, as Cut does, then an mfra. A source whose encoder just stops
// (a lost connection) does not call End: what the packager holds (a
// partial GOP) is never written.
func (p *Packager) End(ctx context.Context) error {
	if err := p.usable(); err != nil {
		return err
	}
	if err := p.fail(p.cut(ctx)); err != nil {
		return err
	}
	p.ended = true
	return p.fail(p.writeMfra(ctx))
}

func (p *Packager) usable() error {
	if p.err != nil {
		return p.err
	}
	if p.ended {
		return errEnded
	}
	return nil
}

// fail settles what an error does: with OnCut, a protocol error discards
// the segment held and the packager goes on; any other error ends the
// stream.
func (p *Packager) fail(err error) error {
	if err == nil {
		return nil
	}
	var perr *ingest.ProtocolError
	if p.opts.OnCut && errors.As(err, &perr) {
		p.discard()
		return err
	}
	p.err = err
	return err
}

// discard forgets what every track holds since the last cut, and its
// timing, so that the segment can come again.
func (p *Packager) discard() {
	for _, t := range p.tracks {
		t.reset()
		t.clock = t.committed
	}
}

// cut writes every track's fragment held.
func (p *Packager) cut(ctx context.Context) error {
	held := false
	for _, t := range p.tracks {
		held = held || t.holds()
	}
	if !held {
		return nil
	}
	if v := p.video; v != nil && !p.opts.OnCut && !v.clock.started {
		// Live, audio waiting for a video that never started.
		for _, t := range p.tracks {
			p.stats.Dropped += len(t.cur.samples)
		}
		p.discard()
		return nil
	}
	if v := p.video; v != nil && (p.opts.OnCut || !v.cur.empty()) {
		if len(v.cur.samples) == 0 || !v.cur.samples[0].sync || !v.clock.started {
			err := &ingest.ProtocolError{Err: fmt.Errorf("%w: %s", ErrNoKeyFrame, p.describeCut())}
			p.discard()
			return err
		}
	}
	if err := p.writeAll(ctx); err != nil {
		return err
	}
	for _, t := range p.tracks {
		t.committed = t.clock
	}
	return nil
}

// describeCut says what a refused cut's video held.
func (p *Packager) describeCut() string {
	v := p.video
	switch {
	case len(v.cur.samples) == 0:
		return fmt.Sprintf("track %d (%s) has no video in it: each segment starts with a key frame (ffmpeg: -force_key_frames at the segment duration; an encoder's keyframe interval equal to the segment duration)", v.idx, v.Codec)
	default:
		return fmt.Sprintf("track %d (%s): the segment's first frame (of %d) is not a key frame: each segment starts with a key frame (ffmpeg: -force_key_frames at the segment duration; an encoder's keyframe interval equal to the segment duration)", v.idx, v.Codec, len(v.cur.samples))
	}
}

// once logs msg at Warn the first time key comes up, at Debug after.
func (p *Packager) once(key, msg string, args ...any) {
	if p.logged[key] {
		p.log.Debug(msg, args...)
		return
	}
	p.logged[key] = true
	p.log.Warn(msg, args...)
}

// protocolErr is a *ingest.ProtocolError about track t.
func protocolErr(t *track, format string, args ...any) error {
	return &ingest.ProtocolError{Err: fmt.Errorf("track %d (%s): "+format, append([]any{t.idx, t.Codec}, args...)...)}
}

// ticks is d in ticks of timescale ts.
func ticks(d time.Duration, ts uint32) int64 {
	return int64(d/time.Second)*int64(ts) + int64(d%time.Second)*int64(ts)/int64(time.Second)
}

// rescale converts t from timescale from to timescale to, rounding down,
// up or to the nearest; |t| at most maxTime-like values, from and to at
// most a few hundred thousand, so nothing overflows.
func rescale(t int64, from, to uint32, mode int) int64 {
	f, g := int64(from), int64(to)
	q, r := t/f, t%f
	if r < 0 {
		q, r = q-1, r+f
	}
	n := r * g // 0 <= r < f
	switch mode {
	case roundUp:
		n += f - 1
	case roundNearest:
		n += f / 2
	}
	return q*g + n/f
}

const (
	roundDown = iota
	roundUp
	roundNearest
)

// seconds says how long t ticks of ts last, for messages.
func seconds(t int64, ts uint32) string {
	return fmp4.DurationText(fmp4.Duration(t, ts))
}

package packager

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/Eyevinn/mp4ff/av1"
	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/mp4box"
)

// Sample flags (ISO/IEC 14496-12 8.8.3.1): a sync sample depends on no
// other (sample_depends_on 2); any other depends on others (1) and is a
// non-sync sample.
const (
	syncFlags    = 0x02000000
	nonSyncFlags = 0x01010000
)

// held is one sample a track holds for its next fragment.
type held struct {
	time int64  // decode time, in the track's timescale
	cto  int32  // composition offset (video)
	size uint32 // bytes in the run's data
	dur  uint32 // audio: the frame's exact duration; video: set at emission
	sync bool
}

// run is the samples of one fragment to be, and their media: data starts
// with 8 bytes for the mdat header, so that the mdat is written as it is.
type run struct {
	samples []held
	data    []byte
}

func (r *run) reset() {
	r.samples = r.samples[:0]
	if r.data == nil {
		r.data = make([]byte, 8, 4096)
	}
	r.data = r.data[:8]
}

func (r *run) empty() bool { return len(r.samples) == 0 }

// presentation is when sample i is shown: its decode time and
// composition offset (video: the source's PTS).
func (r *run) presentation(i int) int64 { return r.samples[i].time + int64(r.samples[i].cto) }

// end is where the run's last (audio) sample ends.
func (r *run) end() int64 {
	s := r.samples[len(r.samples)-1]
	return s.time + int64(s.dur)
}

// clock is a track's timing state, kept at each cut so that a refused
// segment (OnCut) can be forgotten.
type clock struct {
	hasLast bool
	lastDTS int64  // video: last sample's DTS, 90 kHz
	lastKey int64  // video: last key frame's DTS
	delay   int64  // video: the first key frame's PTS - DTS
	lastDur uint32 // video: last sample duration known
	started bool   // video: its first key frame came
	start   int64  // video: its first decode time (90 kHz, after the delay)
	needKey bool   // video: samples were dropped, waiting for a key frame
	flushed bool   // video: Flush wrote the GOP at hand, waiting for a key frame
	waiting bool   // video: dropping samples before its first key frame
	waitDTS int64  // video: the first of those samples' DTS
	next    int64  // audio: where the next frame should start (timescale)
	hasNext bool
	begun   bool // audio: a frame was kept since the video started
}

// track is one elementary stream's state.
type track struct {
	Track
	idx        int
	video      bool
	timescale  uint32 // 0 until known (AC-3, E-AC-3)
	configured bool   // the sample entry can be written
	preset     bool   // configured from the Track alone
	id         uint32 // track_ID in the moov: 0 until it is written, or left out
	omitted    bool   // left out of the moov

	// Video: the sample entry's parameter sets.
	vps, sps, pps [][]byte
	format        string // "1280x720 profile 100 level 40", for messages
	// AV1: the sample entry's configuration, its sequence header (and
	// that OBU's payload), and the OBUs of the temporal unit at hand.
	av1c      av1.CodecConfRec
	av1seq    *av1.SequenceHeader
	av1seqOBU []byte
	obus      []obuSpan
	// Audio.
	channels int
	asc      []byte
	dac3     *mp4.Dac3Box
	dec3     *mp4.Dec3Box
	fscod    byte
	cuts     []int64 // video cut times (90 kHz) not yet reached

	clock, committed clock
	cur              run
	closed           []run // audio: runs ended by a resync, to write first

	seq   uint32
	moof  *mp4.MoofBox
	tfhd  *mp4.TfhdBox
	tfdt  *mp4.TfdtBox
	trun  *mp4.TrunBox
	trunS []mp4.Sample
}

func newTrack(i int, tr Track) (*track, error) {
	t := &track{Track: tr, idx: i, video: tr.Codec.Video()}
	t.cur.reset()
	switch tr.Codec {
	case H264, HEVC:
		t.timescale = 90000
		if err := t.configureVideo(tr.VPS, tr.SPS, tr.PPS); err == nil {
			t.preset = true
		}
	case AV1:
		t.timescale = 90000
		if tr.AV1Config != nil {
			if err := t.configureAV1(tr.AV1Config, nil); err != nil {
				return nil, fmt.Errorf("track %d (AV1): %w", i, err)
			}
			t.preset = true
		}
	case AAC:
		if err := t.configureAAC(tr.AudioConfig); err != nil {
			return nil, err
		}
		t.preset = true
	case AC3, EAC3:
	default:
		return nil, fmt.Errorf("track %d: %v: the packager takes H.264, HEVC, AV1, AAC, AC-3 and E-AC-3", i, tr.Codec)
	}
	return t, nil
}

// holds reports whether the track holds samples for its next fragment.
func (t *track) holds() bool { return !t.cur.empty() || len(t.closed) > 0 }

// reset forgets the samples held.
func (t *track) reset() {
	t.cur.reset()
	clear(t.closed) // their buffers go
	t.closed = t.closed[:0]
	t.cuts = t.cuts[:0]
}

// reserve appends sample h of size bytes to the current run, within the
// fragment's bounds, and returns where its bytes go.
func (p *Packager) reserve(t *track, h held, size int) ([]byte, error) {
	r := &t.cur
	if len(r.samples) >= p.opts.MaxFragmentSamples {
		return nil, &ingest.ProtocolError{Err: fmt.Errorf("%w: track %d (%s): a fragment of more than %d samples: %s", mp4box.ErrTooLarge, t.idx, t.Codec, p.opts.MaxFragmentSamples, p.tooLargeHint())}
	}
	if len(r.data)-8+size > p.opts.MaxFragmentBytes {
		return nil, &ingest.ProtocolError{Err: fmt.Errorf("%w: track %d (%s): a fragment of more than %d bytes: %s", mp4box.ErrTooLarge, t.idx, t.Codec, p.opts.MaxFragmentBytes, p.tooLargeHint())}
	}
	n := len(r.data)
	r.data = slices.Grow(r.data, size)[:n+size]
	h.size = uint32(size)
	r.samples = append(r.samples, h)
	return r.data[n:], nil
}

func (p *Packager) tooLargeHint() string {
	if p.opts.OnCut {
		return "send shorter segments or a lower bitrate"
	}
	return "send key frames every 2 s and a lower bitrate"
}

// emit writes run r of track t as one moof+mdat (the init segment first,
// when it is not out yet). A video run's last sample lasts until end when
// known, else as long as the sample before it. r stays as it is.
func (p *Packager) emit(ctx context.Context, t *track, r *run, end int64, known bool) error {
	if r.empty() {
		return nil
	}
	if !p.inited {
		if err := p.writeInit(ctx); err != nil {
			return err
		}
	}
	if t.omitted {
		p.stats.Dropped += len(r.samples)
		return nil
	}
	if t.moof == nil {
		t.newMoof()
	}
	n := len(r.samples)
	t.trunS = slices.Grow(t.trunS[:0], n)[:n]
	negative := false
	for k := range r.samples {
		s := &r.samples[k]
		if t.video {
			switch {
			case k+1 < n:
				s.dur = uint32(r.samples[k+1].time - s.time)
			case known:
				s.dur = uint32(end - s.time)
			case t.clock.lastDur > 0:
				s.dur = t.clock.lastDur
			default:
				s.dur = 3000 // 1/30 s
			}
			t.clock.lastDur = s.dur
		}
		flags := uint32(syncFlags)
		if !s.sync {
			flags = nonSyncFlags
		}
		negative = negative || s.cto < 0
		t.trunS[k] = mp4.Sample{Flags: flags, Dur: s.dur, Size: s.size, CompositionTimeOffset: s.cto}
	}
	t.seq++
	t.moof.Mfhd.SequenceNumber = t.seq
	t.tfdt.SetBaseMediaDecodeTime(uint64(r.samples[0].time))
	t.trun.Samples = t.trunS
	t.trun.Version = 0
	if negative {
		t.trun.Version = 1
	}
	size := int(t.moof.Size())
	t.trun.DataOffset = int32(size + 8)
	p.buf = slices.Grow(p.buf[:0], size)[:size]
	sw := bits.NewFixedSliceWriterFromSlice(p.buf)
	if err := t.moof.EncodeSW(sw); err != nil {
		return fmt.Errorf("packager: encode moof of track %d: %w", t.idx, err)
	}
	if err := p.box(ctx, "moof", p.buf); err != nil {
		return err
	}
	mdat := r.data
	m := uint32(len(mdat))
	mdat[0], mdat[1], mdat[2], mdat[3] = byte(m>>24), byte(m>>16), byte(m>>8), byte(m)
	copy(mdat[4:8], "mdat")
	if err := p.box(ctx, "mdat", mdat); err != nil {
		return err
	}
	p.stats.Fragments++
	return nil
}

// newMoof builds the track's moof, whose boxes are reused fragment after
// fragment.
func (t *track) newMoof() {
	t.moof = &mp4.MoofBox{}
	_ = t.moof.AddChild(mp4.CreateMfhd(0))
	traf := &mp4.TrafBox{}
	_ = t.moof.AddChild(traf)
	t.tfhd = mp4.CreateTfhd(t.id) // default-base-is-moof
	t.tfdt = mp4.CreateTfdt(0)
	t.tfdt.Version = 1
	t.trun = mp4.CreateTrun(0)
	if t.video {
		t.trun.Flags = mp4.TrunDataOffsetPresentFlag | mp4.TrunSampleDurationPresentFlag | mp4.TrunSampleSizePresentFlag |
			mp4.TrunSampleFlagsPresentFlag | mp4.TrunSampleCompositionTimeOffsetPresentFlag
	} else {
		// Every audio frame is a sync sample: the flags go once in tfhd.
		t.tfhd.Flags |= mp4.TfhdDefaultSampleFlagsPresentFlag
		t.tfhd.DefaultSampleFlags = syncFlags
		t.trun.Flags = mp4.TrunDataOffsetPresentFlag | mp4.TrunSampleDurationPresentFlag | mp4.TrunSampleSizePresentFlag
	}
	_ = traf.AddChild(t.tfhd)
	_ = traf.AddChild(t.tfdt)
	_ = traf.AddChild(t.trun)
}

// box hands one top-level box to the sink.
func (p *Packager) box(ctx context.Context, typ string, data []byte) error {
	b := mp4box.Box{Type: typ, Pos: p.pos, HeaderSize: 8, Data: data}
	p.pos += uint64(len(data))
	return p.sink.Box(ctx, b)
}

// flush writes audio track t's runs: those a resync ended, then the
// current one's samples before cutA (all of them when cutA < 0), keeping
// the rest for the next fragment.
func (p *Packager) flush(ctx context.Context, t *track, cutA int64) error {
	for i := range t.closed {
		if err := p.emit(ctx, t, &t.closed[i], 0, false); err != nil {
			return err
		}
	}
	clear(t.closed)
	t.closed = t.closed[:0]
	r := &t.cur
	k, bytes := len(r.samples), len(r.data)-8
	if cutA >= 0 {
		k = 0
		bytes = 0
		for k < len(r.samples) && r.samples[k].time < cutA {
			bytes += int(r.samples[k].size)
			k++
		}
	}
	if k == 0 {
		return nil
	}
	head := run{samples: r.samples[:k], data: r.data[:8+bytes]}
	if err := p.emit(ctx, t, &head, 0, false); err != nil {
		return err
	}
	rest := copy(r.samples, r.samples[k:])
	r.samples = r.samples[:rest]
	rest = copy(r.data[8:], r.data[8+bytes:])
	r.data = r.data[:8+rest]
	return nil
}

// close ends audio track t's current run where a resync breaks its
// timeline: it is written before the track's next fragment.
func (t *track) close() {
	if t.cur.empty() {
		return
	}
	t.closed = append(t.closed, t.cur)
	t.cur = run{}
	t.cur.reset()
}

// writeInit writes the ftyp and the moov: every track whose sample entry
// is known by now. A track that cannot be described yet (an AC-3 track
// with no frame before the first fragment) is left out, and its frames
// dropped.
func (p *Packager) writeInit(ctx context.Context) error {
	init := mp4.CreateEmptyInit()
	for _, t := range p.tracks {
		if !t.configured {
			t.omitted = true
			p.log.Warn("track left out of the stream: nothing described it before the first fragment", "track", t.idx, "codec", t.Codec.String())
			continue
		}
		kind := "audio"
		if t.video {
			kind = "video"
		}
		trak := init.AddEmptyTrack(t.timescale, kind, language(t.Language))
		t.id = trak.Tkhd.TrackID
		if err := t.describe(trak); err != nil {
			return protocolErr(t, "%w", err)
		}
	}
	var b bytes.Buffer
	if err := init.Encode(&b); err != nil {
		return fmt.Errorf("packager: encode init segment: %w", err)
	}
	p.inited = true
	for box, err := range mp4box.All(b.Bytes()) {
		if err != nil {
			return fmt.Errorf("packager: init segment: %w", err)
		}
		if err := p.box(ctx, box.Type, box.Data); err != nil {
			return err
		}
	}
	return nil
}

// describe sets trak's sample entry.
func (t *track) describe(trak *mp4.TrakBox) error {
	stsd := trak.Mdia.Minf.Stbl.Stsd
	switch t.Codec {
	case H264:
		if err := trak.SetAVCDescriptor("avc1", t.sps, t.pps, true); err != nil {
			return err
		}
	case HEVC:
		if err := trak.SetHEVCDescriptor("hvc1", t.vps, t.sps, t.pps, nil, true); err != nil {
			return err
		}
	case AV1:
		if err := trak.SetAV1Descriptor("av01", &mp4.Av1CBox{CodecConfRec: t.av1c}, uint16(t.av1seq.Width()), uint16(t.av1seq.Height())); err != nil {
			return err
		}
	case AAC:
		esds := mp4.CreateEsdsBox(t.asc)
		if t.Bitrate > 0 {
			esds.DecConfigDescriptor.AvgBitrate = uint32(t.Bitrate)
			esds.DecConfigDescriptor.MaxBitrate = uint32(t.Bitrate)
		}
		stsd.AddChild(mp4.CreateAudioSampleEntryBox("mp4a", uint16(t.channels), 16, entryRate(t.timescale), esds))
	case AC3:
		stsd.AddChild(mp4.CreateAudioSampleEntryBox("ac-3", uint16(t.channels), 16, entryRate(t.timescale), t.dac3))
	case EAC3:
		stsd.AddChild(mp4.CreateAudioSampleEntryBox("ec-3", uint16(t.channels), 16, entryRate(t.timescale), t.dec3))
	}
	if t.video && t.Bitrate > 0 {
		if v, ok := stsd.Children[0].(*mp4.VisualSampleEntryBox); ok {
			v.AddChild(&mp4.BtrtBox{AvgBitrate: uint32(t.Bitrate), MaxBitrate: uint32(t.Bitrate)})
		}
	}
	return nil
}

// entryRate is the sample rate an audio sample entry can carry (16.16
// fixed point): 0 above 65535 Hz, where the decoder configuration says it.
func entryRate(rate uint32) uint16 {
	if rate > 0xffff {
		return 0
	}
	return uint16(rate)
}

// language is an ISO 639-2 code mdhd can carry, "und" otherwise.
func language(l string) string {
	if len(l) != 3 {
		return "und"
	}
	for _, c := range l {
		if c < 'a' || c > 'z' {
			return "und"
		}
	}
	return l
}

// writeMfra writes the end of the stream: an mfra with an empty tfra per
// track (an index of every fragment would grow with the stream; the
// session reads the mfra as the end) and its mfro.
func (p *Packager) writeMfra(ctx context.Context) error {
	mfra := &mp4.MfraBox{}
	for _, t := range p.tracks {
		if t.id != 0 {
			_ = mfra.AddChild(&mp4.TfraBox{Version: 1, TrackID: t.id})
		}
	}
	mfro := &mp4.MfroBox{}
	_ = mfra.AddChild(mfro)
	mfro.ParentSize = uint32(mfra.Size())
	var b bytes.Buffer
	if err := mfra.Encode(&b); err != nil {
		return fmt.Errorf("packager: encode mfra: %w", err)
	}
	return p.box(ctx, "mfra", b.Bytes())
}

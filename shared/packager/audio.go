package packager

import (
	"bytes"
	"context"
	"fmt"

	"github.com/Eyevinn/mp4ff/aac"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/fmp4"
)

// configureAAC reads an AudioSpecificConfig: the track's timescale is its
// sampling frequency (the core's, for HE-AAC: a frame is 1024 samples of
// it).
func (t *track) configureAAC(asc []byte) error {
	if len(asc) == 0 {
		return fmt.Errorf("track %d (AAC): no AudioSpecificConfig: the source must give it (ADTS headers and FLV's sequence header carry it)", t.idx)
	}
	hdr, err := aac.DecodeAudioSpecificConfigHeader(bytes.NewReader(asc))
	if err != nil {
		return fmt.Errorf("track %d (AAC): AudioSpecificConfig: %w", t.idx, err)
	}
	switch hdr.ObjectType {
	case 1, 2, 3, 4, aac.HEAACv1, aac.HEAACv2:
	default:
		return fmt.Errorf("track %d (AAC): audio object type %d: the packager takes AAC Main, LC, SSR, LTP and HE-AAC (v1, v2)", t.idx, hdr.ObjectType)
	}
	if err := fmp4.CheckTimescale(uint32(hdr.SamplingFrequency)); err != nil {
		return fmt.Errorf("track %d (AAC): sampling frequency %d Hz: %w", t.idx, hdr.SamplingFrequency, err)
	}
	t.timescale = uint32(hdr.SamplingFrequency)
	switch ch := int(hdr.ChannelConfiguration); {
	case ch == 0:
		t.channels = 2 // in the program config element; the entry's count is informative
	case ch == 7:
		t.channels = 8
	default:
		t.channels = ch
	}
	t.asc, t.configured = bytes.Clone(asc), true
	return nil
}

// AC-3 sample rates by fscod (ETSI TS 102 366 4.4.1.3).
var ac3Rates = [3]uint32{48000, 44100, 32000}

// bitReader reads big-endian bit fields from a byte slice; reading past
// its end yields zeros and sets short.
type bitReader struct {
	b     []byte
	pos   int
	short bool
}

func (r *bitReader) read(n int) uint32 {
	var v uint32
	for range n {
		i := r.pos >> 3
		if i >= len(r.b) {
			r.short = true
			v <<= 1
			continue
		}
		v = v<<1 | uint32(r.b[i]>>(7-r.pos&7)&1)
		r.pos++
	}
	return v
}

// ac3Frame reads the header of an AC-3 syncframe (ETSI TS 102 366 4.3
// and 4.4): it returns the dac3 that describes it.
func ac3Frame(f []byte) (*mp4.Dac3Box, error) {
	if len(f) < 7 || f[0] != 0x0b || f[1] != 0x77 {
		return nil, fmt.Errorf("%w: no AC-3 syncword", ErrBadFrame)
	}
	r := bitReader{b: f, pos: 32} // syncword, crc1
	d := &mp4.Dac3Box{}
	d.FSCod = byte(r.read(2))
	frmsizecod := r.read(6)
	d.BSID = byte(r.read(5))
	d.BSMod = byte(r.read(3))
	d.ACMod = byte(r.read(3))
	if d.FSCod == 3 || frmsizecod > 37 {
		return nil, fmt.Errorf("%w: AC-3 sample rate code %d, frame size code %d", ErrBadFrame, d.FSCod, frmsizecod)
	}
	if d.BSID > 10 {
		return nil, fmt.Errorf("%w: bitstream id %d is E-AC-3's, not AC-3's", ErrBadFrame, d.BSID)
	}
	if d.ACMod&1 != 0 && d.ACMod != 1 {
		r.read(2) // cmixlev
	}
	if d.ACMod&4 != 0 {
		r.read(2) // surmixlev
	}
	if d.ACMod == 2 {
		r.read(2) // dsurmod
	}
	d.LFEOn = byte(r.read(1))
	d.BitRateCode = byte(frmsizecod >> 1)
	return d, nil
}

// eac3Frame reads the E-AC-3 syncframes of one access unit (an
// independent substream 0 and its dependent substreams, ETSI TS 102 366
// Annex E): it returns the dec3 that describes them, the sample rate and
// the samples the access unit lasts (substream 0's blocks x 256).
func eac3Frame(f []byte) (*mp4.Dec3Box, uint32, uint32, error) {
	d := &mp4.Dec3Box{}
	var rate, samples uint32
	total, rounds := 0, 0
	for off := 0; off < len(f); {
		b := f[off:]
		if len(b) < 6 || b[0] != 0x0b || b[1] != 0x77 {
			return nil, 0, 0, fmt.Errorf("%w: no E-AC-3 syncword at byte %d of %d", ErrBadFrame, off, len(f))
		}
		r := bitReader{b: b, pos: 16}
		strmtyp := r.read(2)
		substreamid := r.read(3)
		size := int(r.read(11)+1) * 2
		fscod := byte(r.read(2))
		if fscod == 3 {
			return nil, 0, 0, fmt.Errorf("%w: E-AC-3 at a reduced sample rate (16 to 24 kHz) is not supported", ErrBadFrame)
		}
		blocks := [4]uint32{1, 2, 3, 6}[r.read(2)]
		acmod := byte(r.read(3))
		lfeon := byte(r.read(1))
		bsid := byte(r.read(5))
		if bsid <= 10 || bsid > 16 || strmtyp == 3 || size > len(b) {
			return nil, 0, 0, fmt.Errorf("%w: E-AC-3 substream with bitstream id %d, stream type %d, %d bytes of %d", ErrBadFrame, bsid, strmtyp, size, len(b))
		}
		switch {
		case strmtyp != 1 && substreamid == 0:
			// Independent substream 0: one per (part of an) access unit.
			if len(d.EC3Subs) == 0 {
				d.EC3Subs = append(d.EC3Subs, mp4.EC3Sub{FSCod: fscod, BSID: bsid, ACMod: acmod, LFEOn: lfeon})
				rate = ac3Rates[fscod]
			} else if fscod != d.EC3Subs[0].FSCod {
				return nil, 0, 0, fmt.Errorf("%w: E-AC-3 substreams at different sample rates", ErrBadFrame)
			}
			samples += blocks * 256
			rounds++
		case strmtyp == 1:
			if rounds == 0 {
				return nil, 0, 0, fmt.Errorf("%w: E-AC-3 dependent substream before its independent substream", ErrBadFrame)
			}
			sub := &d.EC3Subs[0]
			if rounds == 1 && sub.NumDepSub < 15 {
				sub.NumDepSub++
			}
			// As ffmpeg's muxer does: the custom channel map, when present.
			for range 1 + btoi(acmod == 0) {
				r.read(5) // dialnorm
				if r.read(1) == 1 {
					r.read(8) // compr
				}
			}
			if r.read(1) == 1 {
				sub.ChanLoc |= uint16(r.read(16)>>5) & 0x1f
			} else {
				sub.ChanLoc |= uint16(acmod)
			}
		default:
			// Further independent substreams (several programs): decoders
			// play substream 0, which the sample entry describes.
		}
		if r.short {
			return nil, 0, 0, fmt.Errorf("%w: E-AC-3 header cut short", ErrBadFrame)
		}
		total += size
		off += size
	}
	if len(d.EC3Subs) == 0 || samples == 0 {
		return nil, 0, 0, fmt.Errorf("%w: no E-AC-3 independent substream 0", ErrBadFrame)
	}
	// The access unit's bitrate, in kbit/s.
	d.DataRate = uint16(min(uint64(total)*8*uint64(rate)/uint64(samples)/1000, 1<<13-1))
	return d, rate, samples, nil
}

// frame reads audio frame f of track t: its duration in the track's
// timescale. An AC-3 or E-AC-3 track's first frame configures it; later
// frames must keep its sample rate.
func (t *track) frame(f []byte) (uint32, error) {
	switch t.Codec {
	case AC3:
		d, err := ac3Frame(f)
		if err != nil {
			return 0, err
		}
		if !t.configured {
			t.dac3, t.fscod, t.timescale, t.configured = d, d.FSCod, ac3Rates[d.FSCod], true
			t.channels, _ = d.ChannelInfo()
		} else if d.FSCod != t.fscod {
			return 0, fmt.Errorf("%w: the sample rate changes from %d to %d Hz mid-stream", ErrBadFrame, t.timescale, ac3Rates[d.FSCod])
		}
		return 1536, nil
	case EAC3:
		d, rate, samples, err := eac3Frame(f)
		if err != nil {
			return 0, err
		}
		if !t.configured {
			t.dec3, t.fscod, t.timescale, t.configured = d, d.EC3Subs[0].FSCod, rate, true
			t.channels, _ = d.ChannelInfo()
		} else if rate != t.timescale {
			return 0, fmt.Errorf("%w: the sample rate changes from %d to %d Hz mid-stream", ErrBadFrame, t.timescale, rate)
		}
		return samples, nil
	}
	return 1024, nil
}

func (p *Packager) writeAudio(ctx context.Context, t *track, s Sample) error {
	if t.omitted || len(s.Frame) == 0 {
		p.stats.Dropped++
		return nil
	}
	if s.PTS > maxTime || s.PTS < -maxTime {
		return protocolErr(t, "%w: PTS %d: more than 150 years of 90 kHz ticks", ErrTimestamps, s.PTS)
	}
	dur, err := t.frame(s.Frame)
	if err != nil {
		return protocolErr(t, "%w", err)
	}
	ts := t.timescale
	at := rescale(s.PTS, 90000, ts, roundNearest)
	c := &t.clock
	v := p.video
	if c.hasNext {
		if d := at - c.next; 2*d <= int64(dur) && -2*d <= int64(dur) {
			at = c.next
		} else {
			p.stats.Resyncs++
			p.once(fmt.Sprint("resync", t.idx), "audio timestamps disagree with the frames before them: resynchronising", "track", t.idx, "expected", seconds(c.next, ts), "got", seconds(at, ts))
			if v != nil && !v.clock.started {
				p.stats.Dropped += len(t.cur.samples)
				t.cur.reset()
			} else {
				t.close()
			}
			t.cuts = t.cuts[:0]
		}
	}
	c.next, c.hasNext = at+int64(dur), true
	if v != nil {
		switch {
		case !v.clock.started:
			// Held until the video's first key frame says where it starts.
			if !t.cur.empty() && at-t.cur.samples[0].time > ticks(p.opts.MaxGOP, ts) {
				return protocolErr(v, "%w: no key frame within %v of the audio's start: %s", ErrGOPTooLong, p.opts.MaxGOP, gopHint)
			}
		case !c.begun:
			if at+int64(dur) <= rescale(v.clock.start, 90000, ts, roundDown) {
				p.stats.Dropped++
				p.once(fmt.Sprint("preroll", t.idx), "dropping audio from before the video's start", "track", t.idx)
				return nil
			}
			c.begun = true
		}
		if len(t.cuts) > 0 {
			k := 0
			for k < len(t.cuts) && at >= rescale(t.cuts[k], 90000, ts, roundUp) {
				k++
			}
			if k > 0 {
				if err := p.flush(ctx, t, -1); err != nil {
					return err
				}
				t.cuts = append(t.cuts[:0], t.cuts[k:]...)
			}
		}
	} else if !p.opts.OnCut && !t.cur.empty() && at-t.cur.samples[0].time >= 2*ticks(p.opts.MinFragment, ts) {
		if err := p.flush(ctx, t, -1); err != nil {
			return err
		}
	}
	dst, err := p.reserve(t, held{time: at, dur: dur, sync: true}, len(s.Frame))
	if err != nil {
		return err
	}
	copy(dst, s.Frame)
	return nil
}

// startAudio drops the audio held that ends before the video's start (in
// 90 kHz ticks), so that the tracks start together within an audio frame.
func (p *Packager) startAudio(start int64) {
	p.video.clock.start = start
	for _, t := range p.tracks {
		if t.video || t.cur.empty() {
			continue
		}
		vs := rescale(start, 90000, t.timescale, roundDown)
		r := &t.cur
		k, n := 0, 0
		for k < len(r.samples) && r.samples[k].time+int64(r.samples[k].dur) <= vs {
			n += int(r.samples[k].size)
			k++
		}
		if k > 0 {
			p.stats.Dropped += k
			p.once(fmt.Sprint("preroll", t.idx), "dropping audio from before the video's start", "track", t.idx)
			rest := copy(r.samples, r.samples[k:])
			r.samples = r.samples[:rest]
			rest = copy(r.data[8:], r.data[8+n:])
			r.data = r.data[:8+rest]
		}
		t.clock.begun = !r.empty()
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

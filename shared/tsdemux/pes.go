package tsdemux

import (
	"context"
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/ac3"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/eac3"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/smoothcast/smoothcast/shared/packager"
)

// pesHeader is what a PES packet's header says.
type pesHeader struct {
	pts, dts int64 // 33-bit, as sent; dts == pts when only PTS is sent
	data     []byte
}

// parsePES reads a whole PES packet's header (H.222 2.4.3.6): the start
// code, a stream_id that carries the optional header, the PTS (and DTS).
func parsePES(b []byte) (pesHeader, error) {
	if len(b) < 9 || b[0] != 0 || b[1] != 0 || b[2] != 1 {
		return pesHeader{}, fmt.Errorf("%w: no PES start code", ErrPES)
	}
	switch id := b[3]; {
	case id == 0xbc || id == 0xbe || id == 0xbf || id == 0xf0 || id == 0xf1 || id == 0xff || id == 0xf2 || id == 0xf8:
		return pesHeader{}, fmt.Errorf("%w: stream_id 0x%02x carries no timestamps", ErrPES, id)
	}
	if b[6]&0xc0 != 0x80 {
		return pesHeader{}, fmt.Errorf("%w: bad optional header marker", ErrPES)
	}
	flags := b[7] >> 6
	hlen := int(b[8])
	if 9+hlen > len(b) {
		return pesHeader{}, fmt.Errorf("%w: header of %d bytes in a PES of %d", ErrPES, hlen, len(b))
	}
	var h pesHeader
	switch flags {
	case 2:
		if hlen < 5 {
			return pesHeader{}, fmt.Errorf("%w: header too short for its PTS", ErrPES)
		}
		h.pts = clock(b[9:14])
		h.dts = h.pts
	case 3:
		if hlen < 10 {
			return pesHeader{}, fmt.Errorf("%w: header too short for its PTS and DTS", ErrPES)
		}
		h.pts = clock(b[9:14])
		h.dts = clock(b[14:19])
	default:
		return pesHeader{}, ErrNoPTS
	}
	h.data = b[9+hlen:]
	return h, nil
}

// clock reads a 33-bit PTS or DTS.
func clock(b []byte) int64 {
	return int64(b[0]>>1&0x07)<<30 | int64(b[1])<<22 | int64(b[2]>>1)<<15 | int64(b[3])<<7 | int64(b[4]>>1)
}

const (
	wrap     = int64(1) << 33
	halfWrap = wrap / 2
)

// unwrap places a 33-bit timestamp nearest to the last one unwrapped.
func (d *Demuxer) unwrap(raw int64) int64 {
	if !d.refSet {
		d.ref, d.refSet = raw, true
		return raw
	}
	diff := (raw - d.ref) & (wrap - 1)
	if diff >= halfWrap {
		diff -= wrap
	}
	d.ref += diff
	return d.ref
}

// samples makes the samples of one PES of st.
func (d *Demuxer) samples(ctx context.Context, st *stream, h pesHeader) error {
	dts := d.unwrap(h.dts)
	cto := (h.pts - h.dts) & (wrap - 1)
	if cto >= halfWrap {
		return d.protocolErr(ErrBackwards, "PID %d: PTS %d before DTS %d", st.pid, h.pts, h.dts)
	}
	pts := dts + cto
	if st.hasLast && dts <= st.last {
		return d.protocolErr(ErrBackwards, "PID %d: %s after %s", st.pid, ticks(dts), ticks(st.last))
	}
	if len(h.data) == 0 {
		return d.protocolErr(ErrStream, "PID %d: empty PES", st.pid)
	}
	switch st.codec {
	case packager.H264, packager.HEVC:
		return d.video(ctx, st, dts, pts, h.data)
	case packager.AAC:
		return d.aac(ctx, st, pts, h.data)
	case packager.AC3:
		return d.ac3(ctx, st, pts, h.data)
	default:
		return d.eac3(ctx, st, pts, h.data)
	}
}

// ticks formats a 90 kHz time for an error.
func ticks(t int64) string {
	return fmt.Sprintf("%d (%v)", t, time.Duration(t)*time.Second/90000)
}

// video makes an access unit's sample, without its delimiter.
func (d *Demuxer) video(ctx context.Context, st *stream, dts, pts int64, data []byte) error {
	var au h264.AnnexB
	if err := au.Unmarshal(data); err != nil {
		return d.protocolErr(ErrStream, "PID %d: %v", st.pid, err)
	}
	nalus := au[:0]
	for _, n := range au {
		if len(n) == 0 || isAUD(st.codec, n) {
			continue
		}
		nalus = append(nalus, n[:len(n):len(n)])
	}
	if len(nalus) == 0 {
		return d.protocolErr(ErrStream, "PID %d: an access unit with no NAL unit but its delimiter", st.pid)
	}
	return d.emit(ctx, st, packager.Sample{DTS: dts, PTS: pts, NALUs: nalus}, len(data))
}

// isAUD says whether NAL unit n is an access unit delimiter.
func isAUD(c packager.Codec, n []byte) bool {
	if c == packager.H264 {
		return n[0]&0x1f == 9
	}
	return (n[0]>>1)&0x3f == 35
}

// frameTime is the PTS of the k-th frame of n samples each, after pts.
func frameTime(pts int64, k, n, rate int) int64 {
	return pts + int64(k)*int64(n)*90000/int64(rate)
}

// aacKey is what an ADTS header says of the stream's configuration.
type aacKey struct {
	typ      mpeg4audio.ObjectType
	rate     int
	channels uint8
}

// aac makes a sample of each ADTS frame; the first sets the track's
// AudioSpecificConfig, and the others must agree with it.
func (d *Demuxer) aac(ctx context.Context, st *stream, pts int64, data []byte) error {
	var pkts mpeg4audio.ADTSPackets
	if err := pkts.Unmarshal(data); err != nil {
		return d.protocolErr(ErrStream, "PID %d: ADTS: %v", st.pid, err)
	}
	for k, p := range pkts {
		if p.ChannelConfig == 0 {
			return d.protocolErr(ErrStream, "PID %d: ADTS channel configuration 0 (a program config element) is not supported", st.pid)
		}
		key := aacKey{p.Type, p.SampleRate, p.ChannelConfig}
		if st.audio == nil {
			asc, err := mpeg4audio.AudioSpecificConfig{Type: p.Type, SampleRate: p.SampleRate, ChannelConfig: p.ChannelConfig}.Marshal()
			if err != nil {
				return d.protocolErr(ErrStream, "PID %d: ADTS: %v", st.pid, err)
			}
			st.audio, st.audioKey, st.rate = asc, key, p.SampleRate
		} else if key != st.audioKey {
			return d.protocolErr(ErrConfigChanged, "PID %d: AAC object type %d, %d Hz, channel configuration %d", st.pid, p.Type, p.SampleRate, p.ChannelConfig)
		}
		t := frameTime(pts, k, 1024, st.rate)
		au := p.AU[:len(p.AU):len(p.AU)]
		if err := d.emit(ctx, st, packager.Sample{DTS: t, PTS: t, Frame: au}, len(au)); err != nil {
			return err
		}
	}
	return nil
}

// ac3 makes a sample of each AC-3 syncframe (1,536 samples each).
func (d *Demuxer) ac3(ctx context.Context, st *stream, pts int64, data []byte) error {
	for k := 0; len(data) > 0; k++ {
		var si ac3.SyncInfo
		if err := si.Unmarshal(data); err != nil {
			return d.protocolErr(ErrStream, "PID %d: AC-3: %v", st.pid, err)
		}
		n := si.FrameSize()
		if n > len(data) {
			return d.protocolErr(ErrStream, "PID %d: AC-3 syncframe of %d bytes, %d left in the PES", st.pid, n, len(data))
		}
		if err := d.rate(st, si.SampleRate()); err != nil {
			return err
		}
		t := frameTime(pts, k, 1536, st.rate)
		if err := d.emit(ctx, st, packager.Sample{DTS: t, PTS: t, Frame: data[:n:n]}, n); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// eac3 makes a sample of each E-AC-3 access unit: an independent
// substream 0 with the substreams that follow it.
func (d *Demuxer) eac3(ctx context.Context, st *stream, pts int64, data []byte) error {
	t := pts
	for len(data) > 0 {
		var si eac3.SyncInfo
		if err := si.Unmarshal(data); err != nil {
			return d.protocolErr(ErrStream, "PID %d: E-AC-3: %v", st.pid, err)
		}
		if si.Strmtyp == 1 || si.Substreamid != 0 {
			return d.protocolErr(ErrStream, "PID %d: E-AC-3 access unit starts with substream %d of type %d", st.pid, si.Substreamid, si.Strmtyp)
		}
		if err := d.rate(st, si.SampleRate()); err != nil {
			return err
		}
		n := 0
		for {
			size := si.FrameSize()
			if n+size > len(data) {
				return d.protocolErr(ErrStream, "PID %d: E-AC-3 syncframe of %d bytes, %d left in the PES", st.pid, size, len(data)-n)
			}
			n += size
			if n == len(data) {
				break
			}
			var next eac3.SyncInfo
			if err := next.Unmarshal(data[n:]); err != nil {
				return d.protocolErr(ErrStream, "PID %d: E-AC-3: %v", st.pid, err)
			}
			if next.Strmtyp != 1 && next.Substreamid == 0 {
				break // the next access unit
			}
			si = next
		}
		if err := d.emit(ctx, st, packager.Sample{DTS: t, PTS: t, Frame: data[:n:n]}, n); err != nil {
			return err
		}
		t += int64(si.NumBlocks()) * 256 * 90000 / int64(st.rate)
		data = data[n:]
	}
	return nil
}

// rate checks an AC-3 or E-AC-3 frame's sample rate against the track's.
func (d *Demuxer) rate(st *stream, rate int) error {
	if rate <= 0 {
		return d.protocolErr(ErrStream, "PID %d: no sample rate", st.pid)
	}
	if st.rate == 0 {
		st.rate = rate
	} else if rate != st.rate {
		return d.protocolErr(ErrConfigChanged, "PID %d: %d Hz, was %d Hz", st.pid, rate, st.rate)
	}
	return nil
}

// emit hands a sample over, or holds it while the tracks are not fixed.
func (d *Demuxer) emit(ctx context.Context, st *stream, s packager.Sample, size int) error {
	d.stats.Samples++
	st.last, st.hasLast = s.DTS, true
	if d.fixed {
		if st.index < 0 {
			return nil
		}
		return d.h.Sample(ctx, st.index, s)
	}
	st.hasData = true
	d.held = append(d.held, heldSample{st: st, s: s})
	d.heldBytes += size
	if d.heldBytes > d.opts.MaxProbe || time.Duration(s.DTS-d.held[0].s.DTS)*time.Second/90000 > d.opts.ProbeDuration {
		return d.fix(ctx)
	}
	for _, o := range d.order {
		if !o.hasData {
			return nil
		}
	}
	return d.fix(ctx)
}

// fix hands the tracks to the Handler, then the samples held.
func (d *Demuxer) fix(ctx context.Context) error {
	d.fixed = true
	for _, st := range d.order {
		if !st.hasData {
			d.log.Info("mpeg-ts stream left out: no data before the tracks were fixed", "pid", st.pid, "stream_type", fmt.Sprintf("0x%02x", uint8(st.streamType)))
			continue
		}
		st.index = len(d.tracks)
		d.tracks = append(d.tracks, packager.Track{Codec: st.codec, AudioConfig: st.audio, Language: st.lang})
	}
	if len(d.tracks) == 0 {
		return d.protocolErr(ErrNoStreams, "")
	}
	if err := d.h.Tracks(ctx, d.tracks); err != nil {
		return err
	}
	held := d.held
	d.held, d.heldBytes = nil, 0
	for _, h := range held {
		if err := d.h.Sample(ctx, h.st.index, h.s); err != nil {
			return err
		}
	}
	return nil
}

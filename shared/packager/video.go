package packager

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/hevc"
)

// NAL unit classes.
const (
	nalOther = iota
	nalVCL
	nalKey // a VCL NAL unit of a key frame: H.264 IDR, HEVC IRAP
	nalAUD
	nalVPS
	nalSPS
	nalPPS
)

// classify says what NAL unit n of track t is; ok is false for a NAL
// unit too short to have a header.
func (t *track) classify(n []byte) (class int, ok bool) {
	if t.Codec == H264 {
		if len(n) < 1 {
			return 0, false
		}
		switch typ := n[0] & 0x1f; {
		case typ == 5:
			return nalKey, true
		case typ >= 1 && typ <= 4:
			return nalVCL, true
		case typ == 7:
			return nalSPS, true
		case typ == 8:
			return nalPPS, true
		case typ == 9:
			return nalAUD, true
		}
		return nalOther, true
	}
	if len(n) < 2 {
		return 0, false
	}
	switch typ := n[0] >> 1 & 0x3f; {
	case typ >= 16 && typ <= 23:
		return nalKey, true
	case typ <= 31:
		return nalVCL, true
	case typ == 32:
		return nalVPS, true
	case typ == 33:
		return nalSPS, true
	case typ == 34:
		return nalPPS, true
	case typ == 35:
		return nalAUD, true
	}
	return nalOther, true
}

// configureVideo sets the track's parameter sets, once they are complete
// and the SPS reads.
func (t *track) configureVideo(vps, sps, pps [][]byte) error {
	if len(sps) == 0 || len(pps) == 0 || t.Codec == HEVC && len(vps) == 0 {
		return fmt.Errorf("%w: incomplete (%d VPS, %d SPS, %d PPS)", ErrParameterSets, len(vps), len(sps), len(pps))
	}
	format, err := t.spsFormat(sps[0])
	if err != nil {
		return err
	}
	clone := func(in [][]byte) [][]byte {
		out := make([][]byte, len(in))
		for i, b := range in {
			out[i] = bytes.Clone(b)
		}
		return out
	}
	t.vps, t.sps, t.pps, t.format, t.configured = clone(vps), clone(sps), clone(pps), format, true
	return nil
}

// spsFormat reads an SPS and says what it describes, for messages.
func (t *track) spsFormat(sps []byte) (string, error) {
	if t.Codec == H264 {
		s, err := avc.ParseSPSNALUnit(sps, false)
		if err != nil {
			return "", fmt.Errorf("%w: SPS: %w", ErrParameterSets, err)
		}
		return fmt.Sprintf("%dx%d profile %d level %d", s.Width, s.Height, s.Profile, s.Level), nil
	}
	s, err := hevc.ParseSPSNALUnit(sps)
	if err != nil {
		return "", fmt.Errorf("%w: SPS: %w", ErrParameterSets, err)
	}
	w, h := s.ImageSize()
	return fmt.Sprintf("%dx%d profile %d level %d", w, h, s.ProfileTierLevel.GeneralProfileIDC, s.ProfileTierLevel.GeneralLevelIDC), nil
}

// inEntry reports whether parameter set n (of class c) is one of the
// sample entry's.
func (t *track) inEntry(c int, n []byte) bool {
	list := t.pps
	switch c {
	case nalVPS:
		list = t.vps
	case nalSPS:
		list = t.sps
	}
	for _, b := range list {
		if bytes.Equal(b, n) {
			return true
		}
	}
	return false
}

// start configures the video track at its first key frame: the key
// frame's own parameter sets when complete, else the Track's.
func (t *track) start(s Sample) error {
	if t.Codec == AV1 {
		return t.startAV1(s.Frame)
	}
	var vps, sps, pps [][]byte
	for _, n := range s.NALUs {
		switch c, _ := t.classify(n); c {
		case nalVPS:
			vps = append(vps, n)
		case nalSPS:
			sps = append(sps, n)
		case nalPPS:
			pps = append(pps, n)
		}
	}
	if len(sps) > 0 || len(pps) > 0 || len(vps) > 0 {
		err := t.configureVideo(vps, sps, pps)
		if err == nil || !t.preset {
			return err
		}
		// An incomplete in-band set: the Track's stand.
	}
	if !t.configured {
		return fmt.Errorf("%w: the first key frame carries none and the source gave none out of band", ErrParameterSets)
	}
	return nil
}

// checkParameterSets refuses in-band parameter sets that differ from the
// sample entry's.
func (t *track) checkParameterSets(s Sample) error {
	if t.Codec == AV1 {
		return t.checkAV1(s.Frame)
	}
	for _, n := range s.NALUs {
		c, _ := t.classify(n)
		if c != nalVPS && c != nalSPS && c != nalPPS || t.inEntry(c, n) {
			continue
		}
		what := map[int]string{nalVPS: "VPS", nalSPS: "SPS", nalPPS: "PPS"}[c]
		change := "a " + what + " other than the stream's first"
		if c == nalSPS {
			if f, err := t.spsFormat(n); err == nil && f != t.format {
				change = fmt.Sprintf("%s to %s", t.format, f)
			}
		}
		return fmt.Errorf("%w change mid-stream (%s): a stream keeps its resolution and coding; start a new stream (another stream name) for new settings", ErrParameterSets, change)
	}
	return nil
}

// scan reads an access unit: whether it is a key frame, holds a picture
// and parameter sets, and the bytes it takes in a sample.
func (t *track) scan(s Sample) (key, picture, sets bool, size int, err error) {
	if t.Codec == AV1 {
		return t.scanAV1(s.Frame)
	}
	for _, n := range s.NALUs {
		c, ok := t.classify(n)
		switch {
		case !ok || c == nalAUD:
		case c == nalVPS || c == nalSPS || c == nalPPS:
			sets = true
		default:
			size += 4 + len(n)
			picture = picture || c == nalVCL || c == nalKey
			key = key || c == nalKey
		}
	}
	return key, picture, sets, size, nil
}

func (p *Packager) writeVideo(ctx context.Context, t *track, s Sample) error {
	key, vcl, sets, size, err := t.scan(s)
	if err != nil {
		return protocolErr(t, "%w", err)
	}
	maxGOP := ticks(p.opts.MaxGOP, 90000)
	if s.DTS > maxTime || s.DTS < -maxTime || s.PTS > maxTime || s.PTS < -maxTime {
		return protocolErr(t, "%w: DTS %d, PTS %d: more than 150 years of 90 kHz ticks", ErrTimestamps, s.DTS, s.PTS)
	}
	if d := s.PTS - s.DTS; d > maxGOP || d < -maxGOP {
		return protocolErr(t, "%w: PTS %s from its DTS", ErrTimestamps, seconds(d, 90000))
	}
	if !vcl {
		p.stats.Dropped++
		p.once(fmt.Sprint("novcl", t.idx), "dropping video access units without a picture", "track", t.idx)
		return nil
	}
	c := &t.clock
	if !c.started {
		if !key {
			if p.opts.OnCut {
				// Held, for Cut to refuse the segment.
				return p.appendVideo(t, s, false, size)
			}
			p.stats.Dropped++
			p.once(fmt.Sprint("prekey", t.idx), "dropping video before the first key frame", "track", t.idx)
			if !c.waiting {
				c.waiting, c.waitDTS = true, s.DTS
			} else if s.DTS-c.waitDTS > maxGOP {
				return protocolErr(t, "%w: no key frame in the first %s of video (limit %v): %s", ErrGOPTooLong, seconds(s.DTS-c.waitDTS, 90000), p.opts.MaxGOP, gopHint)
			}
			return nil
		}
		if err := t.start(s); err != nil {
			return protocolErr(t, "%w", err)
		}
		if p.opts.OnCut {
			// Anything held before the key frame makes this segment one that
			// Cut refuses; keep it so.
			if !t.cur.empty() {
				return p.appendVideo(t, s, true, size)
			}
		}
		c.started, c.waiting, c.hasLast = true, false, false
		c.delay = max(s.PTS-s.DTS, 0)
		p.startAudio(s.DTS + c.delay)
	} else if sets {
		if err := t.checkParameterSets(s); err != nil {
			return protocolErr(t, "%w", err)
		}
	}
	if c.hasLast {
		step := s.DTS - c.lastDTS
		switch {
		case step > 0 && step <= maxGOP:
		case p.opts.OnCut:
			return protocolErr(t, "%w: DTS goes from %d to %d (%s) within a segment", ErrTimestamps, c.lastDTS, s.DTS, seconds(step, 90000))
		case !key:
			p.stats.OutOfOrder++
			if step < 0 {
				c.needKey = true // what follows may reference what was dropped
			}
			p.once(fmt.Sprint("order", t.idx), "dropping video whose DTS does not follow the previous sample's until the next key frame", "track", t.idx, "dts", s.DTS, "previous", c.lastDTS)
			return nil
		default:
			// A key frame after a jump: every track's fragment ends here, and
			// the session sees the jump.
			p.log.Warn("video timestamps jump: new fragments from this key frame", "track", t.idx, "dts", s.DTS, "previous", c.lastDTS)
			if err := p.writeAll(ctx); err != nil {
				return err
			}
			c.delay = max(s.PTS-s.DTS, 0)
		}
	}
	if c.needKey || c.flushed {
		if !key {
			if c.flushed {
				p.stats.Dropped++
			} else {
				p.stats.OutOfOrder++
			}
			return nil
		}
		c.needKey, c.flushed = false, false
	}
	if key {
		c.lastKey = s.DTS
	} else if d := s.DTS - c.lastKey; d > maxGOP {
		return protocolErr(t, "%w: no key frame for %s (limit %v): %s", ErrGOPTooLong, seconds(d, 90000), p.opts.MaxGOP, gopHint)
	}
	dts := s.DTS + c.delay
	// The fragment's length is measured in presentation time, key frame
	// to key frame: in an open GOP (an HEVC CRA and its leading
	// pictures) the key frame is decoded before pictures shown ahead of
	// it, and its decode time comes a few frames short of the GOP's.
	if key && !p.opts.OnCut && !t.cur.empty() && (p.cutNext || s.PTS-t.cur.presentation(0) >= ticks(p.opts.MinFragment-cutSlack, 90000)) {
		if err := p.videoCut(ctx, t, dts); err != nil {
			return err
		}
		p.cutNext = false
	}
	return p.appendVideo(t, s, key, size)
}

// cutSlack is how much shorter than MinFragment a fragment a key frame
// ends may be: timestamps in milliseconds (FLV) or rounded from another
// timescale put a key frame one GOP after the last up to a millisecond or
// two early, and a GOP of exactly MinFragment must still make a fragment
// of its own rather than two GOPs.
const cutSlack = 10 * time.Millisecond

// gopHint tells an operator what to set when key frames are too far apart.
const gopHint = "set the encoder's keyframe interval to 2 s (OBS: Settings > Output > Keyframe Interval 2 s; ffmpeg: -g at twice the frame rate, or -force_key_frames \"expr:gte(t,n_forced*2)\")"

// appendVideo adds an access unit to the video track's run, without its
// AUDs and parameter sets, each NAL unit after its 4-byte length.
func (p *Packager) appendVideo(t *track, s Sample, key bool, size int) error {
	c := &t.clock
	h := held{time: s.DTS + c.delay, cto: int32(s.PTS - s.DTS - c.delay), sync: key}
	dst, err := p.reserve(t, h, size)
	if err != nil {
		return err
	}
	if t.Codec == AV1 {
		t.appendAV1(dst, s.Frame)
		c.lastDTS, c.hasLast = s.DTS, true
		return nil
	}
	for _, n := range s.NALUs {
		if cl, ok := t.classify(n); !ok || cl == nalAUD || cl == nalVPS || cl == nalSPS || cl == nalPPS {
			continue
		}
		binary.BigEndian.PutUint32(dst, uint32(len(n)))
		copy(dst[4:], n)
		dst = dst[4+len(n):]
	}
	c.lastDTS, c.hasLast = s.DTS, true
	return nil
}

// videoCut ends the video's fragment before the key frame at dts and
// tells the other tracks to end theirs at their first frame at or after
// it.
func (p *Packager) videoCut(ctx context.Context, v *track, dts int64) error {
	if err := p.emit(ctx, v, &v.cur, dts, true); err != nil {
		return err
	}
	v.cur.reset()
	for _, t := range p.tracks {
		if t.video || t.timescale == 0 || t.omitted {
			continue
		}
		cutA := rescale(dts, 90000, t.timescale, roundUp)
		if !t.cur.empty() && t.cur.samples[len(t.cur.samples)-1].time >= cutA {
			// The audio is ahead of the video: it ends here and now.
			if err := p.flush(ctx, t, cutA); err != nil {
				return err
			}
			continue
		}
		if len(t.cuts) == 64 {
			// An audio track 64 fragments behind: let its fragment span
			// two of the video's rather than hold an ever longer list.
			t.cuts = slices.Delete(t.cuts, 0, 1)
		}
		t.cuts = append(t.cuts, dts)
	}
	return nil
}

// writeAll writes every track's fragment held: where the video's
// timestamps jump, at Cut, Flush and End. The video's last sample lasts
// as long as the one before it.
func (p *Packager) writeAll(ctx context.Context) error {
	for _, t := range p.tracks {
		var err error
		if t.video {
			err = p.emit(ctx, t, &t.cur, 0, false)
			t.cur.reset()
		} else {
			err = p.flush(ctx, t, -1)
			t.cuts = t.cuts[:0]
		}
		if err != nil {
			return err
		}
	}
	return nil
}

package packager

import (
	"bytes"
	"fmt"

	"github.com/Eyevinn/mp4ff/av1"
)

// AV1 OBU types (AV1 spec 6.2.2).
const (
	obuSequenceHeader     = 1
	obuTemporalDelimiter  = 2
	obuFrameHeader        = 3
	obuFrame              = 6
	obuPadding            = 15
	av1FrameTypeKey       = 0
	maxAV1OBUsPerTemporal = 1024
)

// obuSpan is one OBU of a temporal unit: where its bytes lie, and its
// payload's.
type obuSpan struct {
	typ        byte
	start, end int // the whole OBU
	payload    int // where its payload starts
}

// scanAV1 reads a temporal unit (OBUs of the low-overhead format, as
// Enhanced RTMP and MP4 carry them) into t.obus: whether it holds a
// picture, a shown key frame, a sequence header, and the bytes kept of it
// (every OBU but temporal delimiters and padding, which MP4 samples go
// without).
func (t *track) scanAV1(tu []byte) (key, picture, seq bool, size int, err error) {
	t.obus = t.obus[:0]
	for off := 0; off < len(tu); {
		h, err := av1.ParseOBUHeader(tu[off:])
		if err != nil {
			return false, false, false, 0, fmt.Errorf("%w: OBU at byte %d of %d: %w", ErrBadFrame, off, len(tu), err)
		}
		p, end := off+h.HeaderSize, len(tu)
		if h.HasSizeField {
			n, k, err := av1.ReadLEB128(tu[p:])
			if err != nil || n > uint64(len(tu)-p-k) {
				return false, false, false, 0, fmt.Errorf("%w: OBU at byte %d of %d: size %d past the temporal unit (%v)", ErrBadFrame, off, len(tu), n, err)
			}
			p += k
			end = p + int(n)
		}
		if len(t.obus) == maxAV1OBUsPerTemporal {
			return false, false, false, 0, fmt.Errorf("%w: more than %d OBUs in a temporal unit", ErrBadFrame, maxAV1OBUsPerTemporal)
		}
		o := obuSpan{typ: byte(h.Type), start: off, end: end, payload: p}
		switch o.typ {
		case obuTemporalDelimiter, obuPadding:
		case obuSequenceHeader:
			seq = true
			size += end - off
		case obuFrame, obuFrameHeader:
			picture = true
			if p < end && t.isKeyFrameHeader(tu[p:end], tu) {
				key = true
			}
			size += end - off
		default:
			size += end - off
		}
		t.obus = append(t.obus, o)
		off = end
	}
	return key, picture, seq, size, nil
}

// isKeyFrameHeader reports whether a frame header (AV1 spec 5.9.2) is a
// shown key frame's: show_existing_frame 0, frame_type KEY_FRAME,
// show_frame 1. A reduced still picture header is one.
func (t *track) isKeyFrameHeader(hdr, tu []byte) bool {
	reduced := t.av1seq != nil && t.av1seq.ReducedStillPictureHeader
	if t.av1seq == nil {
		// Before the track is configured: the temporal unit's own
		// sequence header says.
		for _, o := range t.obus {
			if o.typ == obuSequenceHeader {
				if sh, err := av1.ParseSequenceHeader(tu[o.payload:o.end]); err == nil {
					reduced = sh.ReducedStillPictureHeader
				}
			}
		}
	}
	if reduced {
		return true
	}
	b := hdr[0]
	return b>>7 == 0 && b>>5&3 == av1FrameTypeKey && b>>4&1 == 1
}

// configureAV1 sets the track's av1C from an AV1CodecConfigurationRecord,
// or from a sequence header OBU (rec nil).
func (t *track) configureAV1(rec, seqOBU []byte) error {
	var c av1.CodecConfRec
	var sh *av1.SequenceHeader
	var err error
	if rec != nil {
		if c, err = av1.DecodeAV1CodecConfRec(rec); err != nil {
			return fmt.Errorf("%w: AV1CodecConfigurationRecord: %w", ErrParameterSets, err)
		}
		if sh, err = c.SequenceHeader(); err != nil {
			return fmt.Errorf("%w: AV1CodecConfigurationRecord: %w", ErrParameterSets, err)
		}
		c.ConfigOBUs = bytes.Clone(c.ConfigOBUs)
	} else {
		obus, err := av1.SplitOBUs(seqOBU)
		if err != nil || len(obus) != 1 {
			return fmt.Errorf("%w: sequence header OBU: %v", ErrParameterSets, err)
		}
		if sh, err = av1.ParseSequenceHeader(obus[0].Payload); err != nil {
			return fmt.Errorf("%w: sequence header: %w", ErrParameterSets, err)
		}
		c = av1.CodecConfRecFromSequenceHeader(sh, obus[0].Encode())
	}
	seq, err := av1.SplitOBUs(c.ConfigOBUs)
	if err != nil {
		return fmt.Errorf("%w: configOBUs: %w", ErrParameterSets, err)
	}
	t.av1seqOBU = nil
	for _, o := range seq {
		if o.Header.Type == obuSequenceHeader {
			t.av1seqOBU = o.Payload
		}
	}
	t.av1c, t.av1seq, t.configured = c, sh, true
	t.format = fmt.Sprintf("%dx%d profile %d level %d", sh.Width(), sh.Height(), sh.SeqProfile, sh.SeqLevelIdx0)
	return nil
}

// startAV1 configures an AV1 track at its first key frame: from the
// temporal unit's sequence header, else from the Track's configuration.
func (t *track) startAV1(tu []byte) error {
	for _, o := range t.obus {
		if o.typ == obuSequenceHeader {
			err := t.configureAV1(nil, tu[o.start:o.end])
			if err == nil || !t.preset {
				return err
			}
		}
	}
	if !t.configured {
		return fmt.Errorf("%w: the first key frame carries no sequence header and the source gave no AV1CodecConfigurationRecord", ErrParameterSets)
	}
	return nil
}

// checkAV1 refuses a sequence header that differs from the sample entry's.
func (t *track) checkAV1(tu []byte) error {
	for _, o := range t.obus {
		if o.typ != obuSequenceHeader || bytes.Equal(tu[o.payload:o.end], t.av1seqOBU) {
			continue
		}
		change := "a sequence header other than the stream's first"
		if sh, err := av1.ParseSequenceHeader(tu[o.payload:o.end]); err == nil {
			if f := fmt.Sprintf("%dx%d profile %d level %d", sh.Width(), sh.Height(), sh.SeqProfile, sh.SeqLevelIdx0); f != t.format {
				change = t.format + " to " + f
			}
		}
		return fmt.Errorf("%w change mid-stream (%s): a stream keeps its resolution and coding; start a new stream (another stream name) for new settings", ErrParameterSets, change)
	}
	return nil
}

// appendAV1 copies the OBUs kept of a temporal unit to dst, each with its
// size field (the last OBU of a temporal unit may go without one).
func (t *track) appendAV1(dst, tu []byte) {
	for _, o := range t.obus {
		if o.typ == obuTemporalDelimiter || o.typ == obuPadding {
			continue
		}
		dst = dst[copy(dst, tu[o.start:o.end]):]
	}
}

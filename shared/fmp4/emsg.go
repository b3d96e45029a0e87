package fmp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"

	mp4bits "github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/scte35"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// MaxEmsg is the largest emsg box (header included) the pipeline
// carries: a splice_info_section is at most scte35.MaxSection bytes, and
// its scheme and value a few dozen more.
const MaxEmsg = scte35.MaxSection + 512

// MaxFragmentEvents is the most events one stored fragment carries: the
// relay keeps no more of the emsg boxes that come before one moof, so
// that a stored fragment's head (its emsg boxes and its moof) stays
// within what the manifest function reads.
const MaxFragmentEvents = 8

// unknownDuration is emsg's event_duration for "not known".
const unknownDuration = math.MaxUint32

// Errors an emsg is refused with.
var (
	ErrEmsgTooLarge = fmt.Errorf("emsg over %d bytes", MaxEmsg)
	ErrEmsgScheme   = errors.New("emsg of a scheme the pipeline does not carry")
	ErrEmsgTime     = errors.New("emsg time out of range")
)

// DecodeEmsg decodes an emsg box (header included, version 0 or 1) of at
// most MaxEmsg bytes.
func DecodeEmsg(b []byte) (*mp4.EmsgBox, error) {
	if len(b) > MaxEmsg {
		return nil, ErrEmsgTooLarge
	}
	box, err := decodeEmsgBox(b)
	if err != nil {
		return nil, fmt.Errorf("decode emsg: %w", err)
	}
	e, ok := box.(*mp4.EmsgBox)
	if !ok {
		return nil, fmt.Errorf("decode emsg: got %s box", box.Type())
	}
	if e.Version > 1 {
		return nil, fmt.Errorf("decode emsg: version %d", e.Version)
	}
	return e, nil
}

// decodeEmsgBox runs mp4ff's decoder, a short box being an error rather
// than a panic.
func decodeEmsgBox(b []byte) (box mp4.Box, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed box: %v", r)
		}
	}()
	sr := mp4bits.NewFixedSliceReader(b)
	box, err = mp4.DecodeBoxSR(0, sr)
	if err == nil && sr.AccError() != nil {
		err = sr.AccError()
	}
	return box, err
}

// EventOf turns an emsg of the scheme the pipeline carries (SCTE-35:
// scte35.Scheme, message data a splice_info_section that scte35.Parse
// takes) into an event on a track's timeline (timescale ts): a version 0
// emsg's time counts from start, the start of the fragment it came before
// on that timeline; a version 1 emsg's time is the encoder's, to which
// offset (the session's rebase, ticks of ts) is added.
func EventOf(e *mp4.EmsgBox, start uint64, ts uint32, offset int64) (timeline.Event, error) {
	if e.SchemeIDURI != scte35.Scheme {
		return timeline.Event{}, fmt.Errorf("%w: %q", ErrEmsgScheme, e.SchemeIDURI)
	}
	if _, err := scte35.Parse(e.MessageData); err != nil {
		return timeline.Event{}, err
	}
	if e.TimeScale == 0 || ts == 0 {
		return timeline.Event{}, fmt.Errorf("%w: timescale 0", ErrEmsgTime)
	}
	// The emsg's value is left out: the stored emsg has none, as the
	// InbandEventStream that announces them says (DASH players match an
	// emsg to its InbandEventStream by scheme and value).
	ev := timeline.Event{Scheme: e.SchemeIDURI, ID: e.ID, Data: e.MessageData}
	var ok bool
	if e.Version == 0 {
		var delta uint64
		delta, ok = rescale(uint64(e.PresentationTimeDelta), uint64(e.TimeScale), uint64(ts))
		ev.Time, ok = start+delta, ok && delta <= math.MaxUint64-start
	} else {
		var t uint64
		t, ok = rescale(e.PresentationTime, uint64(e.TimeScale), uint64(ts))
		switch {
		case offset >= 0:
			ev.Time, ok = t+uint64(offset), ok && t <= math.MaxUint64-uint64(offset)
		default:
			ev.Time, ok = t-uint64(-offset), ok && t >= uint64(-offset)
		}
	}
	if !ok {
		return timeline.Event{}, fmt.Errorf("%w: %d/%d", ErrEmsgTime, e.PresentationTime|uint64(e.PresentationTimeDelta), e.TimeScale)
	}
	if e.EventDuration != unknownDuration {
		ev.Duration, _ = rescale(uint64(e.EventDuration), uint64(e.TimeScale), uint64(ts))
	}
	return ev, nil
}

// rescale converts t ticks of from into ticks of to (rounding down); ok
// is false when the result does not fit 64 bits.
func rescale(t, from, to uint64) (uint64, bool) {
	if from == to {
		return t, true
	}
	hi, lo := bits.Mul64(t, to)
	if hi >= from {
		return 0, false
	}
	q, _ := bits.Div64(hi, lo, from)
	return q, true
}

// AppendEmsg appends ev as the version 1 emsg a stored fragment carries:
// its time in the track's timescale ts, on the channel's timeline (what
// DASH in-band events and the manifest function read).
func AppendEmsg(dst []byte, ev timeline.Event, ts uint32) []byte {
	e := &mp4.EmsgBox{Version: 1, TimeScale: ts, PresentationTime: ev.Time, EventDuration: unknownDuration,
		ID: ev.ID, SchemeIDURI: ev.Scheme, MessageData: ev.Data}
	if ev.Duration > 0 && ev.Duration < unknownDuration {
		e.EventDuration = uint32(ev.Duration)
	}
	sw := mp4bits.NewFixedSliceWriter(int(e.Size()))
	_ = e.EncodeSW(sw) // a writer of the box's own size
	return append(dst, sw.Bytes()...)
}

// StoredHead splits the head of a stored fragment: the emsg boxes that
// come before its moof (at most MaxFragmentEvents), and where the moof
// starts. need is how many bytes of the object the emsg boxes and the
// moof take: when b is shorter, read that much and call again.
func StoredHead(b []byte) (emsgs []*mp4.EmsgBox, moofAt int, need int64, err error) {
	for n := 0; ; n++ {
		if len(b)-moofAt < 8 {
			return nil, moofAt, int64(moofAt) + 8, nil
		}
		size := uint64(binary.BigEndian.Uint32(b[moofAt:]))
		typ := string(b[moofAt+4 : moofAt+8])
		if size < 8 {
			// 0 (to the end of the object) and 1 (a 64-bit size) are
			// not what the relay writes, nor is anything shorter than
			// a header.
			return nil, moofAt, 0, fmt.Errorf("fragment's head: %q box with size field %d", typ, size)
		}
		if typ != "emsg" {
			if size > MaxMoof {
				return nil, moofAt, 0, fmt.Errorf("moof of %d bytes is larger than the %d bytes the pipeline carries (MaxMoof)", size, MaxMoof)
			}
			return emsgs, moofAt, int64(moofAt) + int64(size), nil
		}
		if n == MaxFragmentEvents || size > MaxEmsg {
			return nil, moofAt, 0, fmt.Errorf("fragment's head: more than %d emsg boxes, or one over %d bytes", MaxFragmentEvents, MaxEmsg)
		}
		if int64(len(b)-moofAt) < int64(size) {
			return nil, moofAt, int64(moofAt) + int64(size) + 8, nil
		}
		e, err := DecodeEmsg(b[moofAt : moofAt+int(size)])
		if err != nil {
			return nil, moofAt, 0, err
		}
		emsgs = append(emsgs, e)
		moofAt += int(size)
	}
}

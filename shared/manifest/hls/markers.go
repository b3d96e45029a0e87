package hls

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/smoothcast/smoothcast/shared/scte35"
)

// Marker is an ad marker an encoder's media playlist carries, placed on
// one of its segments: EXT-X-CUE-OUT[:duration] and EXT-X-CUE-IN at the
// start of the segment they precede, EXT-X-DATERANGE with SCTE35-OUT,
// SCTE35-IN or SCTE35-CMD at its START-DATE (in the segment whose program
// date-time span holds it; before the next segment when the playlist has
// no EXT-X-PROGRAM-DATE-TIME).
type Marker struct {
	// Segment is the index in Playlist.Segments of the segment it falls
	// in, and Offset how far after the segment's start.
	Segment int
	Offset  time.Duration
	Kind    scte35.Kind
	// Duration is CUE-OUT's, or DATERANGE's PLANNED-DURATION (else
	// DURATION); 0 when it says none.
	Duration time.Duration
	// Section is DATERANGE's SCTE35-OUT, -IN or -CMD (checked with
	// scte35.Parse); nil for CUE tags, which carry none.
	Section []byte
	// ID is the DATERANGE's ID; "" for CUE tags.
	ID   string
	Line int
}

// Markers reads the ad markers of a media playlist (its EXT-X-CUE-OUT,
// EXT-X-CUE-IN and EXT-X-DATERANGE tags with an SCTE35 attribute, kept in
// Other); EXT-X-CUE-OUT-CONT says nothing new. A tag after the last
// segment is left for the playlist that lists the segment after it. A
// malformed marker is one of errs, naming its line, and left out: a bad
// marker never fails the playlist.
func Markers(pl *Playlist) (ms []Marker, errs []error) {
	pdt := programDateTimes(pl)
	for _, tag := range pl.Other {
		next := nextSegment(pl, tag.Line)
		var m Marker
		var err error
		switch tag.Name {
		case "EXT-X-CUE-OUT":
			m.Kind = scte35.Out
			m.Duration, err = cueDuration(tag.Value)
		case "EXT-X-CUE-IN":
			m.Kind = scte35.In
		case "EXT-X-DATERANGE":
			var ok bool
			m, ok, err = dateRange(pl, pdt, next, tag.Value)
			if !ok && err == nil {
				continue // no SCTE35 attribute: not an ad marker
			}
			next = m.Segment
		default:
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("hls: line %d: #%s: %w", tag.Line, tag.Name, err))
			continue
		}
		if next < 0 || next >= len(pl.Segments) {
			continue
		}
		m.Segment, m.Line = next, tag.Line
		ms = append(ms, m)
	}
	return ms, errs
}

// nextSegment is the index of the first segment whose URI comes after
// line (len(pl.Segments) when none does).
func nextSegment(pl *Playlist, line int) int {
	for i, s := range pl.Segments {
		if s.Line > line {
			return i
		}
	}
	return len(pl.Segments)
}

// programDateTimes are the segments' program date-times (nil when the
// playlist has none): an EXT-X-PROGRAM-DATE-TIME where one is given, the
// previous segment's plus its duration after it, and counted back from
// the first one given before it.
func programDateTimes(pl *Playlist) []time.Time {
	first := -1
	for i, s := range pl.Segments {
		if !s.ProgramDateTime.IsZero() {
			first = i
			break
		}
	}
	if first < 0 {
		return nil
	}
	out := make([]time.Time, len(pl.Segments))
	out[first] = pl.Segments[first].ProgramDateTime
	for i := first - 1; i >= 0; i-- {
		out[i] = out[i+1].Add(-pl.Segments[i].Duration)
	}
	for i := first + 1; i < len(pl.Segments); i++ {
		out[i] = pl.Segments[i].ProgramDateTime
		if out[i].IsZero() {
			out[i] = out[i-1].Add(pl.Segments[i-1].Duration)
		}
	}
	return out
}

// cueDuration reads EXT-X-CUE-OUT's value: empty, seconds, or
// DURATION=seconds (as some encoders write it).
func cueDuration(v string) (time.Duration, error) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "DURATION=")
	if v == "" {
		return 0, nil
	}
	return parseSeconds(v)
}

// dateRange reads an EXT-X-DATERANGE: ok is false when it has no SCTE35
// attribute. Placed by its START-DATE among the segments' program
// date-times pdt, else before segment next.
func dateRange(pl *Playlist, pdt []time.Time, next int, value string) (m Marker, ok bool, err error) {
	var id, start, out, in, cmd, planned, dur string
	err = readAttributes(value, map[string]*string{"ID": &id, "START-DATE": &start, "SCTE35-OUT": &out, "SCTE35-IN": &in,
		"SCTE35-CMD": &cmd, "PLANNED-DURATION": &planned, "DURATION": &dur}, func(string, string) error { return nil })
	if err != nil {
		return m, true, err
	}
	hex := ""
	switch {
	case out != "":
		m.Kind, hex = scte35.Out, out
	case in != "":
		m.Kind, hex = scte35.In, in
	case cmd != "":
		m.Kind, hex = scte35.Cmd, cmd
	default:
		return m, false, nil
	}
	if id == "" {
		return m, true, errors.New("no ID")
	}
	m.ID = id
	if m.Section, err = scte35.ParseHex(hex); err == nil {
		_, err = scte35.Parse(m.Section)
	}
	if err != nil {
		return m, true, err
	}
	for _, d := range []string{dur, planned} {
		if d != "" {
			if m.Duration, err = parseSeconds(d); err != nil {
				return m, true, err
			}
		}
	}
	m.Segment = next
	if pdt == nil {
		return m, true, nil
	}
	at, err := parseDateTime(start)
	if err != nil {
		return m, true, fmt.Errorf("START-DATE: %w", err)
	}
	m.Segment = -1
	for i := range pdt {
		if !at.Before(pdt[i]) {
			m.Segment, m.Offset = i, at.Sub(pdt[i])
		}
	}
	if m.Segment < 0 {
		return m, true, nil // before the first segment: the window slid past it
	}
	if last := len(pl.Segments) - 1; m.Segment == last && m.Offset >= pl.Segments[last].Duration {
		m.Segment = len(pl.Segments) // after the last segment: a later playlist places it
	}
	return m, true, nil
}

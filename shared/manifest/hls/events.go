package hls

import (
	"strconv"
	"time"

	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/scte35"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// QueryMarkers is the query parameter that chooses how media playlists
// carry ad markers: MarkersCue for EXT-X-CUE-OUT, -CONT and -IN (what
// many ad servers still read), else EXT-X-DATERANGE.
const (
	QueryMarkers = layout.QueryMarkers
	MarkersCue   = "cue"
)

// dateFormat is how START-DATE and PROGRAM-DATE-TIME write times.
const dateFormat = "2006-01-02T15:04:05.000Z07:00"

// query is what a playlist's URI carries on to the playlists it leads
// to: the time-shift range, and the choice of marker tags.
func query(p *timeline.Presentation) string {
	q := ""
	if p.Range != nil {
		q = p.Range.Query
	}
	if p.CueMarkers {
		if q != "" {
			q += "&"
		}
		q += QueryMarkers + "=" + MarkersCue
	}
	return q
}

// markers writes a media playlist's ad markers (timeline.Presentation
// Events), each before the segment its splice point falls in (at its own
// time: a DATERANGE's START-DATE is the splice point, not the segment's
// start), those after the last segment at the end (a live playlist's
// breaks announced ahead).
//
// As EXT-X-DATERANGE (RFC 8216bis 4.4.5.1 and its SCTE-35 mapping,
// 4.4.5.1.4): an ID of its own per event (its scheme's event id and
// time), START-DATE, for a break's start its PLANNED-DURATION (the
// section's break_duration, else the emsg's duration), and the section
// as SCTE35-OUT (splice_insert out of network), SCTE35-IN (back in) or
// SCTE35-CMD (anything else: time_signal).
//
// As CUE tags (CueMarkers): EXT-X-CUE-OUT:{duration} before the segment
// a break starts in, EXT-X-CUE-OUT-CONT:ElapsedTime=,Duration= before
// each segment inside it, EXT-X-CUE-IN before the segment it ends in (an
// IN marker, or its start plus its duration). A break that began before
// the playlist's first segment has no continuation tags.
type markers struct {
	evs  []timeline.TimedEvent
	next int
	cue  bool
	// the break in progress (CueMarkers)
	out      bool
	outAt    time.Time
	outDur   time.Duration
	outUntil time.Time // zero: until an IN marker
}

func newMarkers(p *timeline.Presentation) *markers {
	return &markers{evs: p.Events(), cue: p.CueMarkers}
}

// before appends the tags due before the segment from start to end.
func (m *markers) before(dst []byte, start, end time.Time) []byte {
	if !m.cue {
		for m.next < len(m.evs) && m.evs[m.next].At.Before(end) {
			dst = appendDateRange(dst, &m.evs[m.next])
			m.next++
		}
		return dst
	}
	if m.out && !m.outUntil.IsZero() && m.outUntil.Before(end) {
		dst = append(dst, "#EXT-X-CUE-IN\n"...)
		m.out = false
	}
	began := false
	for m.next < len(m.evs) && m.evs[m.next].At.Before(end) {
		e := &m.evs[m.next]
		m.next++
		info, ok := sectionOf(e)
		switch {
		case !ok:
		case info.Kind == scte35.Out && !m.out:
			m.out, m.outAt, m.outDur, m.outUntil = true, e.At, breakDuration(e, info), time.Time{}
			if m.outDur > 0 {
				m.outUntil = e.At.Add(m.outDur)
			}
			dst = append(dst, "#EXT-X-CUE-OUT"...)
			if m.outDur > 0 {
				dst = append(dst, ':')
				dst = appendSeconds(dst, m.outDur)
			}
			dst = append(dst, '\n')
			began = true
		case info.Kind == scte35.In && m.out:
			dst = append(dst, "#EXT-X-CUE-IN\n"...)
			m.out = false
		}
	}
	if m.out && !began {
		dst = append(dst, "#EXT-X-CUE-OUT-CONT:ElapsedTime="...)
		dst = appendSeconds(dst, max(start.Sub(m.outAt), 0))
		if m.outDur > 0 {
			dst = append(dst, ",Duration="...)
			dst = appendSeconds(dst, m.outDur)
		}
		dst = append(dst, '\n')
	}
	return dst
}

// rest appends the DATERANGE tags of the events after the last segment.
// CUE tags only ever go before a segment.
func (m *markers) rest(dst []byte) []byte {
	for ; !m.cue && m.next < len(m.evs); m.next++ {
		dst = appendDateRange(dst, &m.evs[m.next])
	}
	return dst
}

// sectionOf reads the splice_info_section of an SCTE-35 event.
func sectionOf(e *timeline.TimedEvent) (scte35.Info, bool) {
	if e.Scheme != scte35.Scheme {
		return scte35.Info{}, false
	}
	info, err := scte35.Parse(e.Data)
	return info, err == nil
}

// breakDuration is a break's duration: the section's, else the event's.
func breakDuration(e *timeline.TimedEvent, info scte35.Info) time.Duration {
	if info.Duration > 0 {
		return info.Duration
	}
	return timeline.DurationOf(e.Duration, e.Timescale)
}

// appendDateRange appends the EXT-X-DATERANGE of event e.
func appendDateRange(dst []byte, e *timeline.TimedEvent) []byte {
	info, ok := sectionOf(e)
	if !ok {
		return dst
	}
	dst = append(dst, `#EXT-X-DATERANGE:ID="`...)
	dst = appendDateRangeID(dst, e)
	dst = append(dst, `",START-DATE="`...)
	dst = e.At.UTC().AppendFormat(dst, dateFormat)
	dst = append(dst, '"')
	switch d := breakDuration(e, info); {
	case info.Kind == scte35.Out && d > 0:
		dst = append(dst, ",PLANNED-DURATION="...)
		dst = appendSeconds(dst, d)
	case info.Kind != scte35.Out && e.Duration > 0:
		dst = append(dst, ",DURATION="...)
		dst = appendSeconds(dst, timeline.DurationOf(e.Duration, e.Timescale))
	}
	switch info.Kind {
	case scte35.Out:
		dst = append(dst, ",SCTE35-OUT="...)
	case scte35.In:
		dst = append(dst, ",SCTE35-IN="...)
	default:
		dst = append(dst, ",SCTE35-CMD="...)
	}
	dst = append(dst, scte35.Hex(e.Data)...)
	return append(dst, '\n')
}

// appendDateRangeID appends a DATERANGE ID that only this event has, the
// same in every playlist and every render: the event's id and its time
// in milliseconds since the Unix epoch.
func appendDateRangeID(dst []byte, e *timeline.TimedEvent) []byte {
	dst = append(dst, "scte35-"...)
	dst = strconv.AppendUint(dst, uint64(e.ID), 10)
	dst = append(dst, '-')
	return strconv.AppendInt(dst, e.At.UnixMilli(), 10)
}

// appendSeconds appends d in seconds with three decimals.
func appendSeconds(dst []byte, d time.Duration) []byte {
	return strconv.AppendFloat(dst, d.Seconds(), 'f', 3, 64)
}

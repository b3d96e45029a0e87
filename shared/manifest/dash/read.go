package dash

// Reading MPDs: github.com/Eyevinn/dash-mpd parses them; what a reader
// needs on top (the SegmentTemplate in force for a Representation, its
// identifiers filled, its SegmentTimeline expanded) is here, once, for
// the check, the relay's upload hints and the tests.

import (
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"

	dashmpd "github.com/Eyevinn/dash-mpd/mpd"
)

// MaxSegments bounds how many segments Template.Segments expands one
// SegmentTimeline into.
const MaxSegments = 1 << 20

// maxNumberWidth bounds the width of a $Number%0Nd$ or $Time%0Nd$
// identifier: wider than any number, and no allocation an MPD can blow up.
const maxNumberWidth = 32

// Parse reads an MPD with dash-mpd, its parent links set. dash-mpd's
// XML decoder (a fork of encoding/xml) loops for ever on a '>' in
// character data, which XML allows (a Title "a>b", a BaseURL with a
// query, or text before the root: versions v0.12.0 to v0.17.0 alike), so
// such a '>' is escaped first (escapeGreaterThan).
func Parse(b []byte) (*dashmpd.MPD, error) {
	m, err := dashmpd.MPDFromBytes(escapeGreaterThan(b))
	if err != nil {
		return nil, fmt.Errorf("dash: MPD: %w", err)
	}
	return m, nil
}

// Template is the SegmentTemplate in force for one Representation (ISO/IEC
// 23009-1 5.3.9.2): each attribute, and the SegmentTimeline, from the
// Representation's own SegmentTemplate, else its AdaptationSet's, else its
// Period's; with the Representation's id and bandwidth, which its
// identifiers take.
type Template struct {
	RepresentationID       string
	Bandwidth              uint64
	Initialization         string
	Media                  string
	Timescale              uint64 // 1 when no level gives one
	PresentationTimeOffset uint64
	StartNumber            uint64 // 1 when no level gives one
	// Timeline is nil when no level has a SegmentTimeline.
	Timeline *dashmpd.SegmentTimelineType
}

// TemplateOf is the SegmentTemplate in force for rep, a Representation of
// as in Period p (either may be nil): nil when none of the three has one.
func TemplateOf(p *dashmpd.Period, as *dashmpd.AdaptationSetType, rep *dashmpd.RepresentationType) *Template {
	var levels [3]*dashmpd.SegmentTemplateType // highest first
	if p != nil {
		levels[0] = p.SegmentTemplate
	}
	if as != nil {
		levels[1] = as.SegmentTemplate
	}
	levels[2] = rep.SegmentTemplate
	var t *Template
	for _, st := range levels {
		if st == nil {
			continue
		}
		if t == nil {
			t = &Template{RepresentationID: rep.Id, Bandwidth: uint64(rep.Bandwidth), Timescale: 1, StartNumber: 1}
		}
		if st.Initialization != "" {
			t.Initialization = st.Initialization
		}
		if st.Media != "" {
			t.Media = st.Media
		}
		if st.Timescale != nil {
			t.Timescale = uint64(*st.Timescale)
		}
		if st.PresentationTimeOffset != nil {
			t.PresentationTimeOffset = *st.PresentationTimeOffset
		}
		if st.StartNumber != nil {
			t.StartNumber = uint64(*st.StartNumber)
		}
		if st.SegmentTimeline != nil {
			t.Timeline = st.SegmentTimeline
		}
	}
	return t
}

// Representations yields every Representation of m, Period by Period, with
// the SegmentTemplate in force for it (nil when it has none).
func Representations(m *dashmpd.MPD) iter.Seq2[*dashmpd.RepresentationType, *Template] {
	return func(yield func(*dashmpd.RepresentationType, *Template) bool) {
		for _, p := range m.Periods {
			for _, as := range p.AdaptationSets {
				for _, rep := range as.Representations {
					if !yield(rep, TemplateOf(p, as, rep)) {
						return
					}
				}
			}
		}
	}
}

// Segment is one segment a SegmentTimeline lists: its time and duration
// in the template's timescale, and its number ($Number$).
type Segment struct {
	Time, Duration, Number uint64
}

// Segments expands the SegmentTimeline into the segments it lists, in
// order: an S element starts at its t, else where the previous one's last
// segment ends (0 for the first), and lists r+1 segments of d ticks; a
// negative r repeats up to the next S element's t. Numbers count from
// StartNumber. A template without a SegmentTimeline, an S that starts
// before the previous one ends, one without a duration, an open r at the
// end, or more than MaxSegments segments are errors.
func (t *Template) Segments() ([]Segment, error) {
	if t.Timeline == nil {
		return nil, errors.New("SegmentTemplate without a SegmentTimeline")
	}
	var out []Segment
	var next uint64
	ss := t.Timeline.S
	for i, s := range ss {
		if s.T != nil {
			if i > 0 && *s.T < next {
				return nil, fmt.Errorf("S %d starts at %d, before the previous ends (%d)", i, *s.T, next)
			}
			next = *s.T
		}
		if s.D == 0 {
			return nil, fmt.Errorf("S %d has no duration", i)
		}
		n := uint64(s.R) + 1
		if s.R < 0 {
			if i == len(ss)-1 || ss[i+1].T == nil {
				return nil, fmt.Errorf("S %d: r=%d needs the next S's t", i, s.R)
			}
			if *ss[i+1].T < next {
				return nil, fmt.Errorf("S %d starts at %d, before the previous ends (%d)", i+1, *ss[i+1].T, next)
			}
			n = (*ss[i+1].T - next + s.D - 1) / s.D
		}
		if n > MaxSegments-uint64(len(out)) {
			return nil, fmt.Errorf("more than %d segments", MaxSegments)
		}
		for range n {
			out = append(out, Segment{Time: next, Duration: s.D, Number: t.StartNumber + uint64(len(out))})
			next += s.D
		}
	}
	return out, nil
}

// InitURL is the initialization template, its identifiers filled.
func (t *Template) InitURL() (string, error) {
	return Fill(t.Initialization, t.RepresentationID, t.Bandwidth, 0, 0)
}

// MediaURL is the media template filled for segment s.
func (t *Template) MediaURL(s Segment) (string, error) {
	return Fill(t.Media, t.RepresentationID, t.Bandwidth, s.Time, s.Number)
}

// Fill substitutes a SegmentTemplate's identifiers (ISO/IEC 23009-1
// 5.3.9.4.4): $RepresentationID$, $Bandwidth$, $Time$ and $Number$, the
// last three with an optional width (%0Nd), and $$ for a dollar sign. An
// unknown identifier, a malformed width or a lone $ is an error.
func Fill(tmpl, id string, bandwidth, time, number uint64) (string, error) {
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '$')
		if i < 0 {
			b.WriteString(tmpl)
			return b.String(), nil
		}
		b.WriteString(tmpl[:i])
		tmpl = tmpl[i+1:]
		j := strings.IndexByte(tmpl, '$')
		if j < 0 {
			return "", errors.New("unterminated $ identifier")
		}
		ident, format, _ := strings.Cut(tmpl[:j], "%")
		tmpl = tmpl[j+1:]
		var n uint64
		switch ident {
		case "":
			b.WriteByte('$')
			continue
		case "RepresentationID":
			b.WriteString(id)
			continue
		case "Bandwidth":
			n = bandwidth
		case "Time":
			n = time
		case "Number":
			n = number
		default:
			return "", fmt.Errorf("identifier $%s$", ident)
		}
		digits := strconv.FormatUint(n, 10)
		if format != "" {
			w, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(format, "0"), "d"))
			if err != nil || !strings.HasSuffix(format, "d") || w < 0 || w > maxNumberWidth {
				return "", fmt.Errorf("format %%%s", format)
			}
			for range w - len(digits) {
				b.WriteByte('0')
			}
		}
		b.WriteString(digits)
	}
}

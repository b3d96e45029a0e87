package dash

// The reference writer: what build makes, marshalled with encoding/xml
// by the tags of its own structs, as Render did before it wrote XML by
// hand. Render must give the same bytes for every presentation
// (equivalence_test.go), and the benchmarks measure both in the same run.

import (
	"bytes"
	"encoding/xml"
	"fmt"

	"github.com/smoothcast/smoothcast/shared/timeline"
)

// renderReference is the MPD build makes, with each SegmentTemplate's
// timeline listed as S elements (SegmentTimeline) and marshalled with
// encoding/xml: what the hand-written writer must match byte for byte.
func renderReference(p *timeline.Presentation, o Options) ([]byte, error) {
	m, err := build(p, o)
	if err != nil {
		return nil, err
	}
	for i := range m.Periods {
		for j := range m.Periods[i].Assets {
			as := &m.Periods[i].Assets[j]
			listSegments(&as.SegmentTemplate)
			for k := range as.Representations {
				if st := as.Representations[k].SegmentTemplate; st != nil {
					listSegments(st)
				}
			}
		}
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("dash: channel %s: %w", p.Channel, err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// listSegments fills st's SegmentTimeline with the S elements of its
// timeline, if it has one.
func listSegments(st *segmentTemplate) {
	if st.Timeline == nil {
		return
	}
	st.SegmentTimeline = &segmentTimeline{}
	for s := range st.Timeline.Spans() {
		st.SegmentTimeline.S = append(st.SegmentTimeline.S, newSegment(s))
	}
}

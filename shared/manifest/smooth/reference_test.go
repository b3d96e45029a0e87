package smooth

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

// renderReference is the manifest build makes, with each StreamIndex's
// c elements listed (C) and marshalled with encoding/xml: what the
// hand-written writer must match byte for byte.
func renderReference(p *timeline.Presentation) ([]byte, error) {
	m, err := build(p)
	if err != nil {
		return nil, err
	}
	for i := range m.Streams {
		si := &m.Streams[i]
		for s := range si.Timeline.Spans() {
			si.C = append(si.C, chunk(s))
		}
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("smooth manifest of channel %s: %w", p.Channel, err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

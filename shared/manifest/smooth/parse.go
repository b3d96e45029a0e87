package smooth

import (
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"

	"github.com/smoothcast/smoothcast/shared/timeline"
)

// MaxFragments bounds how many fragments StreamIndex.Fragments expands
// one StreamIndex into: a day of 100 ms fragments fits many times over.
const MaxFragments = 1 << 20

// Parse reads a client manifest into the schema Render writes. Its c
// elements are left as they are (StreamIndex.C); Fragments expands them.
func Parse(b []byte) (*Manifest, error) {
	var m Manifest
	if err := xml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("smooth: client manifest: %w", err)
	}
	return &m, nil
}

// Live reports whether the manifest is of a live presentation
// (IsLive="TRUE", in any case).
func (m *Manifest) Live() bool { return strings.EqualFold(m.IsLive, "TRUE") }

// Timescale is the timescale of si's times: its own, else the manifest's,
// else MS-SSTR's default.
func (m *Manifest) Timescale(si *StreamIndex) uint64 {
	switch {
	case si.TimeScale != 0:
		return si.TimeScale
	case m.TimeScale != 0:
		return m.TimeScale
	}
	return DefaultTimeScale
}

// Fragments expands si's c elements into the fragments they list, in
// order: a c element starts at its t, else where the previous one's last
// fragment ends (0 for the first), and lists r fragments (one without r)
// of d ticks. An element that starts before the previous one ends, one
// without a duration (but a last one of a single fragment), or more than
// MaxFragments fragments are errors.
func (si *StreamIndex) Fragments() ([]timeline.Fragment, error) {
	var out []timeline.Fragment
	var next uint64
	for i, c := range si.C {
		if c.T != nil {
			if i > 0 && *c.T < next {
				return nil, fmt.Errorf("stream %s: c %d starts at %d, before the previous ends (%d)", si.Name, i, *c.T, next)
			}
			next = *c.T
		}
		n := max(c.R, 1)
		if c.D == 0 && (n > 1 || i < len(si.C)-1) {
			return nil, fmt.Errorf("stream %s: c %d has no duration", si.Name, i)
		}
		if n > MaxFragments-uint64(len(out)) {
			return nil, fmt.Errorf("stream %s: more than %d fragments", si.Name, MaxFragments)
		}
		for range n {
			out = append(out, timeline.Fragment{Start: next, Duration: c.D})
			next += c.D
		}
	}
	return out, nil
}

// FragmentURL fills si's Url template for the quality level of bitrate
// and the fragment that starts at start: {bitrate} or {Bitrate}, and
// {start time} or {start_time} (MS-SSTR 2.2.2.3).
func (si *StreamIndex) FragmentURL(bitrate int, start uint64) string {
	b, t := strconv.Itoa(bitrate), strconv.FormatUint(start, 10)
	return strings.NewReplacer("{bitrate}", b, "{Bitrate}", b, "{start time}", t, "{start_time}", t).Replace(si.URL)
}

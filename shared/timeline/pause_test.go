package timeline

import "testing"

// A sparse track's pause is EXT-X-GAP segments in HLS, as a hole is:
// when the window slides past it, its segments are counted in HoleSegs,
// so that the media sequence numbers of what follows do not change; an
// encoder's rounding (1 % of a fragment or less) is no pause, and a
// hole is counted once.
func TestTrimmedPausesKeepTheirSegmentNumbers(t *testing.T) {
	for _, tc := range []struct {
		name         string
		frags        []Fragment
		trim         uint64
		wantHoleSegs uint64
	}{
		{"a pause of 160 in fragments of 20", []Fragment{{0, 20}, {20, 20}, {200, 20}, {220, 20}}, 200, 8},
		{"a pause of 170: 9 segments, the last shorter", []Fragment{{0, 20}, {190, 20}, {210, 20}}, 190, 9},
		{"rounding is no pause", []Fragment{{0, 1000}, {1005, 1000}, {2005, 1000}}, 2005, 0},
		{"nothing trimmed past", []Fragment{{0, 20}, {200, 20}}, 10, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tl Timeline
			for _, f := range tc.frags {
				tl.AppendSparse(f)
			}
			// The numbers of the segments of the fragments the trim keeps,
			// before it: fragments, and pauses' gap segments, from 0.
			var prevEnd uint64
			seq := tl.FirstSeq + tl.HoleSegs
			before := map[uint64]uint64{}
			first := true
			for e := range tl.All() {
				if !first && Pause(prevEnd, e.Start, e.Duration, e.Gap) {
					seq += HoleSegments(prevEnd, e.Start, e.Duration)
				}
				before[e.Start] = seq
				seq++
				prevEnd, first = e.End(), false
			}
			tl.TrimBefore(tc.trim)
			if tl.HoleSegs != tc.wantHoleSegs {
				t.Errorf("HoleSegs %d, want %d", tl.HoleSegs, tc.wantHoleSegs)
			}
			f, _ := tl.Last()
			e := tl.FirstSeq + tl.HoleSegs + uint64(tl.Len()) - 1
			if e != before[f.Start] && tc.wantHoleSegs > 0 {
				t.Errorf("the last fragment's segment is number %d after the trim, %d before", e, before[f.Start])
			}
		})
	}
}

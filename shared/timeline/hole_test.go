package timeline

import (
	"math"
	"testing"
)

// A hole is filled by the fewest segments of at most the next fragment's
// duration, split evenly: boundaries rise from prevEnd to start, none
// longer than d, exact for any times (no overflow near 2^64).
func TestHoleSegmentsFillTheHoleEvenly(t *testing.T) {
	for _, tc := range []struct {
		name              string
		prevEnd, start, d uint64
		want              uint64
	}{
		{"one fragment lost", 20, 40, 20, 1},
		{"two fragments lost", 20, 60, 20, 2},
		{"a hole a tick longer than two fragments", 20, 61, 20, 3},
		{"a hole shorter than a fragment", 20, 25, 20, 1},
		{"a zero duration", 20, 25, 0, 1},
		{"times near the top of uint64", math.MaxUint64 - 1000, math.MaxUint64 - 1, 300, 4},
		{"a hole of half the range", 1 << 62, 3 << 62, 1 << 61, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := HoleSegments(tc.prevEnd, tc.start, tc.d)
			if n != tc.want {
				t.Fatalf("HoleSegments = %d, want %d", n, tc.want)
			}
			if b := HoleBoundary(tc.prevEnd, tc.start, 0, n); b != tc.prevEnd {
				t.Errorf("boundary 0 = %d, want prevEnd %d", b, tc.prevEnd)
			}
			if b := HoleBoundary(tc.prevEnd, tc.start, n, n); b != tc.start {
				t.Errorf("boundary %d = %d, want start %d", n, b, tc.start)
			}
			for k := range n {
				from, to := HoleBoundary(tc.prevEnd, tc.start, k, n), HoleBoundary(tc.prevEnd, tc.start, k+1, n)
				if to <= from || tc.d > 0 && to-from > tc.d {
					t.Errorf("segment %d from %d to %d: empty or longer than %d", k, from, to, tc.d)
				}
			}
		})
	}
	if Hole(40, 40, false) || Hole(20, 40, true) || !Hole(20, 40, false) {
		t.Error("a hole is a gap with media time missing and no break")
	}
}

package sparse

import (
	"slices"
	"testing"

	"github.com/smoothcast/smoothcast/shared/timeline"
)

// The fragment before a hole lasts until the next one starts; a break
// stays a gap; what has no hole is returned as it is; sequence numbers
// stay.
func TestCloseStretchesTheFragmentBeforeAHole(t *testing.T) {
	type frag struct {
		start, dur uint64
		gap, brk   bool
	}
	for _, tc := range []struct {
		name string
		in   []frag
		want []frag
	}{
		{"no hole", []frag{{0, 2, false, false}, {2, 2, false, false}}, []frag{{0, 2, false, false}, {2, 2, false, false}}},
		{"a hole", []frag{{0, 2, false, false}, {2, 2, false, false}, {10, 2, true, false}, {12, 2, false, false}},
			[]frag{{0, 2, false, false}, {2, 8, false, false}, {10, 2, false, false}, {12, 2, false, false}}},
		{"two holes", []frag{{0, 2, false, false}, {6, 2, true, false}, {20, 2, true, false}},
			[]frag{{0, 6, false, false}, {6, 14, false, false}, {20, 2, false, false}}},
		{"a break stays", []frag{{0, 2, false, false}, {1000, 2, true, true}, {1004, 2, true, false}},
			[]frag{{0, 2, false, false}, {1000, 4, true, true}, {1004, 2, false, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := timeline.Timeline{FirstSeq: 7}
			for i, f := range tc.in {
				if f.brk {
					tl.AppendBreak(timeline.Fragment{Start: f.start, Duration: f.dur})
					continue
				}
				tl.Append(timeline.Fragment{Start: f.start, Duration: f.dur}, f.gap && i > 0)
			}
			out := Close(tl)
			var got []frag
			seq := out.FirstSeq
			for e := range out.All() {
				got = append(got, frag{e.Start, e.Duration, e.Gap, e.Break})
				if e.Seq != seq {
					t.Errorf("fragment at %d has sequence %d, want %d", e.Start, e.Seq, seq)
				}
				seq++
			}
			if !slices.Equal(got, tc.want) || out.FirstSeq != 7 {
				t.Errorf("closed %v (first sequence %d), want %v", got, out.FirstSeq, tc.want)
			}
		})
	}
}

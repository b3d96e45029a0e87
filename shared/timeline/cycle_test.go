package timeline_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

var aacDurations = manifesttest.AACDurations

// naive is a timeline kept as a plain list of fragments and gap marks: the
// model the run encoding must agree with.
type naive struct {
	frags []timeline.Fragment
	gaps  []bool // a discontinuity before this fragment
	brks  []bool
}

func (n *naive) spans() []timeline.Span {
	var out []timeline.Span
	for i, f := range n.frags {
		if l := len(out) - 1; l >= 0 && !n.gaps[i] && !n.brks[i] && out[l].Duration == f.Duration && out[l].End() == f.Start {
			out[l].Count++
			continue
		}
		follows := len(out) > 0 && out[len(out)-1].End() == f.Start
		out = append(out, timeline.Span{Start: f.Start, Duration: f.Duration, Count: 1, Gap: n.gaps[i] && i > 0, Break: n.brks[i], Follows: follows})
	}
	return out
}

// check compares tl with the model: fragments, spans, membership, ends.
func check(t *testing.T, what string, tl *timeline.Timeline, m *naive) {
	t.Helper()
	var got []timeline.Fragment
	for e := range tl.All() {
		got = append(got, e.Fragment)
	}
	if !slices.Equal(got, m.frags) {
		t.Fatalf("%s: fragments\n%v\nwant\n%v\nruns %+v", what, got, m.frags, tl.Runs)
	}
	if spans := slices.Collect(tl.Spans()); !slices.Equal(spans, m.spans()) {
		t.Fatalf("%s: spans\n%+v\nwant\n%+v\nruns %+v", what, spans, m.spans(), tl.Runs)
	}
	if tl.Len() != len(m.frags) {
		t.Fatalf("%s: Len %d, want %d", what, tl.Len(), len(m.frags))
	}
	if len(m.frags) == 0 {
		return
	}
	last := m.frags[len(m.frags)-1]
	if l, ok := tl.Last(); !ok || l != last || tl.End() != last.End() || tl.Start() != m.frags[0].Start {
		t.Fatalf("%s: Last %v Start %d End %d, want %v %d %d", what, l, tl.Start(), tl.End(), last, m.frags[0].Start, last.End())
	}
	for _, f := range m.frags {
		if !tl.Contains(f.Start) || tl.Contains(f.Start+1) && !slices.ContainsFunc(m.frags, func(g timeline.Fragment) bool { return g.Start == f.Start+1 }) {
			t.Fatalf("%s: Contains(%d) or Contains(%d) wrong; runs %+v", what, f.Start, f.Start+1, tl.Runs)
		}
	}
	doc, err := timeline.MarshalTrackState(&timeline.TrackState{Version: timeline.StateVersion, Timeline: *tl})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := timeline.UnmarshalTrackState(doc); err != nil {
		t.Fatalf("%s: the state does not decode: %v", what, err)
	}
}

// Whatever the durations, gaps and breaks, a timeline lists exactly what
// was appended, spans and all, and trims as a plain list would; copies
// made by Window do not change when the original is trimmed.
func TestRunsAgreeWithAPlainList(t *testing.T) {
	aac := aacDurations(48000, 300)
	aac44 := aacDurations(44100, 600)
	sources := map[string]func(r *rand.Rand, i int) uint64{
		"constant":  func(*rand.Rand, int) uint64 { return 20 },
		"two":       func(r *rand.Rand, _ int) uint64 { return uint64(19 + r.IntN(2)) },
		"cycle 3":   func(_ *rand.Rand, i int) uint64 { return []uint64{7, 9, 9}[i%3] },
		"aac 48k":   func(_ *rand.Rand, i int) uint64 { return aac[i%len(aac)] },
		"aac 44.1k": func(_ *rand.Rand, i int) uint64 { return aac44[i%len(aac44)] },
		"cycle with glitches": func(r *rand.Rand, i int) uint64 {
			if r.IntN(40) == 0 {
				return 5
			}
			return []uint64{10, 11, 11, 12}[i%4]
		},
		"random": func(r *rand.Rand, _ int) uint64 { return uint64(1 + r.IntN(30)) },
	}
	for name, dur := range sources {
		t.Run(name, func(t *testing.T) {
			for seed := range uint64(20) {
				r := rand.New(rand.NewPCG(seed, 7))
				var tl timeline.Timeline
				m := &naive{}
				var end uint64
				n := 50 + r.IntN(600)
				for i := range n {
					f := timeline.Fragment{Start: end, Duration: dur(r, i)}
					gap, brk := false, false
					switch r.IntN(100) {
					case 0:
						f.Start += uint64(1 + r.IntN(50))
						gap = true
					case 1:
						brk = true
					}
					if brk {
						tl.AppendBreak(f)
					} else {
						tl.Append(f, gap)
					}
					m.frags = append(m.frags, f)
					m.gaps = append(m.gaps, (gap || brk) && i > 0)
					m.brks = append(m.brks, brk && i > 0)
					end = f.End()
					if r.IntN(50) == 0 {
						check(t, fmt.Sprintf("seed %d after %d", seed, i), &tl, m)
					}
				}
				check(t, fmt.Sprintf("seed %d", seed), &tl, m)

				// Trim from both ends at random times, against the model.
				snapshot := tl.Window(0)
				want := slices.Clone(m.frags)
				from := r.Uint64N(end)
				tl.TrimBefore(from)
				to := from + r.Uint64N(end-from+1)
				tl.TrimAfter(to)
				var kept []timeline.Fragment
				var gaps, brks []bool
				for i, f := range m.frags {
					if f.End() > from && f.Start < to {
						kept = append(kept, f)
						gaps = append(gaps, m.gaps[i] && len(kept) > 1)
						brks = append(brks, m.brks[i] && len(kept) > 1)
					}
				}
				check(t, fmt.Sprintf("seed %d trimmed to [%d,%d)", seed, from, to), &tl, &naive{kept, gaps, brks})
				var again []timeline.Fragment
				for e := range snapshot.All() {
					again = append(again, e.Fragment)
				}
				if !slices.Equal(again, want) {
					t.Fatalf("seed %d: trimming changed a copy", seed)
				}
			}
		})
	}
}

// AAC audio keeps a state as flat as video's: at 48 kHz, a day of 2 s
// fragments folds into a single cyclic run of 4 durations, and at
// 44.1 kHz into one of 128; a constant track with one odd fragment stays
// three runs.
func TestCyclesKeepAudioFlat(t *testing.T) {
	const day = 24 * 3600 / 2
	for _, tc := range []struct {
		name     string
		durs     []uint64
		maxRuns  int
		maxBytes int
	}{
		{"aac 48k", aacDurations(48000, day), 2, 200},
		{"aac 44.1k", aacDurations(44100, day), 3, 2500},
		{"aac 32k", aacDurations(32000, day), 2, 200},
		{"video with one short fragment", slices.Concat(slices.Repeat([]uint64{20000000}, 1000), []uint64{13000000}, slices.Repeat([]uint64{20000000}, day)), 3, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := timeline.TrackState{}
			window := uint64(2 * 3600 * 10_000_000)
			var start, prev uint64
			for _, d := range tc.durs {
				a := timeline.Arrival{Fragment: timeline.Fragment{Start: start, Duration: d}}
				if start > 0 {
					a.HasPrev, a.Prev = true, start-prev
				}
				if _, _, err := s.Apply(a, time.Unix(0, 0), timeline.Rules{Window: window}); err != nil {
					t.Fatal(err)
				}
				prev = d
				start += d
			}
			b, _ := json.Marshal(s.Timeline)
			if len(s.Timeline.Runs) > tc.maxRuns || len(b) > tc.maxBytes {
				t.Errorf("%d runs, %d bytes; want at most %d, %d: %s", len(s.Timeline.Runs), len(b), tc.maxRuns, tc.maxBytes, b[:min(len(b), 400)])
			}
			if got := s.Timeline.End() - s.Timeline.Start(); got > window+20000000 || got < window-20000000 {
				t.Errorf("the window holds %d ticks, want about %d", got, window)
			}
		})
	}
}

// A cyclic run survives the state document's round trip, and a document
// with a bad cycle is refused.
func TestCyclicRunsDecode(t *testing.T) {
	var tl timeline.Timeline
	var start uint64
	for _, d := range aacDurations(48000, 40) {
		tl.Append(timeline.Fragment{Start: start, Duration: d}, false)
		start += d
	}
	if !slices.ContainsFunc(tl.Runs, func(r timeline.Run) bool { return len(r.Cycle) == 4 }) {
		t.Fatalf("no cyclic run: %+v", tl.Runs)
	}
	doc, err := timeline.MarshalTrackState(&timeline.TrackState{Version: timeline.StateVersion, Timeline: tl})
	if err != nil {
		t.Fatal(err)
	}
	back, err := timeline.UnmarshalTrackState(doc)
	if err != nil || !reflect.DeepEqual(back.Timeline.Runs, tl.Runs) {
		t.Fatalf("round trip: %v, %+v", err, back)
	}
	for _, bad := range []string{
		`{"timeline":{"runs":[{"t":0,"n":3,"c":[5]}]}}`,
		`{"timeline":{"runs":[{"t":0,"n":3,"c":[5,0]}]}}`,
		`{"timeline":{"runs":[{"t":0,"d":4,"n":3,"c":[5,6]}]}}`,
		`{"timeline":{"runs":[{"t":0,"n":3}]}}`,
		`{"timeline":{"runs":[{"t":0,"d":4,"n":0}]}}`,
	} {
		if _, err := timeline.UnmarshalTrackState([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

package timeline

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

var rules = Rules{GapTimeout: 10 * time.Second}

// stream returns n contiguous arrivals of duration d with the prev chain
// an encoder connection gives them.
func stream(n int, d uint64) []Arrival {
	var out []Arrival
	for i := range n {
		a := Arrival{Fragment: Fragment{Start: uint64(i) * d, Duration: d}, Size: 1000}
		if i > 0 {
			a.HasPrev, a.Prev = true, uint64(i-1)*d
		}
		out = append(out, a)
	}
	return out
}

func apply(t *testing.T, s *TrackState, a Arrival, at time.Time) Outcome {
	t.Helper()
	out, _, err := s.Apply(a, at, rules)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestApplyRules(t *testing.T) {
	fr := stream(4, 20)
	for _, tc := range []struct {
		name  string
		order []int // indexes into fr, applied at t0+i s
		want  []Outcome
		runs  []Run
	}{
		{"in order publishes each", []int{0, 1, 2, 3}, []Outcome{Published, Published, Published, Published}, []Run{{0, 20, 4, false, false, nil, ""}}},
		{"duplicate event is a no-op", []int{0, 0, 1, 1}, []Outcome{Published, Duplicate, Published, Duplicate}, []Run{{0, 20, 2, false, false, nil, ""}}},
		{"fragment before a gap waits", []int{0, 2, 1}, []Outcome{Published, Waiting, Published}, []Run{{0, 20, 3, false, false, nil, ""}}},
		{"first fragment of a connection waits for nothing", []int{1, 0}, []Outcome{Waiting, Published}, []Run{{0, 20, 2, false, false, nil, ""}}},
		{"duplicate of a waiting fragment is a no-op", []int{0, 2, 2}, []Outcome{Published, Waiting, Duplicate}, []Run{{0, 20, 1, false, false, nil, ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s TrackState
			for i, idx := range tc.order {
				if got := apply(t, &s, fr[idx], t0.Add(time.Duration(i)*time.Second)); got != tc.want[i] {
					t.Errorf("step %d (fragment %d): %v, want %v", i, idx, got, tc.want[i])
				}
			}
			if !reflect.DeepEqual(s.Timeline.Runs, tc.runs) {
				t.Errorf("runs %+v, want %+v", s.Timeline.Runs, tc.runs)
			}
		})
	}
}

func TestGapTimeoutPublishesWithADiscontinuity(t *testing.T) {
	fr := stream(4, 20)
	var s TrackState
	apply(t, &s, fr[0], t0)
	if got := apply(t, &s, fr[2], t0); got != Waiting {
		t.Fatalf("fragment after a hole: %v, want waiting", got)
	}
	// Any later event past the timeout releases it, marked as a gap.
	apply(t, &s, fr[3], t0.Add(rules.GapTimeout))
	want := []Run{{0, 20, 1, false, false, nil, ""}, {40, 20, 2, true, false, nil, ""}}
	if !reflect.DeepEqual(s.Timeline.Runs, want) {
		t.Fatalf("runs %+v, want %+v", s.Timeline.Runs, want)
	}
	// The late fragment can no longer be inserted: playlists are append-only.
	if got := apply(t, &s, fr[1], t0.Add(20*time.Second)); got != Stale {
		t.Errorf("late fragment: %v, want stale", got)
	}
	var gaps int
	for e := range s.Timeline.All() {
		if e.Gap {
			gaps++
			if e.Start != 40 || e.Disc != 1 {
				t.Errorf("gap at %d disc %d", e.Start, e.Disc)
			}
		}
	}
	if gaps != 1 {
		t.Errorf("%d gaps, want 1", gaps)
	}
}

func TestAnyOrderWithDuplicatesGivesTheInOrderState(t *testing.T) {
	fr := stream(40, 20)
	var want TrackState
	for i, a := range fr {
		apply(t, &want, a, t0.Add(time.Duration(i)*time.Millisecond))
	}
	for seed := range uint64(200) {
		evs := deliveries(rand.New(rand.NewPCG(seed, 7)), fr)
		var s TrackState
		for i, a := range evs {
			apply(t, &s, a, t0.Add(time.Duration(i)*time.Millisecond))
		}
		if !reflect.DeepEqual(s.Timeline, want.Timeline) || len(s.Pending) != 0 || s.Bytes != want.Bytes {
			t.Fatalf("seed %d: %+v (pending %d), want %+v", seed, s.Timeline, len(s.Pending), want.Timeline)
		}
	}
}

// deliveries are the events of arrivals fr as S3 may deliver them: each
// one to three times, in an order rng shuffles.
func deliveries(rng *rand.Rand, fr []Arrival) []Arrival {
	var evs []Arrival
	for _, a := range fr {
		for range 1 + rng.IntN(3) {
			evs = append(evs, a)
		}
	}
	rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	return evs
}

func TestWindowTrimAdvancesSequences(t *testing.T) {
	var s TrackState
	r := Rules{GapTimeout: time.Second, Window: 100}
	fr := stream(10, 20)
	for i, a := range fr {
		if i == 5 {
			continue // a hole: published later as a gap
		}
		if _, _, err := s.Apply(a, t0.Add(time.Duration(i)*time.Minute), r); err != nil {
			t.Fatal(err)
		}
	}
	// 9 fragments published (100 is a hole); the window keeps what ends
	// after 200-100: 120..180, the fifth to eighth published (seq 5).
	if s.Timeline.Start() != 120 || s.Timeline.Len() != 4 || s.Timeline.FirstSeq != 5 {
		t.Fatalf("window: start %d len %d seq %d; want 120, 4, 5", s.Timeline.Start(), s.Timeline.Len(), s.Timeline.FirstSeq)
	}
	// The first listed fragment followed the gap: its discontinuity is now
	// counted in the discontinuity sequence, not marked.
	if s.Timeline.FirstDisc != 1 || s.Timeline.Runs[0].Gap {
		t.Fatalf("trimming to the gap: disc %d, first run %+v", s.Timeline.FirstDisc, s.Timeline.Runs[0])
	}
	s.Timeline.TrimBefore(140)
	if s.Timeline.FirstDisc != 1 || s.Timeline.FirstSeq != 6 || s.Timeline.Start() != 140 {
		t.Fatalf("trimming further: %+v", s.Timeline)
	}
}

func TestStateRoundTripsAndRefusesNewerVersions(t *testing.T) {
	var s TrackState
	for i, a := range stream(5, 20) {
		apply(t, &s, a, t0.Add(time.Duration(i)*time.Second))
	}
	b, err := MarshalTrackState(&s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalTrackState(b)
	if err != nil || !reflect.DeepEqual(*back, s) {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	m["v"] = StateVersion + 1
	b, _ = json.Marshal(m)
	if _, err := UnmarshalTrackState(b); err == nil {
		t.Error("a newer state version was accepted")
	}
}

func TestCommonListsWhatEveryTrackHas(t *testing.T) {
	mk := func(n int, d uint64) Timeline {
		var tl Timeline
		for i := range n {
			tl.Append(Fragment{Start: uint64(i) * d, Duration: d}, false)
		}
		return tl
	}
	if c := Common(mk(6, 20), mk(5, 20)); c.Len() != 5 || c.End() != 100 {
		t.Errorf("lagging track: %+v", c)
	}
	if c := Common(mk(3, 20), mk(3, 30)); c.Len() != 1 {
		// Only the fragment at 0 starts at the same time... but durations
		// differ, so nothing is common.
		if c.Len() != 0 {
			t.Errorf("mismatched durations: %+v", c)
		}
	}
	if c := Common(mk(4, 20)); c.Len() != 4 {
		t.Errorf("single track: %+v", c)
	}
}

func TestTicksAndWallclock(t *testing.T) {
	if got := Ticks(1500*time.Millisecond, 10_000_000); got != 15_000_000 {
		t.Errorf("Ticks = %d", got)
	}
	p := Presentation{Epoch: t0}
	if got := p.Wallclock(25_000_000, 10_000_000); !got.Equal(t0.Add(2500 * time.Millisecond)) {
		t.Errorf("Wallclock = %v", got)
	}
}

// Conversions between durations and ticks never wrap: past what the
// result can hold they saturate, so that a time centuries away stays
// later than every time a stream has (a wrapped one lands before them).
func TestTickConversionsSaturateRatherThanWrap(t *testing.T) {
	const maxDur = time.Duration(math.MaxInt64)
	for _, tc := range []struct {
		name      string
		d         time.Duration
		timescale uint64
		want      uint64
	}{
		{"a second at 10 MHz", time.Second, 10_000_000, 10_000_000},
		{"a fraction rounds down", 1500*time.Millisecond + 99, 10_000_000, 15_000_000},
		{"nothing before the epoch", -time.Hour, 10_000_000, 0},
		{"the longest duration at 10 MHz fits", maxDur, 10_000_000, 92_233_720_368_547_758},
		{"the longest duration at 2^32-1 saturates", maxDur, math.MaxUint32, math.MaxUint64},
		{"a fraction at a huge timescale does not wrap", 999_999_999, 1 << 62, (1<<62)/1_000_000_000*999_999_999 + (1<<62)%1_000_000_000*999_999_999/1_000_000_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Ticks(tc.d, tc.timescale); got != tc.want {
				t.Errorf("Ticks(%v, %d) = %d, want %d", tc.d, tc.timescale, got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name             string
		ticks, timescale uint64
		want             time.Duration
	}{
		{"2.5 s at 10 MHz", 25_000_000, 10_000_000, 2500 * time.Millisecond},
		{"a fraction at 90 kHz rounds down", 1, 90_000, 11111 * time.Nanosecond},
		{"the largest tfxd time at 10 MHz saturates", math.MaxUint64, 10_000_000, maxDur},
		{"just past the longest duration saturates", uint64(math.MaxInt64) + 1, uint64(time.Second), maxDur},
		{"a fraction at the largest timescale does not wrap", math.MaxUint64 - 1, math.MaxUint64, time.Second - 1},
		{"no timescale", 5, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DurationOf(tc.ticks, tc.timescale); got != tc.want {
				t.Errorf("DurationOf(%d, %d) = %v, want %v", tc.ticks, tc.timescale, got, tc.want)
			}
		})
	}
	p := Presentation{Epoch: t0}
	if got := p.Wallclock(math.MaxUint64, 10_000_000); !got.After(t0.Add(100 * 365 * 24 * time.Hour)) {
		t.Errorf("Wallclock of the largest time = %v: wrapped", got)
	}
}

func TestTrimAfterAndRanges(t *testing.T) {
	mk := func() Timeline {
		var tl Timeline
		tl.FirstSeq = 10
		for i := range uint64(5) {
			tl.Append(Fragment{Start: i * 100, Duration: 100}, false)
		}
		tl.Append(Fragment{Start: 700, Duration: 50}, true)
		return tl
	}
	for _, tc := range []struct {
		name       string
		from, to   uint64 // 0: open
		wantStarts []uint64
		wantSeq    uint64
	}{
		{"open", 0, 0, []uint64{0, 100, 200, 300, 400, 700}, 10},
		{"to inside a fragment keeps it", 0, 250, []uint64{0, 100, 200}, 10},
		{"to on a boundary", 0, 200, []uint64{0, 100}, 10},
		{"from inside a fragment keeps it", 150, 0, []uint64{100, 200, 300, 400, 700}, 11},
		{"from on a boundary", 200, 0, []uint64{200, 300, 400, 700}, 12},
		{"both, across the gap", 350, 720, []uint64{300, 400, 700}, 13},
		{"nothing", 500, 700, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := mk()
			if tc.from > 0 {
				tl.TrimBefore(tc.from)
			}
			if tc.to > 0 {
				tl.TrimAfter(tc.to)
			}
			var starts []uint64
			for e := range tl.All() {
				starts = append(starts, e.Start)
			}
			if !slices.Equal(starts, tc.wantStarts) || len(starts) > 0 && tl.FirstSeq != tc.wantSeq {
				t.Fatalf("starts %v seq %d, want %v seq %d", starts, tl.FirstSeq, tc.wantStarts, tc.wantSeq)
			}
		})
	}
}

// The measured bitrates and frame rate come from what was published.
func TestMeasuredBitratesAndFrameRate(t *testing.T) {
	var s TrackState
	const ts = 10_000_000
	if _, _, ok := s.Bitrates(ts); ok {
		t.Fatal("bitrates before anything was published")
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, size := range []int64{200_000, 260_000, 200_000} { // 2 s each: 800k, 1040k, 800k
		a := Arrival{Fragment: Fragment{Start: uint64(i) * 2 * ts, Duration: 2 * ts}, Size: size, Samples: 50, HasPrev: i > 0, Prev: uint64(max(i-1, 0)) * 2 * ts}
		s.Apply(a, now, Rules{GapTimeout: time.Second})
	}
	avg, peak, ok := s.Bitrates(ts)
	if !ok || avg != 880_000 || peak != 1_040_000 {
		t.Errorf("bitrates %d avg, %d peak (%v); want 880000 and 1040000", avg, peak, ok)
	}
	if fps, ok := s.FrameRate(ts); !ok || fps != 25 {
		t.Errorf("frame rate %v (%v), want 25", fps, ok)
	}
}

func TestExtent(t *testing.T) {
	p := Presentation{Epoch: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	mk := func(start, end uint64) *Timeline {
		var tl Timeline
		tl.Append(Fragment{Start: start, Duration: end - start}, false)
		return &tl
	}
	var e Extent
	e.Add(&p, &Timeline{}, 1000)
	if !e.Empty() {
		t.Fatal("an empty timeline widened the extent")
	}
	e.Add(&p, mk(2000, 12000), 1000)    // 2 s to 12 s
	e.Add(&p, mk(1000, 11500), 1000)    // 1 s to 11.5 s
	e.Add(&p, mk(30000, 360000), 30000) // 1 s to 12 s at another timescale
	sec := func(s float64) time.Time { return p.Epoch.Add(time.Duration(s * float64(time.Second))) }
	if !e.Start.Equal(sec(1)) || !e.End.Equal(sec(12)) || !e.FirstEnd.Equal(sec(11.5)) {
		t.Errorf("extent %v to %v, first end %v", e.Start, e.End, e.FirstEnd)
	}
}

// event is an arrival or a connection end, as the handler applies them.
type event struct {
	a   *Arrival
	end *End
}

func applyEvent(t *testing.T, s *TrackState, ev event, at time.Time) {
	t.Helper()
	if ev.end != nil {
		s.ApplyEnd(*ev.end, at, rules)
		return
	}
	apply(t, s, *ev.a, at)
}

// sessions returns the events of two encoder connections: the first
// pushes 10 fragments of 20 from 0 and ends (a drop or the end of the
// stream); the second, rebased by the relay to 260, pushes 10 more (its
// first marked Disc) and ends the stream.
func sessions(firstEnds bool) []event {
	var evs []event
	for _, a := range stream(10, 20) {
		evs = append(evs, event{a: &a})
	}
	evs = append(evs, event{end: &End{Time: 200, Stream: firstEnds}})
	for i, a := range stream(10, 20) {
		a.Start += 260
		a.Prev += 260
		a.Disc = i == 0
		evs = append(evs, event{a: &a})
	}
	return append(evs, event{end: &End{Time: 460, Stream: true}})
}

func TestConnectionEndsInAnyOrderGiveTheInOrderState(t *testing.T) {
	for _, firstEnds := range []bool{false, true} {
		evs := sessions(firstEnds)
		var want TrackState
		for i, ev := range evs {
			applyEvent(t, &want, ev, t0.Add(time.Duration(i)*time.Millisecond))
		}
		// The second connection's first fragment goes at once (the first
		// connection ended there), after a discontinuity.
		wantRuns := []Run{{0, 20, 10, false, false, nil, ""}, {260, 20, 10, true, true, nil, ""}}
		if !reflect.DeepEqual(want.Timeline.Runs, wantRuns) || len(want.Pending) != 0 {
			t.Fatalf("in order: runs %+v pending %d, want %+v", want.Timeline.Runs, len(want.Pending), wantRuns)
		}
		if len(want.Ends) != 1 || want.Ends[0].Time != 460 || !want.Ends[0].Stream {
			t.Fatalf("in order: ends %+v, want the second connection's", want.Ends)
		}
		for seed := range uint64(300) {
			rng := rand.New(rand.NewPCG(seed, 11))
			var shuffled []event
			for _, ev := range evs {
				for range 1 + rng.IntN(2) {
					shuffled = append(shuffled, ev)
				}
			}
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			// Each event keeps its own time, as a redelivered S3 event does.
			at := map[event]time.Time{}
			for i, ev := range evs {
				at[ev] = t0.Add(time.Duration(i) * time.Millisecond)
			}
			var s TrackState
			for _, ev := range shuffled {
				applyEvent(t, &s, ev, at[ev])
			}
			if !reflect.DeepEqual(s.Timeline, want.Timeline) || len(s.Pending) != 0 || !reflect.DeepEqual(s.Ends, want.Ends) {
				t.Fatalf("ends %v, seed %d: runs %+v pending %d ends %+v; want %+v ends %+v",
					firstEnds, seed, s.Timeline.Runs, len(s.Pending), s.Ends, want.Timeline.Runs, want.Ends)
			}
		}
	}
}

func TestFinished(t *testing.T) {
	const ts = 10 // ticks per second: fragments of 2 s
	var s TrackState
	for i, a := range stream(3, 20) {
		apply(t, &s, a, t0.Add(time.Duration(i)*time.Second))
	}
	if s.Finished(t0.Add(time.Hour), ts) {
		t.Fatal("finished without an end")
	}
	s.ApplyEnd(End{Time: 80, Stream: true}, t0, rules)
	if s.Finished(t0.Add(time.Hour), ts) {
		t.Fatal("finished before the last fragment (60..80) is published")
	}
	s = TrackState{}
	for i, a := range stream(3, 20) {
		apply(t, &s, a, t0.Add(time.Duration(i)*time.Second))
	}
	s.ApplyEnd(End{Time: 60, Stream: false}, t0, rules)
	if s.Finished(t0.Add(time.Hour), ts) {
		t.Fatal("a dropped connection finished the stream")
	}
	s.ApplyEnd(End{Time: 60, Stream: true}, t0, rules) // a redundant encoder ended it
	if s.Finished(t0.Add(3*time.Second), ts) {
		t.Fatal("finished within two fragment durations of the end: a redundant encoder may go on")
	}
	if !s.Finished(t0.Add(4*time.Second), ts) {
		t.Fatal("not finished two fragment durations after the end")
	}
	// The redundant encoder goes on: live again.
	a := stream(4, 20)[3]
	apply(t, &s, a, t0.Add(5*time.Second))
	if s.Finished(t0.Add(time.Hour), ts) || len(s.Ends) != 0 {
		t.Fatalf("still finished after the stream went on: ends %+v", s.Ends)
	}
}

// Fragments about to pass retention (before Oldest) are not listed, in
// the DVR window or in a time-shift range.
func TestOldestLeavesOutExpiringFragments(t *testing.T) {
	var st TrackState
	for _, a := range stream(10, 20) { // 10 ticks per second: 2 s each
		apply(t, &st, a, t0)
	}
	p := &Presentation{Epoch: t0, DVRWindow: time.Hour, Oldest: t0.Add(7 * time.Second),
		Tracks: []TrackView{{Track: Track{Timescale: 10}, State: st}}}
	for _, rng := range []*Range{nil, {From: t0}} {
		p.Range = rng
		tl := p.Windowed(&p.Tracks[0])
		// The fragment 6..8 s ends after Oldest: kept.
		if tl.Start() != 60 || tl.Len() != 7 {
			t.Errorf("range %v: starts at %d with %d fragments, want 60 and 7", rng, tl.Start(), tl.Len())
		}
	}
}

// A fragment that does not start where the timeline ends follows a hole,
// whatever the caller says: it opens a run marked as a gap (unless the
// hole is under 1 % of the fragment: rounding), and cyclic durations are
// never folded across it (the folded run's times would name fragments
// that do not exist).
func TestAppendAfterAHoleIsAGap(t *testing.T) {
	aac := []uint64{20053333, 20053334, 20053333, 19840000}
	var tl Timeline
	var want []Entry
	at := uint64(0)
	for i := range 12 {
		d := aac[i%4]
		if i == 6 {
			at += 40_000_000 // 4 s of nothing, the caller not saying so
		}
		tl.Append(Fragment{Start: at, Duration: d}, false)
		want = append(want, Entry{Fragment: Fragment{Start: at, Duration: d}, Gap: i == 6})
		at += d
	}
	var got []Entry
	for e := range tl.All() {
		got = append(got, Entry{Fragment: Fragment{Start: e.Start, Duration: e.Duration}, Gap: e.Gap})
	}
	if !slices.Equal(got, want) {
		t.Errorf("timeline lists\n%v\nwant\n%v", got, want)
	}

	// A hole of a few ticks (an encoder's rounding) is no gap, but folding
	// still stops at it: every fragment keeps its own time.
	var jit Timeline
	want, at = nil, 0
	for i := range 12 {
		d := aac[i%4]
		if i == 6 {
			at += 3
		}
		jit.Append(Fragment{Start: at, Duration: d}, false)
		want = append(want, Entry{Fragment: Fragment{Start: at, Duration: d}})
		at += d
	}
	got = nil
	for e := range jit.All() {
		got = append(got, Entry{Fragment: Fragment{Start: e.Start, Duration: e.Duration}, Gap: e.Gap})
	}
	if !slices.Equal(got, want) {
		t.Errorf("jittered timeline lists\n%v\nwant\n%v", got, want)
	}
}

// MaxSpans bounds what Spans yields: one span for a constant run, no more
// spans than fragments for a cyclic one.
func TestMaxSpansBoundsSpans(t *testing.T) {
	for _, tc := range []struct {
		name      string
		durations []uint64
		want      int // MaxSpans
	}{
		{"constant", []uint64{20, 20, 20, 20, 20, 20}, 1},
		{"cyclic", []uint64{21, 21, 22, 21, 21, 22, 21, 21, 22, 21, 21, 22}, -1},
		{"empty", nil, 0},
	} {
		var tl Timeline
		var start uint64
		for _, d := range tc.durations {
			tl.Append(Fragment{Start: start, Duration: d}, false)
			start += d
		}
		spans := 0
		for range tl.Spans() {
			spans++
		}
		if got := tl.MaxSpans(); got < spans || got > max(len(tc.durations), 1) || (tc.want >= 0 && got != tc.want) {
			t.Errorf("%s: MaxSpans %d, Spans yields %d (want %d, at most one per fragment)", tc.name, got, spans, tc.want)
		}
	}
}

// Package timeline holds a channel's published fragments: one Timeline per
// track, kept as run-length encoded runs of equal-duration fragments, and the
// rules that grow it from object-created events that arrive at least once,
// late and out of order.
//
// Everything here is a pure value: no clock, no store, no logging. The caller
// supplies "now" (the event time) and persists the state with a conditional
// write.
package timeline

import (
	"fmt"
	"iter"
	"math"
	"math/bits"
	"slices"
)

// Fragment is one fragment of a track: its start time and duration in the
// track's timescale.
type Fragment struct {
	Start    uint64
	Duration uint64
}

// End is the time just after the fragment.
func (f Fragment) End() uint64 { return f.Start + f.Duration }

// Run is Count contiguous fragments starting at Start. In a constant run
// every fragment lasts Duration. In a cyclic run the durations repeat
// Cycle (two to MaxCycle of them): fragment i lasts Cycle[i%len(Cycle)].
// Cycles keep an AAC track as flat as a video track: its fragments cannot
// all last the same, since 2 s is not a whole number of 1024-sample
// frames, but their durations repeat (every 4 fragments at 48 kHz, 128 at
// 44.1 kHz). Gap marks a discontinuity (missing media) before the run's
// first fragment. Init is the init segment version of every fragment of
// the run (Arrival.Init): runs merge only with the same Init.
type Run struct {
	Start    uint64 `json:"t"`
	Duration uint64 `json:"d,omitempty"`
	Count    uint64 `json:"n"`
	Gap      bool   `json:"gap,omitempty"`
	// Break marks a gap that is a break in the encoder's timeline (it
	// restarted, its clock jumped): DASH starts a new Period there.
	Break bool     `json:"brk,omitempty"`
	Cycle []uint64 `json:"c,omitempty"`
	// Init is the version of the init segment of the run's fragments
	// (layout.InitKeyOf): "" the track's first.
	Init string `json:"init,omitempty"`
}

// MaxCycle is the longest cycle of durations a run keeps.
const MaxCycle = 128

// period is the number of durations in the run's cycle.
func (r *Run) period() uint64 {
	if len(r.Cycle) > 0 {
		return uint64(len(r.Cycle))
	}
	return 1
}

// span is the duration of one cycle.
func (r *Run) span() uint64 {
	if len(r.Cycle) == 0 {
		return r.Duration
	}
	var t uint64
	for _, d := range r.Cycle {
		t += d
	}
	return t
}

// DurationAt is the duration of fragment i of the run.
func (r *Run) DurationAt(i uint64) uint64 {
	if len(r.Cycle) == 0 {
		return r.Duration
	}
	return r.Cycle[i%uint64(len(r.Cycle))]
}

// offset is the start of fragment i (0 <= i <= Count) relative to Start.
func (r *Run) offset(i uint64) uint64 {
	if len(r.Cycle) == 0 {
		return i * r.Duration
	}
	p := uint64(len(r.Cycle))
	t := i / p * r.span()
	for _, d := range r.Cycle[:i%p] {
		t += d
	}
	return t
}

// boundaries counts the fragment boundaries j (0 <= j <= Count, boundary
// j being the start of fragment j and the end of fragment j-1) at or
// before Start+off.
func (r *Run) boundaries(off uint64) uint64 {
	var n uint64
	if len(r.Cycle) == 0 {
		n = off/r.Duration + 1
	} else {
		span := r.span()
		n = off / span * uint64(len(r.Cycle))
		rem := off % span
		for _, d := range r.Cycle {
			n++ // the boundary at the start of this duration
			if rem < d {
				break
			}
			rem -= d
		}
	}
	return min(n, r.Count+1)
}

// End is the time just after the run's last fragment.
func (r Run) End() uint64 { return r.Start + r.offset(r.Count) }

// equal reports whether two runs list the same fragments with the same
// markers.
func (r *Run) equal(o *Run) bool {
	return r.Start == o.Start && r.Duration == o.Duration && r.Count == o.Count &&
		r.Gap == o.Gap && r.Break == o.Break && slices.Equal(r.Cycle, o.Cycle) && r.Init == o.Init
}

// Timeline is a track's published fragments in time order. FirstSeq is the
// media sequence number of its first fragment and FirstDisc the number of
// gaps before it: both keep counting as the window slides.
//
// HLS lists a hole (a gap where media time goes on: Hole) as EXT-X-GAP
// segments (HoleSegments of them), not as a discontinuity: Holes and
// HoleSegs count the holes trimmed away and their segments, so that
// EXT-X-MEDIA-SEQUENCE (FirstSeq+HoleSegs) and
// EXT-X-DISCONTINUITY-SEQUENCE (FirstDisc-Holes) keep counting too.
type Timeline struct {
	Runs      []Run  `json:"runs"`
	FirstSeq  uint64 `json:"seq"`
	FirstDisc uint64 `json:"disc,omitempty"`
	Holes     uint64 `json:"holes,omitempty"`
	HoleSegs  uint64 `json:"holesegs,omitempty"`
	// BreakAt is the start of the last break trimmed away (HasBreakAt):
	// the Period that the first fragments belong to begins there.
	BreakAt    uint64 `json:"brkat,omitempty"`
	HasBreakAt bool   `json:"hasbrk,omitempty"`
}

// Empty reports whether the timeline has no fragments.
func (tl *Timeline) Empty() bool { return len(tl.Runs) == 0 }

// Len is the number of fragments.
func (tl *Timeline) Len() int {
	n := 0
	for _, r := range tl.Runs {
		n += int(r.Count)
	}
	return n
}

// Start is the start time of the first fragment (0 when empty).
func (tl *Timeline) Start() uint64 {
	if tl.Empty() {
		return 0
	}
	return tl.Runs[0].Start
}

// End is the end time of the last fragment (0 when empty).
func (tl *Timeline) End() uint64 {
	if tl.Empty() {
		return 0
	}
	return tl.Runs[len(tl.Runs)-1].End()
}

// Last is the last fragment; ok is false when the timeline is empty.
func (tl *Timeline) Last() (f Fragment, ok bool) {
	if tl.Empty() {
		return Fragment{}, false
	}
	r := &tl.Runs[len(tl.Runs)-1]
	return Fragment{Start: r.Start + r.offset(r.Count-1), Duration: r.DurationAt(r.Count - 1)}, true
}

// Contains reports whether a published fragment starts at exactly start.
func (tl *Timeline) Contains(start uint64) bool {
	// Runs are few (one per duration change); a linear scan from the end
	// finds recent fragments first, which is what duplicates ask about.
	for i := len(tl.Runs) - 1; i >= 0; i-- {
		r := &tl.Runs[i]
		if start >= r.Start && start < r.End() {
			off := start - r.Start
			return off == 0 || r.boundaries(off) > r.boundaries(off-1)
		}
		if start >= r.End() {
			return false
		}
	}
	return false
}

// lastInit is the Init of the last run ("" when empty).
func (tl *Timeline) lastInit() string {
	if tl.Empty() {
		return ""
	}
	return tl.Runs[len(tl.Runs)-1].Init
}

// Append adds f after the last fragment. gap marks missing media before f
// (ignored for the first fragment). The caller guarantees f.Start >= End()
// and f.Duration > 0. A fragment that continues the last run's durations
// extends it; otherwise it starts a run, and the end of the timeline is
// folded into a cyclic run if its durations have begun to repeat. f has
// the last run's Init.
func (tl *Timeline) Append(f Fragment, gap bool) { tl.add(f, gap, tl.lastInit()) }

// add is Append of a fragment of init segment version init: it extends
// or folds into only runs of that version.
func (tl *Timeline) add(f Fragment, gap bool, init string) {
	n := len(tl.Runs)
	contiguous := n == 0 || tl.Runs[n-1].End() == f.Start
	switch {
	case n == 0:
		gap = false
	case !contiguous && !gap:
		// Not where the timeline ends: missing media, whatever the caller
		// says, unless the hole is an encoder's rounding (under 1 % of
		// the fragment). Either way it starts a run of its own, which
		// folding never crosses and renderers give its own time.
		gap = (f.Start-tl.Runs[n-1].End())*100 > f.Duration
	}
	if n > 0 && !gap && contiguous && tl.Runs[n-1].Init == init {
		last := &tl.Runs[n-1]
		if last.End() == f.Start {
			if last.DurationAt(last.Count) == f.Duration {
				last.Count++
				return
			}
			tl.Runs = append(tl.Runs, Run{Start: f.Start, Duration: f.Duration, Count: 1, Init: init})
			tl.fold()
			return
		}
	}
	tl.Runs = append(tl.Runs, Run{Start: f.Start, Duration: f.Duration, Count: 1, Gap: gap, Init: init})
}

// fold replaces the end of the timeline with one cyclic run when the
// durations of its last fragments repeat with a period p <= MaxCycle at
// least twice over. It looks back at most 2*MaxCycle fragments, and never
// past a gap, a break, a hole or a change of Init, so its cost is bounded
// whatever the window.
func (tl *Timeline) fold() {
	// The durations of the last fragments, newest first.
	var back [2 * MaxCycle]uint64
	m, ri := 0, len(tl.Runs)-1
	for ; ri >= 0 && m < len(back); ri-- {
		r := &tl.Runs[ri]
		k := min(r.Count, uint64(len(back)-m))
		for i := uint64(0); i < k; i++ {
			back[m] = r.DurationAt(r.Count - 1 - i)
			m++
		}
		if r.Gap || r.Break || k < r.Count || ri > 0 && (tl.Runs[ri-1].End() != r.Start || tl.Runs[ri-1].Init != r.Init) {
			break
		}
	}
	// The smallest period whose last two cycles agree.
	p := 0
	for q := 1; 2*q <= m; q++ {
		if slices.Equal(back[:q], back[q:2*q]) {
			p = q
			break
		}
	}
	if p == 0 {
		return
	}
	// How far back the period holds.
	l := 2 * p
	for l < m && back[l] == back[l-p] {
		l++
	}
	// The fragments to fold: the last l. Find the run and the index in it
	// where they begin.
	rest := uint64(l)
	j := len(tl.Runs) - 1
	for ; rest > tl.Runs[j].Count; j-- {
		rest -= tl.Runs[j].Count
	}
	first := &tl.Runs[j]
	k := first.Count - rest // fragments of run j that stay before the fold
	folded := Run{Start: first.Start + first.offset(k), Count: uint64(l), Init: first.Init}
	if k == 0 {
		folded.Gap, folded.Break = first.Gap, first.Break
	}
	if p == 1 {
		folded.Duration = back[0]
	} else {
		// back is newest first: the cycle starts l-1 fragments back.
		folded.Cycle = make([]uint64, p)
		for i := range p {
			folded.Cycle[i] = back[l-1-i]
		}
	}
	if k > 0 {
		first.Count = k
		j++
	}
	tl.Runs = append(tl.Runs[:j], folded)
}

// AppendSparse adds f, a fragment of a sparse track (Kind.Sparse), after
// the last fragment: time between them is a pause between cues, not
// missing media. A fragment that starts where the timeline ends extends
// it as Append does; one that starts later begins a run of its own
// without a gap marker: no discontinuity and no hole (HLS EXT-X-GAP).
// Renderers list such a run at its own time: Smooth and DASH give its
// first fragment its time (Span.Follows is false); HLS, whose segments
// follow each other, fills the pause (from the previous Entry's End to
// this one's Start) with segments of no cue. The caller guarantees what
// Append needs; f has the last run's Init.
func (tl *Timeline) AppendSparse(f Fragment) { tl.addSparse(f, tl.lastInit()) }

// addSparse is AppendSparse of a fragment of init segment version init.
func (tl *Timeline) addSparse(f Fragment, init string) {
	if n := len(tl.Runs); n > 0 && tl.Runs[n-1].End() != f.Start {
		tl.Runs = append(tl.Runs, Run{Start: f.Start, Duration: f.Duration, Count: 1, Init: init})
		return
	}
	tl.add(f, false, init)
}

// AppendBreak adds f after a break in the encoder's timeline (a gap that
// starts a new DASH Period). The caller guarantees what Append needs; f
// has the last run's Init.
func (tl *Timeline) AppendBreak(f Fragment) { tl.addBreak(f, tl.lastInit()) }

// addBreak is AppendBreak of a fragment of init segment version init.
func (tl *Timeline) addBreak(f Fragment, init string) {
	if len(tl.Runs) == 0 {
		tl.add(f, false, init)
		return
	}
	tl.add(f, true, init)
	tl.Runs[len(tl.Runs)-1].Break = true
}

// TrimBefore removes the fragments that end at or before t, keeping
// FirstSeq and FirstDisc in step. The first remaining fragment never carries
// a gap marker: the discontinuity before it is counted in FirstDisc.
func (tl *Timeline) TrimBefore(t uint64) {
	i := 0
	for i < len(tl.Runs) && tl.Runs[i].End() <= t {
		tl.FirstSeq += tl.Runs[i].Count
		if tl.Runs[i].Break {
			tl.BreakAt, tl.HasBreakAt = tl.Runs[i].Start, true
		}
		i++
		if i < len(tl.Runs) && tl.Runs[i].Gap {
			tl.FirstDisc++
			if prevEnd := tl.Runs[i-1].End(); Hole(prevEnd, tl.Runs[i].Start, tl.Runs[i].Break) {
				tl.Holes++
				tl.HoleSegs += HoleSegments(prevEnd, tl.Runs[i].Start, tl.Runs[i].DurationAt(0))
			}
			tl.Runs[i].Gap = false
		} else if i < len(tl.Runs) {
			// A pause of a sparse track: HLS fills it with EXT-X-GAP
			// segments too, which keep their numbers.
			r, prevEnd := &tl.Runs[i], tl.Runs[i-1].End()
			if Pause(prevEnd, r.Start, r.DurationAt(0), r.Gap) {
				tl.HoleSegs += HoleSegments(prevEnd, r.Start, r.DurationAt(0))
			}
		}
	}
	tl.Runs = append(tl.Runs[:0], tl.Runs[i:]...)
	if len(tl.Runs) == 0 {
		return
	}
	if r := &tl.Runs[0]; r.Start < t {
		if r.Break {
			tl.BreakAt, tl.HasBreakAt, r.Break = r.Start, true, false
		}
		// Fragments ending at or before t: boundaries 1..k lie at or
		// before t, fewer than Count of them.
		k := r.boundaries(t-r.Start) - 1
		tl.FirstSeq += k
		off := r.offset(k)
		if len(r.Cycle) > 0 && k%r.period() != 0 {
			// A new slice: copies of the timeline may share the old one.
			c := k % r.period()
			r.Cycle = append(append([]uint64(nil), r.Cycle[c:]...), r.Cycle[:c]...)
		}
		r.Start += off
		r.Count -= k
	}
}

// TrimAfter removes the fragments that start at or after t. Sequence
// numbers of what remains do not change.
func (tl *Timeline) TrimAfter(t uint64) {
	for len(tl.Runs) > 0 {
		r := &tl.Runs[len(tl.Runs)-1]
		if r.Start >= t {
			tl.Runs = tl.Runs[:len(tl.Runs)-1]
			continue
		}
		// Fragments starting before t: the boundaries before t, that is at
		// or before t-1, Count at most.
		r.Count = min(r.Count, r.boundaries(t-1-r.Start))
		return
	}
}

// Hole reports whether a gap between prevEnd and start, the end of the
// fragment before it and the start of the one after it, is a hole: media
// missing while the encoder's timeline goes on (lost or late fragments),
// not a break in it. A hole is no discontinuity: the media times on each
// side of it are those of one timeline.
func Hole(prevEnd, start uint64, brk bool) bool { return !brk && start > prevEnd }

// Pause reports whether the time between prevEnd and start, the end of
// a fragment and the start of the next one (d long, gap its marker), is
// a pause of a sparse track (AppendSparse): no gap marker, and more than
// the 1 % of d that Append takes for an encoder's rounding. HLS fills a
// pause with EXT-X-GAP segments, HoleSegments of them, as it fills a
// hole; TrimBefore counts them in HoleSegs.
func Pause(prevEnd, start, d uint64, gap bool) bool {
	return !gap && start > prevEnd && (start-prevEnd)*100 > d
}

// HoleSegments is how many segments of at most d (the duration of the
// fragment after the hole) fill the hole from prevEnd to start: HLS lists
// them as EXT-X-GAP segments, the hole split evenly (HoleBoundary).
func HoleSegments(prevEnd, start, d uint64) uint64 {
	hole := start - prevEnd
	if d == 0 {
		return 1
	}
	return hole/d + min(hole%d, 1)
}

// HoleBoundary is the start of segment k (0 <= k <= n) of the n that fill
// the hole from prevEnd to start: prevEnd + (start-prevEnd)*k/n, exact
// for any times.
func HoleBoundary(prevEnd, start, k, n uint64) uint64 {
	hi, lo := bits.Mul64(start-prevEnd, k)
	q, _ := bits.Div64(hi, lo, n) // hi < n: k <= n
	return prevEnd + q
}

// Entry is one fragment as the renderers see it: its media sequence
// number, its discontinuity sequence number, and whether a discontinuity
// precedes it.
type Entry struct {
	Fragment
	Seq  uint64
	Disc uint64
	Gap  bool
	// Break: the encoder's timeline breaks before this fragment, or its
	// init segment version differs from the one before it.
	Break bool
	// Init is the version of the fragment's init segment (Run.Init).
	Init string
}

// All yields every fragment in order.
func (tl *Timeline) All() iter.Seq[Entry] {
	return func(yield func(Entry) bool) {
		seq, disc := tl.FirstSeq, tl.FirstDisc
		for ri := range tl.Runs {
			r := &tl.Runs[ri]
			t := r.Start
			for i := uint64(0); i < r.Count; i++ {
				gap := i == 0 && r.Gap && ri > 0
				if gap {
					disc++
				}
				d := r.DurationAt(i)
				e := Entry{Fragment: Fragment{Start: t, Duration: d}, Seq: seq, Disc: disc, Gap: gap, Break: i == 0 && r.Break, Init: r.Init}
				if !yield(e) {
					return
				}
				seq++
				t += d
			}
		}
	}
}

// Window returns a copy of tl that keeps only the fragments ending after
// End()-window (window in the track's timescale; 0 keeps everything).
func (tl *Timeline) Window(window uint64) Timeline {
	out := *tl
	out.Runs = append([]Run(nil), tl.Runs...)
	if window > 0 && tl.End() > window {
		out.TrimBefore(tl.End() - window)
	}
	return out
}

// Common returns the fragments that every one of tls has (same start and
// duration), in order: what a Smooth StreamIndex or a DASH AdaptationSet
// whose representations share one timeline may list. Sequence numbers are
// those of the first timeline.
func Common(tls ...Timeline) Timeline {
	if len(tls) == 0 {
		return Timeline{}
	}
	if len(tls) == 1 || allSame(tls) {
		// The common case: renditions of one encoder share every fragment.
		return tls[0].Window(0)
	}
	nexts := make([]func() (Entry, bool), len(tls))
	stops := make([]func(), len(tls))
	heads := make([]Entry, len(tls))
	for i := range tls {
		nexts[i], stops[i] = iter.Pull(tls[i].All())
		defer stops[i]()
	}
	for i := range tls {
		e, ok := nexts[i]()
		if !ok {
			return Timeline{}
		}
		heads[i] = e
	}
	out := Timeline{BreakAt: tls[0].BreakAt, HasBreakAt: tls[0].HasBreakAt}
	first := true
	prevEnd := uint64(0)
	// skipped: a timeline had a fragment since the last common one that
	// not all have (missing media in the common timeline).
	skipped := false
	for {
		// The largest head start is the earliest candidate all can share.
		maxStart := heads[0].Start
		for _, h := range heads[1:] {
			maxStart = max(maxStart, h.Start)
		}
		agreed := true
		for i := range heads {
			for heads[i].Start < maxStart {
				e, ok := nexts[i]()
				if !ok {
					return out
				}
				heads[i] = e
				skipped = true
			}
			if heads[i].Start != maxStart || heads[i].Duration != heads[0].Duration {
				agreed = false
			}
		}
		if agreed {
			if first {
				out.FirstSeq, out.FirstDisc = heads[0].Seq, heads[0].Disc
			}
			brk, gap := false, false
			for _, h := range heads {
				brk, gap = brk || h.Break, gap || h.Gap
			}
			// A change of init segment version is a break, as the
			// tracks' own timelines have it.
			v := heads[0].Init
			switch {
			case (brk || v != out.lastInit()) && !first:
				out.addBreak(heads[0].Fragment, v)
			case !first && !gap && !skipped && (heads[0].Start-prevEnd)*100 > heads[0].Duration:
				// Every timeline pauses here, none marks a gap: sparse
				// tracks' pause (those that are not mark their holes).
				out.addSparse(heads[0].Fragment, v)
			default:
				out.add(heads[0].Fragment, !first && (heads[0].Start != prevEnd || heads[0].Gap), v)
			}
			first, skipped = false, false
			prevEnd = heads[0].End()
			for i := range heads {
				e, ok := nexts[i]()
				if !ok {
					return out
				}
				heads[i] = e
			}
			continue
		}
		// Advance whichever is behind the largest start.
		for i := range heads {
			if heads[i].Start == maxStart {
				e, ok := nexts[i]()
				if !ok {
					return out
				}
				heads[i] = e
				skipped = true
				break
			}
		}
	}
}

// allSame reports whether every timeline lists the same fragments with the
// same gaps and breaks (sequence numbers may differ: the first one's are
// kept).
func allSame(tls []Timeline) bool {
	for _, tl := range tls[1:] {
		if !slices.EqualFunc(tl.Runs, tls[0].Runs, func(a, b Run) bool { return a.equal(&b) }) {
			return false
		}
	}
	return true
}

// Span is Count contiguous fragments of equal Duration: what one Smooth
// <c> or DASH <S> element with a repeat count lists.
type Span struct {
	Start    uint64
	Duration uint64
	Count    uint64
	// Gap and Break mark the span's first fragment as Run's do.
	Gap, Break bool
	// Follows is whether the span starts where the previous one ends:
	// an element listing it then leaves its start (t) out.
	Follows bool
}

// End is the time just after the span's last fragment.
func (s Span) End() uint64 { return s.Start + s.Duration*s.Count }

// MaxSpans bounds how many spans Spans yields: one per constant run, at
// most one per fragment of a cyclic run. Renderers size their buffers by
// it.
func (tl *Timeline) MaxSpans() int {
	n := 0
	for _, r := range tl.Runs {
		if len(r.Cycle) > 0 {
			n += int(min(r.Count, math.MaxInt32))
		} else {
			n++
		}
	}
	return n
}

// Spans yields the fragments as maximal spans of equal durations, whatever
// runs hold them: two timelines with the same fragments give the same
// spans.
func (tl *Timeline) Spans() iter.Seq[Span] {
	return func(yield func(Span) bool) {
		var cur Span
		for ri := range tl.Runs {
			r := &tl.Runs[ri]
			if len(r.Cycle) == 0 && cur.Count > 0 && !r.Gap && !r.Break && r.Duration == cur.Duration && r.Start == cur.End() {
				cur.Count += r.Count
				continue
			}
			t := r.Start
			for i := uint64(0); i < r.Count; i++ {
				d := r.DurationAt(i)
				flagged := i == 0 && (r.Gap || r.Break)
				if cur.Count > 0 && !flagged && d == cur.Duration && t == cur.End() {
					if len(r.Cycle) == 0 {
						cur.Count += r.Count - i
						break
					}
					cur.Count++
				} else {
					if cur.Count > 0 && !yield(cur) {
						return
					}
					cur = Span{Start: t, Duration: d, Count: 1, Gap: flagged && r.Gap && ri > 0, Break: flagged && r.Break,
						Follows: cur.Count > 0 && t == cur.End()}
					if len(r.Cycle) == 0 {
						cur.Count = r.Count - i
						break
					}
				}
				t += d
			}
		}
		if cur.Count > 0 {
			yield(cur)
		}
	}
}

// validate checks a decoded run: a count, and either one duration or a
// cycle of 2 to MaxCycle, none of them zero.
func (r *Run) validate() error {
	switch {
	case r.Count == 0:
		return fmt.Errorf("run at %d has no fragments", r.Start)
	case len(r.Cycle) == 0 && r.Duration == 0:
		return fmt.Errorf("run at %d has zero duration", r.Start)
	case len(r.Cycle) > 0 && (r.Duration != 0 || len(r.Cycle) < 2 || len(r.Cycle) > MaxCycle || slices.Contains(r.Cycle, 0)):
		return fmt.Errorf("run at %d has a bad cycle (%d durations, duration %d)", r.Start, len(r.Cycle), r.Duration)
	}
	return nil
}

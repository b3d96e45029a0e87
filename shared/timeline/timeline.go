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
	"iter"
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

// Run is Count contiguous fragments of equal Duration starting at Start:
// Start, Start+Duration, ... Gap marks a discontinuity (missing media)
// before the run's first fragment.
type Run struct {
	Start    uint64 `json:"t"`
	Duration uint64 `json:"d"`
	Count    uint64 `json:"n"`
	Gap      bool   `json:"gap,omitempty"`
	// Break marks a gap that is a break in the encoder's timeline (it
	// restarted, its clock jumped): DASH starts a new Period there.
	Break bool `json:"brk,omitempty"`
}

// End is the time just after the run's last fragment.
func (r Run) End() uint64 { return r.Start + r.Duration*r.Count }

// Timeline is a track's published fragments in time order. FirstSeq is the
// media sequence number (HLS EXT-X-MEDIA-SEQUENCE) of its first fragment and
// FirstDisc the discontinuity sequence (EXT-X-DISCONTINUITY-SEQUENCE) in
// force there: both keep counting as the window slides.
type Timeline struct {
	Runs      []Run  `json:"runs"`
	FirstSeq  uint64 `json:"seq"`
	FirstDisc uint64 `json:"disc,omitempty"`
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
	r := tl.Runs[len(tl.Runs)-1]
	return Fragment{Start: r.Start + r.Duration*(r.Count-1), Duration: r.Duration}, true
}

// Contains reports whether a published fragment starts at exactly start.
func (tl *Timeline) Contains(start uint64) bool {
	// Runs are few (one per duration change); a linear scan from the end
	// finds recent fragments first, which is what duplicates ask about.
	for i := len(tl.Runs) - 1; i >= 0; i-- {
		r := tl.Runs[i]
		if start >= r.Start && start < r.End() {
			return (start-r.Start)%r.Duration == 0
		}
		if start >= r.End() {
			return false
		}
	}
	return false
}

// Append adds f after the last fragment. gap marks missing media before f
// (ignored for the first fragment). The caller guarantees f.Start >= End()
// and f.Duration > 0.
func (tl *Timeline) Append(f Fragment, gap bool) {
	n := len(tl.Runs)
	if n == 0 {
		gap = false
	}
	if n > 0 && !gap {
		last := &tl.Runs[n-1]
		if last.Duration == f.Duration && last.End() == f.Start {
			last.Count++
			return
		}
	}
	tl.Runs = append(tl.Runs, Run{Start: f.Start, Duration: f.Duration, Count: 1, Gap: gap})
}

// AppendBreak adds f after a break in the encoder's timeline (a gap that
// starts a new DASH Period). The caller guarantees what Append needs.
func (tl *Timeline) AppendBreak(f Fragment) {
	if len(tl.Runs) == 0 {
		tl.Append(f, false)
		return
	}
	tl.Append(f, true)
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
			tl.Runs[i].Gap = false
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
		// Fragment j of the run ends at Start+(j+1)*Duration; those ending
		// at or before t number floor((t-Start)/Duration), fewer than Count.
		k := (t - r.Start) / r.Duration
		tl.FirstSeq += k
		r.Start += k * r.Duration
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
		// Fragments j with Start+j*Duration < t: ceil((t-Start)/Duration).
		r.Count = min(r.Count, (t-r.Start+r.Duration-1)/r.Duration)
		return
	}
}

// Entry is one fragment as the renderers see it: its media sequence
// number, its discontinuity sequence number, and whether a discontinuity
// precedes it.
type Entry struct {
	Fragment
	Seq  uint64
	Disc uint64
	Gap  bool
	// Break: the encoder's timeline breaks before this fragment.
	Break bool
}

// All yields every fragment in order.
func (tl *Timeline) All() iter.Seq[Entry] {
	return func(yield func(Entry) bool) {
		seq, disc := tl.FirstSeq, tl.FirstDisc
		for ri, r := range tl.Runs {
			for i := uint64(0); i < r.Count; i++ {
				gap := i == 0 && r.Gap && ri > 0
				if gap {
					disc++
				}
				e := Entry{Fragment: Fragment{Start: r.Start + i*r.Duration, Duration: r.Duration}, Seq: seq, Disc: disc, Gap: gap, Break: i == 0 && r.Break}
				if !yield(e) {
					return
				}
				seq++
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
			}
			if heads[i].Start != maxStart || heads[i].Duration != heads[0].Duration {
				agreed = false
			}
		}
		if agreed {
			if first {
				out.FirstSeq, out.FirstDisc = heads[0].Seq, heads[0].Disc
			}
			brk := false
			for _, h := range heads {
				brk = brk || h.Break
			}
			if brk && !first {
				out.AppendBreak(heads[0].Fragment)
			} else {
				out.Append(heads[0].Fragment, !first && (heads[0].Start != prevEnd || heads[0].Gap))
			}
			first = false
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
		if !slices.Equal(tl.Runs, tls[0].Runs) {
			return false
		}
	}
	return true
}

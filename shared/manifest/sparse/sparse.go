// Package sparse is how the DASH and Smooth manifests list a sparse
// track: a text track that sends no fragment while it has no cue, for
// seconds or minutes.
package sparse

import "github.com/smoothcast/smoothcast/shared/timeline"

// Close returns tl, the timeline of a sparse track (timeline.Kind.Sparse),
// with each silence closed: the fragment before a pause between cues
// (timeline.AppendSparse) or a hole (timeline.Hole) is listed as lasting
// until the fragment after it starts. A break (the encoder's timeline
// restarted) stays a gap. Sequence numbers are tl's.
//
// A text track's pauses are its silences. dash.js 5 asks for the text
// segment that covers the end of the last one it loaded, by time, and
// finds none in a hole: it then waits at that time for ever, and shows
// no cue after the first silence of a live channel. Listed as lasting
// to the next fragment, the fragment before a silence covers it: it
// holds no sample after its own end, so a player shows nothing there,
// and its next segment is the one after the silence. The cues keep
// their times (they are timed by the fragment's samples, not by the
// manifest). HLS keeps its holes as EXT-X-GAP segments instead (hls.js
// skips them), so that a subtitle playlist's EXTINFs stay its
// fragments' durations.
func Close(tl timeline.Timeline) timeline.Timeline {
	if !hasHole(&tl) {
		return tl
	}
	out := timeline.Timeline{FirstSeq: tl.FirstSeq, FirstDisc: tl.FirstDisc, Holes: tl.Holes, HoleSegs: tl.HoleSegs,
		BreakAt: tl.BreakAt, HasBreakAt: tl.HasBreakAt}
	var prev timeline.Entry
	started := false
	for e := range tl.All() {
		if started {
			if Silence(prev.End(), e) {
				prev.Duration = e.Start - prev.Start
				e.Gap = false
			}
			add(&out, prev)
		}
		prev, started = e, true
	}
	if started {
		add(&out, prev)
	}
	return out
}

// Silence reports whether a sparse track is silent between prevEnd, the
// end of a fragment, and e, the next: e starts later, and not after a
// break.
func Silence(prevEnd uint64, e timeline.Entry) bool { return !e.Break && e.Start > prevEnd }

// hasHole reports whether tl has a silence.
func hasHole(tl *timeline.Timeline) bool {
	started := false
	var prevEnd uint64
	for e := range tl.All() {
		if started && Silence(prevEnd, e) {
			return true
		}
		prevEnd, started = e.End(), true
	}
	return false
}

// add appends e to tl with its gap or break.
func add(tl *timeline.Timeline, e timeline.Entry) {
	if e.Break {
		tl.AppendBreak(e.Fragment)
		return
	}
	tl.Append(e.Fragment, e.Gap)
}

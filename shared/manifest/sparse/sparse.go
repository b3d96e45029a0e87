// Package sparse is how the DASH and Smooth manifests list a sparse
// track: a text track that sends no fragment while it has no cue, for
// seconds or minutes.
package sparse

import "github.com/smoothcast/smoothcast/shared/timeline"

// Close returns tl with each hole closed: the fragment before a hole
// (timeline.Hole: media time went on, no fragment came) is listed as
// lasting until the fragment after it starts. A break (the encoder's
// timeline restarted) stays a gap. Sequence numbers are tl's.
//
// A text track's holes are its silences. dash.js 5 asks for the text
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
			if e.Gap && timeline.Hole(prev.End(), e.Start, e.Break) {
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

// hasHole reports whether tl has a hole.
func hasHole(tl *timeline.Timeline) bool {
	var prevEnd uint64
	for e := range tl.All() {
		if e.Gap && timeline.Hole(prevEnd, e.Start, e.Break) {
			return true
		}
		prevEnd = e.End()
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

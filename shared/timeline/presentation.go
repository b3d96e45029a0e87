package timeline

import (
	"math"
	"math/bits"
	"time"

	"github.com/smoothcast/smoothcast/shared/layout"
)

// TrackView is one track with its state, as a renderer sees it.
type TrackView struct {
	Track
	State TrackState
}

// Presentation is what the manifest renderers draw from: a channel's index
// and the state of each of its tracks, in the channel's track order.
type Presentation struct {
	Channel   string
	Epoch     time.Time
	Tracks    []TrackView
	DVRWindow time.Duration
	// Archive is how much of the timeline the states keep (at least the
	// DVR window): what a time-shift request can reach.
	Archive time.Duration
	// Range, when set, asks for a time-shifted manifest: the part of the
	// stream between its bounds instead of the DVR window.
	Range *Range
	// Ended: the encoder ended the stream (see Finished); manifests are
	// final.
	Ended bool
	// Oldest, when set, leaves out fragments that start before it: they
	// are past retention, or soon will be.
	Oldest time.Time
	// CueMarkers asks HLS for ad markers as EXT-X-CUE-OUT, -CONT and
	// -IN tags instead of EXT-X-DATERANGE (events.go).
	CueMarkers bool
}

// Finished reports whether every track that has media has finished (see
// TrackState.Finished) at time now, and at least one has. Sparse tracks
// (text) count only in a channel that has nothing else: one that went
// quiet long before the stream ended, or whose encoder left it open, does
// not keep the channel live.
func (p *Presentation) Finished(now time.Time) bool {
	some := false
	dense := p.hasDense()
	for i := range p.Tracks {
		tv := &p.Tracks[i]
		if tv.State.Timeline.Empty() || dense && tv.Kind.Sparse() {
			continue
		}
		if !tv.State.Finished(now, tv.Timescale) {
			return false
		}
		some = true
	}
	return some
}

// hasDense reports whether a track that is not sparse has media.
func (p *Presentation) hasDense() bool {
	for i := range p.Tracks {
		if !p.Tracks[i].Kind.Sparse() && !p.Tracks[i].State.Timeline.Empty() {
			return true
		}
	}
	return false
}

// LiveEdge is the latest end, in wall-clock time, of the tracks that are
// not sparse (of every track when all are): where the channel's media
// ends, whatever its text tracks last sent. ok is false when no track has
// media. A renderer that fills a text track's pauses (HLS) fills them up
// to the DVR window this edge ends (see Windowed).
func (p *Presentation) LiveEdge() (edge time.Time, ok bool) {
	dense := p.hasDense()
	for i := range p.Tracks {
		tv := &p.Tracks[i]
		if tv.State.Timeline.Empty() || dense && tv.Kind.Sparse() {
			continue
		}
		if end := p.Wallclock(tv.State.Timeline.End(), tv.Timescale); !ok || end.After(edge) {
			edge, ok = end, true
		}
	}
	return edge, ok
}

// Range is a time-shift request in wall-clock time. A zero From starts at
// the oldest fragment kept; a zero To leaves the range open (live). Query
// is how the request spelled it, for the URLs of playlists it leads to.
type Range struct {
	From, To time.Time
	// VOD: the range is closed and past, so its manifests are final
	// (static MPD, EXT-X-ENDLIST, IsLive FALSE).
	VOD   bool
	Query string
}

// VOD reports whether the manifests are final: the stream ended, or the
// request is for a closed range in the past.
func (p *Presentation) VOD() bool { return p.Ended || p.Range != nil && p.Range.VOD }

// MediaTime is the media time, in ticks of timescale, of wall-clock time
// w (0 before the epoch).
func (p *Presentation) MediaTime(w time.Time, timescale uint64) uint64 {
	return Ticks(w.Sub(p.Epoch), timescale)
}

// Track returns the view of track id.
func (p *Presentation) Track(id layout.TrackID) (*TrackView, bool) {
	for i := range p.Tracks {
		if p.Tracks[i].ID == id {
			return &p.Tracks[i], true
		}
	}
	return nil, false
}

// Windowed returns the track's timeline cut to the presentation's DVR
// window or, for a time-shift request, to its range within the archive:
// the fragments that overlap it (so that a start-over begins with the
// fragment holding From). A finished stream keeps its DVR window, so that
// its playlists only gain an end; its whole archive is a range away
// (start=0). The DVR window ends at the track's own end, except a sparse
// track's, which ends where the channel's other tracks end (a text track
// quiet for an hour lists no cue older than the video's window).
func (p *Presentation) Windowed(tv *TrackView) Timeline {
	var tl Timeline
	if p.Range == nil {
		tl = tv.State.Timeline.Window(Ticks(p.DVRWindow, tv.Timescale))
		if edge, ok := p.LiveEdge(); ok && tv.Kind.Sparse() && p.DVRWindow > 0 {
			tl.TrimBefore(p.MediaTime(edge.Add(-p.DVRWindow), tv.Timescale))
		}
	} else {
		tl = tv.State.Timeline.Window(0)
	}
	if !p.Oldest.IsZero() {
		tl.TrimBefore(p.MediaTime(p.Oldest, tv.Timescale))
	}
	if p.Range == nil {
		return tl
	}
	if !p.Range.From.IsZero() {
		tl.TrimBefore(p.MediaTime(p.Range.From, tv.Timescale))
	}
	if !p.Range.To.IsZero() {
		tl.TrimAfter(p.MediaTime(p.Range.To, tv.Timescale))
	}
	return tl
}

// Ticks converts d to units of timescale (rounding down; 0 for a d of
// zero or less). It saturates at the largest uint64 rather than wrap: a
// time-shift query may name a wall-clock time centuries from the epoch,
// and a track's timescale may be as large as 2^32-1.
func Ticks(d time.Duration, timescale uint64) uint64 {
	if d <= 0 {
		return 0
	}
	sec := uint64(d / time.Second)
	rem := uint64(d % time.Second)
	hi, whole := bits.Mul64(sec, timescale)
	if hi != 0 {
		return math.MaxUint64
	}
	hi, lo := bits.Mul64(rem, timescale)
	frac, _ := bits.Div64(hi, lo, uint64(time.Second)) // hi < 1e9: rem < 1e9
	t, carry := bits.Add64(whole, frac, 0)
	if carry != 0 {
		return math.MaxUint64
	}
	return t
}

// DurationOf is the duration of ticks units of timescale (rounding down),
// saturating at the largest time.Duration (about 292 years) rather than
// wrap: a track's times are the encoder's, up to 2^64-1. A timescale of
// zero gives zero.
func DurationOf(ticks, timescale uint64) time.Duration {
	if timescale == 0 {
		return 0
	}
	const maxSec = math.MaxInt64 / uint64(time.Second)
	sec, frac := ticks/timescale, ticks%timescale
	if sec > maxSec {
		return math.MaxInt64
	}
	hi, lo := bits.Mul64(frac, uint64(time.Second))
	ns, _ := bits.Div64(hi, lo, timescale) // hi < timescale: frac < timescale
	d := sec*uint64(time.Second) + ns
	if d > math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(d)
}

// Wallclock is the wall-clock time of media time t in a track of
// timescale (no later than the epoch plus the largest time.Duration).
func (p *Presentation) Wallclock(t, timescale uint64) time.Time {
	return p.Epoch.Add(DurationOf(t, timescale))
}

// Group is the tracks of one kind that share a name: the renditions of
// one Smooth StreamIndex or one DASH AdaptationSet.
type Group struct {
	Kind  Kind
	Name  string
	Views []*TrackView
}

// Groups returns the presentation's tracks grouped by kind and name, in
// the order each group's first track appears.
func (p *Presentation) Groups() []Group {
	var groups []Group
	for i := range p.Tracks {
		tv := &p.Tracks[i]
		j := 0
		for j < len(groups) && (groups[j].Kind != tv.Kind || groups[j].Name != tv.ID.Name) {
			j++
		}
		if j == len(groups) {
			groups = append(groups, Group{Kind: tv.Kind, Name: tv.ID.Name})
		}
		groups[j].Views = append(groups[j].Views, tv)
	}
	return groups
}

// Common returns the fragments, within the DVR window or the time-shift
// range (see Windowed), that every track of the group has: what a client
// that may switch between them can rely on.
func (p *Presentation) Common(g Group) Timeline {
	tls := make([]Timeline, len(g.Views))
	for i, tv := range g.Views {
		tls[i] = p.Windowed(tv)
	}
	return Common(tls...)
}

// Extent is the wall-clock extent of some of a presentation's timelines.
type Extent struct {
	Start time.Time // the earliest start
	End   time.Time // the latest end
	// FirstEnd is the earliest end: up to there every timeline has media.
	// Sparse timelines (AddSparse) count only when there is nothing else.
	FirstEnd time.Time
	// sparse: only sparse timelines were added.
	sparse bool
}

// Empty reports whether nothing was added.
func (e *Extent) Empty() bool { return e.Start.IsZero() }

// Add widens e by tl, a timeline of p in ticks of timescale; an empty tl
// changes nothing.
func (e *Extent) Add(p *Presentation, tl *Timeline, timescale uint64) {
	if tl.Empty() {
		return
	}
	e.add(p, tl, timescale, false)
}

// AddSparse widens e by tl, the timeline of a sparse track (Kind.Sparse),
// in ticks of timescale: its start and end count, but its end is no
// FirstEnd while other timelines are added (a text track quiet since an
// hour before the end does not cut a finished stream's duration short).
func (e *Extent) AddSparse(p *Presentation, tl *Timeline, timescale uint64) {
	e.add(p, tl, timescale, true)
}

func (e *Extent) add(p *Presentation, tl *Timeline, timescale uint64, sparse bool) {
	if tl.Empty() {
		return
	}
	s, end := p.Wallclock(tl.Start(), timescale), p.Wallclock(tl.End(), timescale)
	if e.Empty() {
		e.Start, e.End, e.FirstEnd, e.sparse = s, end, end, sparse
		return
	}
	if s.Before(e.Start) {
		e.Start = s
	}
	if end.After(e.End) {
		e.End = end
	}
	switch {
	case e.sparse && !sparse:
		e.FirstEnd, e.sparse = end, false
	case e.sparse == sparse && end.Before(e.FirstEnd):
		e.FirstEnd = end
	}
}

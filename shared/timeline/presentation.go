package timeline

import (
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

// Windowed returns the track's timeline cut to the presentation's DVR window.
func (p *Presentation) Windowed(tv *TrackView) Timeline {
	return tv.State.Timeline.Window(Ticks(p.DVRWindow, tv.Timescale))
}

// Ticks converts d to units of timescale (rounding down).
func Ticks(d time.Duration, timescale uint64) uint64 {
	if d <= 0 {
		return 0
	}
	sec := uint64(d / time.Second)
	rem := uint64(d % time.Second)
	return sec*timescale + rem*timescale/uint64(time.Second)
}

// Wallclock is the wall-clock time of media time t in a track of timescale.
func (p *Presentation) Wallclock(t, timescale uint64) time.Time {
	sec := t / timescale
	frac := t % timescale
	return p.Epoch.Add(time.Duration(sec)*time.Second + time.Duration(frac*uint64(time.Second)/timescale))
}

package timeline

import (
	"cmp"
	"slices"
	"time"
)

// MaxEvents bounds the events a track's state keeps: past it the oldest
// go first. An ad break every minute for a day of archive is 2880 (a
// start and an end each).
const MaxEvents = 4096

// Event is a timed event a track carries in band (an emsg of its
// fragments): an ad marker (scheme urn:scte:scte35:2013:bin, Data the
// binary splice_info_section) or any other message the relay keeps.
// Events are told apart by scheme, id and time: the same one carried
// twice (a resent fragment, the same marker in each video rendition) is
// one event.
type Event struct {
	Scheme string `json:"scheme"`
	ID     uint32 `json:"id"`
	// Time is the event's presentation time in ticks of the track's
	// timescale, on the channel's timeline (the splice point: it may fall
	// inside a fragment, or after the fragment that carried it).
	Time uint64 `json:"t"`
	// Duration in ticks of the track's timescale; 0 when unknown.
	Duration uint64 `json:"d,omitempty"`
	Data     []byte `json:"data,omitempty"`
}

func compareEvents(a, b Event) int {
	return cmp.Or(cmp.Compare(a.Time, b.Time), cmp.Compare(a.Scheme, b.Scheme), cmp.Compare(a.ID, b.ID))
}

// AddEvents keeps evs in the track's state: the set of events, in time
// order, of every fragment that arrived, whatever its outcome (an event
// of a fragment that waits is kept at once; renderers list it by its own
// time), less those the window slid past. Adding an event again changes
// nothing, so that any order and any repetition of arrivals gives the
// events in-order delivery gives. It reports whether anything changed.
func (s *TrackState) AddEvents(evs []Event) (changed bool) {
	for _, e := range evs {
		i, found := slices.BinarySearchFunc(s.Events, e, compareEvents)
		if found || !s.Timeline.Empty() && e.Time < s.Timeline.Start() {
			continue
		}
		s.Events = slices.Insert(s.Events, i, e)
		changed = true
	}
	if len(s.Events) > MaxEvents {
		s.Events = slices.Delete(s.Events, 0, len(s.Events)-MaxEvents)
	}
	return changed
}

// trimEvents drops the events the timeline's window slid past.
func (s *TrackState) trimEvents() {
	if s.Timeline.Empty() || len(s.Events) == 0 {
		return
	}
	i, _ := slices.BinarySearchFunc(s.Events, s.Timeline.Start(), func(e Event, t uint64) int { return cmp.Compare(e.Time, t) })
	if i > 0 {
		s.Events = slices.Delete(s.Events, 0, i)
	}
	if len(s.Events) == 0 {
		s.Events = nil
	}
}

// TimedEvent is an event of the channel as the renderers take it: its
// track's timescale and its wall-clock time.
type TimedEvent struct {
	Event
	Timescale uint64
	At        time.Time
}

// Events returns the events of the presentation's tracks that fall in
// what its manifests list (each track's windowed timeline: see Windowed),
// in time order, each once however many tracks carry it. A live
// presentation also lists the events announced after its last fragment
// (a splice point ahead: players schedule it); a final one (VOD, or a
// range with an end) only those before its end.
func (p *Presentation) Events() []TimedEvent {
	type key struct {
		scheme string
		id     uint32
		ms     int64
	}
	seen := map[key]bool{}
	var out []TimedEvent
	for i := range p.Tracks {
		tv := &p.Tracks[i]
		if len(tv.State.Events) == 0 {
			continue
		}
		tl := p.Windowed(tv)
		if tl.Empty() {
			continue
		}
		closed := p.VOD() || p.Range != nil && !p.Range.To.IsZero()
		for _, e := range tv.State.Events {
			if e.Time < tl.Start() || closed && e.Time >= tl.End() {
				continue
			}
			at := p.Wallclock(e.Time, tv.Timescale)
			k := key{e.Scheme, e.ID, at.UnixMilli()}
			if seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, TimedEvent{Event: e, Timescale: tv.Timescale, At: at})
		}
	}
	slices.SortStableFunc(out, func(a, b TimedEvent) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.Scheme, b.Scheme), cmp.Compare(a.ID, b.ID))
	})
	return out
}

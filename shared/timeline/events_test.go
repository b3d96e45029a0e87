package timeline

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// eventsOf are the events fragment i of a stream of 20-tick fragments
// carries: a marker at a splice point inside it every third fragment, and
// one announced ahead (in the next fragment's time) every fifth.
func eventsOf(i int) []Event {
	var evs []Event
	if i%3 == 0 {
		evs = append(evs, Event{Scheme: "urn:scte:scte35:2013:bin", ID: uint32(i), Time: uint64(i)*20 + 7, Data: []byte{byte(i)}})
	}
	if i%5 == 0 {
		evs = append(evs, Event{Scheme: "urn:scte:scte35:2013:bin", ID: uint32(1000 + i), Time: uint64(i+1)*20 + 3, Duration: 40})
	}
	return evs
}

// The events of fragments that arrive late, twice or out of order end as
// if each came once, in order: the same set, in time order, less what the
// window slid past; in-band events carried by several tracks count once.
func TestEventsInAnyOrderAreKeptOnceInOrder(t *testing.T) {
	fr := stream(40, 20)
	win := Rules{GapTimeout: rules.GapTimeout, Window: 400}
	add := func(s *TrackState, i int, at time.Time) {
		if _, _, err := s.Apply(fr[i], at, win); err != nil {
			t.Fatal(err)
		}
		s.AddEvents(eventsOf(i))
	}
	var want TrackState
	for i := range fr {
		add(&want, i, t0.Add(time.Duration(i)*time.Millisecond))
	}
	if len(want.Events) < 5 || want.Events[0].Time < want.Timeline.Start() {
		t.Fatalf("in-order events %+v (timeline from %d)", want.Events, want.Timeline.Start())
	}
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 9))
		var order []int
		for i := range fr {
			for range 1 + rng.IntN(3) {
				order = append(order, i)
			}
		}
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		var s TrackState
		for k, i := range order {
			add(&s, i, t0.Add(time.Duration(k)*time.Millisecond))
		}
		if !reflect.DeepEqual(s.Events, want.Events) {
			t.Fatalf("seed %d: events %+v, want %+v", seed, s.Events, want.Events)
		}
	}
}

// A presentation lists each event once (two renditions carry it), in
// time order, within what its manifests list: a live one also those
// announced past its last fragment, a time-shifted range with an end
// only those before it.
func TestPresentationEventsAreTheWindowsOnce(t *testing.T) {
	var st TrackState
	for i, a := range stream(10, 20) {
		st.Apply(a, t0, rules)
		st.AddEvents(eventsOf(i))
	}
	st.AddEvents([]Event{{Scheme: "s", ID: 1, Time: 500}}) // far ahead
	p := Presentation{Epoch: t0, DVRWindow: time.Hour, Tracks: []TrackView{
		{Track: Track{Kind: Video, Timescale: 10}, State: st},
		{Track: Track{Kind: Video, Timescale: 10}, State: st},
	}}
	ids := func() (out []uint32) {
		for _, e := range p.Events() {
			out = append(out, e.ID)
		}
		return out
	}
	if got, want := ids(), []uint32{0, 1000, 3, 1005, 6, 9, 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("live: %v, want %v", got, want)
	}
	p.Range = &Range{From: t0.Add(6 * time.Second), To: t0.Add(13 * time.Second)}
	if got, want := ids(), []uint32{3, 1005, 6}; !reflect.DeepEqual(got, want) {
		t.Errorf("range: %v, want %v", got, want)
	}
	if e := p.Events()[0]; !e.At.Equal(t0.Add(6700*time.Millisecond)) || e.Timescale != 10 {
		t.Errorf("event at %v (timescale %d), want %v", e.At, e.Timescale, t0.Add(6700*time.Millisecond))
	}
}

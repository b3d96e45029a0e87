package relay

import (
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

// A channel's markers from a connection without media reach each of its
// media connections once, those of another channel none; a marker waits
// markerLife at most, and a channel keeps maxQueued.
func TestMarkersReachEachMediaConnectionOnce(t *testing.T) {
	var q markerQueues
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	tap := func(ch string) *markerTap { tp := q.tap(ch); tp.now = clock; return tp }
	sparse, video1, video2, other := tap("ch"), tap("ch"), tap("ch"), tap("other")
	sparse.Put(&mp4.EmsgBox{ID: 1})
	sparse.Put(&mp4.EmsgBox{ID: 2})
	ids := func(es []*mp4.EmsgBox) (out []uint32) {
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}
	if got := ids(video1.Take()); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Errorf("the first media connection took %v, want [1 2]", got)
	}
	if got := video1.Take(); len(got) != 0 {
		t.Errorf("taken again: %v", ids(got))
	}
	if got := ids(other.Take()); len(got) != 0 {
		t.Errorf("another channel's connection took %v", got)
	}
	sparse.Put(&mp4.EmsgBox{ID: 3})
	if got := ids(video2.Take()); len(got) != 3 {
		t.Errorf("the second media connection took %v, want [1 2 3]", got)
	}
	if got := ids(video1.Take()); len(got) != 1 || got[0] != 3 {
		t.Errorf("the first took %v, want [3]", got)
	}
	now = now.Add(markerLife + time.Second)
	if got := ids(tap("ch").Take()); len(got) != 0 {
		t.Errorf("a new connection took %v after they expired", got)
	}
	for i := range maxQueued + 5 {
		sparse.Put(&mp4.EmsgBox{ID: uint32(100 + i)})
	}
	if got := ids(tap("ch").Take()); len(got) != maxQueued || got[0] != 105 {
		t.Errorf("%d markers kept (from %v), want the newest %d", len(got), got[:1], maxQueued)
	}
}

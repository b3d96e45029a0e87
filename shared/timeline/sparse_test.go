package timeline

import (
	"reflect"
	"testing"
	"time"
)

// sparseArrivals are a text track's fragments of 20 ticks at 0 and 20,
// then at 200 after a pause of 160 (no cue, no fragment), each continuing
// its connection.
func sparseArrivals() []Arrival {
	return []Arrival{
		{Fragment: Fragment{Start: 0, Duration: 20}, Size: 100},
		{Fragment: Fragment{Start: 20, Duration: 20}, Size: 100, HasPrev: true, Prev: 0},
		{Fragment: Fragment{Start: 200, Duration: 20}, Size: 100, HasPrev: true, Prev: 20},
	}
}

// A sparse track's pause is no hole: its fragment after the pause is
// published at once, with no gap marker (no discontinuity, no EXT-X-GAP,
// no hole counted when the window slides past it), where a video
// track's same fragments make a hole; a fragment whose predecessor is
// missing still waits for it (out-of-order events), and a break in the
// encoder's timeline is still one.
func TestSparseTrackPausesAreNoHoles(t *testing.T) {
	sparse := Rules{GapTimeout: 10 * time.Second, Sparse: true}
	for _, tc := range []struct {
		name    string
		rules   Rules
		edit    func(a []Arrival) []Arrival
		order   []int
		wantOut []Outcome
		runs    []Run
	}{
		{"sparse: a pause", sparse, nil, []int{0, 1, 2}, []Outcome{Published, Published, Published},
			[]Run{{Start: 0, Duration: 20, Count: 2}, {Start: 200, Duration: 20, Count: 1}}},
		{"dense: the same is a hole", rules, nil, []int{0, 1, 2}, []Outcome{Published, Published, Published},
			[]Run{{Start: 0, Duration: 20, Count: 2}, {Start: 200, Duration: 20, Count: 1, Gap: true}}},
		{"sparse: the fragment after a pause waits for the one it follows", sparse, nil, []int{0, 2, 1}, []Outcome{Published, Waiting, Published},
			[]Run{{Start: 0, Duration: 20, Count: 2}, {Start: 200, Duration: 20, Count: 1}}},
		{"sparse: a break is still a break", sparse, func(a []Arrival) []Arrival { a[2].Disc = true; return a }, []int{0, 1, 2},
			[]Outcome{Published, Published, Published},
			[]Run{{Start: 0, Duration: 20, Count: 2}, {Start: 200, Duration: 20, Count: 1, Gap: true, Break: true}}},
		{"sparse: fragments of any length", sparse, func(a []Arrival) []Arrival { a[1].Duration = 170; return a }, []int{0, 1, 2},
			[]Outcome{Published, Published, Published},
			[]Run{{Start: 0, Duration: 20, Count: 1}, {Start: 20, Duration: 170, Count: 1}, {Start: 200, Duration: 20, Count: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			arr := sparseArrivals()
			if tc.edit != nil {
				arr = tc.edit(arr)
			}
			var s TrackState
			for i, k := range tc.order {
				out, _, err := s.Apply(arr[k], t0.Add(time.Duration(i)*time.Second), tc.rules)
				if err != nil || out != tc.wantOut[i] {
					t.Errorf("fragment %d: %v, %v; want %v", k, out, err, tc.wantOut[i])
				}
			}
			if !reflect.DeepEqual(s.Timeline.Runs, tc.runs) {
				t.Fatalf("runs %+v, want %+v", s.Timeline.Runs, tc.runs)
			}
			holes := tc.runs[len(tc.runs)-1].Gap && !tc.runs[len(tc.runs)-1].Break
			s.Timeline.TrimBefore(40)
			if got := s.Timeline.Holes > 0; got != holes || s.Timeline.FirstDisc != uint64(btoi(tc.runs[len(tc.runs)-1].Gap)) {
				t.Errorf("trimmed past the pause: %d holes, %d discontinuities; want holes %v", s.Timeline.Holes, s.Timeline.FirstDisc, holes)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A sparse fragment whose predecessor never comes is published after the
// gap timeout, without a gap marker: a lost cue is a pause too.
func TestSparseGapTimeoutPublishesWithoutAGap(t *testing.T) {
	arr := sparseArrivals()
	sparse := Rules{GapTimeout: 10 * time.Second, Sparse: true}
	var s TrackState
	for _, a := range []Arrival{arr[0], arr[2]} {
		if _, _, err := s.Apply(a, t0, sparse); err != nil {
			t.Fatal(err)
		}
	}
	if !s.Settle(t0.Add(11*time.Second), sparse) {
		t.Fatal("the fragment did not wait out the gap timeout")
	}
	want := []Run{{Start: 0, Duration: 20, Count: 1}, {Start: 200, Duration: 20, Count: 1}}
	if !reflect.DeepEqual(s.Timeline.Runs, want) {
		t.Errorf("runs %+v, want %+v", s.Timeline.Runs, want)
	}
}

// The fragments two sparse timelines share keep their pauses: Common
// marks no gap where neither does, and still marks one where a fragment
// only one of them has is left out.
func TestCommonKeepsSparsePauses(t *testing.T) {
	var a, b Timeline
	for _, f := range []Fragment{{0, 20}, {20, 20}, {200, 20}, {300, 20}} {
		a.AppendSparse(f)
	}
	for _, f := range []Fragment{{0, 20}, {20, 20}, {200, 20}, {250, 20}, {300, 20}} {
		b.AppendSparse(f)
	}
	got := Common(a, b)
	want := []Run{{Start: 0, Duration: 20, Count: 2}, {Start: 200, Duration: 20, Count: 1}, {Start: 300, Duration: 20, Count: 1, Gap: true}}
	if !reflect.DeepEqual(got.Runs, want) {
		t.Errorf("common runs %+v, want %+v", got.Runs, want)
	}
}

// sparseView is a text track of timescale 1000 whose fragments are
// frags, with its connection still open.
func sparseView(frags ...Fragment) TrackView {
	tv := TrackView{Track: Track{Kind: Text, Timescale: 1000}}
	for _, f := range frags {
		tv.State.Timeline.AppendSparse(f)
		tv.State.MaxDuration = max(tv.State.MaxDuration, f.Duration)
	}
	return tv
}

// A channel ends when its video and audio end: a text track quiet since
// long before, its connection left open, does not hold it live; its DVR
// window slides with the video's (the live edge is the video's end), and
// its end does not cut the stream's duration short. A channel of text
// alone ends with its text.
func TestSparseTracksFollowTheChannel(t *testing.T) {
	epoch := t0
	video := TrackView{Track: Track{Kind: Video, Timescale: 1000}}
	for i := range 30 {
		video.State.Timeline.Append(Fragment{Start: uint64(i) * 2000, Duration: 2000}, false) // 0 to 60 s
	}
	video.State.MaxDuration = 2000
	video.State.Ends = []Ending{{Time: 60000, Stream: true, At: epoch.Add(60 * time.Second)}}
	text := sparseView(Fragment{0, 2000}, Fragment{10000, 2000}, Fragment{20000, 2000}, Fragment{40000, 2000}) // quiet after 42 s
	p := Presentation{Epoch: epoch, DVRWindow: 30 * time.Second, Tracks: []TrackView{video, text}}
	now := epoch.Add(2 * time.Minute)
	if edge, ok := p.LiveEdge(); !ok || !edge.Equal(epoch.Add(60*time.Second)) {
		t.Errorf("live edge %v (%v), want the video's end at 60 s", edge.Sub(epoch), ok)
	}
	if !p.Finished(now) {
		t.Error("a channel whose video ended is live while its text track is quiet")
	}
	if tl := p.Windowed(&p.Tracks[1]); !reflect.DeepEqual(tl.Runs, []Run{{Start: 40000, Duration: 2000, Count: 1}}) || tl.FirstSeq != 3 {
		t.Errorf("text window %+v (first %d), want the fragment at 40 s alone: the video's window is 30 s to 60 s", tl.Runs, tl.FirstSeq)
	}
	var e Extent
	for i := range p.Tracks {
		tl := p.Windowed(&p.Tracks[i])
		if p.Tracks[i].Kind.Sparse() {
			e.AddSparse(&p, &tl, 1000)
		} else {
			e.Add(&p, &tl, 1000)
		}
	}
	if !e.FirstEnd.Equal(epoch.Add(60*time.Second)) || !e.Start.Equal(epoch.Add(30*time.Second)) {
		t.Errorf("extent from %v, first end %v; want 30 s, and 60 s (the video's end, not the text's at 42 s)", e.Start.Sub(epoch), e.FirstEnd.Sub(epoch))
	}
	alone := Presentation{Epoch: epoch, Tracks: []TrackView{text}}
	if edge, ok := alone.LiveEdge(); !ok || !edge.Equal(epoch.Add(42*time.Second)) {
		t.Errorf("live edge of text alone %v (%v), want its end at 42 s", edge.Sub(epoch), ok)
	}
	if alone.Finished(now) {
		t.Error("a channel of text alone ended without its end of stream")
	}
	alone.Tracks[0].State.Ends = []Ending{{Time: 42000, Stream: true, At: epoch.Add(50 * time.Second)}}
	if !alone.Finished(now) {
		t.Error("a channel of text alone did not end with its end of stream")
	}
	var sparseOnly Extent
	sparseOnly.AddSparse(&alone, &alone.Tracks[0].State.Timeline, 1000)
	if !sparseOnly.FirstEnd.Equal(epoch.Add(42 * time.Second)) {
		t.Errorf("first end of text alone %v, want its end at 42 s", sparseOnly.FirstEnd.Sub(epoch))
	}
}

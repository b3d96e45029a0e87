package smooth

import (
	"strings"
	"testing"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

func TestRenderGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *timeline.Presentation
	}{
		{"live.ism", manifesttest.Presentation(false)},
		{"video-lagging.ism", manifesttest.Presentation(true)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Render(tc.p)
			if err != nil {
				t.Fatal(err)
			}
			manifesttest.Golden(t, tc.name, b)
			m, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			for _, si := range m.Streams {
				frags, err := si.Fragments()
				if err != nil {
					t.Fatal(err)
				}
				if len(frags) != si.Chunks {
					t.Errorf("Chunks=%d but c elements list %d fragments", si.Chunks, len(frags))
				}
			}
		})
	}
}

func TestTwentyFourHoursHaveNoDrift(t *testing.T) {
	var s timeline.TrackState
	for i := range uint64(43200 + 1) { // the newest is held back
		s.Timeline.Append(timeline.Fragment{Start: i * 20000000, Duration: 20000000}, false)
	}
	p := &timeline.Presentation{Channel: "ch", Tracks: []timeline.TrackView{{Track: timeline.Track{ID: layout.TrackID{Name: "video", Bitrate: 1}, Kind: timeline.Video, Timescale: 10000000}, State: s}}}
	b, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	want := `<c t="0" d="20000000" r="43200"></c>`
	if !strings.Contains(string(b), want) {
		t.Errorf("24 h of 2 s fragments should compact to %s:\n%s", want, b)
	}
}

// A live manifest holds the newest fragment back until its successor,
// which the newest fragment's tfrf announces, is stored; a finished one
// lists everything.
func TestLiveManifestHoldsTheNewestFragmentBack(t *testing.T) {
	var s timeline.TrackState
	for i := range uint64(5) {
		s.Timeline.Append(timeline.Fragment{Start: i * 20000000, Duration: 20000000}, false)
	}
	for _, tc := range []struct {
		ended bool
		want  string
	}{
		{false, `Chunks="4"`},
		{true, `Chunks="5"`},
	} {
		p := &timeline.Presentation{Channel: "ch", Ended: tc.ended, Tracks: []timeline.TrackView{{Track: timeline.Track{ID: layout.TrackID{Name: "video", Bitrate: 1}, Kind: timeline.Video, Timescale: 10000000}, State: s}}}
		b, err := Render(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), tc.want) {
			t.Errorf("ended %v: want %s:\n%s", tc.ended, tc.want, b)
		}
	}
}

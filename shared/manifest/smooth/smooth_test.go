package smooth

import (
	"maps"
	"slices"
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
		{"codecs.ism", manifesttest.Codecs()},
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

// Smooth describes HEVC, AC-3 and E-AC-3 as IIS did (HVC1 and HEV1 with
// their parameter sets, AC-3 and EC-3 as WAVE_FORMAT_EXTENSIBLE audio),
// and leaves out what no Smooth client could play, the AV1 rendition,
// rather than describe it wrongly: a group of nothing else is no
// StreamIndex at all, and the rest of the channel still plays.
func TestTracksSmoothCannotCarryAreLeftOut(t *testing.T) {
	p := manifesttest.Codecs()
	av1 := p.Tracks[2]
	av1.ID.Name = "video_av1"
	p.Tracks = append(p.Tracks, av1)
	b, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	levels := map[string][]string{}
	for _, si := range m.Streams {
		for _, ql := range si.Levels {
			levels[si.Name] = append(levels[si.Name], ql.FourCC)
		}
	}
	want := map[string][]string{"video": {"HVC1", "HEV1"}, "audio_eng": {"EC-3"}, "audio_fra": {"AC-3"}}
	if !maps.EqualFunc(levels, want, slices.Equal) {
		t.Errorf("quality levels %v, want %v:\n%s", levels, want, b)
	}
	for _, si := range m.Streams {
		if si.Type == "audio" && (si.Levels[0].AudioTag != 65534 || si.Levels[0].Channels == 0 || si.Levels[0].PacketSize == 0) {
			t.Errorf("%s: %+v, want WAVE_FORMAT_EXTENSIBLE (65534) with channels and a packet size", si.Name, si.Levels[0])
		}
	}
}

// A live manifest says how far clients may look ahead (LookaheadCount,
// and IIS's LookAHeadFragmentCount that GStreamer reads) and how long its
// window is (DVRWindowLength); a finished one has neither: MS-SSTR gives
// them to live presentations only.
func TestVODManifestHasNoLookaheadNorWindow(t *testing.T) {
	attrs := []string{"LookaheadCount=", "LookAheadFragmentCount=", "DVRWindowLength="}
	for _, tc := range []struct {
		name  string
		ended bool
	}{{"live", false}, {"ended", true}} {
		p := manifesttest.Presentation(false)
		p.Ended = tc.ended
		b, err := Render(p)
		if err != nil {
			t.Fatal(err)
		}
		root, _, _ := strings.Cut(string(b[strings.Index(string(b), "<SmoothStreamingMedia"):]), ">")
		for _, a := range attrs {
			if strings.Contains(root, a) == tc.ended {
				t.Errorf("%s: %s in %v, want it only live", tc.name, a, root)
			}
		}
		if m, err := Parse(b); err != nil || m.Live() == tc.ended {
			t.Errorf("%s: parsed back live=%v, err %v", tc.name, m != nil && m.Live(), err)
		}
	}
}

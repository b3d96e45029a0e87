package smooth

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// Parse reads back what Render writes: every StreamIndex's c elements
// expand into the fragments of the timeline it was rendered from, and
// Chunks counts them.
func TestParseReadsWhatRenderWrites(t *testing.T) {
	for i, f := range manifesttest.Fixtures() {
		for v, change := range manifesttest.Requests() {
			p := f()
			change(p)
			name := fmt.Sprintf("fixture %d, request %d", i, v)
			want, err := build(p)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			b, err := Render(p)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			m, err := Parse(b)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(m.Streams) != len(want.Streams) || m.Live() != !p.VOD() {
				t.Fatalf("%s: %d stream indexes, live %v; want %d, %v", name, len(m.Streams), m.Live(), len(want.Streams), !p.VOD())
			}
			for j := range m.Streams {
				si, wsi := &m.Streams[j], &want.Streams[j]
				got, err := si.Fragments()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				var frags []timeline.Fragment
				for e := range wsi.Timeline.All() {
					frags = append(frags, e.Fragment)
				}
				if !slices.Equal(got, frags) || si.Chunks != len(frags) {
					t.Errorf("%s: %s lists %v (Chunks=%d), want %v", name, si.Name, got, si.Chunks, frags)
				}
				if si.Name != wsi.Name || len(si.Levels) != len(wsi.Levels) || m.Timescale(si) != cmp.Or(wsi.TimeScale, DefaultTimeScale) {
					t.Errorf("%s: stream index %+v, want %+v", name, si, wsi)
				}
			}
		}
	}
}

// A c element starts at its t, else where the previous one ends; r counts
// its fragments (one without r).
func TestFragmentsExpandChunks(t *testing.T) {
	u64 := func(v uint64) *uint64 { return &v }
	for _, tc := range []struct {
		name string
		c    []Chunk
		want []uint64 // starts
		err  string
	}{
		{"t, r and gaps", []Chunk{{T: u64(100), D: 10, R: 3}, {D: 5}, {T: u64(200), D: 10}}, []uint64{100, 110, 120, 130, 200}, ""},
		{"no t at the start is 0", []Chunk{{D: 10, R: 2}}, []uint64{0, 10}, ""},
		{"a last fragment may lack its duration", []Chunk{{T: u64(7), D: 0}}, []uint64{7}, ""},
		{"a start before the previous end", []Chunk{{T: u64(100), D: 10, R: 2}, {T: u64(115), D: 10}}, nil, "c 1 starts at 115, before the previous ends (120)"},
		{"no duration", []Chunk{{T: u64(0)}, {D: 10}}, nil, "c 0 has no duration"},
		{"too many fragments", []Chunk{{T: u64(0), D: 1, R: MaxFragments}, {D: 1}}, nil, fmt.Sprintf("more than %d fragments", MaxFragments)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			si := StreamIndex{Name: "video", C: tc.c}
			frags, err := si.Fragments()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			var got []uint64
			for _, f := range frags {
				got = append(got, f.Start)
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("Fragments = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestFragmentURLFillsEitherSpelling(t *testing.T) {
	for tmpl, want := range map[string]string{
		"QualityLevels({bitrate})/Fragments(video={start time})": "QualityLevels(800000)/Fragments(video=42)",
		"QualityLevels({Bitrate})/Fragments(video={start_time})": "QualityLevels(800000)/Fragments(video=42)",
	} {
		si := StreamIndex{URL: tmpl}
		if got := si.FragmentURL(800000, 42); got != want {
			t.Errorf("FragmentURL(%q) = %q, want %q", tmpl, got, want)
		}
	}
}

func TestParseRefusesWhatIsNoClientManifest(t *testing.T) {
	for name, doc := range map[string]string{
		"not XML":          "<SmoothStreamingMedia",
		"another element":  `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"></MPD>`,
		"a number is text": `<SmoothStreamingMedia TimeScale="ten"></SmoothStreamingMedia>`,
	} {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

package hls

import (
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

func TestPlaylistsGolden(t *testing.T) {
	p := manifesttest.Presentation(false)
	manifesttest.Golden(t, "master.m3u8", Master(p))
	for _, id := range []layout.TrackID{{Name: "video", Bitrate: 800000}, {Name: "audio", Bitrate: 96000}} {
		b, ok := Media(p, id)
		if !ok {
			t.Fatalf("no playlist for %s", id)
		}
		manifesttest.Golden(t, id.Name+"_"+id.String()[len(id.Name)+1:]+".m3u8", b)
	}
	// A trimmed window keeps counting media and discontinuity sequences.
	p.DVRWindow = 6 * time.Second
	b, _ := Media(p, layout.TrackID{Name: "audio", Bitrate: 96000})
	manifesttest.Golden(t, "audio_96000_window.m3u8", b)
	if _, ok := Media(p, layout.TrackID{Name: "nope", Bitrate: 1}); ok {
		t.Error("a playlist for a track that does not exist")
	}
}

// The multivariant playlist of HEVC, AV1, E-AC-3 with Dolby Atmos and
// AC-3: every variant's CODECS names its video codec and every audio
// codec of the group, the HDR variant its VIDEO-RANGE, each audio
// rendition its CHANNELS (the complexity index and JOC for Atmos).
func TestMasterCodecs(t *testing.T) {
	b := Master(manifesttest.Codecs())
	manifesttest.Golden(t, "codecs-master.m3u8", b)
	for _, want := range []string{
		`CODECS="hvc1.2.4.L93.90,ec-3,ac-3",RESOLUTION=1280x720,FRAME-RATE=25.000,VIDEO-RANGE=PQ,`,
		`CODECS="hev1.1.6.L90.90,ec-3,ac-3",RESOLUTION=640x360,FRAME-RATE=25.000,AUDIO=`,
		`CODECS="av01.0.04M.08,ec-3,ac-3",RESOLUTION=320x180,FRAME-RATE=25.000,AUDIO=`,
		`LANGUAGE="eng",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="16/JOC",`,
		`LANGUAGE="fra",DEFAULT=NO,AUTOSELECT=YES,CHANNELS="2",`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("multivariant playlist lacks %s:\n%s", want, b)
		}
	}
}

// An EXTINF may print a microsecond more than its fragment lasts
// (extinf): 2.4999996 s can print 2.500000, which rounds to 3.
func TestTargetDurationRounding(t *testing.T) {
	for _, tc := range []struct {
		dur  float64
		want uint64
	}{{1.4999, 1}, {1.5, 2}, {2.0, 2}, {2.08, 2}, {2.4999, 2}, {2.4999996, 3}, {2.5, 3}, {0.001, 1}} {
		if got := TargetDuration(uint64(tc.dur*1e7), 10_000_000); got != tc.want {
			t.Errorf("TargetDuration(%v s) = %d, want %d", tc.dur, got, tc.want)
		}
	}
}

func TestTwentyFourHoursOfEXTINFAddUp(t *testing.T) {
	var s timeline.TrackState
	d := []uint64{20053333, 20053334, 19840000}
	var total uint64
	for i := range 43200 {
		s.Timeline.Append(timeline.Fragment{Start: total, Duration: d[i%3]}, false)
		total += d[i%3]
		s.MaxDuration = max(s.MaxDuration, d[i%3])
	}
	id := layout.TrackID{Name: "audio", Bitrate: 1}
	p := &timeline.Presentation{Channel: "ch", Tracks: []timeline.TrackView{{Track: timeline.Track{ID: id, Kind: timeline.Audio, Timescale: 10000000}, State: s}}}
	b, _ := Media(p, id)
	pl, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	sum := new(big.Rat)
	n := len(pl.Segments)
	for _, s := range pl.Segments {
		sum.Add(sum, big.NewRat(int64(s.Duration), int64(time.Second)))
	}
	want := new(big.Rat).SetFrac64(int64(total), 10000000)
	diff, _ := new(big.Rat).Sub(sum, want).Float64()
	if n != 43200 || diff > 1e-6 || diff < -1e-6 {
		t.Errorf("%d segments, EXTINF sum off by %g s", n, diff)
	}
}

// Audio renditions of several languages and roles (CMAF kind): the main
// one is the default wherever it is listed, commentary is never chosen
// automatically, and an audio description says so to accessibility
// settings.
func TestMasterAudioRoles(t *testing.T) {
	p := manifesttest.Presentation(false)
	main := p.Tracks[2]
	with := func(name, lang, role string) timeline.TrackView {
		tv := main
		tv.ID.Name, tv.Language, tv.Role = name, lang, role
		return tv
	}
	p.Tracks = append(p.Tracks[:2], with("audio_spa_dub", "spa", "dub"), with("audio_eng", "eng", ""),
		with("audio_eng_commentary", "eng", "commentary"), with("audio_eng_description", "eng", "description"))
	// want is LANGUAGE, DEFAULT, AUTOSELECT and CHARACTERISTICS.
	want := map[string]Rendition{
		"audio_spa_dub":         {Language: "spa", Autoselect: true},
		"audio_eng":             {Language: "eng", Default: true, Autoselect: true},
		"audio_eng_commentary":  {Language: "eng"},
		"audio_eng_description": {Language: "eng", Autoselect: true, Characteristics: "public.accessibility.describes-video"},
	}
	master, err := Parse(Master(p))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Rendition{}
	for _, r := range master.Renditions {
		if r.Type == "AUDIO" {
			got[r.Name] = Rendition{Language: r.Language, Default: r.Default, Autoselect: r.Autoselect, Characteristics: r.Characteristics}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d audio renditions, want %d: %v", len(got), len(want), got)
	}
	for name, attrs := range want {
		if got[name] != attrs {
			t.Errorf("%s: %+v, want %+v", name, got[name], attrs)
		}
	}
	// Bandwidth picks variants, never a language: only the default
	// audio is an audio-only variant, with the group, and only when there
	// is no video (TestMasterPlaylistIsAVariantOrARendition).
	for _, tc := range []struct {
		name   string
		tracks []timeline.TrackView
		want   []string
	}{
		{"with video", p.Tracks, []string{"QualityLevels(800000)/video.m3u8", "QualityLevels(300000)/video.m3u8"}},
		{"audio only", p.Tracks[2:], []string{"QualityLevels(96000)/audio_eng.m3u8"}},
	} {
		q := *p
		q.Tracks = tc.tracks
		pl, err := Parse(Master(&q))
		if err != nil {
			t.Fatal(err)
		}
		var variants []string
		for _, v := range pl.Variants {
			variants = append(variants, v.URI)
			if tc.name == "audio only" && v.Audio != "audio" {
				t.Errorf("%s: %s names no audio group", tc.name, v.URI)
			}
		}
		if !slices.Equal(variants, tc.want) {
			t.Errorf("%s: variants %v, want %v", tc.name, variants, tc.want)
		}
	}
}

// A variant lists every codec of the audio group it plays with, and every
// rendition's NAME is its own, even for bitrates a kilobit apart.
func TestMasterAudioCodecsAndNames(t *testing.T) {
	p := manifesttest.Presentation(false)
	a := p.Tracks[2]
	he, near := a, a
	he.ID.Name, he.Codecs, he.Language = "audio_spa", "mp4a.40.5", "spa"
	near.ID.Bitrate += 400
	p.Tracks = append(p.Tracks, he, near)
	master, err := Parse(Master(p))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range master.Variants {
		if v.Width > 0 && !strings.HasSuffix(v.Codecs, ",mp4a.40.2,mp4a.40.5") {
			t.Errorf("a video variant without every audio codec: %+v", v)
		}
	}
	var names []string
	for _, r := range master.Renditions {
		if slices.Contains(names, r.Name) {
			t.Errorf("NAME %q twice:\n%s", r.Name, Master(p))
		}
		names = append(names, r.Name)
	}
	if len(names) != 3 {
		t.Errorf("audio renditions %v, want 3", names)
	}
}

// A media playlist is a variant or a rendition, never both: VLC 3 takes a
// variant whose URI is also an audio rendition's for the rendition itself
// and loses the audio when it moves to a video variant. With video, the
// audio is a rendition only; without video, the default audio's tracks
// are the variants.
func TestMasterPlaylistIsAVariantOrARendition(t *testing.T) {
	p := manifesttest.Presentation(false)
	for _, tc := range []struct {
		name   string
		tracks []timeline.TrackView
		// variants is how many variants, renditions how many audio
		// renditions the master has.
		variants, renditions int
		// shared is whether a variant names a rendition's media playlist:
		// only without video, where no variant is a video one to move to.
		shared bool
	}{
		{"video and audio", p.Tracks, 2, 1, false},
		{"audio only", p.Tracks[2:], 1, 1, true},
	} {
		q := *p
		q.Tracks = tc.tracks
		master, err := Parse(Master(&q))
		if err != nil {
			t.Fatal(err)
		}
		rendition := map[string]bool{}
		for _, r := range master.Renditions {
			rendition[r.URI] = true
		}
		for _, v := range master.Variants {
			if rendition[v.URI] && !tc.shared {
				t.Errorf("%s: %s is a variant and a rendition:\n%s", tc.name, v.URI, Master(&q))
			}
		}
		if len(master.Variants) != tc.variants || len(master.Renditions) != tc.renditions {
			t.Errorf("%s: %d variants and %d renditions, want %d and %d:\n%s", tc.name,
				len(master.Variants), len(master.Renditions), tc.variants, tc.renditions, Master(&q))
		}
	}
}

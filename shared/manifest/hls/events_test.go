package hls

import (
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

var video800 = layout.TrackID{Name: "video", Bitrate: 800000}

func media(t *testing.T, p *timeline.Presentation, id layout.TrackID) string {
	t.Helper()
	b, ok := Media(p, id)
	if !ok {
		t.Fatalf("no playlist for %s", id)
	}
	return string(b)
}

// Ad markers are EXT-X-DATERANGE tags at their splice points (SCTE35-OUT
// with the break's PLANNED-DURATION, SCTE35-IN, SCTE35-CMD), each before
// the segment it falls in, one announced past the last segment at the
// end; in every media playlist, the audio's too; each once though both
// video renditions carry them.
func TestMarkersAreDateRanges(t *testing.T) {
	p := manifesttest.Markers(manifesttest.Presentation(false))
	b := media(t, p, video800)
	manifesttest.Golden(t, "markers_video_800000.m3u8", []byte(b))
	for _, want := range []string{
		"#EXTINF:2.000000,\nFragments(video=0)?.m4s\n" +
			`#EXT-X-DATERANGE:ID="scte35-10-1767323048500",START-DATE="2026-01-02T03:04:08.500Z",PLANNED-DURATION=6.000,SCTE35-OUT=0xFC30`,
		`#EXT-X-DATERANGE:ID="scte35-11-1767323054500",START-DATE="2026-01-02T03:04:14.500Z",SCTE35-IN=0xFC30`,
		`#EXT-X-DATERANGE:ID="scte35-12-1767323056000",START-DATE="2026-01-02T03:04:16.000Z",DURATION=1.000,SCTE35-CMD=0xFC301100000000000000FFF000000000` + "7A4FBFFF\n#EXTINF",
		"Fragments(video=100000000)?.m4s\n" + `#EXT-X-DATERANGE:ID="scte35-13-1767323058000"`,
	} {
		if !strings.Contains(b, want) {
			t.Errorf("playlist lacks %q:\n%s", want, b)
		}
	}
	if n := strings.Count(media(t, p, layout.TrackID{Name: "audio", Bitrate: 96000}), "#EXT-X-DATERANGE"); n != 4 {
		t.Errorf("audio playlist has %d DATERANGE tags, want 4", n)
	}
	// A closed range keeps the markers of its range only.
	p.Range = &timeline.Range{From: manifesttest.Epoch.Add(3 * time.Second), To: manifesttest.Epoch.Add(10 * time.Second), VOD: true}
	b = media(t, p, video800)
	if strings.Count(b, "#EXT-X-DATERANGE") != 2 || !strings.Contains(b, "SCTE35-OUT=") || !strings.Contains(b, "SCTE35-IN=") {
		t.Errorf("range 3 s to 10 s: want the break's OUT and IN markers alone:\n%s", b)
	}
}

// With ?markers=cue the breaks are EXT-X-CUE-OUT, -CONT and -IN around
// the segments they cover, and the multivariant playlist carries the
// choice on to the media playlists.
func TestMarkersAsCueTags(t *testing.T) {
	p := manifesttest.Markers(manifesttest.Presentation(false))
	p.CueMarkers = true
	b := media(t, p, video800)
	manifesttest.Golden(t, "markers_cue_video_800000.m3u8", []byte(b))
	want := "#EXT-X-CUE-OUT:6.000\n#EXTINF:2.000000,\nFragments(video=20000000)?.m4s\n" +
		"#EXT-X-CUE-OUT-CONT:ElapsedTime=0.500,Duration=6.000\n#EXTINF:2.000000,\nFragments(video=40000000)?.m4s\n" +
		"#EXT-X-CUE-OUT-CONT:ElapsedTime=2.500,Duration=6.000\n#EXTINF:2.000000,\nFragments(video=60000000)?.m4s\n" +
		"#EXT-X-CUE-IN\n#EXTINF:2.000000,\nFragments(video=80000000)?.m4s\n"
	if !strings.Contains(b, want) || strings.Contains(b, "DATERANGE") || strings.Count(b, "CUE-OUT:") != 1 {
		t.Errorf("playlist lacks the break's tags %q:\n%s", want, b)
	}
	if m := string(Master(p)); !strings.Contains(m, "QualityLevels(800000)/video.m3u8?markers=cue\n") {
		t.Errorf("multivariant playlist does not carry markers=cue on:\n%s", m)
	}
}

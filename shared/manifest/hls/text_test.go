package hls

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

var (
	textEng    = layout.TrackID{Name: "text_eng", Bitrate: 1000}
	textCC     = layout.TrackID{Name: "text_eng_caption", Bitrate: 2000}
	textForced = layout.TrackID{Name: "text_fra_forced-subtitle", Bitrate: 1000}
)

// The playlists of a channel with text tracks and captions, live, time-
// shifted and finished.
func TestTextPlaylistsGolden(t *testing.T) {
	for _, tc := range manifesttest.TextRequests() {
		t.Run(tc.Name, func(t *testing.T) {
			p := manifesttest.Text()
			tc.Change(p)
			manifesttest.Golden(t, "text-"+tc.Name+"-master.m3u8", Master(p))
			for _, id := range []layout.TrackID{textEng, textCC, textForced} {
				b, ok := Media(p, id)
				if !ok {
					t.Fatalf("no playlist for %s", id)
				}
				manifesttest.Golden(t, "text-"+tc.Name+"-"+id.Name+".m3u8", b)
			}
		})
	}
}

// Each text track is a SUBTITLES rendition with its language, its label
// as NAME, and its flags: DEFAULT=YES for the default one only,
// FORCED=YES for forced subtitles, the accessibility characteristics of
// captions (SDH); every variant names the group, and CODECS never names
// WebVTT. Each CEA-608/708 service of the videos is a CLOSED-CAPTIONS
// rendition that the variants name.
func TestSubtitleAndCaptionRenditions(t *testing.T) {
	p := manifesttest.Text()
	for i := range p.Tracks {
		if p.Tracks[i].ID == textCC { // WebVTT captions too
			p.Tracks[i].Codecs, p.Tracks[i].FourCC = "wvtt", ""
		}
	}
	master, err := Parse(Master(p))
	if err != nil {
		t.Fatal(err)
	}
	sdh := "public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound"
	want := map[string]Rendition{
		"English":          {Type: "SUBTITLES", GroupID: "subs", Language: "eng", Default: true, Autoselect: true, URI: "QualityLevels(1000)/text_eng.m3u8"},
		"English CC":       {Type: "SUBTITLES", GroupID: "subs", Language: "eng", Autoselect: true, Characteristics: sdh, URI: "QualityLevels(2000)/text_eng_caption.m3u8"},
		"Français (forcé)": {Type: "SUBTITLES", GroupID: "subs", Language: "fra", Autoselect: true, Forced: true, URI: "QualityLevels(1000)/text_fra_forced-subtitle.m3u8"},
		"CC1 eng":          {Type: "CLOSED-CAPTIONS", GroupID: "cc", Language: "eng", Autoselect: true, InstreamID: "CC1"},
		"CC3 fra":          {Type: "CLOSED-CAPTIONS", GroupID: "cc", Language: "fra", Autoselect: true, InstreamID: "CC3"},
		"SERVICE1 eng":     {Type: "CLOSED-CAPTIONS", GroupID: "cc", Language: "eng", Autoselect: true, InstreamID: "SERVICE1"},
	}
	got := map[string]Rendition{}
	for _, r := range master.Renditions {
		if r.Type == "AUDIO" {
			continue
		}
		name := r.Name
		r.Name, r.Line = "", 0
		got[name] = r
	}
	if len(got) != len(want) {
		t.Errorf("renditions %v, want %v", got, want)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %+v, want %+v", name, got[name], w)
		}
	}
	if len(master.Variants) != 2 {
		t.Fatalf("%d variants, want 2", len(master.Variants))
	}
	for _, v := range master.Variants {
		if v.Subtitles != "subs" || v.ClosedCaptions != "cc" || !strings.HasSuffix(v.Codecs, ",mp4a.40.2") {
			t.Errorf("variant %s: SUBTITLES %q, CLOSED-CAPTIONS %q, CODECS %q", v.URI, v.Subtitles, v.ClosedCaptions, v.Codecs)
		}
	}
}

// A channel without text tracks nor captions gains no attribute (no
// CLOSED-CAPTIONS=NONE: a video may carry CEA-608 its encoder did not
// declare), and a channel whose videos carry different services has a
// group for each; one with WebVTT only names no text codec.
func TestCaptionGroupsAndTheirAbsence(t *testing.T) {
	plain := manifesttest.Presentation(false)
	b := string(Master(plain))
	if strings.Contains(b, "SUBTITLES") || strings.Contains(b, "CLOSED-CAPTIONS") {
		t.Errorf("a channel without text or captions:\n%s", b)
	}
	p := manifesttest.Text()
	p.Tracks[1].Captions = "CC1"
	var kept []timeline.TrackView
	for _, tv := range p.Tracks {
		if tv.ID != textCC {
			kept = append(kept, tv)
		}
	}
	p.Tracks = kept
	master, err := Parse(Master(p))
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string]string{}
	for _, v := range master.Variants {
		groups[v.URI] = v.ClosedCaptions
		if strings.Contains(v.Codecs, "stpp") || strings.Contains(v.Codecs, "wvtt") {
			t.Errorf("WebVTT only, yet CODECS %q", v.Codecs)
		}
	}
	if groups["QualityLevels(800000)/video.m3u8"] != "cc" || groups["QualityLevels(300000)/video.m3u8"] != "cc2" {
		t.Errorf("CLOSED-CAPTIONS groups %v, want cc and cc2", groups)
	}
	n := 0
	for _, r := range master.Renditions {
		if r.Type == "CLOSED-CAPTIONS" && r.GroupID == "cc2" {
			n++
			if r.InstreamID != "CC1" || r.Language != "" {
				t.Errorf("cc2 rendition %+v", r)
			}
		}
	}
	if n != 1 {
		t.Errorf("cc2 has %d renditions, want 1", n)
	}
}

// A WebVTT track's playlist lists the WebVTT files the relay stores
// beside its fragments, without EXT-X-MAP; an IMSC1 track's lists its
// fMP4 fragments after their init segment. A text track's hole (no cue
// for a while: no fragment) is EXT-X-GAP segments, never a
// discontinuity: the subtitle playlist keeps the video's discontinuity
// sequence, as hls.js needs to place it (alignStream), and covers the
// time from its first fragment to its last without a hole a player
// would have to step over.
func TestTextHolesAreGapSegments(t *testing.T) {
	p := manifesttest.Text()
	video, _ := Media(p, layout.TrackID{Name: "video", Bitrate: 800000})
	for _, tc := range []struct {
		id   layout.TrackID
		vtt  bool
		gaps int
	}{
		{textEng, true, 2},
		{textCC, false, 0},
		{textForced, true, 2},
	} {
		b, _ := Media(p, tc.id)
		pl, err := Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", tc.id, err)
		}
		gaps := 0
		var at time.Time
		for i, s := range pl.Segments {
			if s.Discontinuity {
				t.Errorf("%s: a discontinuity:\n%s", tc.id, b)
			}
			if s.Gap {
				gaps++
			}
			if !s.ProgramDateTime.IsZero() {
				at = s.ProgramDateTime
			} else if i == 0 {
				t.Errorf("%s: no PROGRAM-DATE-TIME on the first segment", tc.id)
			}
			if (s.Map == nil) != tc.vtt {
				t.Errorf("%s: %s has EXT-X-MAP %v", tc.id, s.URI, s.Map)
			}
			if want := strings.HasSuffix(s.URI, ").vtt"); want != tc.vtt {
				t.Errorf("%s: segment %s", tc.id, s.URI)
			}
			at = at.Add(s.Duration)
		}
		if gaps != tc.gaps {
			t.Errorf("%s: %d gap segments, want %d:\n%s", tc.id, gaps, tc.gaps, b)
		}
		if err := hlsjsStarts(t, video, b); err != nil {
			t.Errorf("%s: %v", tc.id, err)
		}
	}
}

// As the window slides past a text track's pauses (published one
// fragment at a time, trimmed as TrackState.Apply trims), every segment
// of its playlist, the EXT-X-GAP ones included, keeps its media sequence
// number (RFC 8216 6.2.1: hls.js matches the segments of successive
// playlists by them), and none is a discontinuity.
func TestSubtitleSequencesHoldAsTheWindowSlidesPastAPause(t *testing.T) {
	const ts, n, window = 1000, 40, 20 * time.Second
	silent := func(i int) bool { return i%10 >= 4 && i%10 < 8 || i == 21 } // pauses of 8 s and 2 s
	var s timeline.TrackState
	seen := map[string]numbered{}
	for i := range n {
		if silent(i) {
			continue
		}
		s.Timeline.AppendSparse(timeline.Fragment{Start: uint64(i) * 2 * ts, Duration: 2 * ts})
		s.MaxDuration = 2 * ts
		if w := timeline.Ticks(window, ts); s.Timeline.End() > w {
			s.Timeline.TrimBefore(s.Timeline.End() - w)
		}
		p := &timeline.Presentation{Channel: "ch", Epoch: manifesttest.Epoch,
			Tracks: []timeline.TrackView{{Track: timeline.Track{ID: textEng, Kind: timeline.Text, Timescale: ts, Codecs: "wvtt"}, State: s}}}
		b, _ := Media(p, textEng)
		for uri, got := range numberedOf(t, b) {
			if got.cc != 0 {
				t.Fatalf("after fragment %d, %s is in discontinuity sequence %d:\n%s", i, uri, got.cc, b)
			}
			if was, ok := seen[uri]; ok && was != got {
				t.Fatalf("after fragment %d, %s is %+v, was %+v:\n%s", i, uri, got, was, b)
			}
			seen[uri] = got
		}
	}
	gaps := 0
	for _, s := range seen {
		if s.gap {
			gaps++
		}
	}
	if gaps == 0 {
		t.Error("no pause was ever listed as EXT-X-GAP segments")
	}
}

// A channel of IMSC1 text tracks lists them, and its variants' CODECS
// name IMSC1; a channel of WebVTT and IMSC1 tracks lists its WebVTT ones
// only, CODECS naming no text codec: hls.js gives every rendition of a
// group the text codec of the variants' CODECS, and parsed a WebVTT
// rendition beside an IMSC1 one as IMSC1 (no cue, seen in Chromium).
func TestSubtitleGroupHoldsOneFormat(t *testing.T) {
	imsc := manifesttest.Text()
	imsc.Tracks = slices.DeleteFunc(imsc.Tracks, func(tv timeline.TrackView) bool { return tv.Codecs == "wvtt" })
	for _, tc := range []struct {
		name  string
		p     *timeline.Presentation
		names []string
		codec string // the text codec every variant's CODECS ends with
	}{
		{"IMSC1 only", imsc, []string{"English CC"}, ",stpp.ttml.im1t"},
		{"WebVTT and IMSC1", manifesttest.Text(), []string{"English", "Français (forcé)"}, ",mp4a.40.2"},
	} {
		master, err := Parse(Master(tc.p))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, r := range master.Renditions {
			if r.Type == "SUBTITLES" {
				names = append(names, r.Name)
			}
		}
		if !slices.Equal(names, tc.names) {
			t.Errorf("%s: subtitle renditions %q, want %q", tc.name, names, tc.names)
		}
		for _, v := range master.Variants {
			if !strings.HasSuffix(v.Codecs, tc.codec) {
				t.Errorf("%s: variant %s CODECS %q, want it to end %q", tc.name, v.URI, v.Codecs, tc.codec)
			}
		}
	}
}

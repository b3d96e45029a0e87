package dash

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// The MPD of a channel with text tracks and captions, live, time-shifted
// and finished; each parses, and every text segment URL it gives is a
// fragment of its track.
func TestTextGolden(t *testing.T) {
	for _, tc := range manifesttest.TextRequests() {
		t.Run(tc.Name, func(t *testing.T) {
			p := manifesttest.Text()
			tc.Change(p)
			name := "text-" + tc.Name + ".mpd"
			b, err := Render(p, Options{UTCTimingURL: layout.TimePath})
			if err != nil {
				t.Fatal(err)
			}
			manifesttest.Golden(t, name, b)
			got, _ := urls(t, b)
			want := map[string]bool{}
			for _, tv := range p.Tracks {
				if tv.Kind != timeline.Text {
					continue
				}
				tl := p.Windowed(&tv)
				for e := range tl.All() {
					want[strings.TrimPrefix(layout.FragmentKey("ch", tv.ID, e.Start), "live/ch.isml/")] = true
				}
			}
			if len(got["text"]) != len(want) {
				t.Errorf("%d text segment URLs, want %d: %v", len(got["text"]), len(want), got["text"])
			}
			for _, u := range got["text"] {
				if !want[u] {
					t.Errorf("text segment URL %s names no fragment", u)
				}
			}
		})
	}
}

// A text track is an AdaptationSet of its own (contentType text,
// application/mp4) with its lang, its Label and its Role: its own
// (caption, forced-subtitle), subtitle without one, and main too for
// the default track. The video's CEA-608 and CEA-708 services are its
// Accessibility descriptors (SCTE 214-1).
func TestTextAdaptationSets(t *testing.T) {
	b, err := Render(manifesttest.Text(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, m := urls(t, b)
	type set struct {
		mime, lang, label, codecs string
		roles                     []string
	}
	got := map[string]set{}
	var access []string
	for _, as := range m.Periods[0].AdaptationSets {
		switch as.ContentType {
		case "video":
			for _, a := range as.Accessibilities {
				access = append(access, string(a.SchemeIdUri)+" "+a.Value)
			}
		case "text":
			s := set{mime: as.MimeType, lang: as.Lang, codecs: as.Representations[0].Codecs}
			if len(as.Labels) == 1 {
				s.label = as.Labels[0].Value
			}
			for _, r := range as.Roles {
				if string(r.SchemeIdUri) != timeline.RoleScheme {
					t.Errorf("Role scheme %s", r.SchemeIdUri)
				}
				s.roles = append(s.roles, r.Value)
			}
			got[as.Representations[0].Id] = s
		}
	}
	want := map[string]set{
		"text_eng_1000": {"application/mp4", "eng", "English", "wvtt", []string{"main", "subtitle"}},
		"2000":          {"application/mp4", "eng", "English CC", "stpp.ttml.im1t", []string{"caption"}},
		// Bitrates two groups share: the Representation ids name their group.
		"text_fra_forced-subtitle_1000": {"application/mp4", "fra", "Français (forcé)", "wvtt", []string{"forced-subtitle"}},
	}
	if len(got) != len(want) {
		t.Errorf("text AdaptationSets %v, want %v", got, want)
	}
	for id, w := range want {
		g := got[id]
		if g.mime != w.mime || g.lang != w.lang || g.label != w.label || g.codecs != w.codecs || !slices.Equal(g.roles, w.roles) {
			t.Errorf("text %s: %+v, want %+v", id, g, w)
		}
	}
	wantAccess := []string{"urn:scte:dash:cc:cea-608:2015 CC1=eng;CC3=fra", "urn:scte:dash:cc:cea-708:2015 1=lang:eng"}
	if !slices.Equal(access, wantAccess) {
		t.Errorf("video Accessibility %v, want %v", access, wantAccess)
	}
}

// A text track's holes (its silences) are covered by the fragment
// before each, listed as lasting until the next (sparse.Close: dash.js
// waits for ever in a hole of a text SegmentTimeline), and a text track
// that ended early does not end the MPD early: a finished channel lasts
// as long as its audio and video.
func TestTextHolesAndEarlyEnd(t *testing.T) {
	p := manifesttest.Text()
	p.Ended = true
	b, err := Render(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, m := urls(t, b)
	if m.MediaPresentationDuration == nil || time.Duration(*m.MediaPresentationDuration) < 11*time.Second {
		t.Errorf("mediaPresentationDuration %v, want the audio's 11.9 s", m.MediaPresentationDuration)
	}
	for _, as := range m.Periods[0].AdaptationSets {
		if as.ContentType != "text" || as.Lang != "fra" {
			continue
		}
		var ts, ds []uint64
		for _, s := range as.SegmentTemplate.SegmentTimeline.S {
			if s.T != nil {
				ts = append(ts, *s.T)
			}
			ds = append(ds, s.D)
		}
		if want := []uint64{2000}; !slices.Equal(ts, want) || !slices.Equal(ds, []uint64{6000, 2000}) {
			t.Errorf("forced subtitles' S@t %v, S@d %v; want t %v, d [6000 2000]", ts, ds, want)
		}
	}
	without := manifesttest.Text()
	without.Tracks = without.Tracks[:3]
	without.Ended = true
	b2, err := Render(without, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, m2 := urls(t, b2)
	if *m2.MediaPresentationDuration != *m.MediaPresentationDuration {
		t.Errorf("mediaPresentationDuration %v with text, %v without", *m.MediaPresentationDuration, *m2.MediaPresentationDuration)
	}
}

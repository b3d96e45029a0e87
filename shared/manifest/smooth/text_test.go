package smooth

import (
	"testing"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
)

// The manifest of a channel with text tracks, live, time-shifted and
// finished: the TTML track is a text StreamIndex, the WebVTT ones are
// left out (MS-SSTR knows no WebVTT).
func TestTextGolden(t *testing.T) {
	for _, tc := range manifesttest.TextRequests() {
		t.Run(tc.Name, func(t *testing.T) {
			p := manifesttest.Text()
			tc.Change(p)
			name := "text-" + tc.Name + ".ism"
			b, err := Render(p)
			if err != nil {
				t.Fatal(err)
			}
			manifesttest.Golden(t, name, b)
		})
	}
}

// A TTML text track is a StreamIndex of Type text with the Subtype of
// its role (CAPT for captions, SUBT for subtitles), its Language and a
// TTML quality level, its silences covered by the fragment before each;
// WebVTT tracks are left out; a text track that ends early does not
// shorten a finished presentation.
func TestTextStreamIndex(t *testing.T) {
	p := manifesttest.Text()
	p.Tracks[len(p.Tracks)-1].FourCC, p.Tracks[len(p.Tracks)-1].Codecs = "TTML", "stpp.ttml.im1t" // the forced subtitles in TTML too
	p.Ended = true
	b, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	type text struct{ subtype, lang, fourCC string }
	got := map[string]text{}
	for _, si := range m.Streams {
		if si.Type == "text" {
			got[si.Name] = text{si.Subtype, si.Language, si.Levels[0].FourCC}
		}
		// Its silence is covered by the fragment before it (sparse.Close).
		if si.Name == "text_fra_forced-subtitle" {
			if len(si.C) != 2 || si.C[0].T == nil || *si.C[0].T != 2000 || si.C[0].D != 6000 || si.C[1].T != nil || si.C[1].D != 2000 {
				t.Errorf("forced subtitles' c elements %+v, want t=2000 d=6000, then d=2000", si.C)
			}
		}
	}
	want := map[string]text{
		"text_eng_caption":         {"CAPT", "eng", "TTML"},
		"text_fra_forced-subtitle": {"SUBT", "fra", "TTML"},
	}
	if len(got) != len(want) || got["text_eng_caption"] != want["text_eng_caption"] || got["text_fra_forced-subtitle"] != want["text_fra_forced-subtitle"] {
		t.Errorf("text streams %v, want %v:\n%s", got, want, b)
	}
	without := manifesttest.Text()
	without.Tracks, without.Ended = without.Tracks[:3], true
	b2, err := Render(without)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Parse(b2)
	if err != nil {
		t.Fatal(err)
	}
	if m.Duration != m2.Duration {
		t.Errorf("Duration %d with text tracks, %d without", m.Duration, m2.Duration)
	}
}

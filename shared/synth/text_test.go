package synth

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// keep is an ingest.Sink that keeps init segments and whole fragments.
type keep struct {
	inits []ingest.TrackHeader
	frags []ingest.Fragment
}

func (c *keep) Init(_ context.Context, h ingest.TrackHeader) error {
	h.Init = bytes.Clone(h.Init)
	c.inits = append(c.inits, h)
	return nil
}

func (c *keep) Fragment(_ context.Context, f ingest.Fragment) error {
	f.Head, f.Payload = f.Bytes(), nil
	c.frags = append(c.frags, f)
	return nil
}

// textCues reads the cues of a stored text fragment: WebVTT's vttc
// samples (their payl text, their media time), or the text of TTML
// documents' p elements with their begin time as the document says it.
func textCues(t *testing.T, frag []byte, codec string) []string {
	t.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(frag))
	if err != nil || len(f.Segments) != 1 || len(f.Segments[0].Fragments) != 1 {
		t.Fatalf("decode fragment: %v", err)
	}
	fr := f.Segments[0].Fragments[0]
	samples, err := fr.GetFullSamples(nil)
	if err != nil {
		t.Fatal(err)
	}
	var cues []string
	for _, s := range samples {
		if codec == "stpp" {
			doc := string(s.Data)
			if i := strings.Index(doc, "<p begin="); i >= 0 {
				p := doc[i:]
				cues = append(cues, p[:strings.Index(p, "</p>")+4])
			}
			continue
		}
		var sb strings.Builder
		for pos := 0; pos < len(s.Data); {
			box, err := mp4.DecodeBox(uint64(pos), bytes.NewReader(s.Data[pos:]))
			if err != nil {
				t.Fatalf("sample at %d: %v", s.DecodeTime, err)
			}
			pos += int(box.Size())
			switch b := box.(type) {
			case *mp4.VttcBox:
				fmt.Fprintf(&sb, "%d+%d %s", s.DecodeTime, s.Dur, b.Payl.CueText)
			case *mp4.VtteBox:
			default:
				t.Errorf("sample at %d holds a %s box", s.DecodeTime, box.Type())
			}
		}
		if sb.Len() > 0 {
			cues = append(cues, sb.String())
		}
	}
	return cues
}

// A synthetic text track, WebVTT or IMSC1, in a Smooth push, a CMAF push
// of its own or muxed with video, demuxes back as configured: its init
// segment describes as the contract says, a cue of known text and time in
// every CueEvery-th fragment, an empty sample in the others, no fragment
// at all in its gap; and the fragment after a gap longer than the
// session's MaxJump continues the track (no discontinuity).
func TestTextTracksDemuxBack(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	video := Track{Kind: timeline.Video, Bitrate: 300_000, Width: 320, Height: 180}
	text := func(codec string, def bool) Track {
		return Track{Kind: timeline.Text, Language: "fra", Label: "Français", Role: "subtitle",
			TextOptions: TextOptions{Codec: codec, Default: def, CueEvery: 2, Gap: Gap{From: 3, Count: 8}}}
	}
	const n = 14 // fragments 3 to 10 of the text track are not sent: 16 s
	for _, tc := range []struct {
		name   string
		cfg    Config
		codecs string
		fourcc string
	}{
		{"WebVTT in a Smooth push", Config{Tracks: []Track{video, text("wvtt", true)}, SMIL: true}, "wvtt", ""},
		{"IMSC1 in a Smooth push", Config{Tracks: []Track{video, text("stpp", false)}}, "stpp.ttml.im1t", "TTML"},
		{"WebVTT alone in CMAF", Config{Tracks: []Track{text("wvtt", false)}, CMAF: true}, "wvtt", ""},
		{"IMSC1 muxed with video in CMAF", Config{Tracks: []Track{video, text("stpp", true)}, CMAF: true, Muxed: true}, "stpp.ttml.im1t", "TTML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, body := encode(t, tc.cfg, Range{Count: n, End: true})
			ti := len(tc.cfg.Tracks) - 1
			tr := tc.cfg.Tracks[ti]
			var c keep
			if _, err := ingest.Read(context.Background(), bytes.NewReader(body), ingest.NewSession(&c, quiet, ingest.Options{}), ingest.ReadOptions{}); err != nil {
				t.Fatal(err)
			}
			var desc timeline.Track
			for _, h := range c.inits {
				if h.Kind == timeline.Text {
					d, err := fmp4.ParseInit(h.Init)
					if err != nil {
						t.Fatal(err)
					}
					desc = d
					if h.ID.Name != "text_fra_subtitle" {
						t.Errorf("text track named %s, want text_fra_subtitle", h.ID.Name)
					}
				}
			}
			want := timeline.Track{Kind: timeline.Text, Timescale: uint64(s.Timescale()), Codecs: tc.codecs, FourCC: tc.fourcc,
				Language: "fra", Role: "subtitle", Label: "Français", Default: tr.Default}
			if !desc.Equal(want) {
				t.Errorf("text track described\n%+v, want\n%+v", desc, want)
			}
			var got []int
			for _, f := range c.frags {
				if f.Kind != timeline.Text {
					continue
				}
				k := int(f.Start / s.FragmentTicks())
				got = append(got, k)
				if k == 11 && (!f.HasPrev || f.Prev != 2*s.FragmentTicks() || f.Disc) {
					t.Errorf("fragment after the gap: prev %v %d, disc %v; want fragment 2's start, no discontinuity", f.HasPrev, f.Prev, f.Disc)
				}
				cues := textCues(t, f.Head, tr.Codec)
				var wantCues []string
				if cue, ok := s.Cue(ti, k); ok {
					if tr.Codec == "stpp" {
						wantCues = []string{fmt.Sprintf(`<p begin="%s" end="%s">%s</p>`, ttmlTime(cue.Start), ttmlTime(cue.End), cue.Text)}
					} else {
						wantCues = []string{fmt.Sprintf("%d+%d %s", ticks(cue.Start, s.Timescale()), ticks(cue.End-cue.Start, s.Timescale()), cue.Text)}
					}
				}
				if fmt.Sprint(cues) != fmt.Sprint(wantCues) {
					t.Errorf("fragment %d: cues %q, want %q", k, cues, wantCues)
				}
			}
			if fmt.Sprint(got) != "[0 1 2 11 12 13]" {
				t.Errorf("text fragments %v, want 0 to 2 and 11 to 13", got)
			}
		})
	}
}

// The cues are known: "Cue k (lang)" over the first half of every
// CueEvery-th fragment, none in a gap nor on another kind of track.
func TestCue(t *testing.T) {
	s, err := New(Config{Tracks: []Track{{Kind: timeline.Audio, Bitrate: 64000},
		{Kind: timeline.Text, Language: "eng", TextOptions: TextOptions{CueEvery: 3, Gap: Gap{From: 6, Count: -1}}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		track, k int
		want     Cue
		ok       bool
	}{
		{1, 0, Cue{0, time.Second, "Cue 0 (eng)"}, true},
		{1, 3, Cue{6 * time.Second, 7 * time.Second, "Cue 3 (eng)"}, true},
		{1, 4, Cue{}, false},
		{1, 6, Cue{}, false},
		{1, 600, Cue{}, false},
		{0, 0, Cue{}, false},
	} {
		if got, ok := s.Cue(tc.track, tc.k); got != tc.want || ok != tc.ok {
			t.Errorf("Cue(%d, %d) = %+v, %v; want %+v, %v", tc.track, tc.k, got, ok, tc.want, tc.ok)
		}
	}
}

package ingest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// vttCues lists the cues of stored WebVTT fragments: each as its start
// and end in milliseconds (timescale ts) and its payl text.
func vttCues(t *testing.T, frags []Fragment, ts uint64) []string {
	t.Helper()
	var out []string
	for _, fr := range frags {
		f, err := mp4.DecodeFile(bytes.NewReader(fr.Head))
		if err != nil || len(f.Segments) != 1 {
			t.Fatalf("decode fragment at %d: %v", fr.Start, err)
		}
		samples, err := f.Segments[0].Fragments[0].GetFullSamples(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range samples {
			box, err := mp4.DecodeBox(0, bytes.NewReader(s.Data))
			if err != nil || box.Size() != uint64(len(s.Data)) {
				t.Fatalf("sample at %d is not one box: %v", s.DecodeTime, err)
			}
			switch b := box.(type) {
			case *mp4.VttcBox:
				out = append(out, fmt.Sprintf("%d-%d %s", s.DecodeTime*1000/ts, (s.DecodeTime+uint64(s.Dur))*1000/ts, b.Payl.CueText))
			case *mp4.VtteBox:
			default:
				t.Errorf("sample at %d is a %s box", s.DecodeTime, box.Type())
			}
		}
	}
	return out
}

// A Smooth push from ffmpeg with a subtitle stream (-f ismv -c:s
// mov_text: 3GPP timed text, the only text its ismv muxer takes) keeps
// its subtitles: the track is stored as WebVTT, its cues' text (escaped
// for WebVTT) and times as the encoder sent them, its language and its
// default flag kept.
func TestSmoothPushWithTimedTextIsStoredAsWebVTT(t *testing.T) {
	sink := &recordingSink{}
	if _, err := run(NewSession(sink, quiet, Options{}), bytes.NewReader(readFixture(t, "ffmpeg-text.ismv"))); err != nil {
		t.Fatal(err)
	}
	var text []Fragment
	var desc timeline.Track
	for _, h := range sink.inits {
		if h.Kind == timeline.Text {
			d, err := fmp4.ParseInit(h.Init)
			if err != nil {
				t.Fatal(err)
			}
			desc = d
		}
	}
	for _, f := range sink.frags {
		if f.Kind == timeline.Text {
			text = append(text, f)
		}
	}
	want := timeline.Track{Kind: timeline.Text, Timescale: 10_000_000, Codecs: "wvtt", Language: "fra", Default: true}
	if !desc.Equal(want) {
		t.Errorf("text track described\n%+v, want\n%+v", desc, want)
	}
	cues := vttCues(t, text, desc.Timescale)
	if fmt.Sprint(cues) != fmt.Sprint([]string{"500-2000 Hello: 1 &lt; 2 &amp; 3", "2000-3000 Second line\nof two"}) {
		t.Errorf("cues %q", cues)
	}
}

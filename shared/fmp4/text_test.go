package fmp4

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/timeline"
)

// textInit is an init segment (its moov) of one text track: a wvtt or an
// stpp track (entry), or one whose sample entry is the box raw encodes,
// in language lang, its tkhd flags as given, with udta boxes.
func textInit(t testing.TB, entry, lang string, flags uint32, udta ...mp4.Box) *mp4.InitSegment {
	t.Helper()
	init := mp4.CreateEmptyInit()
	handler := map[string]string{"wvtt": "wvtt", "stpp": "subtitle"}[entry]
	if handler == "" {
		handler = "text"
	}
	init.AddEmptyTrack(1000, handler, lang)
	trak := init.Moov.Trak
	switch entry {
	case "wvtt":
		if err := trak.SetWvttDescriptor(""); err != nil {
			t.Fatal(err)
		}
	case "stpp":
		if err := trak.SetStppDescriptor("", "", ""); err != nil {
			t.Fatal(err)
		}
	default:
		b, err := mp4.DecodeBoxSR(0, bits.NewFixedSliceReader([]byte(entry)))
		if err != nil {
			t.Fatal(err)
		}
		trak.Mdia.Minf.Stbl.Stsd.AddChild(b)
	}
	trak.Tkhd.Flags = flags
	if len(udta) > 0 {
		u := &mp4.UdtaBox{}
		for _, b := range udta {
			u.AddChild(b)
		}
		trak.AddChild(u)
	}
	return init
}

// decoded is init's only track as the ingest session sees it: encoded,
// then decoded from its bytes.
func decoded(t testing.TB, init *mp4.InitSegment) *mp4.TrakBox {
	t.Helper()
	var b bytes.Buffer
	if err := init.Encode(&b); err != nil {
		t.Fatal(err)
	}
	f, err := mp4.DecodeFile(bytes.NewReader(b.Bytes()))
	if err != nil || f.Init == nil {
		t.Fatalf("decode: %v", err)
	}
	return f.Init.Moov.Trak
}

// rawBox is a box of type typ with payload, encoded.
func rawBox(typ string, payload []byte) string {
	n := 8 + len(payload)
	return string([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}) + typ + string(payload)
}

// Text tracks are described as the contract between the ingest and the
// manifests says: wvtt and stpp (its profile from the mime box), the
// FourCC Smooth carries them with (none for WebVTT), the language (elng
// first), the label (group label, then the one in the track's language),
// Default from the enabled flag and Forced from the role.
func TestDescribeText(t *testing.T) {
	enabled, disabled := tkhdEnabled|tkhdInMovie, tkhdInMovie
	role := func(v string) mp4.Box { return &mp4.KindBox{SchemeURI: timeline.RoleScheme, Value: v} }
	for _, tc := range []struct {
		name   string
		init   func(t testing.TB) *mp4.InitSegment
		want   timeline.Track
		refuse string // the error's words, for a track that is refused
	}{
		{"wvtt, shown by default", func(t testing.TB) *mp4.InitSegment { return textInit(t, "wvtt", "eng", enabled) },
			timeline.Track{Kind: timeline.Text, Timescale: 1000, Codecs: "wvtt", Language: "eng", Default: true}, ""},
		{"wvtt, not shown by default", func(t testing.TB) *mp4.InitSegment { return textInit(t, "wvtt", "fra", disabled) },
			timeline.Track{Kind: timeline.Text, Timescale: 1000, Codecs: "wvtt", Language: "fra"}, ""},
		{"stpp without a mime box is IMSC1 text", func(t testing.TB) *mp4.InitSegment { return textInit(t, "stpp", "deu", enabled) },
			timeline.Track{Kind: timeline.Text, Timescale: 1000, Codecs: "stpp.ttml.im1t", FourCC: "TTML", Language: "deu", Default: true}, ""},
		{"stpp's profile from its mime box", func(t testing.TB) *mp4.InitSegment {
			init := textInit(t, "stpp", "deu", disabled)
			init.Moov.Trak.Mdia.Minf.Stbl.Stsd.Stpp.AddChild(&mp4.MimeBox{ContentType: `application/ttml+xml;codecs="im1i|etd1"`})
			return init
		}, timeline.Track{Kind: timeline.Text, Timescale: 1000, Codecs: "stpp.ttml.im1i", FourCC: "TTML", Language: "deu"}, ""},
		{"elng over mdhd", func(t testing.TB) *mp4.InitSegment { return textInit(t, "wvtt", "pt-BR", enabled) },
			timeline.Track{Kind: timeline.Text, Timescale: 1000, Codecs: "wvtt", Language: "pt-BR", Default: true}, ""},
		{"forced subtitles", func(t testing.TB) *mp4.InitSegment {
			return textInit(t, "wvtt", "eng", disabled, role("forced-subtitle"))
		}, timeline.Track{Kind: timeline.Text, Timescale: 1000, Codecs: "wvtt", Language: "eng", Role: "forced-subtitle", Forced: true}, ""},
		{"captions role, group label first", func(t testing.TB) *mp4.InitSegment {
			return textInit(t, "stpp", "eng", disabled, role("caption"),
				&mp4.LablBox{LabelID: 1, Language: "en", Label: "English"},
				&mp4.LablBox{Flags: mp4.LablIsGroupLabelFlag, LabelID: 1, Language: "en", Label: "English (CC)\x01"})
		}, timeline.Track{Kind: timeline.Text, Timescale: 1000, Codecs: "stpp.ttml.im1t", FourCC: "TTML", Language: "eng", Role: "caption", Label: "English (CC)"}, ""},
		{"label in the track's language", func(t testing.TB) *mp4.InitSegment {
			return textInit(t, "wvtt", "sv-SE", disabled,
				&mp4.LablBox{LabelID: 1, Language: "en", Label: "Swedish"},
				&mp4.LablBox{LabelID: 1, Language: "sv-SE", Label: "Svenska"})
		}, timeline.Track{Kind: timeline.Text, Timescale: 1000, Codecs: "wvtt", Language: "sv-SE", Label: "Svenska"}, ""},
		{"3GPP timed text (ffmpeg's mov_text)", func(t testing.TB) *mp4.InitSegment {
			return textInit(t, rawBox("tx3g", make([]byte, 38)), "eng", enabled)
		}, timeline.Track{}, `text sample entry "tx3g" (supported: wvtt (WebVTT) or stpp (TTML, IMSC1))`},
		{"stpp of another XML", func(t testing.TB) *mp4.InitSegment {
			init := textInit(t, "stpp", "eng", enabled)
			init.Moov.Trak.Mdia.Minf.Stbl.Stsd.Stpp.Namespace = "urn:example:not-ttml"
			return init
		}, timeline.Track{}, `namespace "urn:example:not-ttml", not TTML`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Describe(decoded(t, tc.init(t)))
			if tc.refuse != "" {
				if !errors.Is(err, ErrUnsupportedCodec) || !strings.Contains(err.Error(), tc.refuse) {
					t.Fatalf("error %v, want ErrUnsupportedCodec saying %q", err, tc.refuse)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Errorf("described\n%+v, %v; want\n%+v", got, err, tc.want)
			}
		})
	}
}

// The per-track init segment of a text track keeps its enabled flag as
// the encoder wrote it (whether it is shown by default), where a video
// or audio track's is set; its kind, labl and elng boxes go along.
func TestInitSegmentKeepsTextFlags(t *testing.T) {
	moov := fixtureMoov(t, "testdata/hevc-hvc1.mp4")
	for _, tc := range []struct {
		name        string
		flags       uint32
		wantDefault bool
	}{
		{"disabled text stays disabled", tkhdInMovie, false},
		{"enabled text stays enabled", tkhdEnabled | tkhdInMovie, true},
		{"text not in the movie is put in it", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := textInit(t, "wvtt", "pt-BR", tc.flags,
				&mp4.KindBox{SchemeURI: timeline.RoleScheme, Value: "subtitle"},
				&mp4.LablBox{Flags: mp4.LablIsGroupLabelFlag, Language: "pt", Label: "Português"}).Moov.Trak
			text.Tkhd.TrackID = 7
			m := *moov
			m.Traks = append([]*mp4.TrakBox{text}, moov.Traks...)
			b, err := InitSegment(&m, 7)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseInit(b)
			want := timeline.Track{Kind: timeline.Text, Timescale: 1000, Codecs: "wvtt", Language: "pt-BR", Role: "subtitle", Label: "Português", Default: tc.wantDefault}
			if err != nil || !got.Equal(want) {
				t.Errorf("described\n%+v, %v; want\n%+v", got, err, want)
			}
			f, err := mp4.DecodeFile(bytes.NewReader(b))
			if err != nil || f.Moov == nil {
				t.Fatalf("decode: %v", err)
			}
			if flags := f.Moov.Trak.Tkhd.Flags; flags&tkhdInMovie == 0 {
				t.Errorf("tkhd flags %#x: not in the movie", flags)
			}
		})
	}
	// Video stays enabled whatever its moov says.
	v := moov.Traks[0]
	v.Tkhd.Flags = tkhdInMovie
	b, err := InitSegment(moov, v.Tkhd.TrackID)
	if err != nil {
		t.Fatal(err)
	}
	f, err := mp4.DecodeFile(bytes.NewReader(b))
	if err != nil || f.Moov == nil {
		t.Fatalf("decode the video's init segment: %v", err)
	}
	if flags := f.Moov.Trak.Tkhd.Flags; flags&tkhdEnabled == 0 {
		t.Errorf("video's tkhd flags %#x: not enabled", flags)
	}
}

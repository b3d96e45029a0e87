package hls

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// Parse reads back what Media and Master write: a media playlist's
// sequences, map, segments (URIs, exact EXTINF durations, discontinuities
// and program date-times) and end; a multivariant playlist's renditions
// and variants.
func TestParseReadsWhatTheRenderersWrite(t *testing.T) {
	for i, f := range manifesttest.Fixtures() {
		for v, change := range manifesttest.Requests() {
			p := f()
			change(p)
			name := fmt.Sprintf("fixture %d, request %d", i, v)
			if unquotable(p) || changesProtection(p) {
				continue // (protection that changes: versions_test.go)
			}
			master, err := Parse(Master(p))
			if err != nil {
				t.Fatalf("%s: multivariant playlist: %v", name, err)
			}
			if !master.Multivariant || master.Version != Version || !master.IndependentSegments || len(master.Segments) != 0 {
				t.Errorf("%s: multivariant playlist read as %+v", name, master)
			}
			media := map[string]bool{}
			for _, r := range master.Renditions {
				media[r.URI] = true
			}
			for _, v := range master.Variants {
				media[v.URI] = true
			}
			for _, tv := range p.Tracks {
				b, ok := Media(p, tv.ID)
				if !ok {
					t.Fatalf("%s: no playlist for %s", name, tv.ID)
				}
				// A text track HLS lists beside another format's (subtitleTracks)
				// only has its playlist.
				listed := tv.Kind != timeline.Text || slices.ContainsFunc(subtitleTracks(p), func(s *timeline.TrackView) bool { return s.ID.Name == tv.ID.Name })
				if !tv.State.Timeline.Empty() && listed && !media[mediaRef(p, tv.ID)] {
					t.Errorf("%s: the multivariant playlist does not list %s", name, mediaRef(p, tv.ID))
				}
				pl, err := Parse(b)
				if err != nil {
					t.Fatalf("%s: %s: %v\n%s", name, tv.ID, err, b)
				}
				tl := p.Windowed(&tv)
				vtt := webVTT(&tv) // WebVTT files, without EXT-X-MAP
				want := &Playlist{
					Version: Version, IndependentSegments: true,
					TargetDuration: TargetDuration(tv.State.MaxDuration, tv.Timescale),
					MediaSequence:  tl.FirstSeq + tl.HoleSegs, DiscontinuitySequence: tl.FirstDisc - tl.Holes,
					Maps: []*Map{{URI: layout.InitRef(tv.ID)}}, Ended: p.VOD(),
				}
				if p.VOD() {
					want.Type = "VOD"
				}
				var wantMap *Map
				if vtt {
					want.Maps = nil
				} else {
					wantMap = want.Maps[0]
				}
				want.Keys = wantKeys(t, tv.Protection)
				var keys []*Key
				if len(want.Keys) > 0 {
					keys = want.Keys
				}
				var prevEnd uint64
				for e := range tl.All() {
					// A hole, or a sparse track's pause, is EXT-X-GAP
					// segments, split evenly; a break a discontinuity.
					pause := len(want.Segments) > 0 && timeline.Pause(prevEnd, e.Start, e.Duration, e.Gap)
					hole := e.Gap && timeline.Hole(prevEnd, e.Start, e.Break) || pause
					if hole {
						n := timeline.HoleSegments(prevEnd, e.Start, e.Duration)
						for k := range n {
							from, to := timeline.HoleBoundary(prevEnd, e.Start, k, n), timeline.HoleBoundary(prevEnd, e.Start, k+1, n)
							want.Segments = append(want.Segments, Segment{URI: string(appendSegmentRef(nil, tv.ID, from, vtt)), Gap: true, Map: wantMap, Keys: keys,
								Duration: time.Duration(micros(to, tv.Timescale)-micros(from, tv.Timescale)) * time.Microsecond})
						}
					}
					prevEnd = e.End()
					s := Segment{URI: string(appendSegmentRef(nil, tv.ID, e.Start, vtt)), Discontinuity: e.Gap && !hole, Map: wantMap, Keys: keys,
						Duration: time.Duration(micros(e.End(), tv.Timescale)-micros(e.Start, tv.Timescale)) * time.Microsecond}
					if len(want.Segments) == 0 || e.Gap || pause {
						s.ProgramDateTime = p.Wallclock(e.Start, tv.Timescale).UTC().Truncate(time.Millisecond)
					}
					want.Segments = append(want.Segments, s)
				}
				// Each segment's line is its URI's.
				lines := strings.Split(string(b), "\n")
				for i := range pl.Segments {
					s := &pl.Segments[i]
					if s.Line < 1 || s.Line > len(lines) || lines[s.Line-1] != s.URI {
						t.Errorf("%s: %s: segment %d at line %d, which is not its URI %s", name, tv.ID, i, s.Line, s.URI)
					}
					s.Line = 0
				}
				for _, k := range pl.Keys {
					k.Line = 0
				}
				if !reflect.DeepEqual(pl, want) {
					t.Errorf("%s: %s reads as\n%+v\nwant\n%+v\n%s", name, tv.ID, pl, want, b)
				}
			}
		}
	}
}

// wantKeys are the EXT-X-KEY tags (as Parse reads them, without their
// lines) that say protection p, one per DRM system HLS knows, in its
// order: nil for a clear track.
func wantKeys(t *testing.T, p *timeline.Protection) []*Key {
	if p == nil {
		return nil
	}
	kid, err := cenc.ParseKID(p.KID)
	if err != nil {
		t.Fatal(err)
	}
	method := map[string]string{"cbcs": "SAMPLE-AES", "cenc": "SAMPLE-AES-CTR"}[p.Scheme]
	var out []*Key
	for _, s := range p.Systems {
		box, err := mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(s.PSSH))
		if err != nil {
			t.Fatal(err)
		}
		data := box.(*mp4.PsshBox).Data
		k := &Key{Method: method, KeyFormatVersions: "1"}
		switch s.ID {
		case cenc.ClearKey.UUID():
			k.KeyFormat, k.URI = "org.w3.clearkey", "data:text/plain;base64,"+base64.StdEncoding.EncodeToString(kid[:])
		case cenc.Widevine.UUID():
			k.KeyFormat, k.URI = "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed", "data:text/plain;base64,"+base64.StdEncoding.EncodeToString(s.PSSH)
			k.KeyID = "0x" + hex.EncodeToString(kid[:])
		case cenc.PlayReady.UUID():
			k.KeyFormat, k.URI = "com.microsoft.playready", "data:text/plain;charset=UTF-16;base64,"+base64.StdEncoding.EncodeToString(data)
		case cenc.FairPlay.UUID():
			if p.Scheme != "cbcs" {
				continue
			}
			k.KeyFormat, k.URI = "com.apple.streamingkeydelivery", string(data)
		default:
			continue
		}
		out = append(out, k)
	}
	return out
}

// unquotable is whether a language of p has a character an HLS
// quoted-string cannot hold (RFC 8216 4.2: a double quote, CR or LF),
// which Master writes Go-quoted (\").
func unquotable(p *timeline.Presentation) bool {
	for _, tv := range p.Tracks {
		if strings.ContainsAny(tv.Language, "\"\r\n") {
			return true
		}
	}
	return false
}

// Every tag the project reads or writes, and a few it does not, which
// are kept.
func TestParseReadsEveryTag(t *testing.T) {
	const media = `#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:8589934592
#EXT-X-DISCONTINUITY-SEQUENCE:3
#EXT-X-PLAYLIST-TYPE:EVENT
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-START:TIME-OFFSET=-6
# a comment
#EXT-X-MAP:URI="init.mp4",BYTERANGE="720@0"
#EXT-X-PROGRAM-DATE-TIME:2026-01-02T03:04:05.123+0100
#EXTINF:2.005333,first, with a comma
seg0.m4s?a=1
#EXT-X-BYTERANGE:1000@720

#EXTINF:4,
#EXT-X-GAP
big.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI="init2.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-01-02T02:05:00Z
#EXT-X-BYTERANGE:500
#EXTINF:.5
seg2.m4s
#EXT-X-ENDLIST
`
	pl, err := Parse([]byte(strings.ReplaceAll(media, "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	maps := []*Map{{URI: "init.mp4", ByteRange: &ByteRange{Length: 720, HasOffset: true}}, {URI: "init2.mp4"}}
	want := &Playlist{
		Version: 7, IndependentSegments: true, TargetDuration: 4, MediaSequence: 1 << 33, DiscontinuitySequence: 3,
		Type: "EVENT", Maps: maps, Ended: true,
		Segments: []Segment{
			{URI: "seg0.m4s?a=1", Duration: 2005333 * time.Microsecond, Title: "first, with a comma", Map: maps[0], Line: 13,
				ProgramDateTime: time.Date(2026, 1, 2, 2, 4, 5, 123e6, time.UTC)},
			{URI: "big.m4s", Duration: 4 * time.Second, ByteRange: &ByteRange{Length: 1000, Offset: 720, HasOffset: true}, Gap: true, Map: maps[0], Line: 18},
			{URI: "seg2.m4s", Duration: 500 * time.Millisecond, ByteRange: &ByteRange{Length: 500}, Discontinuity: true, Map: maps[1], Line: 24,
				ProgramDateTime: time.Date(2026, 1, 2, 2, 5, 0, 0, time.UTC)},
		},
		Other: []Tag{{Name: "EXT-X-START", Value: "TIME-OFFSET=-6", Line: 8}},
	}
	for i := range pl.Segments {
		if s := &pl.Segments[i]; !s.ProgramDateTime.IsZero() {
			if !s.ProgramDateTime.Equal(want.Segments[i].ProgramDateTime) {
				t.Errorf("segment %d: program date-time %v, want %v", i, s.ProgramDateTime, want.Segments[i].ProgramDateTime)
			}
			s.ProgramDateTime = want.Segments[i].ProgramDateTime
		}
	}
	if !reflect.DeepEqual(pl, want) {
		t.Errorf("media playlist reads as\n%+v\nwant\n%+v", pl, want)
	}

	const multivariant = `#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English, stereo",LANGUAGE="en",ASSOC-LANGUAGE="en-GB",DEFAULT=YES,AUTOSELECT=YES,FORCED=NO,CHARACTERISTICS="public.accessibility.describes-video,x.y",CHANNELS="2",URI="a/en.m3u8"
#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="CC1",INSTREAM-ID="CC1",DEFAULT=NO,AUTOSELECT=NO
#EXT-X-STREAM-INF:BANDWIDTH=1075200,AVERAGE-BANDWIDTH=955867,CODECS="avc1.64001e,mp4a.40.2",RESOLUTION=640x360,FRAME-RATE=29.970,AUDIO="aud",CLOSED-CAPTIONS="cc",HDCP-LEVEL=NONE

v/640.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,CODECS="avc1.64001e",RESOLUTION=640x360,URI="v/640-iframes.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=115200,CODECS="mp4a.40.2",AUDIO="aud",VIDEO="v",SUBTITLES="s"
a/en.m3u8
`
	pl, err = Parse([]byte(multivariant))
	if err != nil {
		t.Fatal(err)
	}
	want = &Playlist{
		Multivariant: true, Version: 7, IndependentSegments: true,
		Renditions: []Rendition{
			{Type: "AUDIO", GroupID: "aud", Name: "English, stereo", Language: "en", AssocLanguage: "en-GB", Default: true, Autoselect: true,
				Characteristics: "public.accessibility.describes-video,x.y", Channels: "2", URI: "a/en.m3u8", Line: 4},
			{Type: "CLOSED-CAPTIONS", GroupID: "cc", Name: "CC1", InstreamID: "CC1", Line: 5},
		},
		Variants: []Variant{
			{URI: "v/640.m3u8", Bandwidth: 1075200, AverageBandwidth: 955867, Codecs: "avc1.64001e,mp4a.40.2", Width: 640, Height: 360,
				FrameRate: 29.97, Audio: "aud", ClosedCaptions: "cc", Line: 6},
			{URI: "v/640-iframes.m3u8", IFrame: true, Bandwidth: 90000, Codecs: "avc1.64001e", Width: 640, Height: 360, Line: 9},
			{URI: "a/en.m3u8", Bandwidth: 115200, Codecs: "mp4a.40.2", Audio: "aud", Video: "v", Subtitles: "s", Line: 10},
		},
	}
	if !reflect.DeepEqual(pl, want) {
		t.Errorf("multivariant playlist reads as\n%+v\nwant\n%+v", pl, want)
	}
}

// A playlist Parse refuses names the line that is wrong.
func TestParseErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct {
		name, playlist string
		line           int
		says           string
	}{
		{"empty", "", 1, "first line is not #EXTM3U"},
		{"no header", "#EXT-X-VERSION:7\n", 1, "first line is not #EXTM3U"},
		{"a version in words", "#EXTM3U\n#EXT-X-VERSION:seven\n", 2, "#EXT-X-VERSION"},
		{"a target duration with decimals", "#EXTM3U\n#EXT-X-TARGETDURATION:2.5\n", 2, "not a decimal integer"},
		{"a negative media sequence", "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:-1\n", 2, "#EXT-X-MEDIA-SEQUENCE"},
		{"an unknown playlist type", "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:LIVE\n", 2, "neither VOD nor EVENT"},
		{"an EXTINF in words", "#EXTM3U\n#EXTINF:two,\na.m4s\n", 2, "not a decimal number of seconds"},
		{"an EXTINF in exponent form", "#EXTM3U\n#EXTINF:2e0,\na.m4s\n", 2, "not a decimal number of seconds"},
		{"an EXTINF without its URI", "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n", 3, "EXTINF without a URI"},
		{"two EXTINF for one URI", "#EXTM3U\n#EXTINF:2,\n#EXTINF:2,\na.m4s\n", 3, "a second EXTINF"},
		{"a URI without EXTINF", "#EXTM3U\n#EXT-X-TARGETDURATION:2\na.m4s\n", 3, "without an EXTINF"},
		{"a map without URI", "#EXTM3U\n#EXT-X-MAP:BYTERANGE=\"1@0\"\n", 2, "no URI"},
		{"a bad byte range", "#EXTM3U\n#EXTINF:2,\n#EXT-X-BYTERANGE:12@x\na.m4s\n", 3, "byte range"},
		{"a bad date-time", "#EXTM3U\n#EXT-X-PROGRAM-DATE-TIME:yesterday\n", 2, "not an ISO 8601 date-time"},
		{"an unterminated quote", "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a,NAME=\"x\"\n", 2, "after the quoted value"},
		{"an open quote", "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\n", 2, "without its closing quote"},
		{"an attribute without value", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH\nv.m3u8\n", 2, "without =value"},
		{"a bad resolution", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=640\nv.m3u8\n", 2, "RESOLUTION"},
		{"a bad DEFAULT", "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"a\",DEFAULT=yes\n", 2, "neither YES nor NO"},
		{"a rendition without a name", "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\"\n", 2, "NAME are required"},
		{"a variant without URI", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n", 2, "without a URI"},
		{"two variants for one URI", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n#EXT-X-STREAM-INF:BANDWIDTH=2\nv.m3u8\n", 3, "has no URI"},
		{"an I-frame variant without URI", "#EXTM3U\n#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1\n", 2, "no URI"},
		{"a media tag in a multivariant playlist", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n#EXT-X-ENDLIST\n", 4, "after a multivariant playlist's at line 2"},
		{"a multivariant tag in a media playlist", "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"a\"\n", 3, "after a media playlist's at line 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.playlist))
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line != tc.line || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %v, want line %d saying %q", err, tc.line, tc.says)
			}
			if want := fmt.Sprintf("hls: line %d: ", tc.line); !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start %q", err, want)
			}
		})
	}
}

// What Parse holds is bounded: segments, variants and renditions are
// refused past their limits, unknown tags kept up to MaxOther.
func TestParseBoundsWhatItHolds(t *testing.T) {
	var b strings.Builder
	b.WriteString("#EXTM3U\n")
	for range MaxOther + 10 {
		b.WriteString("#EXT-X-UNKNOWN:1\n")
	}
	for range MaxSegments {
		b.WriteString("#EXTINF:1,\na\n")
	}
	pl, err := Parse([]byte(b.String()))
	if err != nil || len(pl.Segments) != MaxSegments || len(pl.Other) != MaxOther {
		t.Fatalf("%d segments, %d other tags, %v; want %d and %d", len(pl.Segments), len(pl.Other), err, MaxSegments, MaxOther)
	}
	b.WriteString("#EXTINF:1,\na\n")
	if _, err := Parse([]byte(b.String())); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("one segment more than MaxSegments: %v", err)
	}
	b.Reset()
	b.WriteString("#EXTM3U\n")
	for range MaxVariants + 1 {
		b.WriteString("#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n")
	}
	if _, err := Parse([]byte(b.String())); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("one variant more than MaxVariants: %v", err)
	}
}

// Fuzzing from the golden playlists: Parse never panics, refuses with a
// *ParseError naming a line of the input, and what it accepts is one
// kind of playlist within the limits, every segment with a URI.
func FuzzParse(f *testing.F) {
	golden, err := filepath.Glob(filepath.Join("testdata", "golden", "*.m3u8"))
	if err != nil || len(golden) == 0 {
		f.Fatalf("no golden playlists: %v", err)
	}
	for _, name := range golden {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("#EXTM3U\n#EXT-X-MAP:URI=\"i.mp4\",BYTERANGE=\"1@2\"\n#EXT-X-BYTERANGE:3@4\n#EXTINF:.5,t\r\ns\n#EXT-X-GAP\n#EXT-X-ENDLIST"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pl, err := Parse(b)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 1 || pe.Line > strings.Count(string(b), "\n")+1 {
				t.Fatalf("error %v names no line of the input", err)
			}
			return
		}
		if pl.Multivariant && (len(pl.Segments) > 0 || len(pl.Maps) > 0) || !pl.Multivariant && len(pl.Variants)+len(pl.Renditions) > 0 {
			t.Fatalf("both kinds of playlist: %+v", pl)
		}
		if len(pl.Segments) > MaxSegments || len(pl.Variants)+len(pl.Renditions) > MaxVariants || len(pl.Other) > MaxOther {
			t.Fatalf("over the limits: %d segments, %d variants and renditions, %d other tags", len(pl.Segments), len(pl.Variants)+len(pl.Renditions), len(pl.Other))
		}
		for _, s := range pl.Segments {
			if s.URI == "" || strings.HasPrefix(s.URI, "#") || s.Duration < 0 {
				t.Fatalf("segment %+v", s)
			}
		}
		for _, v := range pl.Variants {
			if v.URI == "" {
				t.Fatalf("variant %+v", v)
			}
		}
	})
}

// MediaURIs names every media playlist once: the variants', then the
// renditions' (a rendition without a URI has none, an I-frame variant is
// not a media playlist a player plays).
func TestMediaURIsNameEachPlaylistOnce(t *testing.T) {
	master := "#EXTM3U\n" +
		"#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"audio.m3u8\"\n" +
		"#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"b\",NAME=\"muxed\"\n" +
		"#EXT-X-STREAM-INF:BANDWIDTH=900000,AUDIO=\"a\"\nvideo.m3u8\n" +
		"#EXT-X-STREAM-INF:BANDWIDTH=100000,AUDIO=\"a\"\naudio.m3u8\n" +
		"#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI=\"iframes.m3u8\"\n"
	p, err := Parse([]byte(master))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.MediaURIs(), []string{"video.m3u8", "audio.m3u8"}; !slices.Equal(got, want) {
		t.Errorf("MediaURIs %v, want %v", got, want)
	}
}

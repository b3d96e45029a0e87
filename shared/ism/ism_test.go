package ism

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/mp4box"
)

// liveServerManifest is the uuid box ffmpeg -f ismv -movflags +isml
// sends before its moov (from a push of three tracks).
func liveServerManifest(t testing.TB) mp4box.Box {
	t.Helper()
	b, err := os.ReadFile("testdata/ffmpeg-live-server-manifest.uuid")
	if err != nil {
		t.Fatal(err)
	}
	box, ok := mp4box.Find(b, "uuid")
	if !ok {
		t.Fatal("testdata/ffmpeg-live-server-manifest.uuid is not a uuid box")
	}
	return box
}

// ffmpegSMIL is the live server manifest's document.
func ffmpegSMIL(t testing.TB) []byte {
	return ServerManifestDoc(liveServerManifest(t).Payload()[16:])
}

func TestParseSMILOfFFmpeg(t *testing.T) {
	box := liveServerManifest(t)
	if u := fmt.Sprintf("%x", box.Payload()[:16]); u != strings.ReplaceAll(ServerManifestUUID, "-", "") {
		t.Fatalf("uuid %s, want %s", u, ServerManifestUUID)
	}
	tracks, err := ParseSMIL(ServerManifestDoc(box.Payload()[16:]))
	if err != nil {
		t.Fatal(err)
	}
	want := []SMILTrack{
		{Kind: "video", SystemBitrate: 60000, TrackID: 1, TrackName: "video", Language: "und"},
		{Kind: "video", SystemBitrate: 30000, TrackID: 2, TrackName: "video", Language: "und"},
		{Kind: "audio", SystemBitrate: 32000, TrackID: 3, TrackName: "audio", Language: "und"},
	}
	if len(tracks) != len(want) {
		t.Fatalf("%d tracks, want %d", len(tracks), len(want))
	}
	for i, w := range want {
		g := tracks[i]
		if g.Kind != w.Kind || g.SystemBitrate != w.SystemBitrate || g.TrackID != w.TrackID || g.TrackName != w.TrackName || g.Language != w.Language {
			t.Errorf("track %d: %+v, want %+v", i, g, w)
		}
	}
	for _, bad := range []string{"<smil><body><switch><video systemBitrate=\"fast\"/></switch></body></smil>", "not xml <"} {
		if _, err := ParseSMIL([]byte(bad)); err == nil {
			t.Errorf("ParseSMIL(%q) accepted it", bad)
		}
	}
}

// renderSMIL writes tracks back as a live server manifest.
func renderSMIL(tracks []SMILTrack) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><smil xmlns="http://www.w3.org/2001/SMIL20/Language"><body><switch>`)
	for _, t := range tracks {
		fmt.Fprintf(&b, `<%s systemBitrate="%d">`, t.Kind, t.SystemBitrate)
		for _, n := range slices.Sorted(maps.Keys(t.Params)) {
			b.WriteString(`<param name="`)
			_ = xml.EscapeText(&b, []byte(n))
			b.WriteString(`" value="`)
			_ = xml.EscapeText(&b, []byte(t.Params[n]))
			b.WriteString(`"/>`)
		}
		fmt.Fprintf(&b, `</%s>`, t.Kind)
	}
	b.WriteString(`</switch></body></smil>`)
	return b.Bytes()
}

// xmlName matches the element names renderSMIL can write back as they are.
var xmlName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9._-]*$`)

// FuzzParseSMIL: any document parses or fails with an error. What parses
// has bitrates within bounds (or 0, none declared), gives track names the session can only turn
// into safe ones, and round-trips: written back as SMIL (each bitrate as
// the systemBitrate attribute) and parsed again, it gives the same tracks,
// so bitrates, track IDs, names and parameters are what the document said.
func FuzzParseSMIL(f *testing.F) {
	f.Add(ffmpegSMIL(f))
	f.Add([]byte(`<smil><body><switch><video systemBitrate="1000"><param name="trackID" value="2"/></video></switch></body></smil>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		tracks, err := ParseSMIL(doc)
		if err != nil {
			return
		}
		renderable := true
		for _, tr := range tracks {
			if tr.SystemBitrate != 0 && CheckBitrate(tr.SystemBitrate) != nil {
				t.Fatalf("bitrate %d out of bounds", tr.SystemBitrate)
			}
			for _, fallback := range []string{"video", "audio"} {
				if name := layout.SanitizeName(tr.TrackName, fallback); !layout.ValidName(name) {
					t.Fatalf("track name %q gives the unsafe name %q", tr.TrackName, name)
				}
			}
			if tr.TrackName != tr.Params["trackName"] || tr.Language != tr.Params["systemLanguage"] {
				t.Fatalf("track %+v: name or language is not its parameter", tr)
			}
			renderable = renderable && xmlName.MatchString(tr.Kind)
		}
		if !renderable {
			return
		}
		again, err := ParseSMIL(renderSMIL(tracks))
		if err != nil {
			t.Fatalf("the parsed tracks, written back, do not parse: %v\n%s", err, renderSMIL(tracks))
		}
		if !reflect.DeepEqual(again, tracks) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", again, tracks)
		}
	})
}

// The live server manifest's tracks round-trip through renderSMIL, and
// refused documents are refused with a reason.
func TestParseSMILRoundTrip(t *testing.T) {
	doc := ffmpegSMIL(t)
	for _, tc := range []struct {
		name, doc string
		ok        bool
	}{
		{"ffmpeg's", string(doc), true},
		{"bitrate as a parameter", `<smil><body><switch><audio><param name="systemBitrate" value="0064000"/><param name="trackID" value="3"/></audio></switch></body></smil>`, true},
		{"escaped names", `<smil><body><switch><video systemBitrate="5000"><param name="trackName" value="a&amp;b&#xA;c/../d"/></video></switch></body></smil>`, true},
		{"negative bitrate", `<smil><body><switch><video systemBitrate="-1"/></switch></body></smil>`, false},
		{"a bitrate of 0 declares nothing", `<smil><body><switch><video systemBitrate="0"/></switch></body></smil>`, true},
		{"bitrate 2^31-1, the most a manifest carries", `<smil><body><switch><video systemBitrate="2147483647"/></switch></body></smil>`, true},
		{"bitrate 2^31, more than a manifest carries", `<smil><body><switch><video systemBitrate="2147483648"/></switch></body></smil>`, false},
		{"bitrate 2^63-1", `<smil><body><switch><video><param name="systemBitrate" value="9223372036854775807"/></video></switch></body></smil>`, false},
		{"bitrate 999, less than any track", `<smil><body><switch><audio systemBitrate="999"/></switch></body></smil>`, false},
		{"bitrate not a number", `<smil><body><switch><video systemBitrate="fast"/></switch></body></smil>`, false},
		{"track ID past 32 bits", `<smil><body><switch><video><param name="trackID" value="4294967296"/></video></switch></body></smil>`, false},
		{"not XML", "not xml <", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tracks, err := ParseSMIL([]byte(tc.doc))
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok {
				if !strings.Contains(err.Error(), "live server manifest") {
					t.Errorf("error %q does not say what was refused", err)
				}
				return
			}
			again, err := ParseSMIL(renderSMIL(tracks))
			if err != nil || !reflect.DeepEqual(again, tracks) {
				t.Fatalf("round trip: %+v, %v; want %+v", again, err, tracks)
			}
		})
	}
}

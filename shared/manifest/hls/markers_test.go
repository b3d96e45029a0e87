package hls

import (
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/shared/scte35"
)

// An uploaded playlist's CUE-OUT and CUE-IN fall at the start of the
// segment after them, a DATERANGE at its START-DATE among the segments'
// program date-times; CUE-OUT-CONT, DATERANGEs of no SCTE35 attribute and
// tags after the last segment are none; a malformed marker is an error
// of its own and left out.
func TestMarkersOfAnUploadedPlaylist(t *testing.T) {
	out := scte35.Hex(scte35.Insert(5, true, 30*time.Second))
	bad := scte35.Hex(scte35.Insert(6, true, 0))
	bad = bad[:len(bad)-2] + "00" // its CRC
	pl, err := Parse([]byte(strings.Join([]string{
		"#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:2", `#EXT-X-MAP:URI="init.mp4"`,
		"#EXT-X-PROGRAM-DATE-TIME:2026-01-02T03:04:05.000Z",
		"#EXTINF:2.0,", "s0.m4s",
		"#EXT-X-CUE-OUT:30",
		"#EXTINF:2.0,", "s1.m4s",
		"#EXT-X-CUE-OUT-CONT:ElapsedTime=2,Duration=30",
		`#EXT-X-DATERANGE:ID="ad",START-DATE="2026-01-02T03:04:10.500Z",PLANNED-DURATION=30,SCTE35-OUT=` + out,
		`#EXT-X-DATERANGE:ID="chapter",START-DATE="2026-01-02T03:04:10.500Z",CLASS="x"`,
		`#EXT-X-DATERANGE:ID="bad",START-DATE="2026-01-02T03:04:09Z",SCTE35-CMD=` + bad,
		"#EXTINF:2.0,", "s2.m4s",
		"#EXT-X-CUE-IN",
		"#EXTINF:2.0,", "s3.m4s",
		"#EXT-X-CUE-IN",
	}, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	ms, errs := Markers(pl)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "line 14") {
		t.Errorf("errors %v, want one at line 14 (the bad CRC)", errs)
	}
	want := []Marker{
		{Segment: 1, Kind: scte35.Out, Duration: 30 * time.Second, Line: 8},
		{Segment: 2, Offset: 1500 * time.Millisecond, Kind: scte35.Out, Duration: 30 * time.Second, ID: "ad", Line: 12},
		{Segment: 3, Kind: scte35.In, Line: 17},
	}
	if len(ms) != len(want) {
		t.Fatalf("markers %+v, want %+v", ms, want)
	}
	for i, m := range ms {
		w := want[i]
		if m.Segment != w.Segment || m.Offset != w.Offset || m.Kind != w.Kind || m.Duration != w.Duration || m.ID != w.ID || m.Line != w.Line {
			t.Errorf("marker %d: %+v, want %+v", i, m, w)
		}
	}
	if ms[1].Section == nil || ms[0].Section != nil {
		t.Errorf("sections: DATERANGE %x, CUE-OUT %x", ms[1].Section, ms[0].Section)
	}
}

func FuzzMarkers(f *testing.F) {
	f.Add("#EXTM3U\n#EXT-X-PROGRAM-DATE-TIME:2026-01-02T03:04:05Z\n#EXT-X-CUE-OUT:DURATION=30\n#EXTINF:2,\na\n#EXT-X-DATERANGE:ID=\"x\",START-DATE=\"2026-01-02T03:04:06Z\",SCTE35-IN=0xFC\n#EXTINF:2,\nb\n#EXT-X-CUE-IN\n")
	f.Fuzz(func(t *testing.T, s string) {
		pl, err := Parse([]byte(s))
		if err != nil {
			return
		}
		ms, _ := Markers(pl)
		for _, m := range ms {
			if m.Segment < 0 || m.Segment >= len(pl.Segments) || m.Offset < 0 {
				t.Fatalf("marker %+v of %d segments", m, len(pl.Segments))
			}
		}
	})
}

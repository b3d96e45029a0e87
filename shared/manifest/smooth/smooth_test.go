package smooth

import (
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file:\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func tl(durs []uint64, start uint64, gapAt int) timeline.TrackState {
	var s timeline.TrackState
	t := start
	for i, d := range durs {
		if i == gapAt {
			t += d
		}
		s.Timeline.Append(timeline.Fragment{Start: t, Duration: d}, i == gapAt)
		t += d
		s.MaxDuration = max(s.MaxDuration, d)
	}
	return s
}

func presentation(videoLag bool) *timeline.Presentation {
	v := []uint64{20000000, 20000000, 20000000, 20000000, 20000000, 20000000}
	a := []uint64{19200000, 20053333, 20053334, 20053333, 19840000, 20800000}
	lagging := v
	if videoLag {
		lagging = v[:5]
	}
	return &timeline.Presentation{
		Channel: "ch", Epoch: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), DVRWindow: 30 * time.Minute,
		Tracks: []timeline.TrackView{
			{Track: timeline.Track{ID: layout.TrackID{Name: "video", Bitrate: 800000}, Kind: timeline.Video, Timescale: 10000000, FourCC: "H264", Codecs: "avc1.64001e", CodecPrivateData: "00000001AA0000000168", Width: 640, Height: 360}, State: tl(v, 0, -1)},
			{Track: timeline.Track{ID: layout.TrackID{Name: "video", Bitrate: 300000}, Kind: timeline.Video, Timescale: 10000000, FourCC: "H264", Codecs: "avc1.64000d", CodecPrivateData: "00000001BB0000000168", Width: 320, Height: 180}, State: tl(lagging, 0, -1)},
			{Track: timeline.Track{ID: layout.TrackID{Name: "audio", Bitrate: 96000}, Kind: timeline.Audio, Timescale: 10000000, FourCC: "AACL", Codecs: "mp4a.40.2", CodecPrivateData: "1190", SamplingRate: 48000, Channels: 2, BitsPerSample: 16, PacketSize: 4, AudioTag: 255, Language: "und"}, State: tl(a, 0, 3)},
		},
	}
}

func TestRenderGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *timeline.Presentation
	}{
		{"live.ism", presentation(false)},
		{"video-lagging.ism", presentation(true)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Render(tc.p)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, b)
			var m struct {
				Streams []struct {
					Chunks int `xml:"Chunks,attr"`
					C      []struct {
						D uint64 `xml:"d,attr"`
						R uint64 `xml:"r,attr"`
					} `xml:"c"`
				} `xml:"StreamIndex"`
			}
			if err := xml.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			for _, si := range m.Streams {
				n := 0
				for _, c := range si.C {
					n += int(max(c.R, 1))
				}
				if n != si.Chunks {
					t.Errorf("Chunks=%d but c elements list %d fragments", si.Chunks, n)
				}
			}
		})
	}
}

func TestTwentyFourHoursHaveNoDrift(t *testing.T) {
	var s timeline.TrackState
	for i := range uint64(43200) {
		s.Timeline.Append(timeline.Fragment{Start: i * 20000000, Duration: 20000000}, false)
	}
	p := &timeline.Presentation{Channel: "ch", Tracks: []timeline.TrackView{{Track: timeline.Track{ID: layout.TrackID{Name: "video", Bitrate: 1}, Kind: timeline.Video, Timescale: 10000000}, State: s}}}
	b, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	want := `<c t="0" d="20000000" r="43200"></c>`
	if !strings.Contains(string(b), want) {
		t.Errorf("24 h of 2 s fragments should compact to %s:\n%s", want, b)
	}
}

package hls

import (
	"bufio"
	"bytes"
	"flag"
	"math/big"
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

func TestPlaylistsGolden(t *testing.T) {
	p := presentation(false)
	golden(t, "master.m3u8", Master(p))
	for _, id := range []layout.TrackID{{Name: "video", Bitrate: 800000}, {Name: "audio", Bitrate: 96000}} {
		b, ok := Media(p, id)
		if !ok {
			t.Fatalf("no playlist for %s", id)
		}
		golden(t, id.Name+"_"+id.String()[len(id.Name)+1:]+".m3u8", b)
	}
	// A trimmed window keeps counting media and discontinuity sequences.
	p.DVRWindow = 6 * time.Second
	b, _ := Media(p, layout.TrackID{Name: "audio", Bitrate: 96000})
	golden(t, "audio_96000_window.m3u8", b)
	if _, ok := Media(p, layout.TrackID{Name: "nope", Bitrate: 1}); ok {
		t.Error("a playlist for a track that does not exist")
	}
}

func TestTargetDurationRounding(t *testing.T) {
	for _, tc := range []struct {
		dur  float64
		want uint64
	}{{1.4999, 1}, {1.5, 2}, {2.0, 2}, {2.08, 2}, {2.5, 3}, {0.001, 1}} {
		if got := TargetDuration(uint64(tc.dur*1e7), 10_000_000); got != tc.want {
			t.Errorf("TargetDuration(%v s) = %d, want %d", tc.dur, got, tc.want)
		}
	}
}

func TestTwentyFourHoursOfEXTINFAddUp(t *testing.T) {
	var s timeline.TrackState
	d := []uint64{20053333, 20053334, 19840000}
	var total uint64
	for i := range 43200 {
		s.Timeline.Append(timeline.Fragment{Start: total, Duration: d[i%3]}, false)
		total += d[i%3]
		s.MaxDuration = max(s.MaxDuration, d[i%3])
	}
	id := layout.TrackID{Name: "audio", Bitrate: 1}
	p := &timeline.Presentation{Channel: "ch", Tracks: []timeline.TrackView{{Track: timeline.Track{ID: id, Kind: timeline.Audio, Timescale: 10000000}, State: s}}}
	b, _ := Media(p, id)
	sum := new(big.Rat)
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "#EXTINF:"); ok {
			r, _ := new(big.Rat).SetString(strings.TrimSuffix(v, ","))
			sum.Add(sum, r)
			n++
		}
	}
	want := new(big.Rat).SetFrac64(int64(total), 10000000)
	diff, _ := new(big.Rat).Sub(sum, want).Float64()
	if n != 43200 || diff > 1e-6*float64(n) || diff < -1e-6*float64(n) {
		t.Errorf("%d segments, EXTINF sum off by %g s", n, diff)
	}
}

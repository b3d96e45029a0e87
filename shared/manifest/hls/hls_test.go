package hls

import (
	"bufio"
	"bytes"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

func TestPlaylistsGolden(t *testing.T) {
	p := manifesttest.Presentation(false)
	manifesttest.Golden(t, "master.m3u8", Master(p))
	for _, id := range []layout.TrackID{{Name: "video", Bitrate: 800000}, {Name: "audio", Bitrate: 96000}} {
		b, ok := Media(p, id)
		if !ok {
			t.Fatalf("no playlist for %s", id)
		}
		manifesttest.Golden(t, id.Name+"_"+id.String()[len(id.Name)+1:]+".m3u8", b)
	}
	// A trimmed window keeps counting media and discontinuity sequences.
	p.DVRWindow = 6 * time.Second
	b, _ := Media(p, layout.TrackID{Name: "audio", Bitrate: 96000})
	manifesttest.Golden(t, "audio_96000_window.m3u8", b)
	if _, ok := Media(p, layout.TrackID{Name: "nope", Bitrate: 1}); ok {
		t.Error("a playlist for a track that does not exist")
	}
}

// An EXTINF may print a microsecond more than its fragment lasts
// (extinf): 2.4999996 s can print 2.500000, which rounds to 3.
func TestTargetDurationRounding(t *testing.T) {
	for _, tc := range []struct {
		dur  float64
		want uint64
	}{{1.4999, 1}, {1.5, 2}, {2.0, 2}, {2.08, 2}, {2.4999, 2}, {2.4999996, 3}, {2.5, 3}, {0.001, 1}} {
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
	if n != 43200 || diff > 1e-6 || diff < -1e-6 {
		t.Errorf("%d segments, EXTINF sum off by %g s", n, diff)
	}
}

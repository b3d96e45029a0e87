// Package manifesttest holds what the renderers' tests share: golden files
// and a small presentation with the irregularities real pushes have (AAC
// fragment durations that wander, a gap, a lagging rendition).
package manifesttest

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// Golden compares got with testdata/golden/name, or rewrites the file when
// the test runs with -update.
func Golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
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

// State is a track state of fragments of the given durations (in 10 MHz
// ticks) from start, with a gap (missing media of the same duration) before
// fragment gapAt (-1 for none). Fragment sizes follow bitrate, every third
// one 20 % larger, so that the measured peak and average differ; fps gives
// the samples per second.
func State(durs []uint64, start uint64, gapAt int, bitrate int, fps float64) timeline.TrackState {
	var s timeline.TrackState
	t := start
	for i, d := range durs {
		if i == gapAt {
			t += d
		}
		s.Timeline.Append(timeline.Fragment{Start: t, Duration: d}, i == gapAt)
		t += d
		s.MaxDuration = max(s.MaxDuration, d)
		size := int64(float64(bitrate) / 8 * float64(d) / 1e7)
		if i%3 == 2 {
			size = size * 6 / 5
		}
		s.Bytes += size
		s.Ticks += d
		s.Samples += uint64(fps * float64(d) / 1e7)
		if s.PeakTicks == 0 || uint64(size)*s.PeakTicks > uint64(s.PeakBytes)*d {
			s.PeakBytes, s.PeakTicks = size, d
		}
	}
	return s
}

// Epoch is the wall-clock time of media time zero in Presentation.
var Epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// The fragment durations of Presentation's video (constant) and audio
// (AAC's, wandering), in 10 MHz ticks.
var (
	videoDurations = []uint64{20000000, 20000000, 20000000, 20000000, 20000000, 20000000}
	audioDurations = []uint64{19200000, 20053333, 20053334, 20053333, 19840000, 20800000}
)

// Presentation is a channel of two video renditions (800k 640x360, 300k
// 320x180) and AAC audio with a gap before its fourth fragment; with
// videoLag the 300k rendition lacks the last fragment.
func Presentation(videoLag bool) *timeline.Presentation {
	v, a := videoDurations, audioDurations
	lagging := v
	if videoLag {
		lagging = v[:5]
	}
	return &timeline.Presentation{
		Channel: "ch", Epoch: Epoch, DVRWindow: 30 * time.Minute,
		Tracks: []timeline.TrackView{
			{Track: timeline.Track{ID: layout.TrackID{Name: "video", Bitrate: 800000}, Kind: timeline.Video, Timescale: 10000000, FourCC: "H264", Codecs: "avc1.64001e", CodecPrivateData: "00000001AA0000000168", Width: 640, Height: 360}, State: State(v, 0, -1, 800000, 25)},
			{Track: timeline.Track{ID: layout.TrackID{Name: "video", Bitrate: 300000}, Kind: timeline.Video, Timescale: 10000000, FourCC: "H264", Codecs: "avc1.64000d", CodecPrivateData: "00000001BB0000000168", Width: 320, Height: 180}, State: State(lagging, 0, -1, 300000, 25)},
			{Track: timeline.Track{ID: layout.TrackID{Name: "audio", Bitrate: 96000}, Kind: timeline.Audio, Timescale: 10000000, FourCC: "AACL", Codecs: "mp4a.40.2", CodecPrivateData: "1190", SamplingRate: 48000, Channels: 2, BitsPerSample: 16, PacketSize: 4, AudioTag: 255, Language: "und"}, State: State(a, 0, 3, 96000, 46.875)},
		},
	}
}

// Codecs is a channel of every codec the manifests describe but H.264
// and AAC, as fmp4.Describe describes them from ffmpeg's sample entries:
// HEVC Main 10 with PQ (hvc1, 2000k 1280x720), HEVC Main with its
// parameter sets (hev1, 800k 640x360) and AV1 (300k 320x180, which Smooth
// cannot carry) as the video renditions; E-AC-3 5.1 with Dolby Atmos
// (complexity index 16) in English, and AC-3 stereo in French.
func Codecs() *timeline.Presentation {
	p := Presentation(false)
	v := func(bitrate int) timeline.TrackState { return State(videoDurations, 0, -1, bitrate, 25) }
	a := func(bitrate int) timeline.TrackState { return State(audioDurations, 0, 3, bitrate, 46.875) }
	// Parameter sets of 64x64 x265 streams: only their form matters here.
	const main10CPD = "0000000140010C01FFFF02200000030090000003000003001E9598090000000142010102200000030090000003000003001EA0208104D96566924CAF016A12201208000003000800000300C840000000014401C172B42240"
	const mainCPD = "0000000140010C01FFFF01600000030090000003000003001E9598090000000142010101600000030090000003000003001EA020810596566924CAF0168080000003008000000C84000000014401C172B42240"
	p.Tracks = []timeline.TrackView{
		{Track: timeline.Track{ID: layout.TrackID{Name: "video", Bitrate: 2000000}, Kind: timeline.Video, Timescale: 10000000, FourCC: "HVC1", Codecs: "hvc1.2.4.L93.90", CodecPrivateData: main10CPD, Width: 1280, Height: 720, VideoRange: "PQ"}, State: v(2000000)},
		{Track: timeline.Track{ID: layout.TrackID{Name: "video", Bitrate: 800000}, Kind: timeline.Video, Timescale: 10000000, FourCC: "HEV1", Codecs: "hev1.1.6.L90.90", CodecPrivateData: mainCPD, Width: 640, Height: 360}, State: v(800000)},
		{Track: timeline.Track{ID: layout.TrackID{Name: "video", Bitrate: 300000}, Kind: timeline.Video, Timescale: 10000000, Codecs: "av01.0.04M.08", CodecPrivateData: "81040C000A0B0000002CCFFFB8204040", Width: 320, Height: 180}, State: v(300000)},
		{Track: timeline.Track{ID: layout.TrackID{Name: "audio_eng", Bitrate: 384000}, Kind: timeline.Audio, Timescale: 10000000, FourCC: "EC-3", Codecs: "ec-3",
			CodecPrivateData: "00063F000000AF87FBA7022DFB42A4D405CD93843BDD0C00200F000110", SamplingRate: 48000, Channels: 6, BitsPerSample: 16, PacketSize: 1536, AudioTag: 65534,
			ChannelMap: 0xF801, JOC: 16, Language: "eng"}, State: a(384000)},
		{Track: timeline.Track{ID: layout.TrackID{Name: "audio_fra", Bitrate: 192000}, Kind: timeline.Audio, Timescale: 10000000, FourCC: "AC-3", Codecs: "ac-3",
			CodecPrivateData: "0006030000002C806DE046DBCF11B4D100805F6CBBEA101140", SamplingRate: 48000, Channels: 2, BitsPerSample: 16, PacketSize: 768, AudioTag: 65534,
			ChannelMap: 0xA000, Language: "fra"}, State: a(192000)},
	}
	return p
}

// SameOutput fails t unless a renderer and its reference gave the same
// bytes, or the same error; a difference is shown around its first byte.
func SameOutput(t testing.TB, name string, got []byte, err error, want []byte, wantErr error) {
	t.Helper()
	if fmt.Sprint(err) != fmt.Sprint(wantErr) {
		t.Fatalf("%s: error %v, the reference's %v", name, err, wantErr)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		lo := max(0, i-200)
		t.Fatalf("%s: differs from the reference at byte %d of %d (reference %d):\ngot:  %q\nwant: %q",
			name, i, len(got), len(want), got[lo:min(len(got), i+100)], want[lo:min(len(want), i+100)])
	}
}

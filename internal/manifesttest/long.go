package manifesttest

import (
	"time"

	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// Long is a channel of five video renditions and one AAC audio track with
// 2 s fragments covering window, as ffmpeg pushes them: video fragments of
// exactly 2 s, audio fragments cut at AAC frame boundaries (48 kHz,
// AACDurations), whose durations vary from fragment to fragment. It is the
// benchmarks' channel.
func Long(window time.Duration) *timeline.Presentation {
	n := int(window / (2 * time.Second))
	video := make([]uint64, n)
	for i := range video {
		video[i] = 20000000
	}
	audio := AACDurations(48000, n)
	p := &timeline.Presentation{Channel: "ch", Epoch: Epoch, DVRWindow: window}
	for i, br := range []int{6000000, 3500000, 2000000, 1000000, 500000} {
		w, h := 1920>>(i/2), 1080>>(i/2)
		p.Tracks = append(p.Tracks, timeline.TrackView{
			Track: timeline.Track{ID: layout.TrackID{Name: "video", Bitrate: br}, Kind: timeline.Video, Timescale: 10000000, FourCC: "H264",
				Codecs: "avc1.640028", CodecPrivateData: "00000001AA0000000168", Width: w, Height: h},
			State: State(video, 0, -1, br, 25),
		})
	}
	p.Tracks = append(p.Tracks, timeline.TrackView{
		Track: timeline.Track{ID: layout.TrackID{Name: "audio", Bitrate: 128000}, Kind: timeline.Audio, Timescale: 10000000, FourCC: "AACL",
			Codecs: "mp4a.40.2", CodecPrivateData: "1190", SamplingRate: 48000, Channels: 2, BitsPerSample: 16, PacketSize: 4, AudioTag: 255},
		State: State(audio, 0, -1, 128000, 46.875),
	})
	return p
}

// Windows are the DVR windows the benchmarks measure.
var Windows = []struct {
	Name string
	D    time.Duration
}{{"10min", 10 * time.Minute}, {"2h", 2 * time.Hour}, {"24h", 24 * time.Hour}}

// AACDurations are the durations, in a 10 MHz timescale, of n audio
// fragments cut at the first AAC frame (1024 samples at rate Hz) at or
// after each 2 s video fragment boundary, as ffmpeg cuts them: at 48 kHz
// 20053333, 20053334, 20053333, 19840000, and again.
func AACDurations(rate int64, n int) []uint64 {
	return CutDurations(1024, rate, 10_000_000, n)
}

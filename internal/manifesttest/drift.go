package manifesttest

import (
	"math/big"
	"time"

	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// CutDurations are the durations, in ticks of timescale, of n fragments
// cut as ffmpeg cuts them (-force_key_frames "expr:gte(t,n_forced*2)",
// ismv's audio alongside): at the first frame at or after each 2 s
// boundary, frames lasting frameNum/frameDen s (1024/48000 for AAC at
// 48 kHz, 1001/30000 for 29.97 fps video). Fragment k ends at the exact
// time of its last frame rounded to the nearest tick, so the durations
// wander where a frame is not a whole number of ticks, but their sum
// never drifts from the media time.
func CutDurations(frameNum, frameDen int64, timescale uint64, n int) []uint64 {
	out := make([]uint64, n)
	num, den := big.NewInt(frameNum), big.NewInt(frameDen)
	ts := new(big.Int).SetUint64(timescale)
	var prev uint64
	for k := int64(1); k <= int64(n); k++ {
		// frames = ceil(2k s / frame) = ceil(2k*den / num)
		frames := new(big.Int).Mul(big.NewInt(2*k), den)
		frames.Add(frames, new(big.Int).Sub(num, big.NewInt(1)))
		frames.Quo(frames, num)
		// end = round(frames*num*ts / den), half up
		end := new(big.Int).Mul(frames, num)
		end.Mul(end, ts)
		end.Mul(end, big.NewInt(2))
		end.Add(end, den)
		end.Quo(end, new(big.Int).Mul(den, big.NewInt(2)))
		t := end.Uint64()
		out[k-1] = t - prev
		prev = t
	}
	return out
}

// DriftCase is one track of the renderers' no-drift tests: a day of
// fragments with the durations a real encoder gives them.
type DriftCase struct {
	Name      string
	Kind      timeline.Kind
	Timescale uint64
	// FPS is the frame (or AAC frame) rate, for the measured frame rate.
	FPS float64
	// Start is the media time of the first fragment.
	Start     uint64
	Durations []uint64
}

// DriftWindow is the DVR window of DriftCase presentations, and how much
// media each case holds.
const DriftWindow = 24 * time.Hour

// DriftCases are 24 h of fragments of 2 s (43200 of them) cut at frame
// boundaries: AAC at 48 kHz and 44.1 kHz in Smooth's 10 MHz timescale
// (1024-sample frames are no whole number of ticks: durations vary,
// repeating every 4 and 128 fragments), and 29.97 fps video (30000/1001:
// 59 or 60 frames a fragment) at 90 kHz, where a frame is 3003 ticks, and
// at 10 MHz, where it is 333666.67. One case starts late in media time,
// as an encoder's clock may.
func DriftCases() []DriftCase {
	const n = 43200
	return []DriftCase{
		{"aac-48k-10MHz", timeline.Audio, 10_000_000, 48000.0 / 1024, 0, AACDurations(48000, n)},
		{"aac-44.1k-10MHz", timeline.Audio, 10_000_000, 44100.0 / 1024, 0, AACDurations(44100, n)},
		{"video-29.97-90kHz", timeline.Video, 90_000, 30000.0 / 1001, 0, CutDurations(1001, 30000, 90_000, n)},
		{"video-29.97-10MHz", timeline.Video, 10_000_000, 30000.0 / 1001, 0, CutDurations(1001, 30000, 10_000_000, n)},
		// Starting a day into the stream: times past 2^39 ticks.
		{"aac-44.1k-10MHz-late", timeline.Audio, 10_000_000, 44100.0 / 1024, 864_000_000_000, AACDurations(44100, n)},
	}
}

// Starts are the exact start of every fragment, the cumulative sums of the
// durations from Start, and then the end of the last one.
func (c DriftCase) Starts() []uint64 {
	out := make([]uint64, 0, len(c.Durations)+1)
	t := c.Start
	for _, d := range c.Durations {
		out = append(out, t)
		t += d
	}
	return append(out, t)
}

// DriftBitrates are the bitrates of a DriftCase presentation's two
// renditions.
var DriftBitrates = []int{3000000, 1000000}

// Presentation is a channel of the case's track in two renditions of the
// same fragments (DriftBitrates), named "video" or "audio", with a DVR
// window of DriftWindow and its epoch at media time zero.
func (c DriftCase) Presentation() *timeline.Presentation {
	p := &timeline.Presentation{Channel: "ch", Epoch: Epoch, DVRWindow: DriftWindow}
	for _, br := range DriftBitrates {
		tr := timeline.Track{ID: layout.TrackID{Name: string(c.Kind), Bitrate: br}, Kind: c.Kind, Timescale: c.Timescale}
		switch c.Kind {
		case timeline.Video:
			tr.FourCC, tr.Codecs, tr.CodecPrivateData, tr.Width, tr.Height = "H264", "avc1.64001f", "00000001AA0000000168", 1280, 720
		case timeline.Audio:
			tr.FourCC, tr.Codecs, tr.CodecPrivateData = "AACL", "mp4a.40.2", "1190"
			tr.SamplingRate, tr.Channels, tr.BitsPerSample, tr.PacketSize, tr.AudioTag = int(c.FPS*1024+0.5), 2, 16, 4, 255
		}
		p.Tracks = append(p.Tracks, timeline.TrackView{Track: tr, State: c.state(br)})
	}
	return p
}

// state is one rendition's state: State's, in the case's timescale.
func (c DriftCase) state(bitrate int) timeline.TrackState {
	var s timeline.TrackState
	t := c.Start
	ts := float64(c.Timescale)
	for _, d := range c.Durations {
		s.Timeline.Append(timeline.Fragment{Start: t, Duration: d}, false)
		t += d
		s.MaxDuration = max(s.MaxDuration, d)
		size := int64(float64(bitrate) / 8 * float64(d) / ts)
		s.Bytes += size
		s.Ticks += d
		s.Samples += uint64(c.FPS*float64(d)/ts + 0.5)
		if s.PeakTicks == 0 || uint64(size)*s.PeakTicks > uint64(s.PeakBytes)*d {
			s.PeakBytes, s.PeakTicks = size, d
		}
	}
	return s
}

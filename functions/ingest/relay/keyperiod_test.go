package relay

import (
	"testing"

	"github.com/smoothcast/smoothcast/shared/ingest"
)

// Key periods only rise, and every track of a channel has the same: an
// AAC track whose fragments last 1.984 and 2.005 s by turns (48 kHz,
// 93 and 94 frames) and a video track of 2 s fragments change key at
// the same times, every n fragments, for a day of fragments.
func TestKeyPeriodsRiseAndAgreeAcrossTracks(t *testing.T) {
	const n = 30
	var audio, video []uint64 // periods by fragment
	var start uint64
	for i := 0; start < 24*3600*48000; i++ {
		d := uint64(95232)
		if i%2 == 1 {
			d = 96256
		}
		p := keyPeriod(ingest.Fragment{Start: start, Duration: d}, n, 48000)
		if len(audio) > 0 && p < audio[len(audio)-1] {
			t.Fatalf("audio fragment %d at %d: period %d after %d", i, start, p, audio[len(audio)-1])
		}
		// The video fragment playing at the audio fragment's middle.
		mid := (start + d/2) * 10_000_000 / 48000
		v := keyPeriod(ingest.Fragment{Start: mid / 20_000_000 * 20_000_000, Duration: 20_000_000}, n, 10_000_000)
		audio, video = append(audio, p), append(video, v)
		start += d
	}
	differ := 0
	for i := range audio {
		if audio[i] != video[i] {
			differ++
		}
	}
	// At a change, the audio fragment that straddles it may fall either
	// side: one in a period of n at most.
	if periods := audio[len(audio)-1] + 1; uint64(differ) > periods {
		t.Errorf("%d of %d audio fragments are in another period than the video they play with (%d periods)", differ, len(audio), periods)
	}
	for _, tc := range []struct {
		f         ingest.Fragment
		n         int
		timescale uint32
		want      uint64
	}{
		{ingest.Fragment{Start: 600 * 90000, Duration: 2 * 90000}, 30, 90000, 10},
		{ingest.Fragment{Start: 600 * 90000, Duration: 90000 / 4}, 30, 90000, 20}, // a quarter second counts as one
		{ingest.Fragment{Start: 600 * 90000, Duration: 2 * 90000}, 0, 90000, 0},   // no rotation
		{ingest.Fragment{Start: 600 * 90000, Duration: 2 * 90000}, 30, 0, 0},      // no timescale
	} {
		if got := keyPeriod(tc.f, tc.n, tc.timescale); got != tc.want {
			t.Errorf("keyPeriod(%+v, %d, %d) = %d, want %d", tc.f, tc.n, tc.timescale, got, tc.want)
		}
	}
}

package manifesttest

import (
	"math/big"
	"slices"
	"testing"
)

// The fixtures themselves do not drift: a day of fragments ends at the
// tick nearest the end of the frame that ends the day, and the durations
// do vary (uniform ones could not drift whatever a renderer did).
func TestDriftCasesAreExact(t *testing.T) {
	frame := map[string][2]int64{
		"aac-48k-10MHz": {1024, 48000}, "aac-44.1k-10MHz": {1024, 44100}, "aac-44.1k-10MHz-late": {1024, 44100},
		"video-29.97-90kHz": {1001, 30000}, "video-29.97-10MHz": {1001, 30000},
	}
	for _, c := range DriftCases() {
		f, ok := frame[c.Name]
		if !ok {
			t.Fatalf("%s: no frame duration in the test", c.Name)
		}
		starts := c.Starts()
		// ceil(86400 s / frame) frames, then their end in ticks.
		frames := (86400*f[1] + f[0] - 1) / f[0]
		end := new(big.Rat).SetFrac(big.NewInt(frames*f[0]), big.NewInt(f[1]))
		end.Mul(end, new(big.Rat).SetInt64(int64(c.Timescale)))
		want := new(big.Int).Quo(new(big.Int).Add(new(big.Int).Mul(end.Num(), big.NewInt(2)), end.Denom()), new(big.Int).Mul(end.Denom(), big.NewInt(2)))
		if got := starts[len(starts)-1] - c.Start; len(c.Durations) != 43200 || got != want.Uint64() {
			t.Errorf("%s: %d fragments end %d ticks after the first start, want 43200 ending at %s", c.Name, len(c.Durations), got, want)
		}
		distinct := slices.Compact(slices.Sorted(slices.Values(c.Durations)))
		if len(distinct) < 2 {
			t.Errorf("%s: every fragment lasts %v", c.Name, distinct)
		}
		t.Logf("%s: durations %v", c.Name, distinct)
	}
}

func TestAACDurations(t *testing.T) {
	if got, want := AACDurations(48000, 5), []uint64{20053333, 20053334, 20053333, 19840000, 20053333}; !slices.Equal(got, want) {
		t.Errorf("AACDurations(48000, 5) = %v, want %v", got, want)
	}
}

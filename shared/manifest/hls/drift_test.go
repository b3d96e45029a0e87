package hls

import (
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/layout"
)

// A day of fragments whose durations vary as real encoders' do (AAC cut at
// 1024-sample frames, 29.97 fps video; 10 MHz and 90 kHz): a client that
// places segments by adding up EXTINFs (hls.js does, from the
// PROGRAM-DATE-TIME) is less than a millisecond off the media time at
// every segment, and the whole sum is the exact total within the printed
// precision (a microsecond), however many segments came before.
func TestTwentyFourHoursOfEXTINFDoNotDrift(t *testing.T) {
	const us = 1e-6
	for _, tc := range manifesttest.DriftCases() {
		t.Run(tc.Name, func(t *testing.T) {
			p := tc.Presentation()
			id := layout.TrackID{Name: string(tc.Kind), Bitrate: manifesttest.DriftBitrates[0]}
			b, ok := Media(p, id)
			if !ok {
				t.Fatal("no playlist")
			}
			want := tc.Starts() // every start, then the end
			pl, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			ts := new(big.Int).SetUint64(tc.Timescale)
			sum := new(big.Rat)
			n := 0
			var worst float64
			prefix := "Fragments(" + id.Name + "="
			for _, s := range pl.Segments {
				// EXTINF is exact to the nanosecond: the printed microseconds.
				sum.Add(sum, big.NewRat(int64(s.Duration), int64(time.Second)))
				v, ok := strings.CutPrefix(s.URI, prefix)
				if !ok {
					continue
				}
				// The URI names the stored fragment...
				if n >= len(tc.Durations) {
					t.Fatalf("more than %d segments", len(tc.Durations))
				}
				if got := strings.TrimSuffix(v, ")?.m4s"); got != strconv.FormatUint(want[n], 10) {
					t.Fatalf("segment %d is at %s, want %d", n, got, want[n])
				}
				// ...and the EXTINFs so far add up to where it ends.
				exact := new(big.Rat).SetFrac(new(big.Int).SetUint64(want[n+1]-want[0]), ts)
				off, _ := new(big.Rat).Sub(sum, exact).Float64()
				if off > worst || -off > worst {
					worst = max(off, -off)
				}
				if off >= 1e-3 || off <= -1e-3 {
					t.Fatalf("after segment %d the EXTINFs add up to %s s, %g s off the media's %s s", n, sum.FloatString(6), off, exact.FloatString(7))
				}
				n++
			}
			if n != len(tc.Durations) {
				t.Fatalf("%d segments, want %d", n, len(tc.Durations))
			}
			if worst > us {
				t.Errorf("the EXTINF sum wanders %g s from the media time: more than the printed precision (%g s)", worst, us)
			}
			t.Logf("%d segments; the EXTINF sum is at most %g s off the media time", n, worst)
		})
	}
}

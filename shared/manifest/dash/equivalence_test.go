package dash

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// randomCases is how many random presentations the equivalence test
// renders, each also varied as a request would.
const randomCases = 500

// matchesReference fails t unless Render and renderReference give the
// same bytes, or the same error, for p and o.
func matchesReference(t *testing.T, name string, p *timeline.Presentation, o Options) {
	t.Helper()
	want, wantErr := renderReference(p, o)
	got, err := Render(p, o)
	manifesttest.SameOutput(t, name, got, err, want, wantErr)
}

// The hand-written renderer gives the reference's bytes for the fixtures
// (a restarted encoder's two Periods among them), a day of the
// benchmarks' channel and of every drift case (live, ended, time-shifted,
// cut by retention), and randomCases random presentations, with and
// without UTCTiming and a minimumUpdatePeriod.
func TestRenderMatchesReference(t *testing.T) {
	day := []func() *timeline.Presentation{func() *timeline.Presentation { return manifesttest.Long(24 * time.Hour) }}
	for _, c := range manifesttest.DriftCases() {
		day = append(day, c.Presentation)
	}
	for i, f := range append(append(manifesttest.Fixtures(), restarted), day...) {
		for v, change := range manifesttest.Requests() {
			p := f()
			change(p)
			matchesReference(t, fmt.Sprintf("fixture %d, request %d", i, v), p, Options{UTCTimingURL: "/time"})
		}
	}
	for seed := range uint64(randomCases) {
		rng := rand.New(rand.NewPCG(seed, 1))
		p := manifesttest.RandomPresentation(rng, "")
		matchesReference(t, fmt.Sprintf("random %d", seed), p, Options{})
		manifesttest.Mutate(rng, "", p)
		matchesReference(t, fmt.Sprintf("random %d, varied", seed), p, randomOptions(rng, ""))
	}
}

// randomOptions are Options with and without a UTCTiming URL (one that
// needs escaping, too) and a minimumUpdatePeriod.
func randomOptions(rng *rand.Rand, text string) Options {
	var o Options
	if rng.IntN(2) == 0 {
		o.UTCTimingURL = manifesttest.Pick(rng, text, "/time", "https://time.example/?a=1&b=2")
	}
	if rng.IntN(3) == 0 {
		o.MinimumUpdatePeriod = time.Duration(rng.Int64N(int64(time.Minute)))
	}
	return o
}

// Fuzzing varies a fixture (a restarted encoder's among them; past the
// fixtures, a random presentation) with a seed and puts pieces of text in names,
// languages, roles and codecs.
func FuzzRenderMatchesReference(f *testing.F) {
	n := len(manifesttest.Fixtures()) + 1 // and restarted
	for i := range n + 2 {
		f.Add(uint64(i), uint8(i), "")
	}
	f.Add(uint64(7), uint8(0), `a&b<c>"d"'e'`+"\t\n\r\x00\xff")
	f.Add(uint64(8), uint8(n), "é中文\uFFFD]]>")
	f.Fuzz(func(t *testing.T, seed uint64, fixture uint8, text string) {
		rng := rand.New(rand.NewPCG(seed, uint64(fixture)))
		var p *timeline.Presentation
		switch {
		case int(fixture) < n-1:
			p = manifesttest.Fixtures()[fixture]()
		case int(fixture) == n-1:
			p = restarted()
		default:
			p = manifesttest.RandomPresentation(rng, text)
		}
		manifesttest.Mutate(rng, text, p)
		matchesReference(t, "fuzz", p, randomOptions(rng, text))
	})
}

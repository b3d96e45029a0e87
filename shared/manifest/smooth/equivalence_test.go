package smooth

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
// same bytes, or the same error, for p.
func matchesReference(t *testing.T, name string, p *timeline.Presentation) {
	t.Helper()
	want, wantErr := renderReference(p)
	got, err := Render(p)
	manifesttest.SameOutput(t, name, got, err, want, wantErr)
}

// The hand-written renderer gives the reference's bytes for the fixtures,
// a day of the benchmarks' channel and of every drift case (live, ended,
// time-shifted, cut by retention), and randomCases random presentations.
func TestRenderMatchesReference(t *testing.T) {
	day := []func() *timeline.Presentation{func() *timeline.Presentation { return manifesttest.Long(24 * time.Hour) }}
	for _, c := range manifesttest.DriftCases() {
		day = append(day, c.Presentation)
	}
	for i, f := range append(manifesttest.Fixtures(), day...) {
		for v, change := range manifesttest.Requests() {
			p := f()
			change(p)
			matchesReference(t, fmt.Sprintf("fixture %d, request %d", i, v), p)
		}
	}
	for seed := range uint64(randomCases) {
		rng := rand.New(rand.NewPCG(seed, 1))
		p := manifesttest.RandomPresentation(rng, "")
		matchesReference(t, fmt.Sprintf("random %d", seed), p)
		manifesttest.Mutate(rng, "", p)
		matchesReference(t, fmt.Sprintf("random %d, varied", seed), p)
	}
}

// Fuzzing varies a fixture (or, past the fixtures, a random
// presentation) with a seed and puts pieces of text in names,
// languages, roles and codecs.
func FuzzRenderMatchesReference(f *testing.F) {
	n := len(manifesttest.Fixtures())
	for i := range n + 2 {
		f.Add(uint64(i), uint8(i), "")
	}
	f.Add(uint64(7), uint8(0), `a&b<c>"d"'e'`+"\t\n\r\x00\xff")
	f.Add(uint64(8), uint8(n), "é中文\uFFFD]]>")
	f.Fuzz(func(t *testing.T, seed uint64, fixture uint8, text string) {
		rng := rand.New(rand.NewPCG(seed, uint64(fixture)))
		var p *timeline.Presentation
		if int(fixture) < n {
			p = manifesttest.Fixtures()[fixture]()
		} else {
			p = manifesttest.RandomPresentation(rng, text)
		}
		manifesttest.Mutate(rng, text, p)
		matchesReference(t, "fuzz", p)
	})
}

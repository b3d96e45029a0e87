package dash

import (
	"testing"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// BenchmarkRender renders the benchmarks' channel at each window with
// Render (renderer=append) and, as the baseline of the same run, with
// the encoding/xml renderer it replaced (renderer=encoding-xml):
// benchstat -col /renderer compares them.
func BenchmarkRender(b *testing.B) {
	renderers := []struct {
		name   string
		render func(*timeline.Presentation, Options) ([]byte, error)
	}{{"append", Render}, {"encoding-xml", renderReference}}
	for _, w := range manifesttest.Windows {
		p := manifesttest.Long(w.D)
		for _, r := range renderers {
			b.Run("window="+w.Name+"/renderer="+r.name, func(b *testing.B) {
				b.ReportAllocs()
				var n int
				for b.Loop() {
					out, err := r.render(p, Options{UTCTimingURL: "/time"})
					if err != nil {
						b.Fatal(err)
					}
					n = len(out)
				}
				b.ReportMetric(float64(n), "bytes/mpd")
			})
		}
	}
}

package smooth

import (
	"testing"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
)

func BenchmarkRender(b *testing.B) {
	for _, w := range manifesttest.Windows {
		b.Run(w.Name, func(b *testing.B) {
			p := manifesttest.Long(w.D)
			b.ReportAllocs()
			var n int
			for b.Loop() {
				out, err := Render(p)
				if err != nil {
					b.Fatal(err)
				}
				n = len(out)
			}
			b.ReportMetric(float64(n), "bytes/manifest")
		})
	}
}

package hls

import (
	"testing"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
)

func BenchmarkMediaPlaylist(b *testing.B) {
	for _, w := range manifesttest.Windows {
		b.Run(w.Name, func(b *testing.B) {
			p := manifesttest.Long(w.D)
			audio := p.Tracks[len(p.Tracks)-1].ID
			b.ReportAllocs()
			var n int
			for b.Loop() {
				out, ok := Media(p, audio)
				if !ok {
					b.Fatal("no playlist")
				}
				n = len(out)
			}
			b.ReportMetric(float64(n), "bytes/playlist")
		})
	}
}

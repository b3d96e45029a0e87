package srt

import (
	"context"
	"testing"

	"github.com/smoothcast/smoothcast/shared/mp4box"
)

// discard is a liveSink that keeps nothing.
type discard struct{}

func (discard) Box(context.Context, mp4box.Box) error { return nil }
func (discard) Warn(error)                            {}

// The glue's cost on a connection's bytes: the demultiplexer and the
// packager over 8 s of MPEG-TS, the session and
// the store left out. Reported per media hour of this fixture (a few
// dozen kbit/s: MB/s is the figure to scale by a stream's bitrate), on
// one goroutine, as a connection runs it.
func BenchmarkPipeline(b *testing.B) {
	ts := fixture(b)
	b.SetBytes(int64(len(ts)))
	b.ReportAllocs()
	for b.Loop() {
		p := newPipeline(discard{}, 0, nil)
		if err := runPipelineOn(p, ts); err != nil {
			b.Fatal(err)
		}
	}
	const media = 8.0 // seconds of the fixture
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*3600/media, "s/media-h")
}

package packager

import (
	"context"
	"testing"

	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/mp4box"
)

// discard is a sink that takes every box and keeps none.
type discard struct{}

func (discard) Box(context.Context, mp4box.Box) error { return nil }

// nullSink is a session's sink that keeps nothing.
type nullSink struct{}

func (nullSink) Init(context.Context, ingest.TrackHeader) error  { return nil }
func (nullSink) Fragment(context.Context, ingest.Fragment) error { return nil }

// benchStream is 48 s of a typical encoder's output, in the order a muxer
// interleaves it: H.264 at 3 Mbit/s (25 fps, a key frame every 2 s, two
// B-frames), AAC at 128 kbit/s (48 kHz): 1,200 access units and 2,250
// frames, repeated with the timestamps running on.
type benchStream struct {
	tracks []Track
	steps  []step
	bytes  int64 // media bytes in one round
}

const benchRound = 48 * 90000

func newBenchStream(b *testing.B) *benchStream {
	es := readFixture(b, "avc-aac.mp4")
	bs := &benchStream{tracks: []Track{es[0].track, es[1].track}}
	sei := []byte{0x06, 0x05, 0x01, 0x00, 0x80}
	picture := make([]byte, 15000) // 3 Mbit/s at 25 fps
	frame := make([]byte, 341)     // 128 kbit/s at 48 kHz
	var audio int64
	for n := range int64(1200) {
		dts := n * 3600
		typ, pts := byte(0x41), dts+7200+[]int64{0, 3600, -3600}[n%3]
		if n%50 == 0 {
			typ, pts = 0x65, dts+7200
		}
		pic := append([]byte{typ}, picture[1:]...)
		bs.steps = append(bs.steps, step{0, Sample{DTS: dts, PTS: pts, NALUs: [][]byte{{0x09, 0xf0}, sei, pic}}})
		bs.bytes += int64(len(pic) + len(sei))
		for ; audio*1920 < dts+3600; audio++ {
			bs.steps = append(bs.steps, step{1, Sample{PTS: audio * 1920, Frame: frame}})
			bs.bytes += int64(len(frame))
		}
	}
	return bs
}

// run feeds n samples of the stream to p.
func (bs *benchStream) run(b *testing.B, p *Packager) {
	for i := 0; b.Loop(); i++ {
		round, k := int64(i/len(bs.steps)), i%len(bs.steps)
		st := bs.steps[k]
		s := st.s
		s.DTS += round * benchRound
		s.PTS += round * benchRound
		if err := p.Write(ctx, st.i, s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPackager measures the packager alone (ns and allocations per
// sample; MB/s of media) and with the session below it, which rewrites
// each fragment for storage.
func BenchmarkPackager(b *testing.B) {
	bs := newBenchStream(b)
	for _, bc := range []struct {
		name string
		sink func() BoxSink
	}{
		{"alone", func() BoxSink { return discard{} }},
		{"over a session", func() BoxSink { return ingest.NewSession(nullSink{}, quiet, ingest.Options{}) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p, err := New(bc.sink(), bs.tracks, Options{Log: quiet})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(bs.bytes / int64(len(bs.steps)))
			b.ReportAllocs()
			bs.run(b, p)
			// A media hour is 3600/48 rounds of the stream.
			perHour := float64(b.Elapsed().Nanoseconds()) / float64(b.N) * float64(len(bs.steps)) * 3600 / 48
			b.ReportMetric(perHour/1e9, "cpu-s/media-hour")
		})
	}
}

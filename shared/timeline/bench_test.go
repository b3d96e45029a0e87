package timeline_test

import (
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// BenchmarkStateEvent is the CPU work of one fragment event on the track
// state, without the store: decode the state document, apply the
// arrival, encode it again. Video (one run) and audio (AAC durations,
// one run per fragment) at three DVR windows.
func BenchmarkStateEvent(b *testing.B) {
	for _, w := range manifesttest.Windows {
		p := manifesttest.Long(w.D)
		for _, tv := range []timeline.TrackView{p.Tracks[0], p.Tracks[len(p.Tracks)-1]} {
			b.Run(w.Name+"/"+string(tv.Kind), func(b *testing.B) {
				doc, err := timeline.MarshalTrackState(&tv.State)
				if err != nil {
					b.Fatal(err)
				}
				last, _ := tv.State.Timeline.Last()
				a := timeline.Arrival{Fragment: timeline.Fragment{Start: last.End(), Duration: last.Duration}, HasPrev: true, Prev: last.Start, Size: 500000, Samples: 50}
				rules := timeline.Rules{GapTimeout: 10 * time.Second, Window: timeline.Ticks(w.D, tv.Timescale)}
				b.ReportAllocs()
				for b.Loop() {
					st, err := timeline.UnmarshalTrackState(doc)
					if err != nil {
						b.Fatal(err)
					}
					if _, _, err := st.Apply(a, time.Now(), rules); err != nil {
						b.Fatal(err)
					}
					if _, err := timeline.MarshalTrackState(st); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(doc)), "state-bytes")
			})
		}
	}
}

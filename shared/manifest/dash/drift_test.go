package dash

import (
	"strconv"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/layout"
)

// A day of fragments whose durations vary as real encoders' do (AAC cut at
// 1024-sample frames, 29.97 fps video; 10 MHz and 90 kHz): expanding the
// SegmentTimeline as a client does gives every segment's start exactly,
// in ticks, the last one ends where the input ends, and the $Time$ URLs
// name the stored fragments.
func TestTwentyFourHoursOfVaryingDurationsAreExact(t *testing.T) {
	for _, tc := range manifesttest.DriftCases() {
		t.Run(tc.Name, func(t *testing.T) {
			p := tc.Presentation()
			b, err := Render(p, Options{UTCTimingURL: layout.TimePath})
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if m.GetType() != "dynamic" || len(m.Periods) != 1 || len(m.Periods[0].AdaptationSets) != 1 {
				t.Fatalf("MPD type %s with %d periods, want one dynamic Period of one AdaptationSet", m.GetType(), len(m.Periods))
			}
			as := m.Periods[0].AdaptationSets[0]
			st := TemplateOf(m.Periods[0], as, as.Representations[0])
			if st.Timescale != tc.Timescale || st.PresentationTimeOffset != 0 {
				t.Fatalf("timescale %d, presentationTimeOffset %d; want %d and 0", st.Timescale, st.PresentationTimeOffset, tc.Timescale)
			}
			// Expand: t where given, else the previous end; d repeated r
			// more times (a negative r, to the next t, is not expected).
			segs, err := st.Segments()
			if err != nil {
				t.Fatal(err)
			}
			if len(segs) == 0 || st.Timeline.S[0].T == nil {
				t.Fatal("first S element without t")
			}
			for i, s := range st.Timeline.S {
				if s.R < 0 {
					t.Fatalf("S element %d has r=%d", i, s.R)
				}
			}
			starts := make([]uint64, len(segs))
			for i, s := range segs {
				starts[i] = s.Time
			}
			next := segs[len(segs)-1].Time + segs[len(segs)-1].Duration
			want := tc.Starts() // every start, then the end
			n := len(tc.Durations)
			if len(starts) != n {
				t.Fatalf("%d segments listed, want %d", len(starts), n)
			}
			for i, s := range starts {
				if s != want[i] {
					t.Fatalf("segment %d starts at %d, want %d (off by %d ticks)", i, s, want[i], int64(s)-int64(want[i]))
				}
			}
			if next != want[n] {
				t.Errorf("the last segment ends at %d, want the input's end %d", next, want[n])
			}
			if pub := p.Wallclock(want[n], tc.Timescale).UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano); string(m.PublishTime) != pub {
				t.Errorf("publishTime %s, want the end of the last segment %s", m.PublishTime, pub)
			}
			// $RepresentationID$ and $Time$ give the keys of stored fragments.
			for j, r := range as.Representations {
				id := layout.TrackID{Name: string(tc.Kind), Bitrate: manifesttest.DriftBitrates[j]}
				if r.Id != strconv.Itoa(id.Bitrate) {
					t.Fatalf("Representation %d has id %s, want %d", j, r.Id, id.Bitrate)
				}
				rt := TemplateOf(m.Periods[0], as, r)
				for i := range n {
					u, err := rt.MediaURL(segs[i])
					if err != nil {
						t.Fatal(err)
					}
					if key := layout.FragmentKey("ch", id, want[i]); "live/ch.isml/"+u != key {
						t.Fatalf("segment %d: URL %s, want the key %s", i, u, key)
					}
				}
			}
		})
	}
}

package dash

import (
	"encoding/xml"
	"strconv"
	"strings"
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
			var m struct {
				Type    string `xml:"type,attr"`
				Publish string `xml:"publishTime,attr"`
				Periods []struct {
					Sets []struct {
						Template struct {
							Timescale uint64 `xml:"timescale,attr"`
							PTO       uint64 `xml:"presentationTimeOffset,attr"`
							Media     string `xml:"media,attr"`
							S         []struct {
								T *uint64 `xml:"t,attr"`
								D uint64  `xml:"d,attr"`
								R int64   `xml:"r,attr"`
							} `xml:"SegmentTimeline>S"`
						} `xml:"SegmentTemplate"`
						Reps []struct {
							ID string `xml:"id,attr"`
						} `xml:"Representation"`
					} `xml:"AdaptationSet"`
				} `xml:"Period"`
			}
			if err := xml.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if m.Type != "dynamic" || len(m.Periods) != 1 || len(m.Periods[0].Sets) != 1 {
				t.Fatalf("MPD type %s with %d periods, want one dynamic Period of one AdaptationSet", m.Type, len(m.Periods))
			}
			st := m.Periods[0].Sets[0].Template
			if st.Timescale != tc.Timescale || st.PTO != 0 {
				t.Fatalf("timescale %d, presentationTimeOffset %d; want %d and 0", st.Timescale, st.PTO, tc.Timescale)
			}
			// Expand: t where given, else the previous end; d repeated r
			// more times (a negative r, to the next t, is not expected).
			var starts []uint64
			next := uint64(0)
			for i, s := range st.S {
				if s.T != nil {
					next = *s.T
				} else if i == 0 {
					t.Fatal("first S element without t")
				}
				if s.R < 0 {
					t.Fatalf("S element %d has r=%d", i, s.R)
				}
				for range s.R + 1 {
					starts = append(starts, next)
					next += s.D
				}
			}
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
			if pub := p.Wallclock(want[n], tc.Timescale).UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano); m.Publish != pub {
				t.Errorf("publishTime %s, want the end of the last segment %s", m.Publish, pub)
			}
			// $RepresentationID$ and $Time$ give the keys of stored fragments.
			for j, r := range m.Periods[0].Sets[0].Reps {
				id := layout.TrackID{Name: string(tc.Kind), Bitrate: manifesttest.DriftBitrates[j]}
				if r.ID != strconv.Itoa(id.Bitrate) {
					t.Fatalf("Representation %d has id %s, want %d", j, r.ID, id.Bitrate)
				}
				for i := range n {
					u := strings.NewReplacer("$RepresentationID$", r.ID, "$Time$", strconv.FormatUint(starts[i], 10)).Replace(st.Media)
					if key := layout.FragmentKey("ch", id, want[i]); "live/ch.isml/"+u != key {
						t.Fatalf("segment %d: URL %s, want the key %s", i, u, key)
					}
				}
			}
		})
	}
}

package smooth

import (
	"math/big"
	"testing"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/layout"
)

// A day of fragments whose durations vary as real encoders' do (AAC cut at
// 1024-sample frames, 29.97 fps video; 10 MHz and 90 kHz): expanding the
// c elements as a client does gives every fragment's start exactly, in
// ticks, and the URL a client builds from the template names the stored
// fragment. A live manifest holds the newest fragment back; a finished one
// lists it, ending where the input ends.
func TestTwentyFourHoursOfVaryingDurationsAreExact(t *testing.T) {
	for _, tc := range manifesttest.DriftCases() {
		for _, ended := range []bool{false, true} {
			name := tc.Name + map[bool]string{false: "/live", true: "/ended"}[ended]
			t.Run(name, func(t *testing.T) {
				p := tc.Presentation()
				p.Ended = ended
				b, err := Render(p)
				if err != nil {
					t.Fatal(err)
				}
				m, err := Parse(b)
				if err != nil {
					t.Fatal(err)
				}
				if len(m.Streams) != 1 {
					t.Fatalf("%d stream indexes, want 1", len(m.Streams))
				}
				si := &m.Streams[0]
				ts := m.Timescale(si)
				if ts != tc.Timescale {
					t.Fatalf("stream index timescale %d, want %d", ts, tc.Timescale)
				}
				if len(si.C) == 0 || si.C[0].T == nil {
					t.Fatal("first c element without t")
				}
				frags, err := si.Fragments()
				if err != nil {
					t.Fatal(err)
				}
				starts := make([]uint64, len(frags))
				for i, f := range frags {
					starts[i] = f.Start
				}
				next := frags[len(frags)-1].End()
				want := tc.Starts() // every start, then the end
				n := len(tc.Durations)
				if !ended {
					n-- // held back until its successor is stored
				}
				if len(starts) != n || si.Chunks != n {
					t.Fatalf("%d fragments listed (Chunks=%d), want %d", len(starts), si.Chunks, n)
				}
				for i, s := range starts {
					if s != want[i] {
						t.Fatalf("fragment %d starts at %d, want %d (off by %d ticks)", i, s, want[i], int64(s)-int64(want[i]))
					}
				}
				if next != want[n] {
					t.Errorf("the last listed fragment ends at %d, want %d", next, want[n])
				}
				if ended && next != want[len(want)-1] {
					t.Errorf("a finished manifest ends at %d, want the input's end %d", next, want[len(want)-1])
				}
				if ended {
					// Duration is in the manifest's timescale: exact for a
					// 10 MHz track, less than a tick off for another.
					exact := new(big.Rat).SetFrac(new(big.Int).SetUint64(next-want[0]), new(big.Int).SetUint64(ts))
					exact.Mul(exact, new(big.Rat).SetUint64(m.TimeScale))
					off, _ := new(big.Rat).Sub(new(big.Rat).SetUint64(m.Duration), exact).Float64()
					if ts == m.TimeScale && off != 0 || off <= -1 || off >= 1 {
						t.Errorf("Duration %d is %g ticks off the media's %s", m.Duration, off, exact.FloatString(3))
					}
				}
				// URLs from the template are the keys of stored fragments.
				for _, ql := range si.Levels {
					id := layout.TrackID{Name: si.Name, Bitrate: ql.Bitrate}
					for i := range n {
						u := si.FragmentURL(ql.Bitrate, starts[i])
						if key := layout.FragmentKey("ch", id, want[i]); "live/ch.isml/"+u != key {
							t.Errorf("fragment %d: URL %s, want the key %s", i, u, key)
						}
					}
				}
			})
		}
	}
}

package ingest

import (
	"bytes"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// A jump in one connection's timestamps, by track: backwards, or forwards
// by more than MaxJump, is a discontinuity (the first fragment after it is
// marked Disc on every track and the clock is asked again); a forward skip
// within MaxJump is a hole in the media that keeps the connection's chain
// and asks nothing of the clock (the manifest function lists it after a
// gap, or right after its predecessor). A fragment that continues the
// track is neither.
func TestSessionTellsJumpsFromSkips(t *testing.T) {
	const second = 10_000_000
	for _, tc := range []struct {
		name    string
		after   int  // index of the first fragment after fragments 0..7 (16 s)
		disc    bool // the fragment after the jump is marked Disc
		rebased bool // the clock was asked again
	}{
		{"continuous", 8, false, false},
		{"forward skip of 4 s, within max-jump", 10, false, false},
		{"forward skip of 8 s, within max-jump", 12, false, false},
		{"forward jump of 12 s, beyond max-jump", 14, true, true},
		{"forward jump of 2 minutes", 68, true, true},
		{"backward jump to zero (a restart)", 0, true, true},
		{"backward by one fragment (a repeat)", 7, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := synth.New(synth.Config{FragmentDuration: 2 * time.Second,
				Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 100_000}, {Kind: timeline.Audio, Bitrate: 64_000}}})
			if err != nil {
				t.Fatal(err)
			}
			body, err := s.Header()
			if err != nil {
				t.Fatal(err)
			}
			for k := range 8 {
				if body, err = s.AppendFragment(body, k); err != nil {
					t.Fatal(err)
				}
			}
			for k := tc.after; k < tc.after+3; k++ {
				if body, err = s.AppendFragment(body, k); err != nil {
					t.Fatal(err)
				}
			}
			sink := &recordingSink{}
			clock := &fakeClock{offsets: []time.Duration{0}}
			sess := NewSession(sink, quiet, Options{Clock: clock, MaxJump: 10 * time.Second})
			if _, err := run(sess, bytes.NewReader(body)); err != nil {
				t.Fatal(err)
			}
			// Asked once at the first fragment, and once per track (the
			// video's jump and the audio's) when the timestamps jumped.
			wantAsked := 1
			if tc.rebased {
				wantAsked = 3
			}
			if len(clock.asked) != wantAsked {
				t.Fatalf("clock asked %d times (%v), want %d", len(clock.asked), clock.asked, wantAsked)
			}
			// The first fragment follows nothing; a jumped one tells the
			// clock where its track's stored fragments end (16 s), so
			// that a new offset does not move it over them.
			if q := clock.queries[0]; q.After != 0 || q.Start != 0 || q.End != 2*time.Second {
				t.Errorf("first query %+v, want 0 to 2 s after nothing", q)
			}
			for i, q := range clock.queries[1:] {
				start := time.Duration(max(s.Start(i, tc.after), 0)) * time.Second / second
				if q.After != 16*time.Second || q.Start != start || q.End <= q.Start {
					t.Errorf("query at the jump of track %d: %+v, want from %v, after 16 s", i, q, start)
				}
			}
			for i, name := range []string{"video", "audio"} {
				var got []Fragment
				for _, f := range sink.frags {
					if f.ID.Name == name {
						got = append(got, f)
					}
				}
				if len(got) != 11 {
					t.Fatalf("%s: %d fragments, want 11", name, len(got))
				}
				for j, f := range got {
					k := j
					if j >= 8 {
						k = tc.after + j - 8
					}
					// The fake clock's offset is zero: every fragment keeps
					// the encoder's time.
					if want := uint64(max(s.Start(i, k), 0)); f.Start != want {
						t.Errorf("%s fragment %d: start %d, want %d", name, j, f.Start, want)
					}
					if wantDisc := tc.disc && j == 8; f.Disc != wantDisc {
						t.Errorf("%s fragment %d (at %.1f s): disc %v, want %v", name, j, float64(f.Start)/second, f.Disc, wantDisc)
					}
					// The chain of previous fragments goes on across a skip
					// and a jump alike.
					if j > 0 && (!f.HasPrev || f.Prev != got[j-1].Start) {
						t.Errorf("%s fragment %d: prev %v %d, want %d", name, j, f.HasPrev, f.Prev, got[j-1].Start)
					}
				}
			}
		})
	}
}

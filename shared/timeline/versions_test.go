package timeline

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/shared/layout"
)

const cbcsV = "cbcs"

// versioned returns 30 contiguous arrivals of 20 in one connection chain
// (no Disc anywhere): 0-9 of the track's first init (""), 10-19 of v1,
// 20-29 of v2.
func versioned(v1, v2 string) []Arrival {
	fr := stream(30, 20)
	for i := range fr {
		switch {
		case i >= 20:
			fr[i].Init = v2
		case i >= 10:
			fr[i].Init = v1
		}
	}
	return fr
}

// A fragment of another init version than the last run's starts a run
// that is a break, Disc or not, chained to the run before or not; runs
// of one version merge as before.
func TestInitChangeIsABreak(t *testing.T) {
	for _, tc := range []struct {
		name   string
		v1, v2 string
		edit   func(fr []Arrival)
		want   []Run
	}{
		{"clear, cbcs, clear again", cbcsV, "", nil, []Run{
			{0, 20, 10, false, false, nil, ""}, {200, 20, 10, true, true, nil, cbcsV}, {400, 20, 10, true, true, nil, ""}}},
		{"encrypted, clear, another scheme", layout.ClearInit, "cenc", nil, []Run{
			{0, 20, 10, false, false, nil, ""}, {200, 20, 10, true, true, nil, layout.ClearInit}, {400, 20, 10, true, true, nil, "cenc"}}},
		{"one version throughout is one run", cbcsV, cbcsV, func(fr []Arrival) {
			for i := range fr {
				fr[i].Init = cbcsV
			}
		}, []Run{{0, 20, 30, false, false, nil, cbcsV}}},
		{"with Disc as the relay marks a new session", cbcsV, "", func(fr []Arrival) {
			fr[10].Disc, fr[20].Disc = true, true
		}, []Run{
			{0, 20, 10, false, false, nil, ""}, {200, 20, 10, true, true, nil, cbcsV}, {400, 20, 10, true, true, nil, ""}}},
		{"a new connection, not chained", cbcsV, "", func(fr []Arrival) {
			fr[10].HasPrev, fr[20].HasPrev = false, false
		}, []Run{
			{0, 20, 10, false, false, nil, ""}, {200, 20, 10, true, true, nil, cbcsV}, {400, 20, 10, true, true, nil, ""}}},
		{"a change of duration within a version is no break", cbcsV, cbcsV, func(fr []Arrival) {
			for i := 15; i < 30; i++ {
				fr[i].Start, fr[i].Prev = 300+uint64(i-15)*30, 300+uint64(i-16)*30
				fr[i].Duration = 30
			}
			fr[15].Prev = 280
		}, []Run{{0, 20, 10, false, false, nil, ""}, {200, 20, 5, true, true, nil, cbcsV}, {300, 30, 15, false, false, nil, cbcsV}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fr := versioned(tc.v1, tc.v2)
			if tc.edit != nil {
				tc.edit(fr)
			}
			var s TrackState
			for i, a := range fr {
				if out := apply(t, &s, a, t0.Add(time.Duration(i)*time.Millisecond)); out != Published {
					t.Fatalf("fragment %d: %v", i, out)
				}
			}
			if !reflect.DeepEqual(s.Timeline.Runs, tc.want) {
				t.Fatalf("runs %+v\nwant %+v", s.Timeline.Runs, tc.want)
			}
			// Entries carry their run's version; a break marks each change.
			prev := ""
			for e := range s.Timeline.All() {
				if want := fr[e.Seq].Init; e.Init != want {
					t.Errorf("fragment %d: Init %q, want %q", e.Seq, e.Init, want)
				}
				if e.Seq > 0 && e.Init != prev && !e.Break {
					t.Errorf("fragment %d: version %q after %q without a break", e.Seq, e.Init, prev)
				}
				prev = e.Init
			}
		})
	}
}

// Arrivals of a track whose protection changes, in any order, each
// delivered once to three times, give the state in-order delivery gives:
// the break is where the version changes, whatever came first.
func TestInitChangesInAnyOrderGiveTheInOrderState(t *testing.T) {
	for _, disc := range []bool{false, true} {
		fr := versioned(cbcsV, "")
		fr[10].Disc, fr[20].Disc = disc, disc
		var want TrackState
		for i, a := range fr {
			apply(t, &want, a, t0.Add(time.Duration(i)*time.Millisecond))
		}
		if len(want.Timeline.Runs) != 3 {
			t.Fatalf("disc %v: in order: runs %+v", disc, want.Timeline.Runs)
		}
		for seed := range uint64(200) {
			evs := deliveries(rand.New(rand.NewPCG(seed, 13)), fr)
			var s TrackState
			for i, a := range evs {
				apply(t, &s, a, t0.Add(time.Duration(i)*time.Millisecond))
				// A state written and read back between events (the
				// handler's conditional writes) keeps the waiting
				// fragments' versions.
				if i%7 == 0 {
					b, err := MarshalTrackState(&s)
					if err != nil {
						t.Fatal(err)
					}
					back, err := UnmarshalTrackState(b)
					if err != nil {
						t.Fatal(err)
					}
					s = *back
				}
			}
			if !reflect.DeepEqual(s.Timeline, want.Timeline) || len(s.Pending) != 0 || s.Bytes != want.Bytes {
				t.Fatalf("disc %v seed %d: %+v (pending %d)\nwant %+v", disc, seed, s.Timeline, len(s.Pending), want.Timeline)
			}
		}
	}
}

// The window trims runs as before and keeps their versions: a run cut
// in the middle keeps its Init, and the break trimmed away is BreakAt.
func TestWindowKeepsInit(t *testing.T) {
	var s TrackState
	for i, a := range versioned(cbcsV, "") {
		apply(t, &s, a, t0.Add(time.Duration(i)*time.Millisecond))
	}
	for _, tc := range []struct {
		window    uint64
		wantFirst Run
		wantRuns  int
	}{
		{600, Run{0, 20, 10, false, false, nil, ""}, 3},
		{300, Run{300, 20, 5, false, false, nil, cbcsV}, 2},
		{180, Run{420, 20, 9, false, false, nil, ""}, 1},
	} {
		w := s.Timeline.Window(tc.window)
		if len(w.Runs) != tc.wantRuns || !reflect.DeepEqual(w.Runs[0], tc.wantFirst) {
			t.Errorf("window %d: runs %+v, want %d starting %+v", tc.window, w.Runs, tc.wantRuns, tc.wantFirst)
		}
		if last := w.Runs[len(w.Runs)-1]; last.Init != "" || last.End() != 600 {
			t.Errorf("window %d: last run %+v", tc.window, last)
		}
	}
	// In a state whose window slides with each fragment, too.
	var slid TrackState
	r := rules
	r.Window = 150
	for i, a := range versioned(cbcsV, "") {
		if _, _, err := slid.Apply(a, t0.Add(time.Duration(i)*time.Millisecond), r); err != nil {
			t.Fatal(err)
		}
		if i == 18 {
			if got := slid.Timeline.Runs; len(got) != 1 || got[0].Init != cbcsV || got[0].Break || !slid.Timeline.HasBreakAt {
				t.Fatalf("after fragment 18: runs %+v, want one of %s", got, cbcsV)
			}
		}
	}
}

// Common keeps the versions of the timelines it takes fragments from,
// and a change of version is a break there too.
func TestCommonKeepsInit(t *testing.T) {
	var a, b TrackState
	for i, f := range versioned(cbcsV, "") {
		apply(t, &a, f, t0.Add(time.Duration(i)*time.Millisecond))
		if i != 3 { // b misses a fragment: Common walks its entries
			apply(t, &b, f, t0.Add(time.Duration(i)*time.Millisecond))
		}
	}
	b.Settle(t0.Add(time.Hour), rules)
	c := Common(a.Timeline, b.Timeline)
	var inits []string
	for e := range c.All() {
		if len(inits) == 0 || inits[len(inits)-1] != e.Init {
			inits = append(inits, e.Init)
			if len(inits) > 1 && !e.Break {
				t.Errorf("fragment at %d: version %q without a break", e.Start, e.Init)
			}
		}
	}
	if strings.Join(inits, ",") != ","+cbcsV+"," {
		t.Errorf("common versions %q", inits)
	}
}

// A state or index written before versions existed reads the same and is
// written the same: the new keys are omitted when empty.
func TestVersionsKeepStateBackwardCompatible(t *testing.T) {
	old := `{"v":1,"timeline":{"runs":[{"t":0,"d":20,"n":3}],"seq":0},"pending":[{"Start":80,"Duration":20,"HasPrev":false,"Prev":0,"Size":5,"at":"2026-11-25T12:00:00Z"}],"maxd":20,"bytes":15,"ticks":60}`
	s, err := UnmarshalTrackState([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	if s.Timeline.Runs[0].Init != "" || s.Pending[0].Init != "" {
		t.Fatalf("old state read with versions: %+v", s)
	}
	b, err := MarshalTrackState(s)
	if err != nil || strings.Contains(string(b), `"init"`) {
		t.Fatalf("state of the first versions written as %s (%v)", b, err)
	}
	s.Timeline.Runs[0].Init, s.Pending[0].Init = cbcsV, layout.ClearInit
	b, err = MarshalTrackState(s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalTrackState(b)
	if err != nil || !reflect.DeepEqual(back, s) {
		t.Fatalf("round trip of %s: %+v, %v", b, back, err)
	}

	c := &Channel{Tracks: []Track{{ID: layout.TrackID{Name: "video", Bitrate: 1}, Kind: Video}}}
	if b, err := MarshalChannel(c); err != nil || strings.Contains(string(b), "inits") {
		t.Fatalf("index without versions written as %s (%v)", b, err)
	}
}

// ProtectionOf gives the first init's protection for "", a registered
// version's (nil for a clear one) otherwise; AddTrack sees a version
// registered or changed, and the index round-trips them.
func TestProtectionOfAVersion(t *testing.T) {
	first := &Protection{Scheme: "cbcs", KID: "a"}
	later := &Protection{Scheme: "cenc", KID: "b", Systems: []ProtectionSystem{{ID: "x", PSSH: []byte("box")}}}
	tr := Track{ID: layout.TrackID{Name: "video", Bitrate: 1}, Kind: Video, Protection: first,
		Inits: map[string]*Protection{layout.ClearInit: nil, "cenc": later}}
	for _, tc := range []struct {
		v    string
		want *Protection
	}{{"", first}, {layout.ClearInit, nil}, {"cenc", later}, {"cbcs", nil}} {
		if got := tr.ProtectionOf(tc.v); !got.Equal(tc.want) {
			t.Errorf("ProtectionOf(%q) = %+v, want %+v", tc.v, got, tc.want)
		}
	}
	c := &Channel{}
	c.AddTrack(tr)
	b, err := MarshalChannel(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalChannel(b)
	if err != nil || !back.Tracks[0].Equal(tr) {
		t.Fatalf("round trip of %s: %+v, %v", b, back, err)
	}
	if _, ok := back.Tracks[0].Inits[layout.ClearInit]; !ok {
		t.Errorf("clear version lost in %s", b)
	}
	for name, inits := range map[string]map[string]*Protection{
		"none":           nil,
		"a version more": {layout.ClearInit: nil, "cenc": later, "cbcs": first},
		"other KID":      {layout.ClearInit: nil, "cenc": {Scheme: "cenc", KID: "c"}},
		"clear gone":     {"cenc": later},
	} {
		changed := tr
		changed.Inits = inits
		if !c.AddTrack(changed) {
			t.Errorf("%s: not seen as a change", name)
		}
		c.AddTrack(tr)
	}
	same := tr
	same.Inits = map[string]*Protection{layout.ClearInit: nil, "cenc": {Scheme: "cenc", KID: "b", Systems: []ProtectionSystem{{ID: "x", PSSH: []byte("box")}}}}
	if c.AddTrack(same) {
		t.Error("equal versions are a change")
	}
}

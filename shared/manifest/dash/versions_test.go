package dash

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// Where a track's protection changes a Period begins, and each Period's
// Representations have, parsed back, the init segment (Initialization)
// and the ContentProtection of the version of their first fragment: none
// for a clear one.
func TestEachPeriodHasTheProtectionOfItsFirstFragment(t *testing.T) {
	for _, tc := range []struct {
		name    string
		p       func() *timeline.Presentation
		window  time.Duration // 0: the fixture's
		periods int
	}{
		{"protection-change.mpd", manifesttest.ProtectionChange, 0, 3},
		{"protection-change-encrypted-first.mpd", manifesttest.ProtectionChangeEncryptedFirst, 0, 3},
		{"window from the encrypted part", manifesttest.ProtectionChange, 10 * time.Second, 2},
		{"window past the encrypted part", manifesttest.ProtectionChange, 5 * time.Second, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p()
			if tc.window > 0 {
				p.DVRWindow = tc.window
			}
			b, err := Render(p, Options{UTCTimingURL: layout.TimePath})
			if err != nil {
				t.Fatal(err)
			}
			if tc.window == 0 {
				manifesttest.Golden(t, tc.name, b)
			}
			// The version of each track's fragment by its start.
			versions := map[string]string{}
			byRep := map[string]*timeline.TrackView{}
			for i := range p.Tracks {
				tv := &p.Tracks[i]
				rep := tv.ID.Name + "/" + strconv.Itoa(tv.ID.Bitrate)
				byRep[rep] = tv
				for e := range tv.State.Timeline.All() {
					versions[rep+"@"+strconv.FormatUint(e.Start, 10)] = e.Init
				}
			}
			_, m := urls(t, b)
			if len(m.Periods) != tc.periods {
				t.Fatalf("%d Periods, want %d:\n%s", len(m.Periods), tc.periods, b)
			}
			for rep, tmpl := range Representations(m) {
				segs, err := tmpl.Segments()
				if err != nil || len(segs) == 0 {
					t.Fatalf("Representation %s: %d segments, %v", rep.Id, len(segs), err)
				}
				name := string(rep.Parent().ContentType)
				key := name + "/" + rep.Id
				tv := byRep[key]
				v, ok := versions[key+"@"+strconv.FormatUint(segs[0].Time, 10)]
				if tv == nil || !ok {
					t.Fatalf("Representation %s: no fragment at %d", key, segs[0].Time)
				}
				init, err := tmpl.InitURL()
				if want := layout.InitPatternOf(name, rep.Id, v); err != nil || init != want {
					t.Errorf("Representation %s from %d: init %s (%v), want %s", key, segs[0].Time, init, err, want)
				}
				for _, s := range segs[1:] {
					if w := versions[key+"@"+strconv.FormatUint(s.Time, 10)]; w != v {
						t.Errorf("Representation %s: segment %d of version %q in a Period of %q", key, s.Time, w, v)
					}
				}
				cps := rep.GetContentProtections()
				if want := tv.ProtectionOf(v); want == nil {
					if len(cps) > 0 {
						t.Errorf("Representation %s from %d: clear, with %d ContentProtection", key, segs[0].Time, len(cps))
					}
				} else {
					checkProtection(t, key, cps, want)
				}
			}
			if clear := tc.window == 5*time.Second; clear == bytes.Contains(b, []byte("ContentProtection")) {
				t.Errorf("ContentProtection in the MPD: %v, want %v", !clear, clear)
			}
		})
	}
}

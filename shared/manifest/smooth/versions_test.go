package smooth

import (
	"bytes"
	"encoding/base64"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// A channel whose protection changed has the Protection of its newest
// fragments listed, parsed back: the PlayReady header of a cbcs part
// when the manifest ends in it, none when it ends clear or under a
// protection without PlayReady; its streams are the clear channel's
// whatever the version.
func TestSmoothSignalsTheNewestProtection(t *testing.T) {
	upTo := func(d time.Duration) func(*timeline.Presentation) {
		return func(p *timeline.Presentation) { p.Range = &timeline.Range{To: manifesttest.Epoch.Add(d)} }
	}
	for _, tc := range []struct {
		name      string
		p         func() *timeline.Presentation
		edit      func(*timeline.Presentation)
		playReady bool
		golden    string
	}{
		{"ending clear", manifesttest.ProtectionChange, nil, false, "protection-change.ism"},
		{"ending in the encrypted part", manifesttest.ProtectionChange, upTo(10 * time.Second), true, "protection-change-to-cbcs.ism"},
		{"ending before it", manifesttest.ProtectionChange, upTo(5 * time.Second), false, ""},
		{"encrypted first, ending under cenc for ClearKey alone", manifesttest.ProtectionChangeEncryptedFirst, nil, false, ""},
		{"encrypted first, ending in its first part", manifesttest.ProtectionChangeEncryptedFirst, upTo(5 * time.Second), true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p()
			if tc.edit != nil {
				tc.edit(p)
			}
			b, err := Render(p)
			if err != nil {
				t.Fatal(err)
			}
			if tc.golden != "" {
				manifesttest.Golden(t, tc.golden, b)
			}
			m, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Streams) != 2 {
				t.Errorf("%d streams, want 2", len(m.Streams))
			}
			if !tc.playReady {
				if m.Protection != nil || bytes.Contains(b, []byte("Protection")) {
					t.Errorf("a Protection element though the newest fragments have no PlayReady:\n%s", b)
				}
				return
			}
			if m.Protection == nil || len(m.Protection.Headers) != 1 {
				t.Fatalf("Protection %+v:\n%s", m.Protection, b)
			}
			h := m.Protection.Headers[0]
			pro, err := base64.StdEncoding.DecodeString(h.Content)
			if err != nil || !bytes.Equal(pro, manifesttest.PlayReadyObject(manifesttest.KID)) {
				t.Errorf("ProtectionHeader %q (%v): want the PlayReady Object of the cbcs part", h.Content, err)
			}
		})
	}
}

package smooth

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// An encrypted channel signalled for PlayReady has one Protection
// element after its streams (MS-SSTR 2.2.2.2), its ProtectionHeader the
// PlayReady Object under PlayReady's SystemID, which Parse reads back;
// one signalled for other systems alone, and a clear one, have none, and
// the streams are what the clear channel's are.
func TestEncryptedChannelHasItsPlayReadyHeader(t *testing.T) {
	clearOnly := func() *timeline.Presentation {
		p := manifesttest.Encrypted(cenc.CBCS)
		for i := range p.Tracks {
			pr := *p.Tracks[i].Protection
			pr.Systems = pr.Systems[:1] // ClearKey
			p.Tracks[i].Protection = &pr
		}
		return p
	}
	for _, tc := range []struct {
		name      string
		p         func() *timeline.Presentation
		playReady bool
	}{
		{"encrypted-cbcs.ism", func() *timeline.Presentation { return manifesttest.Encrypted(cenc.CBCS) }, true},
		{"encrypted-per-track.ism", manifesttest.EncryptedPerTrack, true},
		{"clearkey-only", clearOnly, false},
		{"clear", func() *timeline.Presentation { return manifesttest.Presentation(false) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Render(tc.p())
			if err != nil {
				t.Fatal(err)
			}
			if tc.playReady {
				manifesttest.Golden(t, tc.name, b)
			}
			m, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			clear, err := Render(manifesttest.Presentation(false))
			if err != nil {
				t.Fatal(err)
			}
			cm, err := Parse(clear)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Streams) != len(cm.Streams) {
				t.Errorf("%d streams, the clear channel %d", len(m.Streams), len(cm.Streams))
			}
			if !tc.playReady {
				if m.Protection != nil || bytes.Contains(b, []byte("Protection")) {
					t.Errorf("a Protection element without a PlayReady pssh:\n%s", b)
				}
				return
			}
			if m.Protection == nil || len(m.Protection.Headers) != 1 {
				t.Fatalf("Protection %+v", m.Protection)
			}
			h := m.Protection.Headers[0]
			pro, err := base64.StdEncoding.DecodeString(h.Content)
			if h.SystemID != "9a04f079-9840-4286-ab92-e65be0885f95" || err != nil || !bytes.Equal(pro, manifesttest.PlayReadyObject(manifesttest.KID)) {
				t.Errorf("ProtectionHeader SystemID %s, content %q (%v): want PlayReady's and the PlayReady Object", h.SystemID, h.Content, err)
			}
		})
	}
}

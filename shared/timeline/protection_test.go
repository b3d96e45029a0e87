package timeline

import (
	"bytes"
	"strings"
	"testing"

	"github.com/smoothcast/smoothcast/shared/layout"
)

// A clear track's index document is what it was before tracks had a
// protection (no "protection" key; an index written before decodes as
// clear), and an encrypted track's protection round-trips whole.
func TestProtectionKeepsTheIndexBackwardCompatible(t *testing.T) {
	id := layout.TrackID{Name: "video", Bitrate: 500000}
	old := `{"v":1,"name":"c","epoch":"2026-01-01T00:00:00Z","tracks":[{"id":{"name":"video","bitrate":500000},"kind":"video","timescale":90000,"fourcc":"H264","codecs":"avc1.64001f","cpd":"00"}]}`
	c, err := UnmarshalChannel([]byte(old))
	if err != nil || len(c.Tracks) != 1 || c.Tracks[0].Protection != nil {
		t.Fatalf("old index: %+v, %v", c, err)
	}
	b, err := MarshalChannel(c)
	if err != nil || strings.Contains(string(b), "protection") {
		t.Fatalf("clear track written as %s (%v)", b, err)
	}
	enc := c.Tracks[0]
	enc.Protection = &Protection{Scheme: "cbcs", KID: "01234567-89ab-cdef-0123-456789abcdef",
		Systems: []ProtectionSystem{{ID: "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b", PSSH: []byte{0, 0, 0, 32, 'p', 's', 's', 'h'}}}}
	c.AddTrack(enc)
	b, err = MarshalChannel(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalChannel(b)
	if err != nil || !back.Tracks[0].Equal(enc) || back.Tracks[0].ID != id {
		t.Fatalf("round trip of %s: %+v, %v", b, back, err)
	}
}

// AddTrack sees a change of protection alone (a new default KID, a pssh
// box more) and no change in an equal protection held elsewhere.
func TestAddTrackComparesProtections(t *testing.T) {
	tr := Track{ID: layout.TrackID{Name: "video", Bitrate: 1}, Kind: Video, Protection: &Protection{Scheme: "cbcs", KID: "a",
		Systems: []ProtectionSystem{{ID: "x", PSSH: []byte("box")}}}}
	c := &Channel{}
	if !c.AddTrack(tr) {
		t.Fatal("new track: no change")
	}
	same := tr
	same.Protection = &Protection{Scheme: "cbcs", KID: "a", Systems: []ProtectionSystem{{ID: "x", PSSH: bytes.Clone([]byte("box"))}}}
	if c.AddTrack(same) {
		t.Error("an equal protection is a change")
	}
	for name, p := range map[string]*Protection{
		"clear":    nil,
		"new KID":  {Scheme: "cbcs", KID: "b", Systems: same.Protection.Systems},
		"scheme":   {Scheme: "cenc", KID: "a", Systems: same.Protection.Systems},
		"pssh":     {Scheme: "cbcs", KID: "a", Systems: []ProtectionSystem{{ID: "x", PSSH: []byte("other")}}},
		"a system": {Scheme: "cbcs", KID: "a", Systems: append(same.Protection.Systems, ProtectionSystem{ID: "y"})},
	} {
		changed := tr
		changed.Protection = p
		c := &Channel{Tracks: []Track{same}}
		if !c.AddTrack(changed) || !c.Tracks[0].Equal(changed) {
			t.Errorf("%s: not seen as a change", name)
		}
	}
}

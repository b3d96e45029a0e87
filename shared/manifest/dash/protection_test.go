package dash

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"

	dashmpd "github.com/Eyevinn/dash-mpd/mpd"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// An encrypted track's Representation says, through its own or its
// AdaptationSet's ContentProtection elements (DASH-IF IOP 7.7): the
// scheme and default KID (mp4protection), and per DRM system DASH knows
// its whole pssh box, PlayReady's also its PlayReady Object (mspr:pro);
// FairPlay, HLS's alone, is left out. The namespaces are declared (dash-mpd
// reads cenc:default_KID only in its namespace), and a group whose tracks
// share a protection carries it once, on the AdaptationSet.
func TestEncryptedTracksSignalTheirProtection(t *testing.T) {
	for _, tc := range []struct {
		name      string
		p         func() *timeline.Presentation
		perTrack  bool
		wantPlain bool
	}{
		{"encrypted-cbcs.mpd", func() *timeline.Presentation { return manifesttest.Encrypted(cenc.CBCS) }, false, false},
		{"encrypted-per-track.mpd", manifesttest.EncryptedPerTrack, true, false},
		{"live.mpd", func() *timeline.Presentation { return manifesttest.Presentation(false) }, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p()
			b, err := Render(p, Options{UTCTimingURL: layout.TimePath})
			if err != nil {
				t.Fatal(err)
			}
			manifesttest.Golden(t, tc.name, b)
			if tc.wantPlain {
				if bytes.Contains(b, []byte("ContentProtection")) || bytes.Contains(b, []byte("xmlns:cenc")) {
					t.Errorf("a clear channel's MPD signals protection:\n%s", b)
				}
				return
			}
			_, m := urls(t, b)
			byID := map[string]*timeline.Protection{}
			for _, tv := range p.Tracks {
				byID[tv.ID.Name+"/"+strconv.Itoa(tv.ID.Bitrate)] = tv.Protection
			}
			for rep := range Representations(m) {
				as := rep.Parent()
				onSet := len(as.ContentProtections) > 0
				if onSet == tc.perTrack && as.ContentType == "video" {
					t.Errorf("Representation %s: protection on the AdaptationSet %v, want %v", rep.Id, onSet, !tc.perTrack)
				}
				name := "video"
				if as.ContentType == "audio" {
					name = "audio"
				}
				checkProtection(t, rep.Id, rep.GetContentProtections(), byID[name+"/"+rep.Id])
			}
		})
	}
}

// checkProtection fails t unless cps, as dash-mpd reads them, say what
// protection want is.
func checkProtection(t *testing.T, rep string, cps []*dashmpd.ContentProtectionType, want *timeline.Protection) {
	t.Helper()
	if want == nil {
		t.Fatalf("Representation %s: no track", rep)
	}
	var systems []string
	for i, cp := range cps {
		if i == 0 {
			if cp.SchemeIdUri != mp4Protection || cp.Value != want.Scheme || cp.DefaultKID != want.KID {
				t.Errorf("Representation %s: first ContentProtection %s value %q default_KID %q, want mp4protection %s %s",
					rep, cp.SchemeIdUri, cp.Value, cp.DefaultKID, want.Scheme, want.KID)
			}
			continue
		}
		id := strings.TrimPrefix(string(cp.SchemeIdUri), "urn:uuid:")
		s, ok := want.System(id)
		if !ok || cp.Pssh == nil {
			t.Errorf("Representation %s: ContentProtection %s, pssh %v: no such system", rep, cp.SchemeIdUri, cp.Pssh)
			continue
		}
		systems = append(systems, id)
		if box, err := base64.StdEncoding.DecodeString(cp.Pssh.Value); err != nil || !bytes.Equal(box, s.PSSH) {
			t.Errorf("Representation %s: %s pssh %q is not the init's box (%v)", rep, id, cp.Pssh.Value, err)
		}
		if id == cenc.PlayReady.UUID() {
			if pro, err := base64.StdEncoding.DecodeString(cp.MSPro.Value); err != nil || !bytes.Equal(pro, manifesttest.PlayReadyObject(manifesttest.KID)) {
				t.Errorf("Representation %s: mspr:pro %q is not the PlayReady Object (%v)", rep, cp.MSPro.Value, err)
			}
		}
	}
	var want2 []string
	for _, s := range want.Systems {
		if s.ID != cenc.FairPlay.UUID() {
			want2 = append(want2, s.ID)
		}
	}
	if strings.Join(systems, ",") != strings.Join(want2, ",") {
		t.Errorf("Representation %s: systems %v, want %v (FairPlay left out)", rep, systems, want2)
	}
}

package handler_test

import (
	"bytes"
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/fmp4/fmp4test"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
)

// encryptFixture encrypts, in st, every track of the fixture's channel ch
// as the relay stores an encrypted channel: the init segments with
// scheme, key k's KID as their default and a ClearKey and a PlayReady
// pssh; the fragments in media order, every other one with key rotated
// (in band: seig sample group, pssh in the moof). It updates the events'
// sizes.
func encryptFixture(t *testing.T, st *store.Store, ch string, evs []fragmentEvent, scheme cenc.Scheme, k, rotated cenc.Key) {
	t.Helper()
	ctx := context.Background()
	protectors := map[layout.TrackID]*fmp4test.Protector{}
	frags := slices.Clone(evs)
	slices.SortFunc(frags, func(a, b fragmentEvent) int {
		oa, _ := layout.Parse(a.key)
		ob, _ := layout.Parse(b.key)
		return int(int64(oa.Start/1000) - int64(ob.Start/1000))
	})
	for _, fe := range frags {
		obj, err := layout.Parse(fe.key)
		if err != nil || obj.Kind != layout.KindFragment {
			continue
		}
		p := protectors[obj.Track]
		if p == nil {
			key := layout.InitKey(ch, obj.Track)
			o, err := st.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			init, prot, err := fmp4test.Protect(o.Body, scheme, k.KID, cenc.ClearKeyPSSH(k.KID), cenc.PSSH(cenc.PlayReady, []cenc.KID{k.KID}, []byte("<WRMHEADER/>")))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Put(ctx, key, init, store.PutOptions{ContentType: o.ContentType, Metadata: o.Metadata}); err != nil {
				t.Fatal(err)
			}
			protectors[obj.Track], p = prot, prot
		}
		o, err := st.Get(ctx, fe.key)
		if err != nil {
			t.Fatal(err)
		}
		key, pssh := k, [][]byte(nil)
		if obj.Start/20_000_000%2 == 1 {
			key, pssh = rotated, [][]byte{cenc.ClearKeyPSSH(rotated.KID)}
		}
		body, err := p.Fragment(o.Body, key, pssh...)
		if err != nil {
			t.Fatalf("%s: %v", fe.key, err)
		}
		if _, err := fmp4.Inspect(body); err != nil {
			t.Fatalf("%s encrypted: %v", fe.key, err)
		}
		_, moofAt, need, err := fmp4.StoredHead(body)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		if scheme == cenc.CENC || obj.Track.Name == "video" {
			// cbcs audio is whole samples under the constant IV: no
			// sample auxiliary information (CMAF 8.2.2.1).
			want = []string{"senc", "saiz", "saio"}
		}
		if key != k {
			want = append(want, "sgpd", "sbgp", "pssh")
		}
		for _, box := range want {
			if !bytes.Contains(body[moofAt:need], []byte(box)) {
				t.Fatalf("%s: encrypted moof without %s", fe.key, box)
			}
		}
		if _, err := st.Put(ctx, fe.key, body, store.PutOptions{ContentType: o.ContentType, Metadata: o.Metadata}); err != nil {
			t.Fatal(err)
		}
		for i := range evs {
			if evs[i].key == fe.key {
				evs[i].ev.Records[0].S3.Object.Size = int64(len(body))
			}
		}
	}
}

// protectionLines matches what the manifests add for an encrypted track:
// DASH's ContentProtection elements and the namespaces they need, HLS's
// key tags, Smooth's Protection element.
var protectionLines = regexp.MustCompile(`(?m)^\s*(<ContentProtection.*|<cenc:pssh>.*|<mspr:pro>.*|</ContentProtection>|#EXT-X-KEY:.*|#EXT-X-SESSION-KEY:.*|<Protection>|<ProtectionHeader.*|</Protection>)\n| xmlns:(cenc|mspr)="[^"]*"`)

// measured matches the bitrates the manifests measure from the fragments'
// sizes, which encryption's boxes (senc, saiz, saio) make larger.
var measured = regexp.MustCompile(`(BANDWIDTH=|bandwidth=")[0-9]+`)

// Encrypted fragments (senc, saiz, saio in the traf; a key rotation's
// sgpd/sbgp and pssh boxes in the moof; ad markers' emsg boxes before it)
// are read as the clear ones: the same timelines, events and bitrates in
// every manifest (but the bitrates measured from their sizes), and the tracks
// described with their protection, which the manifests signal.
func TestEncryptedFragmentsGiveTheClearManifestsPlusTheirProtection(t *testing.T) {
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	cfg := handler.DefaultConfig()
	k, err := cenc.ParseKey("0123456789abcdef0123456789abcdef:00112233445566778899aabbccddeeff")
	if err != nil {
		t.Fatal(err)
	}
	rotated := k
	rotated.KID[0] = 0xfe
	_, clearStore := newStore(t)
	clearEvents := pushFixture(t, clearStore, "ch", base)
	withMarkers(t, clearStore, clearEvents)
	ref := handlerAt(clearStore, cfg, clearEvents)
	for _, fe := range clearEvents {
		if err := ref.HandleS3(context.Background(), fe.ev); err != nil {
			t.Fatal(err)
		}
	}
	want := render(t, ref, "ch")
	for _, scheme := range []cenc.Scheme{cenc.CBCS, cenc.CENC} {
		t.Run(string(scheme), func(t *testing.T) {
			_, st := newStore(t)
			evs := pushFixture(t, st, "ch", base)
			withMarkers(t, st, evs)
			encryptFixture(t, st, "ch", evs, scheme, k, rotated)
			h := handlerAt(st, cfg, evs)
			for _, fe := range evs {
				if err := h.HandleS3(context.Background(), fe.ev); err != nil {
					t.Fatal(err)
				}
			}
			p, err := h.Presentation(context.Background(), "ch")
			if err != nil {
				t.Fatal(err)
			}
			for _, tv := range p.Tracks {
				if pr := tv.Protection; pr == nil || pr.Scheme != string(scheme) || pr.KID != k.KID.UUID() || len(pr.Systems) != 2 {
					t.Errorf("track %v: protection %+v", tv.ID, pr)
				}
			}
			got := render(t, h, "ch")
			for path, w := range want {
				g := got[path]
				if !protectionLines.MatchString(g) {
					t.Errorf("%s signals no protection:\n%s", path, g)
				}
				stripped := measured.ReplaceAllString(protectionLines.ReplaceAllString(g, ""), "$1")
				if w := measured.ReplaceAllString(w, "$1"); stripped != w {
					t.Errorf("%s, its protection left out, is not the clear channel's:\n%s\nwant:\n%s", path, stripped, w)
				}
				if strings.Contains(g, "00112233445566778899aabbccddeeff") {
					t.Errorf("%s holds the key's value", path)
				}
			}
		})
	}
}

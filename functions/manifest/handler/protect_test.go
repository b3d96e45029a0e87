package handler_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/fmp4/fmp4test"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/manifest/dash"
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

// handled is handlerAt's handler of st after it handled evs, in order.
func handled(t *testing.T, st *store.Store, cfg handler.Config, evs []fragmentEvent) *handler.Handler {
	t.Helper()
	h := handlerAt(st, cfg, evs)
	for _, fe := range evs {
		if err := h.HandleS3(context.Background(), fe.ev); err != nil {
			t.Fatal(err)
		}
	}
	return h
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
	ref := handled(t, clearStore, cfg, clearEvents)
	want := render(t, ref, "ch")
	for _, scheme := range []cenc.Scheme{cenc.CBCS, cenc.CENC} {
		t.Run(string(scheme), func(t *testing.T) {
			_, st := newStore(t)
			evs := pushFixture(t, st, "ch", base)
			withMarkers(t, st, evs)
			encryptFixture(t, st, "ch", evs, scheme, k, rotated)
			h := handled(t, st, cfg, evs)
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

// serveChannel serves what a viewer reads of st through h, as the CDN
// does: the manifests from the handler, every other object from the
// bucket.
func serveChannel(t *testing.T, st *store.Store, h *handler.Handler) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.EscapedPath()
		if obj, err := layout.Parse(strings.TrimPrefix(r.URL.Path, "/")); err != nil || obj.Kind == layout.KindFragment || obj.Kind == layout.KindInit {
			o, err := st.Get(r.Context(), strings.TrimPrefix(r.URL.Path, "/"))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			w.Write(o.Body)
			return
		}
		resp, err := h.HandleURL(r.Context(), urlRequest("GET", path))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		for k, v := range resp.Headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(resp.StatusCode)
		io.WriteString(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// ffmpeg reads an encrypted channel's HLS and DASH manifests and the
// encrypted init segments they name: the streams, with their codecs and
// sizes, are the clear channel's; and the video the MPD lists, decrypted
// by ffmpeg with the key (cenc; the rotated key has the same value),
// decodes to the clear channel's frames.
func TestFFmpegReadsTheEncryptedChannel(t *testing.T) {
	ffprobe := testtool.Require(t, "ffprobe")
	ffmpeg := testtool.Require(t, "ffmpeg")
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	k, err := cenc.ParseKey("0123456789abcdef0123456789abcdef:00112233445566778899aabbccddeeff")
	if err != nil {
		t.Fatal(err)
	}
	rotated := k
	rotated.KID[0] = 0xfe // another key ID, the same value: ffmpeg takes one key
	_, st := newStore(t)
	evs := pushFixture(t, st, "ch", base)
	encryptFixture(t, st, "ch", evs, cenc.CENC, k, rotated)
	h := handled(t, st, handler.DefaultConfig(), evs)
	url := serveChannel(t, st, h)
	for _, path := range []string{layout.MasterPlaylistPath("ch"), layout.DASHManifestPath("ch")} {
		out, err := exec.Command(ffprobe, "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0", url+"/"+path).CombinedOutput()
		if err != nil {
			t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
		}
		for _, want := range []string{"h264,160,90", "aac"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("ffprobe %s finds no %s stream:\n%s", path, want, out)
			}
		}
	}
	// The video the MPD lists, fetched from the encrypted channel and
	// decrypted by ffmpeg with the key (read as a stream: ffmpeg 5.1
	// given the file applies the last fragment's encryption information
	// to every fragment, docs/limitations.md), decodes to the clear
	// channel's frames; without the key it does not.
	_, clearStore := newStore(t)
	clearEvents := pushFixture(t, clearStore, "ch", base)
	clearURL := serveChannel(t, clearStore, handled(t, clearStore, handler.DefaultConfig(), clearEvents))
	enc := listedVideo(t, url)
	clearFrames := frameCRCs(t, ffmpeg, listedVideo(t, clearURL), nil)
	decFrames := frameCRCs(t, ffmpeg, enc, k.Value[:])
	if len(decFrames) < 100 || !slices.Equal(decFrames, clearFrames) {
		t.Errorf("the decrypted video decodes to %d frames, the clear one to %d: not the same", len(decFrames), len(clearFrames))
	}
	if encFrames := frameCRCs(t, ffmpeg, enc, nil); slices.Equal(encFrames, clearFrames) {
		t.Errorf("the encrypted video decodes to the clear frames without its key")
	}
}

// listedVideo is the 60k video the MPD at url lists: its init segment
// and its segments, joined.
func listedVideo(t *testing.T, url string) []byte {
	t.Helper()
	h := url + "/live/ch.isml/"
	m, err := dash.Parse(testtool.Get(t, url+"/"+layout.DASHManifestPath("ch")))
	if err != nil {
		t.Fatal(err)
	}
	var media []byte
	for rep, tmpl := range dash.Representations(m) {
		if rep.Id != "60000" {
			continue
		}
		init, err := tmpl.InitURL()
		if err != nil {
			t.Fatal(err)
		}
		media = testtool.Get(t, h+init)
		segs, err := tmpl.Segments()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range segs {
			u, err := tmpl.MediaURL(s)
			if err != nil {
				t.Fatal(err)
			}
			media = append(media, testtool.Get(t, h+u)...)
		}
	}
	if len(media) == 0 {
		t.Fatal("the MPD lists no 60k video")
	}
	return media
}

// frameCRCs are the CRCs of the video frames ffmpeg decodes from file
// bytes b, read as a stream, decrypted with key when it is given (those
// of frames it cannot decode are left out).
func frameCRCs(t *testing.T, ffmpeg string, b, key []byte) []string {
	t.Helper()
	args := []string{"-v", "quiet"}
	if key != nil {
		args = append(args, "-decryption_key", hex.EncodeToString(key))
	}
	cmd := exec.Command(ffmpeg, append(args, "-i", "-", "-map", "0:v:0", "-f", "framecrc", "-")...)
	cmd.Stdin = bytes.NewReader(b)
	out, _ := cmd.Output()
	var crcs []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "0, ") {
			fields := strings.Split(line, ",")
			crcs = append(crcs, strings.TrimSpace(fields[len(fields)-1]))
		}
	}
	return crcs
}

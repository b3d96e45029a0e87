package relay_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/keys"
	"github.com/smoothcast/smoothcast/shared/keys/speketest"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/synth"
)

// The test keys.
var (
	keyA = mustParseKey("00112233445566778899aabbccddeeff:0123456789abcdef0123456789abcdef")
	keyB = mustParseKey("ffeeddccbbaa99887766554433221100:fedcba9876543210fedcba9876543210")
)

func mustParseKey(s string) cenc.Key {
	k, err := cenc.ParseKey(s)
	if err != nil {
		panic(err)
	}
	return k
}

// objectsOf is every object of channel: key to body.
func objectsOf(t *testing.T, st *store.Store, channel string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, k := range testtool.Keys(t, st) {
		if !strings.HasPrefix(k, layout.LivePrefix+channel+".isml/") {
			continue
		}
		o, err := st.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(k, layout.LivePrefix+channel+".isml/")] = o.Body
	}
	return out
}

// mdatOf is the media of a stored fragment.
func mdatOf(t *testing.T, frag []byte) []byte {
	t.Helper()
	for b, err := range mp4box.All(frag) {
		if err != nil {
			t.Fatal(err)
		}
		if b.Type == "mdat" {
			return b.Payload()
		}
	}
	t.Fatal("no mdat")
	return nil
}

// A channel with a key has every init segment and fragment of its audio
// and video stored encrypted, with the channel's scheme and key: none of
// its media is the clear media another channel stores from the same push,
// and each fragment decrypts with the key to exactly that clear media.
func TestEncryptedChannelStoresNoClearMedia(t *testing.T) {
	for _, scheme := range []cenc.Scheme{cenc.CBCS, cenc.CENC} {
		t.Run(string(scheme), func(t *testing.T) {
			cfg := relay.DefaultConfig()
			cfg.Keys = keys.NewStatic(map[string]cenc.Key{"enc": keyA}, scheme)
			hs, st, rec, _ := newRelay(t, cfg)
			for _, ch := range []string{"clear", "enc"} {
				if code, msg := testtool.Do(t, "POST", hs.URL+"/live/"+ch+".isml/Streams(enc1)", fixture(t), true); code != 200 {
					t.Fatalf("push to %s: %d %s", ch, code, msg)
				}
			}
			clear, enc := objectsOf(t, st, "clear"), objectsOf(t, st, "enc")
			if !slices.Equal(slices.Sorted(maps.Keys(clear)), slices.Sorted(maps.Keys(enc))) {
				t.Fatalf("the encrypted channel stored other objects:\n%v\nwant\n%v", slices.Sorted(maps.Keys(enc)), slices.Sorted(maps.Keys(clear)))
			}
			inits := map[string][]byte{} // QualityLevels folder: init
			for name, body := range enc {
				obj, err := layout.Parse(layout.LivePrefix + "enc.isml/" + name)
				if err != nil || obj.Kind != layout.KindInit {
					continue
				}
				s, kid, ok, err := cenc.InitProtection(body)
				if err != nil || !ok || s != scheme || kid != keyA.KID {
					t.Errorf("%s: protection %s %s %v %v, want %s %s", name, s, kid, ok, err, scheme, keyA.KID)
				}
				inits[name[:strings.LastIndex(name, "/")]] = body
			}
			fragments := 0
			for name, body := range enc {
				obj, err := layout.Parse(layout.LivePrefix + "enc.isml/" + name)
				if err != nil || obj.Kind != layout.KindFragment {
					continue
				}
				fragments++
				clearMedia := mdatOf(t, clear[name])
				if bytes.Equal(mdatOf(t, body), clearMedia) {
					t.Errorf("%s is stored in the clear", name)
				}
				dec, err := cenc.Decrypt(inits[name[:strings.LastIndex(name, "/")]], body, map[cenc.KID]cenc.Key{keyA.KID: keyA})
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				if !bytes.Equal(mdatOf(t, dec), clearMedia) {
					t.Errorf("%s does not decrypt to the clear media", name)
				}
			}
			if fragments == 0 || len(inits) == 0 {
				t.Fatalf("%d fragments and %d init segments stored", fragments, len(inits))
			}
			if _, ok := rec.Find(slog.LevelInfo, "track encrypted", map[string]string{"scheme": string(scheme), "default_kid": keyA.KID.UUID()}); !ok {
				t.Errorf("no log line says the tracks are encrypted:\n%s", strings.Join(rec.Lines(), "\n"))
			}
			for _, line := range rec.Lines() {
				if strings.Contains(line, "0123456789abcdef") {
					t.Errorf("a log line has the key's value: %s", line)
				}
			}
		})
	}
}

// A track's protection may change: encryption turned on for a channel
// already published, off, or another scheme. The fragments already
// stored stay as they are, the track's first init segment too; the new
// session's init segment is stored as a version of its own (Init(name,v):
// "clear" or the scheme), and each of its fragments names it
// (x-amz-meta-init) and is stored as that protection says.
func TestATracksProtectionChangeIsAnInitVersion(t *testing.T) {
	cbcs := keys.NewStatic(map[string]cenc.Key{"ch": keyA}, cenc.CBCS)
	cencKeys := keys.NewStatic(map[string]cenc.Key{"ch": keyA}, cenc.CENC)
	for _, tc := range []struct {
		name          string
		first, second keys.Source
		version       string
		encrypted     bool // the second session's fragments
	}{
		{"clear, then encrypted", nil, cbcs, "cbcs", true},
		{"encrypted, then clear", cbcs, nil, layout.ClearInit, false},
		{"cbcs, then cenc", cbcs, cencKeys, "cenc", true},
		{"cbcs, then cbcs again", cbcs, cbcs, "", true},
		{"clear, then clear again", nil, nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, st := testtool.Store(t, "relay-test")
			push := func(src keys.Source, stream string, r synth.Range) {
				cfg := relay.DefaultConfig()
				cfg.Keys = src
				hs := httptest.NewServer(relay.New(st, cfg, quiet).Handler())
				defer hs.Close()
				if code, msg := testtool.Do(t, "POST", hs.URL+"/live/ch.isml/Streams("+stream+")", synthPushOf(t, synth.Config{SMIL: true}, r), true); code != 200 {
					t.Fatalf("push %s: %d %s", stream, code, msg)
				}
			}
			push(tc.first, "a", synth.Range{Count: 2})
			before := snapshot(t, st)
			push(tc.second, "b", synth.Range{From: 2, Count: 2, End: true})
			after := snapshot(t, st)
			for k, v := range before {
				if after[k] != v {
					t.Errorf("%s changed", k)
				}
			}
			var versions, fragments int
			for k := range after {
				if _, ok := before[k]; ok {
					continue
				}
				obj, err := layout.Parse(k)
				if err != nil {
					continue
				}
				o, err := st.Get(context.Background(), k)
				if err != nil {
					t.Fatal(err)
				}
				switch obj.Kind {
				case layout.KindInit:
					versions++
					_, _, ok, err := cenc.InitProtection(o.Body)
					if obj.InitVersion != tc.version || err != nil || ok != tc.encrypted {
						t.Errorf("%s: version %q encrypted %v (%v), want version %q encrypted %v", k, obj.InitVersion, ok, err, tc.version, tc.encrypted)
					}
				case layout.KindFragment:
					fragments++
					if got := o.Metadata[layout.MetaInit]; got != tc.version {
						t.Errorf("%s names init version %q, want %q", k, got, tc.version)
					}
					init, err := st.Get(context.Background(), layout.InitKeyOf("ch", obj.Track, tc.version))
					if err != nil {
						t.Fatal(err)
					}
					dec, err := cenc.Decrypt(init.Body, o.Body, map[cenc.KID]cenc.Key{keyA.KID: keyA})
					// A small synthetic picture may have no whole block of
					// slice data to encrypt: its senc says it is encrypted.
					if enc := bytes.Contains(o.Body, []byte("senc")) || err == nil && !bytes.Equal(mdatOf(t, dec), mdatOf(t, o.Body)); enc != tc.encrypted {
						t.Errorf("%s encrypted %v (%v), want %v", k, enc, err, tc.encrypted)
					}
				}
			}
			if want := map[bool]int{true: 2, false: 0}[tc.version != ""]; versions != want || fragments == 0 {
				t.Errorf("the second session stored %d init segments and %d fragments, want %d init segments (one per track)", versions, fragments, want)
			}
		})
	}
}

// failingKeys is a key source whose key server fails: it has the
// channel's last key (stale) or none.
type failingKeys struct {
	stale bool
	asked atomic.Int64
}

func (f *failingKeys) Plan(string) (keys.Plan, bool) { return keys.Plan{Scheme: cenc.CBCS}, true }

func (f *failingKeys) Period(_ context.Context, channel string, n uint64) (cenc.Period, error) {
	f.asked.Add(1)
	down := errors.New("key server: 500 Internal Server Error")
	if !f.stale {
		return cenc.Period{}, down
	}
	return cenc.Period{Key: keyB, PSSH: [][]byte{cenc.ClearKeyPSSH(keyB.KID)}}, &keys.StaleError{Channel: channel, Want: n, Have: 0, Err: down}
}

// When the key server fails, a channel never gets clear media: with no
// key at all the push fails with 503 and nothing of the channel is
// stored; with the channel's last key the push goes on encrypted with
// it, and the failure is on /status, in the log and in
// smoothcast_errors_total{kind="key"}.
func TestKeyServerFailureNeverPublishesClearMedia(t *testing.T) {
	t.Run("no key", func(t *testing.T) {
		cfg := relay.DefaultConfig()
		src := &failingKeys{}
		cfg.Keys = src
		hs, st, rec, rl := newRelay(t, cfg)
		code, msg := testtool.Do(t, "POST", hs.URL+"/live/ch.isml/Streams(a)", fixture(t), true)
		if code != 503 || !strings.Contains(msg, "key") {
			t.Errorf("push: %d %q, want 503 naming the key", code, msg)
		}
		for k := range objectsOf(t, st, "ch") {
			if !strings.Contains(k, "End(") {
				t.Errorf("stored without a key: %s", k)
			}
		}
		if got := scrape(t, rl)[`smoothcast_errors_total{kind="key"}`]; got < 1 {
			t.Errorf("smoothcast_errors_total{kind=key} = %v", got)
		}
		if _, ok := rec.Find(slog.LevelWarn, "push failed: key server", nil); !ok {
			t.Logf("log:\n%s", strings.Join(rec.Lines(), "\n"))
		}
	})
	t.Run("the last key", func(t *testing.T) {
		cfg := relay.DefaultConfig()
		src := &failingKeys{stale: true}
		cfg.Keys = src
		hs, st, rec, rl := newRelay(t, cfg)
		if code, msg := testtool.Do(t, "POST", hs.URL+"/live/ch.isml/Streams(a)", fixture(t), true); code != 200 {
			t.Fatalf("push: %d %s", code, msg)
		}
		objs := objectsOf(t, st, "ch")
		n := 0
		for name, body := range objs {
			if obj, err := layout.Parse(layout.LivePrefix + "ch.isml/" + name); err == nil && obj.Kind == layout.KindInit {
				if _, kid, ok, err := cenc.InitProtection(body); err != nil || !ok || kid != keyB.KID {
					t.Errorf("%s: encrypted %v with %s (%v), want the last key %s", name, ok, kid, err, keyB.KID)
				}
				n++
			}
		}
		if n == 0 {
			t.Fatal("no init segment stored")
		}
		if _, ok := rec.Find(slog.LevelError, "key server failed: going on with the channel's last key", nil); !ok {
			t.Errorf("the log does not say the key server failed:\n%s", strings.Join(rec.Lines(), "\n"))
		}
		if got := scrape(t, rl)[`smoothcast_errors_total{kind="key"}`]; got < float64(src.asked.Load()) {
			t.Errorf("smoothcast_errors_total{kind=key} = %v for %d fragments with the last key", got, src.asked.Load())
		}
		var onStatus bool
		for _, e := range rl.Status().RecentErrors {
			onStatus = onStatus || e.Kind == "key" && strings.Contains(e.Message, "key period")
		}
		if !onStatus {
			t.Errorf("/status's recent errors do not have the key server's failure: %+v", rl.Status().RecentErrors)
		}
	})
}

// A channel whose keys come from a SPEKE v2 key server (the stand-in,
// which checks each request document against the specification) and
// rotate every fragment: each fragment is encrypted with its own
// period's key, which decrypts it to the clear channel's media and no
// other period's key does; the init segments carry every DRM system's
// pssh and the first period's key as their default.
func TestSPEKEKeysRotateEveryFragment(t *testing.T) {
	srv := speketest.New(t, speketest.Options{ContentIDPrefix: "test/"})
	src, err := keys.NewSPEKE(keys.SPEKEConfig{URL: srv.URL, RotateEvery: 1, ContentIDPrefix: "test/", KIDSalt: []byte("test/"), Channels: []string{"drm"}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	cfg := relay.DefaultConfig()
	cfg.Keys = src
	hs, st, rec, _ := newRelay(t, cfg)
	for _, ch := range []string{"clear", "drm"} {
		if code, msg := testtool.Do(t, "POST", hs.URL+"/live/"+ch+".isml/Streams(enc1)", fixture(t), true); code != 200 {
			t.Fatalf("push to %s: %d %s\n%s", ch, code, msg, strings.Join(rec.Lines(), "\n"))
		}
	}
	clear, drm := objectsOf(t, st, "clear"), objectsOf(t, st, "drm")
	periods := map[uint64]cenc.Period{}
	period := func(n uint64) cenc.Period {
		if p, ok := periods[n]; ok {
			return p
		}
		p, err := src.Period(context.Background(), "drm", n)
		if err != nil {
			t.Fatalf("period %d: %v", n, err)
		}
		periods[n] = p
		return p
	}
	inits := map[string][]byte{}
	for name, body := range drm {
		if obj, err := layout.Parse(layout.LivePrefix + "drm.isml/" + name); err == nil && obj.Kind == layout.KindInit {
			tr, err := fmp4.ParseInit(body)
			if err != nil || tr.Protection == nil {
				t.Fatalf("%s: %v %+v", name, err, tr.Protection)
			}
			if got := len(tr.Protection.Systems); got != 3 {
				t.Errorf("%s carries %d DRM systems' pssh, want Widevine, PlayReady and FairPlay", name, got)
			}
			if tr.Protection.KID != period(0).Key.KID.UUID() {
				t.Errorf("%s: default KID %s, want period 0's %s", name, tr.Protection.KID, period(0).Key.KID)
			}
			inits[name[:strings.LastIndex(name, "/")]] = body
		}
	}
	kids := map[cenc.KID]bool{}
	for name, body := range drm {
		obj, err := layout.Parse(layout.LivePrefix + "drm.isml/" + name)
		if err != nil || obj.Kind != layout.KindFragment {
			continue
		}
		info, err := fmp4.Inspect(body)
		if err != nil || info.Duration == 0 {
			t.Fatalf("%s: %v", name, err)
		}
		init := inits[name[:strings.LastIndex(name, "/")]]
		tr, err := fmp4.ParseInit(init)
		if err != nil {
			t.Fatal(err)
		}
		// Rotation every fragment: a period is the fragment's duration
		// in whole seconds.
		ts := tr.Timescale
		n := obj.Start / (max((info.Duration+ts/2)/ts, 1) * ts)
		p := period(n)
		kids[p.Key.KID] = true
		dec, err := cenc.Decrypt(init, body, map[cenc.KID]cenc.Key{p.Key.KID: p.Key})
		if err != nil || !bytes.Equal(mdatOf(t, dec), mdatOf(t, clear[name])) {
			t.Errorf("%s (period %d) does not decrypt with its period's key %s: %v", name, n, p.Key.KID, err)
		}
		other := period(n + 1)
		if dec, err := cenc.Decrypt(init, body, map[cenc.KID]cenc.Key{other.Key.KID: other.Key, p.Key.KID: {KID: p.Key.KID}}); err == nil && bytes.Equal(mdatOf(t, dec), mdatOf(t, clear[name])) {
			t.Errorf("%s (period %d) decrypts without its key", name, n)
		}
	}
	if len(kids) < 2 {
		t.Errorf("%d keys across the fragments, want one per fragment", len(kids))
	}
	if srv.Requests("drm", 0) == 0 || srv.Requests("drm", 1) == 0 {
		t.Errorf("the key server was asked for period 0 %d times, 1 %d times", srv.Requests("drm", 0), srv.Requests("drm", 1))
	}
	if _, ok := rec.Find(slog.LevelInfo, "key rotated", nil); !ok {
		t.Errorf("no log line says the key rotated")
	}
}

// /status and /status.html show each encrypted track's scheme and key ID
// (never a key) while its push is in progress.
func TestStatusShowsEachTracksProtection(t *testing.T) {
	body := fixture(t)
	cfg := relay.DefaultConfig()
	cfg.Keys = keys.NewStatic(map[string]cenc.Key{"enc": keyA}, cenc.CBCS)
	hs, _, _, rl := newRelay(t, cfg)
	admin := httptest.NewServer(rl.AdminHandler())
	t.Cleanup(admin.Close)
	p := testtool.OpenPush(t, hs.URL, "/live/enc.isml/Streams(enc1)")
	second := nth(t, body, "mdat", 1)
	p.Send(t, body[:second.at+second.size])
	want := "cbcs " + keyA.KID.UUID()
	waitStatus(t, admin.URL, "encrypted tracks", func(s relay.Status) bool {
		if len(s.Channels) != 1 || len(s.Channels[0].Streams) != 1 || len(s.Channels[0].Streams[0].Tracks) == 0 {
			return false
		}
		for _, tr := range s.Channels[0].Streams[0].Tracks {
			if tr.Fragments == 0 || tr.Protection != want {
				return false
			}
		}
		return true
	})
	resp, err := http.Get(admin.URL + "/status.html")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "encrypted "+want) || strings.Contains(string(page), "0123456789abcdef") {
		t.Errorf("status page: encrypted %v, a key's value %v", strings.Contains(string(page), "encrypted "+want), strings.Contains(string(page), "0123456789abcdef"))
	}
	p.Send(t, body[second.at+second.size:])
	if code, msg := p.Finish(t); code != 200 {
		t.Fatalf("push: %d %s", code, msg)
	}
}

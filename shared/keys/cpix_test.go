package keys

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/keys/speketest"
)

// testQuery is a request for channel live's period 5, with rotation.
func testQuery() query {
	return query{
		channel: "live", n: 5, rotating: true, contentID: "p/live",
		kid: deriveKID([]byte("s"), "p/live", 5), scheme: cenc.CBCS,
		systems: []cenc.SystemID{cenc.Widevine, cenc.PlayReady, cenc.FairPlay},
	}
}

// answerOf is the stand-in key server's answer to q's request document.
func answerOf(t testing.TB, q query) string {
	t.Helper()
	b, err := speketest.Respond(requestDocument(q))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseResponse(t *testing.T) {
	q := testQuery()
	doc := answerOf(t, q)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		rule string
		edit func(string) string
		want string // in the error; "" for none
	}{
		{"the stand-in's answer is read", func(s string) string { return s }, ""},
		{"prefixes are free, namespaces are not", func(s string) string {
			return strings.ReplaceAll(strings.ReplaceAll(s, "cpix:", "c:"), "xmlns:cpix=", "xmlns:c=")
		}, ""},
		{"the contentId is the one asked", repl(`contentId="p/live"`, `contentId="p/other"`), "contentId"},
		{"the version is 2.3", repl(`version="2.3"`, `version="2.4"`), "CPIX version"},
		{"the scheme is the one asked", repl(`commonEncryptionScheme="cbcs"`, `commonEncryptionScheme="cenc"`), "commonEncryptionScheme"},
		{"the period is the one asked", repl(`index="5"`, `index="6"`), "ContentKeyPeriod"},
		{"the period list is kept", func(s string) string {
			a, b := strings.Index(s, "<cpix:ContentKeyPeriodList>"), strings.Index(s, "</cpix:ContentKeyPeriodList>")
			return s[:a] + s[b+len("</cpix:ContentKeyPeriodList>"):]
		}, "want the one ContentKeyPeriod asked"},
		{"an encrypted key is refused, saying why", func(s string) string {
			a, b := strings.Index(s, "<pskc:PlainValue>"), strings.Index(s, "</pskc:PlainValue>")
			return s[:a] + "<pskc:EncryptedValue/>" + s[b+len("</pskc:PlainValue>"):]
		}, "pskc:EncryptedValue"},
		{"a key is 16 bytes", func(s string) string {
			a, b := strings.Index(s, "<pskc:PlainValue>"), strings.Index(s, "</pskc:PlainValue>")
			return s[:a] + "<pskc:PlainValue>AAAA</pskc:PlainValue>" + s[b+len("</pskc:PlainValue>"):]
		}, "not 16 bytes"},
		{"a system asked is answered", repl(`systemId="94ce86fb-07ff-4f43-adb8-93d2fa968ca2"`, `systemId="94ce86fb-07ff-4f43-adb8-93d2fa968ca3"`), "DRM system fairplay: 0 DRMSystem"},
		{"a pssh is the system's", func(s string) string {
			wv := base64.StdEncoding.EncodeToString(cenc.PSSH(cenc.Widevine, []cenc.KID{q.kid}, []byte("x")))
			a := strings.Index(s, "<cpix:PSSH>")
			b := strings.Index(s, "</cpix:PSSH>")
			// Widevine's PSSH element given the right box with other data:
			// then ContentProtectionData's pssh differs.
			return s[:a] + "<cpix:PSSH>" + wv + s[b:]
		}, "ContentProtectionData's pssh is not the PSSH element's"},
		{"a pssh names the KID", func(s string) string {
			other := q.kid
			other[0] ^= 1
			box := base64.StdEncoding.EncodeToString(cenc.PSSH(cenc.Widevine, []cenc.KID{other}, nil))
			a, b := strings.Index(s, "<cpix:PSSH>"), strings.Index(s, "</cpix:PSSH>")
			return s[:a] + "<cpix:PSSH>" + box + s[b:]
		}, "does not name KID"},
		{"a pssh is a pssh box", func(s string) string {
			a, b := strings.Index(s, "<cpix:PSSH>"), strings.Index(s, "</cpix:PSSH>")
			return s[:a] + "<cpix:PSSH>" + b64("not a box at all") + s[b:]
		}, "PSSH"},
		{"HLS signalling is there for both playlists", func(s string) string {
			i := strings.Index(s, `<cpix:HLSSignalingData playlist="master">`)
			j := i + strings.Index(s[i:], "</cpix:HLSSignalingData>") + len("</cpix:HLSSignalingData>")
			return s[:i] + s[j:]
		}, "media and the master"},
		{"FairPlay's signalling has an skd URI", func(s string) string {
			i := strings.LastIndex(s, `<cpix:HLSSignalingData playlist="media">`)
			j := i + strings.Index(s[i:], "</cpix:HLSSignalingData>")
			return s[:i] + `<cpix:HLSSignalingData playlist="media">` + b64(`#EXT-X-KEY:METHOD=SAMPLE-AES,URI="https://k/1"`) + s[j:]
		}, "no skd:// URI"},
		{"PlayReady's Smooth header is there", func(s string) string {
			a := strings.Index(s, "<cpix:SmoothStreamingProtectionHeaderData>")
			b := strings.Index(s, "</cpix:SmoothStreamingProtectionHeaderData>")
			return s[:a] + "<cpix:SmoothStreamingProtectionHeaderData>" + s[b:]
		}, "SmoothStreamingProtectionHeaderData: empty"},
		{"one content key", repl(`</cpix:ContentKeyList>`, `<cpix:ContentKey kid="11111111-1111-1111-1111-111111111111" commonEncryptionScheme="cbcs"/></cpix:ContentKeyList>`), "one ContentKey"},
		{"not XML", func(s string) string { return s[:len(s)/2] }, "not a CPIX document"},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			edited := tc.edit(doc)
			if tc.want != "" && edited == doc {
				t.Fatal("the edit changed nothing")
			}
			p, err := parseResponse([]byte(edited), q)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if p.Key != speketest.Key(q.kid) || len(p.PSSH) != 3 {
					t.Errorf("key %v, %d pssh", p.Key, len(p.PSSH))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "channel live: key period 5") {
				t.Errorf("error %v, want it to name the channel and period and contain %q", err, tc.want)
			}
		})
	}
}

func repl(old, new string) func(string) string {
	return func(s string) string { return strings.Replace(s, old, new, 1) }
}

func TestDeriveKID(t *testing.T) {
	a := deriveKID([]byte("s"), "live", 1)
	for _, tc := range []struct {
		rule  string
		other cenc.KID
		same  bool
	}{
		{"the same channel, period and salt give the same KID", deriveKID([]byte("s"), "live", 1), true},
		{"another period gives another KID", deriveKID([]byte("s"), "live", 2), false},
		{"another channel gives another KID", deriveKID([]byte("s"), "live2", 1), false},
		{"another salt gives another KID", deriveKID([]byte("t"), "live", 1), false},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			if (a == tc.other) != tc.same {
				t.Errorf("%s and %s", a, tc.other)
			}
		})
	}
	t.Run("a KID is an RFC 9562 version 8 UUID", func(t *testing.T) {
		if a[6]>>4 != 8 || a[8]>>6 != 2 {
			t.Errorf("%s", a)
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	q := testQuery()
	f.Add([]byte(answerOf(f, q)))
	q1 := q
	q1.rotating, q1.n = false, 0
	f.Add([]byte(answerOf(f, q1)))
	f.Add([]byte(`<cpix:CPIX xmlns:cpix="urn:dashif:org:cpix" contentId="p/live" version="2.3"/>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		for _, q := range []query{q, q1} {
			p, err := parseResponse(doc, q)
			if err != nil {
				if !strings.Contains(err.Error(), "channel live") {
					t.Fatalf("error %q names no channel", err)
				}
				continue
			}
			if p.Key.KID != q.kid || len(p.PSSH) != len(q.systems) {
				t.Fatalf("read KID %s with %d pssh, asked %s and %d systems", p.Key.KID, len(p.PSSH), q.kid, len(q.systems))
			}
		}
	})
}

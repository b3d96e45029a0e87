package speketest_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/keys/speketest"
)

// valid is a SPEKE v2.0 live request written after the specification's
// examples: one key for all tracks, Widevine, PlayReady and FairPlay, a
// key period.
const valid = `<?xml version="1.0" encoding="UTF-8"?>
<cpix:CPIX contentId="abc123" version="2.3" xmlns:cpix="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc">
  <cpix:ContentKeyList>
    <cpix:ContentKey kid="98ee5596-cd3e-a20d-163a-e382420c6eff" commonEncryptionScheme="cbcs"/>
  </cpix:ContentKeyList>
  <cpix:DRMSystemList>
    <cpix:DRMSystem kid="98ee5596-cd3e-a20d-163a-e382420c6eff" systemId="edef8ba9-79d6-4ace-a3c8-27dcd51d21ed">
      <cpix:PSSH/>
      <cpix:ContentProtectionData/>
      <cpix:HLSSignalingData playlist="media"/>
      <cpix:HLSSignalingData playlist="master"/>
    </cpix:DRMSystem>
    <cpix:DRMSystem kid="98ee5596-cd3e-a20d-163a-e382420c6eff" systemId="9a04f079-9840-4286-ab92-e65be0885f95">
      <cpix:PSSH/>
      <cpix:ContentProtectionData/>
      <cpix:HLSSignalingData playlist="media"/>
      <cpix:HLSSignalingData playlist="master"/>
      <cpix:SmoothStreamingProtectionHeaderData/>
    </cpix:DRMSystem>
    <cpix:DRMSystem kid="98ee5596-cd3e-a20d-163a-e382420c6eff" systemId="94ce86fb-07ff-4f43-adb8-93d2fa968ca2">
      <cpix:HLSSignalingData playlist="media"/>
      <cpix:HLSSignalingData playlist="master"/>
    </cpix:DRMSystem>
  </cpix:DRMSystemList>
  <cpix:ContentKeyPeriodList>
    <cpix:ContentKeyPeriod id="keyPeriod_0909829f-40ff-4625-90fa-75da3e53278f" index="11425"/>
  </cpix:ContentKeyPeriodList>
  <cpix:ContentKeyUsageRuleList>
    <cpix:ContentKeyUsageRule kid="98ee5596-cd3e-a20d-163a-e382420c6eff" intendedTrackType="ALL">
      <cpix:KeyPeriodFilter periodId="keyPeriod_0909829f-40ff-4625-90fa-75da3e53278f"/>
      <cpix:AudioFilter/>
      <cpix:VideoFilter/>
    </cpix:ContentKeyUsageRule>
  </cpix:ContentKeyUsageRuleList>
</cpix:CPIX>`

const kid = "98ee5596-cd3e-a20d-163a-e382420c6eff"

func post(t *testing.T, url, method string, header map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/xml")
	req.Header.Set("X-Speke-Version", "2.0")
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestValidRequestIsAnswered(t *testing.T) {
	srv := speketest.New(t, speketest.Options{ContentIDPrefix: "abc"})
	resp, body := post(t, srv.URL, http.MethodPost, nil, valid)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	k, _ := cenc.ParseKID(kid)
	key := speketest.Key(k)
	for _, tc := range []struct{ rule, want string }{
		{"the answer's headers are SPEKE v2's", resp.Header.Get("X-Speke-Version") + " " + resp.Header.Get("X-Speke-User-Agent")},
		{"the key is a plain value", "<pskc:PlainValue>" + base64.StdEncoding.EncodeToString(key.Value[:]) + "</pskc:PlainValue>"},
		{"the period is kept", `index="11425"`},
		{"the contentId is kept", `contentId="abc123"`},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			if tc.rule == "the answer's headers are SPEKE v2's" {
				if tc.want != "2.0 "+speketest.UserAgent {
					t.Errorf("headers %q", tc.want)
				}
				return
			}
			if !strings.Contains(body, tc.want) {
				t.Errorf("no %s in\n%s", tc.want, body)
			}
		})
	}
	t.Run("every element asked is filled", func(t *testing.T) {
		for _, empty := range []string{"<cpix:PSSH></cpix:PSSH>", "<cpix:ContentProtectionData></cpix:ContentProtectionData>", `playlist="media"></cpix:HLSSignalingData>`, "<cpix:SmoothStreamingProtectionHeaderData></cpix:SmoothStreamingProtectionHeaderData>"} {
			if strings.Contains(body, empty) {
				t.Errorf("%s left empty", empty)
			}
		}
	})
	t.Run("FairPlay's HLS signalling gives the skd URI", func(t *testing.T) {
		want := base64.StdEncoding.EncodeToString([]byte(`#EXT-X-KEY:METHOD=SAMPLE-AES,URI="` + speketest.FairPlayURI(k) + `"`))
		if !strings.Contains(body, want[:len(want)-4]) {
			t.Errorf("no FairPlay EXT-X-KEY with %s", speketest.FairPlayURI(k))
		}
	})
	t.Run("requests are counted per channel and period", func(t *testing.T) {
		if srv.Requests("123", 11425) != 1 || srv.Total() != 1 {
			t.Errorf("counts %d, total %d", srv.Requests("123", 11425), srv.Total())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := srv.WaitRequests(ctx, "123", 11425, 1); err != nil {
			t.Error(err)
		}
		if err := srv.WaitRequests(ctx, "123", 11425, 2); err == nil {
			t.Error("WaitRequests for a request never made returned no error")
		}
	})
}

func TestRequestsAgainstTheSpecificationAreRefused(t *testing.T) {
	for _, tc := range []struct {
		rule   string
		method string
		header map[string]string
		edit   func(string) string
		want   string
	}{
		{rule: "a SPEKE request is a POST", method: http.MethodPut, want: "POST"},
		{rule: "X-Speke-Version is 2.0", header: map[string]string{"X-Speke-Version": ""}, want: "Unsupported SPEKE version"},
		{rule: "the body is application/xml", header: map[string]string{"Content-Type": "text/plain"}, want: "Content-Type"},
		{rule: "the body is XML", edit: func(s string) string { return s[:100] }, want: "not an XML document"},
		{rule: "no DTD", edit: func(s string) string {
			return strings.Replace(s, "<cpix:CPIX", `<!DOCTYPE x [<!ENTITY e "x">]><cpix:CPIX`, 1)
		}, want: "DTD"},
		{rule: "the root is cpix:CPIX in the CPIX namespace", edit: repl(`xmlns:cpix="urn:dashif:org:cpix"`, `xmlns:cpix="urn:other"`), want: "want cpix:CPIX"},
		{rule: "the pskc namespace is declared", edit: repl(` xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc"`, ""), want: "xmlns:pskc"},
		{rule: "contentId is mandatory", edit: repl(`contentId="abc123" `, ""), want: "Missing CPIX@contentId"},
		{rule: "version is mandatory", edit: repl(`version="2.3" `, ""), want: "Missing CPIX@version"},
		{rule: "version is 2.3", edit: repl(`version="2.3"`, `version="2.4"`), want: "Unsupported CPIX@version"},
		{rule: "commonEncryptionScheme is mandatory", edit: repl(` commonEncryptionScheme="cbcs"`, ""), want: "Missing ContentKey@commonEncryptionScheme for KID " + kid},
		{rule: "one scheme per document", edit: func(s string) string {
			s = strings.Replace(s, `</cpix:ContentKeyList>`, `<cpix:ContentKey kid="11111111-1111-1111-1111-111111111111" commonEncryptionScheme="cenc"/></cpix:ContentKeyList>`, 1)
			return strings.Replace(s, `</cpix:ContentKeyUsageRuleList>`, `<cpix:ContentKeyUsageRule kid="11111111-1111-1111-1111-111111111111" intendedTrackType="AUDIO"><cpix:KeyPeriodFilter periodId="keyPeriod_0909829f-40ff-4625-90fa-75da3e53278f"/><cpix:AudioFilter/></cpix:ContentKeyUsageRule></cpix:ContentKeyUsageRuleList>`, 1)
		}, want: "Non compliant ContentKey@commonEncryptionScheme combination"},
		{rule: "a kid is a UUID", edit: repl(`<cpix:ContentKey kid="98ee5596-cd3e-a20d-163a-e382420c6eff"`, `<cpix:ContentKey kid="98ee5596cd3ea20d163ae382420c6eff"`), want: "want a UUID"},
		{rule: "the request carries no key", edit: repl(`commonEncryptionScheme="cbcs"/>`, `commonEncryptionScheme="cbcs"><cpix:Data/></cpix:ContentKey>`), want: "carries no key"},
		{rule: "a DRMSystem is of a content key", edit: repl(`<cpix:DRMSystem kid="98ee5596-cd3e-a20d-163a-e382420c6eff" systemId="edef`, `<cpix:DRMSystem kid="11111111-1111-1111-1111-111111111111" systemId="edef`), want: "no such ContentKey"},
		{rule: "HLS signalling is asked for both playlists", edit: repl(`<cpix:HLSSignalingData playlist="master"/>
    </cpix:DRMSystem>`, `</cpix:DRMSystem>`), want: "want one media and one master"},
		{rule: "the speke namespace is v1's", edit: repl(`<cpix:PSSH/>`, `<speke:ProtectionHeader xmlns:speke="urn:aws:amazon:com:speke"/>`), want: "SPEKE v1"},
		{rule: "the Smooth header is PlayReady's", edit: repl(`<cpix:ContentProtectionData/>
      <cpix:HLSSignalingData playlist="media"/>
      <cpix:HLSSignalingData playlist="master"/>
    </cpix:DRMSystem>
    <cpix:DRMSystem kid="98ee5596-cd3e-a20d-163a-e382420c6eff" systemId="9a04`, `<cpix:ContentProtectionData/><cpix:SmoothStreamingProtectionHeaderData/>
    </cpix:DRMSystem>
    <cpix:DRMSystem kid="98ee5596-cd3e-a20d-163a-e382420c6eff" systemId="9a04`), want: "PlayReady's"},
		{rule: "elements asked are empty", edit: repl(`<cpix:PSSH/>`, `<cpix:PSSH>AAAA</cpix:PSSH>`), want: "asked for empty"},
		{rule: "a period list is not empty", edit: repl(`<cpix:ContentKeyPeriod id="keyPeriod_0909829f-40ff-4625-90fa-75da3e53278f" index="11425"/>`, ""), want: "no ContentKeyPeriod"},
		{rule: "a period has an index", edit: repl(` index="11425"`, ""), want: "want a non-negative integer"},
		{rule: "a KeyPeriodFilter names a period", edit: repl(`<cpix:KeyPeriodFilter periodId="keyPeriod_0909829f-40ff-4625-90fa-75da3e53278f"/>`, `<cpix:KeyPeriodFilter periodId="keyPeriod_x"/>`), want: "no such ContentKeyPeriod"},
		{rule: "with key periods each rule has a KeyPeriodFilter", edit: repl(`<cpix:KeyPeriodFilter periodId="keyPeriod_0909829f-40ff-4625-90fa-75da3e53278f"/>`, ""), want: "no KeyPeriodFilter"},
		{rule: "a contract has filters", edit: repl(`<cpix:AudioFilter/>
      <cpix:VideoFilter/>`, ""), want: "Missing CPIX encryption contract"},
		{rule: "ALL has one bare AudioFilter and one bare VideoFilter", edit: repl(`<cpix:AudioFilter/>`, ""), want: "Malformed encryption contract"},
		{rule: "SPEKE has no BitrateFilter", edit: repl(`<cpix:AudioFilter/>`, `<cpix:AudioFilter/><cpix:BitrateFilter minBitrate="1"/>`), want: "Malformed encryption contract"},
		{rule: "a rule has an intendedTrackType", edit: repl(` intendedTrackType="ALL"`, ""), want: "without intendedTrackType"},
		{rule: "the usage rule list is mandatory", edit: func(s string) string {
			return s[:strings.Index(s, "<cpix:ContentKeyUsageRuleList>")] + "</cpix:CPIX>"
		}, want: "ContentKeyUsageRuleList, want one"},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			srv := speketest.New(t, speketest.Options{AllowViolations: true})
			body := valid
			if tc.edit != nil {
				body = tc.edit(body)
				if body == valid {
					t.Fatal("the edit changed nothing")
				}
			}
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			resp, msg := post(t, srv.URL, method, tc.header, body)
			if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(msg, tc.want) {
				t.Errorf("status %d %q, want 422 with %q", resp.StatusCode, msg, tc.want)
			}
			if v := srv.Violations(); len(v) != 1 || srv.Total() != 0 {
				t.Errorf("violations %q, %d requests counted", v, srv.Total())
			}
		})
	}
}

func repl(old, new string) func(string) string {
	return func(s string) string { return strings.Replace(s, old, new, 1) }
}

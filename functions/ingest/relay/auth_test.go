package relay_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/internal/testtool/logtest"
)

// answer is what a refused request gets, with the channel's name taken
// out of its text.
type answer struct {
	status        int
	authenticate  string
	body, channel string
}

func answerOf(t *testing.T, url, channel string, header map[string]string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, authenticate: resp.Header.Get("WWW-Authenticate"),
		body: strings.ReplaceAll(string(msg), channel, "{channel}"), channel: channel}
}

// With per-channel secrets and no default, a stranger's push (no
// credentials, wrong ones, a listed channel's secret, by header or path,
// to a push or an upload URL) gets the same answer for a channel that has
// a secret as for one that has none: status, WWW-Authenticate and text
// (but for the channel's name). Before, a listed channel answered 401 and
// an unlisted one 403 "has no ingest secret".
func TestRefusalsSayNothingOfWhichChannelsExist(t *testing.T) {
	cfg := relay.DefaultConfig()
	cfg.Secrets = mustSecrets(t, "news=news-secret-0123456789\nsport=sport-secret-0123456789\n")
	hs, _, _, _ := newRelay(t, cfg)
	body := fixture(t)[:1000]
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("enc:wrong-secret-0123456789"))
	for _, tc := range []struct {
		name, path string // path with {channel} and {file}
		header     map[string]string
	}{
		{"no credentials", "/live/{channel}.isml/Streams(e)", nil},
		{"a wrong Bearer token", "/live/{channel}.isml/Streams(e)", map[string]string{"Authorization": "Bearer wrong-secret-0123456789"}},
		{"a wrong Basic password", "/live/{channel}.isml/Streams(e)", map[string]string{"Authorization": basic}},
		{"a listed channel's secret", "/live/{channel}.isml/Streams(e)", map[string]string{"Authorization": "Bearer news-secret-0123456789"}},
		{"a wrong path token", "/token/wrong-secret-0123456789/live/{channel}.isml/Streams(e)", nil},
		{"an unknown scheme", "/live/{channel}.isml/Streams(e)", map[string]string{"Authorization": "Digest x"}},
		{"an upload without credentials", "/live/{channel}.isml/init.mp4", nil},
		{"an upload with a wrong token", "/live/{channel}.isml/init.mp4", map[string]string{"Authorization": "Bearer wrong-secret-0123456789"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			listed := answerOf(t, hs.URL+strings.ReplaceAll(tc.path, "{channel}", "sport"), "sport", tc.header, body)
			unlisted := answerOf(t, hs.URL+strings.ReplaceAll(tc.path, "{channel}", "other"), "other", tc.header, body)
			if listed.status != 401 && listed.status != 403 {
				t.Fatalf("a listed channel: %+v, want a refusal", listed)
			}
			listed.channel, unlisted.channel = "", ""
			if listed != unlisted {
				t.Errorf("a listed channel gets %+v, an unlisted one %+v", listed, unlisted)
			}
		})
	}
}

// Credentials: schemes are case-insensitive (basic, bearer, BEARER); a
// credential too long to be a secret is refused with 431 (414 in the
// path) and never compared, as is a 1 MiB Authorization header (which
// used to get 403).
func TestCredentialsTheirSchemesAndSizes(t *testing.T) {
	const secret = "default-secret-0123456789"
	cfg := relay.DefaultConfig()
	cfg.Secrets = mustSecrets(t, secret)
	_, st := testtool.Store(t, "relay-test")
	rec := logtest.New()
	hs := httptest.NewUnstartedServer(relay.New(st, cfg, slog.New(rec)).Handler())
	hs.Config.MaxHeaderBytes = 4 << 20 // over the credentials: authorize sees them
	hs.Start()
	t.Cleanup(hs.Close)
	basic := func(scheme, user, pass string) string {
		return scheme + " " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	huge := strings.Repeat("x", 1<<20)
	for _, tc := range []struct {
		name, path, auth string
		status           int
		reason           string
	}{
		{"Bearer", "/live/tv1.isml/Streams(e)", "Bearer " + secret, 200, ""},
		{"bearer, lower case", "/live/tv1.isml/Streams(e)", "bearer " + secret, 200, ""},
		{"BEARER, upper case, two spaces", "/live/tv1.isml/Streams(e)", "BEARER  " + secret, 200, ""},
		{"basic, lower case", "/live/tv1.isml/Streams(e)", basic("basic", "enc", secret), 200, ""},
		{"Basic", "/live/tv1.isml/Streams(e)", basic("Basic", "enc", secret), 200, ""},
		{"a wrong bearer token", "/live/tv1.isml/Streams(e)", "bearer wrong-secret-0123456789", 403, "wrong ingest secret"},
		{"a 1 MiB Bearer token", "/live/tv1.isml/Streams(e)", "Bearer " + huge, 431, "credentials are 1024 bytes at most"},
		{"a 1 MiB Basic password", "/live/tv1.isml/Streams(e)", basic("Basic", "enc", huge), 431, "credentials are 1024 bytes at most"},
		{"a 1 MiB token in the path", "/token/" + huge[:64<<10] + "/live/tv1.isml/Streams(e)", "", 414, "the ingest token in the path is over 1024 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := answerOf(t, hs.URL+tc.path, "tv1", map[string]string{"Authorization": tc.auth}, fixture(t))
			if a.status != tc.status || !strings.Contains(a.body, tc.reason) {
				t.Fatalf("%d %q, want %d with %q", a.status, a.body, tc.status, tc.reason)
			}
			if tc.status == 431 || tc.status == 414 {
				rec.Wait(t, slog.LevelWarn, "push refused: credentials too large", map[string]string{"status": strconv.Itoa(tc.status)})
			}
		})
	}
}

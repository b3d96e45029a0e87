package relay_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
)

// A secret sent in the /token/{secret}/ path prefix never shows: not on
// /status, /status.html or /metrics, not in the log, whatever the request
// came to (a push refused for its media, an upload refused, a request
// refused because the relay shuts down, which quoted its path whole).
func TestStatusNeverShowsAPathsToken(t *testing.T) {
	const secret = "the-secret-in-the-path-0123456789"
	cfg := relay.DefaultConfig()
	cfg.Secrets = mustSecrets(t, secret)
	hs, _, rec, rl := newRelay(t, cfg)
	admin := httptest.NewServer(rl.AdminHandler())
	t.Cleanup(admin.Close)
	tok := "/token/" + secret
	for _, r := range []struct {
		method, path string
		body         []byte
		status       int
	}{
		{"POST", tok + "/live/ch.isml/Streams(e)", []byte("garbage!garbage!"), 400},
		{"PUT", tok + "/live/ch.isml/seg.m4s", []byte("neither"), 400},
		{"POST", "/token/" + strings.ToUpper(secret) + "/live/ch.isml/Streams(e)", fixture(t), 403},
	} {
		if code, msg := testtool.Do(t, r.method, hs.URL+r.path, r.body, true); code != r.status {
			t.Fatalf("%s %s: %d %q, want %d", r.method, r.path, code, msg, r.status)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rl.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if code, msg := testtool.Do(t, "POST", hs.URL+tok+"/live/ch.isml/Streams(e)", fixture(t), true); code != 503 {
		t.Fatalf("a push while shutting down: %d %q, want 503", code, msg)
	}
	if n := len(rl.Status().RecentErrors); n != 4 {
		t.Errorf("%d recent errors, want the 4 refusals", n)
	}
	for _, page := range []string{"/status", "/status.html", "/metrics"} {
		code, body := httpGet(t, admin.URL+page)
		if code != 200 || strings.Contains(strings.ToLower(body), strings.ToLower(secret)) {
			t.Errorf("%s (%d) shows the secret:\n%s", page, code, body)
		}
	}
	for _, l := range rec.Lines() {
		if strings.Contains(strings.ToLower(l), strings.ToLower(secret)) {
			t.Errorf("the log shows the secret: %s", l)
		}
	}
}

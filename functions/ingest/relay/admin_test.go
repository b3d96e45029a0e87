package relay_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
)

// scrape reads the relay's /metrics: each sample line's name and labels
// (as the exposition format writes them) to its value.
func scrape(t *testing.T, rl *relay.Relay) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	rl.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// pushOnce pushes body to channel ch1 and returns the status.
func pushOnce(t *testing.T, url string, body []byte) int {
	t.Helper()
	code, _ := testtool.Do(t, "POST", url+"/live/ch1.isml/Streams(enc1)", body, true)
	return code
}

// The relay counts what it takes and what it refuses, by kind, in metrics
// whose names follow Prometheus' rules.
func TestMetrics(t *testing.T) {
	body := fixture(t)
	inits, segments := cmafRenditions(t, 2)
	uploaded := float64(len(inits[0]) + len(segments[0][0]) + len(segments[0][1]))
	for _, tc := range []struct {
		name    string
		cfg     func(*relay.Config)
		run     func(t *testing.T, hs *httptest.Server, rl *relay.Relay)
		want    map[string]float64 // exactly
		atLeast map[string]float64
	}{
		{
			name: "a push",
			run: func(t *testing.T, hs *httptest.Server, rl *relay.Relay) {
				if code := pushOnce(t, hs.URL, body); code != 200 {
					t.Fatalf("push: %d", code)
				}
			},
			want: map[string]float64{
				`smoothcast_fragments_total{outcome="written"}`:   6,
				`smoothcast_fragments_total{outcome="duplicate"}`: 0,
				`smoothcast_ingest_bytes_total{kind="push"}`:      float64(len(body)),
				`smoothcast_ingest_bytes_total{kind="upload"}`:    0,
				`smoothcast_fragment_store_delay_seconds_count`:   6,
				`smoothcast_errors_total{kind="protocol"}`:        0,
				`smoothcast_errors_total{kind="store"}`:           0,
				`smoothcast_store_retries_total{operation="put"}`: 0,
				// 3 init segments, 6 fragments, 3 end markers.
				`smoothcast_store_request_duration_seconds_count{operation="put",status="ok"}`:    12,
				`smoothcast_store_request_duration_seconds_count{operation="put",status="error"}`: 0,
			},
			atLeast: map[string]float64{
				`smoothcast_store_request_duration_seconds_count{operation="get",status="ok"}`: 1, // the channel clock
				`smoothcast_fragment_store_delay_seconds_sum`:                                  1e-9,
			},
		},
		{
			name: "the same push twice",
			run: func(t *testing.T, hs *httptest.Server, rl *relay.Relay) {
				for range 2 {
					if code := pushOnce(t, hs.URL, body); code != 200 {
						t.Fatalf("push: %d", code)
					}
				}
			},
			want: map[string]float64{
				`smoothcast_fragments_total{outcome="written"}`:   6,
				`smoothcast_fragments_total{outcome="duplicate"}`: 6,
				`smoothcast_fragment_store_delay_seconds_count`:   12,
				`smoothcast_ingest_bytes_total{kind="push"}`:      float64(2 * len(body)),
			},
		},
		{
			name: "without credentials",
			cfg:  func(c *relay.Config) { c.Secrets = relay.Secrets{Default: "a-secret-of-enough-length"} },
			run: func(t *testing.T, hs *httptest.Server, rl *relay.Relay) {
				if code := pushOnce(t, hs.URL, body); code != 401 {
					t.Fatalf("push: %d", code)
				}
			},
			want: map[string]float64{
				`smoothcast_errors_total{kind="auth"}`:          1,
				`smoothcast_ingest_bytes_total{kind="push"}`:    0,
				`smoothcast_fragments_total{outcome="written"}`: 0,
			},
		},
		{
			name: "a connection that breaks inside a box",
			run: func(t *testing.T, hs *httptest.Server, rl *relay.Relay) {
				if code := pushOnce(t, hs.URL, body[:len(body)-100]); code != 400 {
					t.Fatalf("push: %d", code)
				}
			},
			want: map[string]float64{
				`smoothcast_errors_total{kind="read"}`:          1,
				`smoothcast_errors_total{kind="protocol"}`:      0,
				`smoothcast_fragments_total{outcome="written"}`: 5,
			},
		},
		{
			name: "a box too large",
			cfg:  func(c *relay.Config) { c.MaxBox = 4096 },
			run: func(t *testing.T, hs *httptest.Server, rl *relay.Relay) {
				if code := pushOnce(t, hs.URL, body); code != 413 {
					t.Fatalf("push: %d", code)
				}
			},
			want: map[string]float64{`smoothcast_errors_total{kind="too_large"}`: 1},
		},
		{
			name: "not MP4",
			run: func(t *testing.T, hs *httptest.Server, rl *relay.Relay) {
				if code := pushOnce(t, hs.URL, []byte("\x00\x00\x00\x10<html>nonsense")); code != 400 {
					t.Fatalf("push: %d", code)
				}
			},
			want: map[string]float64{`smoothcast_errors_total{kind="protocol"}`: 1},
		},
		{
			name: "too many pushes",
			cfg:  func(c *relay.Config) { c.MaxStreamsPerChannel = 1 },
			run: func(t *testing.T, hs *httptest.Server, rl *relay.Relay) {
				hold(t, hs, rl, "ch1", "first")
				if code := pushOnce(t, hs.URL, body); code != 429 {
					t.Fatalf("push: %d", code)
				}
			},
			want: map[string]float64{
				`smoothcast_errors_total{kind="limit"}`:                1,
				`smoothcast_active_streams{channel="ch1",kind="push"}`: 1,
			},
		},
		{
			name: "an upload",
			run: func(t *testing.T, hs *httptest.Server, rl *relay.Relay) {
				for i, b := range [][]byte{inits[0], segments[0][0], segments[0][1]} {
					if code, msg := testtool.Do(t, "PUT", hs.URL+fmt.Sprintf("/live/up.isml/file-%d.m4s", i), b, false); code != 200 {
						t.Fatalf("upload %d: %d %s", i, code, msg)
					}
				}
				if code, _ := testtool.Do(t, "PUT", hs.URL+"/live/up.isml/late.m4s", segments[0][0][:20], false); code != 400 {
					t.Fatalf("a cut segment: %d", code)
				}
			},
			want: map[string]float64{
				`smoothcast_fragments_total{outcome="written"}`:         2,
				`smoothcast_ingest_bytes_total{kind="upload"}`:          uploaded + 20,
				`smoothcast_active_streams{channel="up",kind="upload"}`: 1,
				`smoothcast_errors_total{kind="protocol"}`:              1,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := relay.DefaultConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			hs, _, _, rl := newRelay(t, cfg)
			t.Cleanup(rl.CloseUploads)
			tc.run(t, hs, rl)
			got := scrape(t, rl)
			for k, v := range tc.want {
				if g, ok := got[k]; !ok || g != v {
					t.Errorf("%s = %v (present: %v), want %v", k, g, ok, v)
				}
			}
			for k, v := range tc.atLeast {
				if g := got[k]; g < v {
					t.Errorf("%s = %v, want at least %v", k, g, v)
				}
			}
			problems, err := testutil.GatherAndLint(rl.Registry())
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				if strings.HasPrefix(p.Metric, "smoothcast_") {
					t.Errorf("lint: %s: %s", p.Metric, p.Text)
				}
			}
		})
	}
}

// Two relays in one process keep metrics of their own.
func TestRelaysHaveTheirOwnMetrics(t *testing.T) {
	hs, _, _, a := newRelay(t, relay.DefaultConfig())
	_, _, _, b := newRelay(t, relay.DefaultConfig())
	if code := pushOnce(t, hs.URL, fixture(t)); code != 200 {
		t.Fatalf("push: %d", code)
	}
	const written = `smoothcast_fragments_total{outcome="written"}`
	if got, other := scrape(t, a)[written], scrape(t, b)[written]; got != 6 || other != 0 {
		t.Fatalf("%s: %v on the relay pushed to, %v on the other; want 6 and 0", written, got, other)
	}
}

// The admin endpoints answer what they serve, and only on the admin
// handler: the ingest port serves none of them.
func TestAdminRoutes(t *testing.T) {
	hs, _, _, rl := newRelay(t, relay.DefaultConfig())
	admin := httptest.NewServer(rl.AdminHandler())
	t.Cleanup(admin.Close)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		method, path string
		code         int
		contentType  string
		body         string
	}{
		{"GET", "/metrics", 200, "text/plain", `smoothcast_errors_total{kind="auth"} 0`},
		{"GET", "/healthz", 200, "text/plain", "ok"},
		{"GET", "/status", 200, "application/json", `"channels": []`},
		{"GET", "/status.html", 200, "text/html", "No stream in progress"},
		{"HEAD", "/healthz", 200, "text/plain", ""},
		{"GET", "/", 302, "", ""},
		{"POST", "/metrics", 405, "", ""},
		{"GET", "/live/ch1.isml/Streams(a)", 404, "", ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, admin.URL+tc.path, nil)
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.contentType) || !strings.Contains(string(b), tc.body) {
				t.Errorf("%d %q %.100q; want %d %q containing %q", resp.StatusCode, resp.Header.Get("Content-Type"), b, tc.code, tc.contentType, tc.body)
			}
		})
	}
	for _, path := range []string{"/metrics", "/healthz", "/status", "/status.html"} {
		if code, _ := testtool.Do(t, "GET", hs.URL+path, nil, false); code != 404 {
			t.Errorf("ingest port: GET %s: %d, want 404", path, code)
		}
	}
}

// getStatus reads /status.
func getStatus(t *testing.T, admin string) relay.Status {
	t.Helper()
	resp, err := http.Get(admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s relay.Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// waitStatus polls /status until ok holds, for up to five seconds.
func waitStatus(t *testing.T, admin string, what string, ok func(relay.Status) bool) relay.Status {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s := getStatus(t, admin)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s in /status: %+v", what, s)
		}
	}
}

// /status and /status.html show each push in progress (its encoder, its
// tracks, their fragments and how long ago the last came) and the recent
// errors; the push leaves them when it ends.
func TestStatus(t *testing.T) {
	body := fixture(t)
	boxes := topBoxes(t, body)
	hs, _, _, rl := newRelay(t, relay.DefaultConfig())
	admin := httptest.NewServer(rl.AdminHandler())
	t.Cleanup(admin.Close)
	// A push refused, to another channel.
	if code := pushOnceTo(t, hs.URL, "news", []byte("\x00\x00\x00\x10<html>nonsense")); code != 400 {
		t.Fatalf("bad push: %d", code)
	}
	p := testtool.OpenPush(t, hs.URL, "/live/ch1.isml/Streams(enc1)")
	second := boxes[6] // the mdat of the second fragment
	p.Send(t, body[:second.at+second.size])
	s := waitStatus(t, admin.URL, "two fragments", func(s relay.Status) bool {
		if len(s.Channels) != 1 || len(s.Channels[0].Streams) != 1 {
			return false
		}
		n := 0
		for _, tr := range s.Channels[0].Streams[0].Tracks {
			n += tr.Fragments
		}
		return n == 2
	})
	ch := s.Channels[0]
	st := ch.Streams[0]
	if ch.Channel != "ch1" || st.Kind != "push" || st.Stream != "enc1" || !strings.HasPrefix(st.Remote, "127.0.0.1:") ||
		st.Bytes != int64(second.at+second.size) || len(st.Tracks) != 2 || s.ShuttingDown {
		t.Fatalf("status %+v", s)
	}
	for _, tr := range st.Tracks {
		if tr.Name == "" || tr.Bitrate < 1000 || (tr.Kind != "video" && tr.Kind != "audio") || tr.Fragments != 1 ||
			tr.LastFragmentAge == nil || *tr.LastFragmentAge < 0 || *tr.LastFragmentAge > 10 {
			t.Errorf("track %+v", tr)
		}
	}
	if len(s.RecentErrors) != 1 || s.RecentErrors[0].Kind != "protocol" || s.RecentErrors[0].Channel != "news" || s.RecentErrors[0].Message == "" {
		t.Errorf("recent errors %+v, want the refused push", s.RecentErrors)
	}
	if got := scrape(t, rl)[`smoothcast_active_streams{channel="ch1",kind="push"}`]; got != 1 {
		t.Errorf("active streams of ch1: %v, want 1", got)
	}

	resp, err := http.Get(admin.URL + "/status.html")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`<meta http-equiv="refresh" content="2">`, "<h2>ch1</h2>", "enc1", st.Remote, st.Tracks[0].Name,
		fmt.Sprintf("%d kbit/s", (st.Tracks[0].Bitrate+500)/1000), "news", "protocol"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	for _, external := range []string{"<script", "src=", `href="http`, "@import", "url("} {
		if strings.Contains(string(page), external) {
			t.Errorf("status page has %q: it must stand alone", external)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("status page CSP %q", csp)
	}

	p.Send(t, body[second.at+second.size:])
	if code, msg := p.Finish(t); code != 200 {
		t.Fatalf("push: %d %s", code, msg)
	}
	waitStatus(t, admin.URL, "empty channel list", func(s relay.Status) bool { return len(s.Channels) == 0 })
	if _, ok := scrape(t, rl)[`smoothcast_active_streams{channel="ch1",kind="push"}`]; ok {
		t.Error("ch1 still has an active streams series after its push ended")
	}
}

func pushOnceTo(t *testing.T, url, channel string, body []byte) int {
	t.Helper()
	code, _ := testtool.Do(t, "POST", url+"/live/"+channel+".isml/Streams(enc1)", body, true)
	return code
}

// Recent errors are bounded: the newest are kept, newest first.
func TestRecentErrorsAreBounded(t *testing.T) {
	hs, _, _, rl := newRelay(t, relay.DefaultConfig())
	for i := range 60 {
		if code := pushOnceTo(t, hs.URL, fmt.Sprintf("ch%d", i), []byte("\x00\x00\x00\x10<html>nonsense")); code != 400 {
			t.Fatalf("bad push: %d", code)
		}
	}
	errs := rl.Status().RecentErrors
	if len(errs) != 50 || errs[0].Channel != "ch59" || errs[49].Channel != "ch10" {
		t.Fatalf("%d recent errors, from %s to %s; want 50, ch59 to ch10", len(errs), errs[0].Channel, errs[len(errs)-1].Channel)
	}
	if got := scrape(t, rl)[`smoothcast_errors_total{kind="protocol"}`]; got != 60 {
		t.Errorf("protocol errors %v, want 60", got)
	}
}

// A store that fails shows in the metrics (requests by status, retries,
// the error that ended a push), and, while the relay retries, as the
// stream's last error in /status.
func TestStoreFailuresInMetricsAndStatus(t *testing.T) {
	body := fixture(t)
	boxes := topBoxes(t, body)
	for _, tc := range []struct {
		name    string
		recover bool // the store comes back while the relay retries
		code    int
		want    map[string]float64
	}{
		{"the store comes back", true, 200, map[string]float64{
			`smoothcast_errors_total{kind="store"}`:         0,
			`smoothcast_fragments_total{outcome="written"}`: 6,
		}},
		{"the store stays down", false, 503, map[string]float64{
			`smoothcast_errors_total{kind="store"}`:         1,
			`smoothcast_fragments_total{outcome="written"}`: 0,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := &downStore{}
			ds.mode.Store(storeFailing)
			cfg := relay.DefaultConfig()
			cfg.StoreTimeout = 2 * time.Second
			rl := relay.New(ds, cfg, quiet)
			hs := httptest.NewServer(rl.Handler())
			t.Cleanup(hs.Close)
			p := testtool.OpenPush(t, hs.URL, "/live/ch1.isml/Streams(enc1)")
			p.Send(t, body[:boxes[4].at+boxes[4].size])
			var last *relay.ErrorStatus
			waitFor(t, "the stream's last error", func() bool {
				s := rl.Status()
				if len(s.Channels) == 1 {
					last = s.Channels[0].Streams[0].LastError
				}
				return last != nil
			})
			if last.Kind != "store" || !strings.Contains(last.Message, "retrying") || last.Channel != "ch1" || last.Stream != "enc1" {
				t.Errorf("last error %+v", last)
			}
			if tc.recover {
				ds.mode.Store(storeUp)
			}
			p.Send(t, body[boxes[4].at+boxes[4].size:])
			if code, msg := p.Finish(t); code != tc.code {
				t.Fatalf("push: %d %s, want %d", code, msg, tc.code)
			}
			got := scrape(t, rl)
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
			for _, k := range []string{`smoothcast_store_retries_total{operation="get"}`,
				`smoothcast_store_request_duration_seconds_count{operation="get",status="error"}`} {
				if got[k] < 1 {
					t.Errorf("%s = %v, want some", k, got[k])
				}
			}
			if rl.Retries() != int64(got[`smoothcast_store_retries_total{operation="get"}`]+got[`smoothcast_store_retries_total{operation="put"}`]) {
				t.Errorf("Retries() %d, metrics %v", rl.Retries(), got)
			}
		})
	}
}

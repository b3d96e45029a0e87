package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func setup(t *testing.T) (*httptest.Server, *store.Store, *s3local.Server) {
	t.Helper()
	srv, st := testtool.Store(t, "relay-test")
	hs := httptest.NewServer(relay.New(st, relay.DefaultConfig(), quiet).Handler())
	t.Cleanup(hs.Close)
	return hs, st, srv
}

func fixture(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../../shared/ingest/testdata/ffmpeg-isml.ismv")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoutes(t *testing.T) {
	hs, _, _ := setup(t)
	for _, tc := range []struct {
		name, method, path string
		status             int
	}{
		{"empty probe POST is accepted", "POST", "/live/ch1.isml/Streams(enc1)", 200},
		{"empty PUT is accepted", "PUT", "/live/ch1.isml/Streams(enc1)", 200},
		{"events segment is accepted", "POST", "/live/ch1.isml/Events(ev1)/Streams(enc1)", 200},
		{"GET on a stream URL is 405", "GET", "/live/ch1.isml/Streams(enc1)", 405},
		{"unknown path is 404", "POST", "/foo", 404},
		{"path traversal is 404", "POST", "/live/..%2f..%2fstate.isml/Streams(x)", 404},
		{"bad stream name is 404", "POST", "/live/ch1.isml/Streams(a b)", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, msg := testtool.Do(t, tc.method, hs.URL+tc.path, nil, false); got != tc.status {
				t.Fatalf("%s %s: %d (%s), want %d", tc.method, tc.path, got, msg, tc.status)
			}
		})
	}
}

func TestPushStoresInitSegmentsAndFragments(t *testing.T) {
	for _, chunked := range []bool{true, false} {
		t.Run(map[bool]string{true: "chunked", false: "content-length"}[chunked], func(t *testing.T) {
			hs, st, _ := setup(t)
			if code, msg := testtool.Do(t, "POST", hs.URL+"/live/ch1.isml/Streams(enc1)", fixture(t), chunked); code != 200 {
				t.Fatalf("push: %d %s", code, msg)
			}
			ks := testtool.Keys(t, st)
			var inits, frags, ends int
			for _, k := range ks {
				obj, err := layout.Parse(k)
				if err != nil {
					t.Errorf("stored key outside the layout: %s", k)
					continue
				}
				switch obj.Kind {
				case layout.KindInit:
					inits++
				case layout.KindEnd:
					ends++
					if o, err := st.Get(context.Background(), k); err != nil || string(o.Body) != `{"eos":true}` {
						t.Errorf("end marker %s: %q, %v; want the end of the stream", k, o.Body, err)
					}
				case layout.KindFragment:
					frags++
					o, err := st.GetRange(context.Background(), k, 0, 7)
					if err != nil {
						t.Fatal(err)
					}
					if string(o.Body[4:8]) != "moof" {
						t.Errorf("%s starts with %q, want a moof", k, o.Body[4:8])
					}
				}
			}
			// 3 tracks, 2 fragments of 2 s each (4 s fixture).
			// and an end marker per track.
			if inits != 3 || frags != 6 || ends != 3 {
				t.Fatalf("stored %d init segments, %d fragments and %d end markers, want 3, 6 and 3: %v", inits, frags, ends, ks)
			}
		})
	}
}

func TestResentFragmentsAreNotWrittenAgain(t *testing.T) {
	hs, st, srv := setup(t)
	body := fixture(t)
	testtool.Do(t, "POST", hs.URL+"/live/ch1.isml/Streams(enc1)", body, true)
	before := len(testtool.Keys(t, st))
	putsBefore := srv.Requests()["PUT"]
	// The encoder reconnects and sends the same stream again.
	if code, msg := testtool.Do(t, "POST", hs.URL+"/live/ch1.isml/Streams(enc1)", body, true); code != 200 {
		t.Fatalf("second push: %d %s", code, msg)
	}
	if after := len(testtool.Keys(t, st)); after != before {
		t.Fatalf("%d objects after the re-send, %d before", after, before)
	}
	// Each re-sent object costs one refused conditional PUT, nothing more.
	if puts := srv.Requests()["PUT"] - putsBefore; puts != before {
		t.Errorf("%d PUTs for %d re-sent objects", puts, before)
	}
}

func TestDroppedConnectionLeavesNoPartialFragment(t *testing.T) {
	body := fixture(t)
	for _, cut := range []int{100, 3000, len(body) / 2, len(body) - 100} {
		hs, st, _ := setup(t)
		code, msg := testtool.Do(t, "POST", hs.URL+"/live/ch1.isml/Streams(enc1)", body[:cut], true)
		if code != 400 || !strings.Contains(msg, "inside a box") {
			t.Errorf("cut at %d: %d %q, want 400 naming the truncation", cut, code, msg)
		}
		for _, k := range testtool.Keys(t, st) {
			obj, _ := layout.Parse(k)
			if obj.Kind == layout.KindEnd {
				// A drop is not the end of the stream.
				if o, err := st.Get(context.Background(), k); err != nil || string(o.Body) != `{"eos":false}` {
					t.Errorf("cut at %d: end marker %s: %q, %v; want a drop", cut, k, o.Body, err)
				}
			}
			if obj.Kind != layout.KindFragment {
				continue
			}
			o, err := st.Get(context.Background(), k)
			if err != nil {
				t.Fatal(err)
			}
			moof := int(o.Body[0])<<24 | int(o.Body[1])<<16 | int(o.Body[2])<<8 | int(o.Body[3])
			mdat := int(o.Body[moof])<<24 | int(o.Body[moof+1])<<16 | int(o.Body[moof+2])<<8 | int(o.Body[moof+3])
			if moof+mdat != len(o.Body) {
				t.Errorf("cut at %d: %s is %d bytes, its boxes say %d", cut, k, len(o.Body), moof+mdat)
			}
		}
	}
}

// slowStore takes its time over every fragment, as S3 does on a bad day.
type slowStore struct {
	*store.Store
	delay time.Duration
}

func (s slowStore) PutParts(ctx context.Context, key string, parts [][]byte, o store.PutOptions) (string, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return s.Store.PutParts(ctx, key, parts, o)
}

// An encoder that goes away does not take with it the fragments it had
// already sent: the relay, slower than the encoder, still stores every
// complete fragment that reached it, and only the broken one is lost.
func TestFragmentsSentBeforeADropAreStored(t *testing.T) {
	body := fixture(t)
	cut := len(body) - 100
	fragmentKeys := func(st *store.Store) []string {
		var out []string
		for _, k := range testtool.Keys(t, st) {
			if obj, _ := layout.Parse(k); obj.Kind == layout.KindFragment {
				out = append(out, k)
			}
		}
		return out
	}
	// What a relay that keeps up stores of the cut push.
	hs, ref, _ := setup(t)
	if code, _ := testtool.Do(t, "POST", hs.URL+"/live/ch1.isml/Streams(enc1)", body[:cut], true); code != 400 {
		t.Fatalf("reference push: %d", code)
	}
	want := fragmentKeys(ref)

	_, st := testtool.Store(t, "relay-slow")
	slow := httptest.NewServer(relay.New(slowStore{Store: st, delay: 50 * time.Millisecond}, relay.DefaultConfig(), quiet).Handler())
	t.Cleanup(slow.Close)
	conn, err := net.Dial("tcp", strings.TrimPrefix(slow.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /live/ch1.isml/Streams(enc1) HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n", cut)
	if _, err := conn.Write(body[:cut]); err != nil {
		t.Fatal(err)
	}
	conn.Close() // gone, long before the relay has stored what it sent
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := fragmentKeys(st)
		ends := 0
		for _, k := range testtool.Keys(t, st) {
			if obj, _ := layout.Parse(k); obj.Kind == layout.KindEnd {
				ends++
			}
		}
		if ends > 0 { // the session is over: its end markers are written last
			if !slices.Equal(got, want) {
				t.Fatalf("stored %d fragments after the drop, want the %d complete ones:\n%v\nwant\n%v", len(got), len(want), got, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session did not end: %d fragments stored", len(got))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// With S3 failing a third of all requests (503 SlowDown, 500), slowing
// some down and stalling a few past the client's patience, a push still
// stores everything it carries: the SDK and the relay retry, and a write
// that did happen behind a timeout is recognised when retried.
func TestPushSurvivesAFlakyStore(t *testing.T) {
	srv, st := testtool.Store(t, "relay-test")
	cfg := relay.DefaultConfig()
	cfg.AttemptTimeout = 300 * time.Millisecond
	rl := relay.New(st, cfg, quiet)
	hs := httptest.NewServer(rl.Handler())
	t.Cleanup(hs.Close)
	// A push makes a dozen PUTs: about 1 in 120 meets no fault, so push
	// again (to another channel) until one did.
	for i := range 5 {
		channel := fmt.Sprintf("ch%d", i)
		srv.SetFaults(s3local.Faults{ErrorRate: 0.33, StallRate: 0.05, Stall: 400 * time.Millisecond, Latency: time.Millisecond})
		if code, msg := testtool.Do(t, "POST", hs.URL+"/live/"+channel+".isml/Streams(enc1)", fixture(t), true); code != 200 {
			t.Fatalf("push %d: %d %s", i, code, msg)
		}
		srv.SetFaults(s3local.Faults{})
		kinds := map[layout.ObjectKind]int{}
		for _, k := range testtool.Keys(t, st) {
			if obj, err := layout.Parse(k); err == nil && obj.Channel == channel {
				kinds[obj.Kind]++
			}
		}
		if kinds[layout.KindFragment] != 6 || kinds[layout.KindInit] != 3 || kinds[layout.KindEnd] != 3 {
			t.Fatalf("push %d stored %v, want 6 fragments, 3 init segments, 3 end markers", i, kinds)
		}
		req := srv.Requests()
		t.Logf("after push %d: requests %v; relay retries %d", i, req, rl.Retries())
		if req["PUT 503"]+req["PUT 500"] > 0 {
			return
		}
	}
	t.Fatal("no fault was injected in 5 pushes")
}

// A store that stays down fails the encoder's request once StoreTimeout
// has passed, with the reason, instead of holding the stream forever.
func TestPushFailsWhenTheStoreStaysDown(t *testing.T) {
	srv, st := testtool.Store(t, "relay-test")
	cfg := relay.DefaultConfig()
	cfg.StoreTimeout, cfg.AttemptTimeout = time.Second, 500*time.Millisecond
	hs := httptest.NewServer(relay.New(st, cfg, quiet).Handler())
	t.Cleanup(hs.Close)
	srv.SetFaults(s3local.Faults{ErrorRate: 1})
	start := time.Now()
	code, msg := testtool.Do(t, "POST", hs.URL+"/live/ch1.isml/Streams(enc1)", fixture(t), true)
	if code != http.StatusServiceUnavailable || !strings.Contains(msg, "store") {
		t.Fatalf("push: %d %q, want 503 naming the store", code, msg)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("gave up after %v, want about StoreTimeout (1 s)", took)
	}
}

func TestAuthentication(t *testing.T) {
	_, st := testtool.Store(t, "relay-test")
	cfg := relay.DefaultConfig()
	var err error
	cfg.Secrets, err = relay.ParseSecrets("# ingest secrets\n*=default-secret-0123456789\nnews=news-secret-0123456789\n")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(relay.New(st, cfg, quiet).Handler())
	t.Cleanup(hs.Close)
	body := fixture(t)
	for _, tc := range []struct {
		name, path string
		header     map[string]string
		basic      [2]string
		status     int
	}{
		{"no credentials", "/live/refused.isml/Streams(e)", nil, [2]string{}, 401},
		{"wrong Basic password", "/live/refused.isml/Streams(e)", nil, [2]string{"enc", "not-the-secret-0123456789"}, 403},
		{"Basic, any user name", "/live/ch1.isml/Streams(e)", nil, [2]string{"enc", "default-secret-0123456789"}, 200},
		{"Bearer", "/live/ch2.isml/Streams(e)", map[string]string{"Authorization": "Bearer default-secret-0123456789"}, [2]string{}, 200},
		{"token in the path", "/token/default-secret-0123456789/live/ch3.isml/Streams(e)", nil, [2]string{}, 200},
		{"wrong token in the path", "/token/nope-nope-nope-nope/live/refused.isml/Streams(e)", nil, [2]string{}, 403},
		{"a channel's own secret", "/live/news.isml/Streams(e)", map[string]string{"Authorization": "Bearer news-secret-0123456789"}, [2]string{}, 200},
		{"the default is not a channel's own secret", "/live/news.isml/Streams(e)", map[string]string{"Authorization": "Bearer default-secret-0123456789"}, [2]string{}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", hs.URL+tc.path, bytes.NewReader(body))
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			if tc.basic[0] != "" {
				req.SetBasicAuth(tc.basic[0], tc.basic[1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, msg, tc.status)
			}
			if tc.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	// Refused pushes wrote nothing.
	for _, k := range testtool.Keys(t, st) {
		if strings.HasPrefix(k, "live/refused.isml/") {
			t.Errorf("a refused push stored %s", k)
		}
	}
}

func TestParseSecrets(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		ok         bool
		mode       string // with ok: what Mode says
	}{
		{"one secret alone", "just-one-secret-0123456789\n", true, "one secret for every channel"},
		{"a default and a channel", "*=default-secret-0123456789\nnews=news-secret-0123456789", true, "the default secret for the others"},
		{"channels only: the others are refused", "news=news-secret-0123456789\n# sport soon\n", true, "every other channel is refused"},
		{"comments and blank lines around one secret", "# the secret\n\n  just-one-secret-0123456789  \n\n", true, "one secret for every channel"},
		{"empty", "", false, ""},
		{"blank lines only", "\n \n\t\n", false, ""},
		{"comments only", "# news=news-secret-0123456789\n# *=default-secret-0123456789\n", false, ""},
		{"a channel twice", "news=news-secret-0123456789\nnews=other-secret-0123456789", false, ""},
		{"the default twice", "*=default-secret-0123456789\n*=other-secret-0123456789", false, ""},
		{"too short", "short", false, ""},
		{"a space", "has a space 0123456789", false, ""},
		{"a bad channel name", "bad/name=secret-0123456789012", false, ""},
		{"a slash in the secret", "news=with/slash-0123456789", false, ""},
		{"an empty secret", "news=", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := relay.ParseSecrets(tc.text)
			if (err == nil) != tc.ok {
				t.Fatalf("%q: err %v, want ok=%v", tc.text, err, tc.ok)
			}
			if !tc.ok {
				if s.On() {
					t.Errorf("a refused text left secrets set: %+v", s)
				}
				return
			}
			if !s.On() || !strings.Contains(s.Mode(), tc.mode) {
				t.Errorf("On %v, mode %q; want on, %q", s.On(), s.Mode(), tc.mode)
			}
		})
	}
	if m := (relay.Secrets{}).Mode(); !strings.HasPrefix(m, "off") {
		t.Errorf("no secrets: mode %q, want off", m)
	}
}

// A client that trickles its body below the rate floor is dropped with
// 408 and the reason.
func TestTricklingClientIsDropped(t *testing.T) {
	_, st := testtool.Store(t, "relay-test")
	cfg := relay.DefaultConfig()
	cfg.MinRate, cfg.RateWindow = 1000, 300*time.Millisecond
	hs := httptest.NewServer(relay.New(st, cfg, quiet).Handler())
	t.Cleanup(hs.Close)
	pr, pw := io.Pipe()
	go func() {
		body := fixture(t)
		for i := 0; i < len(body); i += 10 {
			if _, err := pw.Write(body[i:min(i+10, len(body))]); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond) // 200 bytes/s
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", hs.URL+"/live/ch1.isml/Streams(slow)", pr)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	pr.Close()
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(msg), "too slow") {
		t.Fatalf("%d %q, want 408 saying too slow", resp.StatusCode, msg)
	}
}

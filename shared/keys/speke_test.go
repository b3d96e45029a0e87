package keys_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/smoothcast/smoothcast/internal/testtool/logtest"
	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/keys"
	"github.com/smoothcast/smoothcast/shared/keys/speketest"
)

// clock is a settable clock for holds and signatures.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC)} }

// newSPEKE is a SPEKE source on srv, closed when the test ends.
func newSPEKE(t *testing.T, srv *speketest.Server, cfg keys.SPEKEConfig) *keys.SPEKE {
	t.Helper()
	cfg.URL = srv.URL
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = logtest.New().Logger()
	}
	s, err := keys.NewSPEKE(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// psshOf is the pssh box of system id in p.
func psshOf(t *testing.T, p cenc.Period, id cenc.SystemID) *mp4.PsshBox {
	t.Helper()
	for _, b := range p.PSSH {
		box, err := mp4.DecodeBox(0, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if ps := box.(*mp4.PsshBox); bytes.Equal(ps.SystemID, id[:]) {
			return ps
		}
	}
	t.Fatalf("no pssh of %s", cenc.SystemName(id))
	return nil
}

func TestSPEKEOneKey(t *testing.T) {
	ctx := context.Background()
	srv := speketest.New(t, speketest.Options{ContentIDPrefix: "test/"})
	s := newSPEKE(t, srv, keys.SPEKEConfig{ContentIDPrefix: "test/", KIDSalt: []byte("salt")})
	var _ keys.Source = s

	t.Run("every channel is encrypted with cbcs, one key", func(t *testing.T) {
		if p, ok := s.Plan("live"); !ok || p != (keys.Plan{Scheme: cenc.CBCS}) {
			t.Errorf("Plan = %+v, %v", p, ok)
		}
		if _, ok := s.Plan("bad/name"); ok {
			t.Error("a name that is no channel's is encrypted")
		}
	})
	p, err := s.Period(ctx, "live", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the key is the key server's for the KID asked", func(t *testing.T) {
		if p.Key != speketest.Key(p.Key.KID) {
			t.Errorf("key %v is not the key server's", p.Key)
		}
	})
	t.Run("a pssh per system, in the configured order, naming the KID", func(t *testing.T) {
		want := []cenc.SystemID{cenc.Widevine, cenc.PlayReady, cenc.FairPlay}
		if len(p.PSSH) != len(want) {
			t.Fatalf("%d pssh, want %d", len(p.PSSH), len(want))
		}
		for i, id := range want {
			box, err := mp4.DecodeBox(0, bytes.NewReader(p.PSSH[i]))
			if err != nil {
				t.Fatal(err)
			}
			ps := box.(*mp4.PsshBox)
			if !bytes.Equal(ps.SystemID, id[:]) || len(ps.KIDs) != 1 || !bytes.Equal(ps.KIDs[0], p.Key.KID[:]) {
				t.Errorf("pssh %d: system %x KIDs %x, want %s naming %s", i, ps.SystemID, ps.KIDs, cenc.SystemName(id), p.Key.KID)
			}
		}
	})
	t.Run("FairPlay's pssh data is the skd URI of the HLS signalling", func(t *testing.T) {
		if got := string(psshOf(t, p, cenc.FairPlay).Data); got != speketest.FairPlayURI(p.Key.KID) {
			t.Errorf("FairPlay pssh data %q, want %q", got, speketest.FairPlayURI(p.Key.KID))
		}
	})
	t.Run("without rotation every period is period 0, asked once, without a period list", func(t *testing.T) {
		for _, n := range []uint64{0, 7} {
			q, err := s.Period(ctx, "live", n)
			if err != nil || q.Key != p.Key {
				t.Errorf("period %d: %v, %v", n, q.Key, err)
			}
		}
		if got := srv.Requests("live", 0); got != 1 {
			t.Errorf("%d requests, want 1", got)
		}
		doc := string(srv.Document("live", 0))
		if strings.Contains(doc, "ContentKeyPeriod") || !strings.Contains(doc, `contentId="test/live"`) {
			t.Errorf("request document:\n%s", doc)
		}
	})
	t.Run("callers at once share one request", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if _, err := s.Period(ctx, "shared", 0); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if got := srv.Requests("shared", 0); got != 1 {
			t.Errorf("%d requests for 20 callers at once, want 1", got)
		}
	})
	t.Run("only the configured channels when some are", func(t *testing.T) {
		s := newSPEKE(t, srv, keys.SPEKEConfig{Channels: []string{"a"}, Scheme: cenc.CENC, RotateEvery: 3})
		if p, ok := s.Plan("a"); !ok || p != (keys.Plan{Scheme: cenc.CENC, RotateEvery: 3}) {
			t.Errorf("Plan(a) = %+v, %v", p, ok)
		}
		if _, ok := s.Plan("b"); ok {
			t.Error("channel b is encrypted")
		}
		if _, err := s.Period(ctx, "b", 0); err == nil {
			t.Error("a period of a channel not encrypted")
		}
	})
}

func TestSPEKERotation(t *testing.T) {
	ctx := context.Background()
	srv := speketest.New(t, speketest.Options{})
	s := newSPEKE(t, srv, keys.SPEKEConfig{RotateEvery: 4, Scheme: cenc.CENC, KIDSalt: []byte("a")})
	var periods []cenc.Period
	for n := range uint64(3) {
		p, err := s.Period(ctx, "live", n)
		if err != nil {
			t.Fatal(err)
		}
		periods = append(periods, p)
	}
	t.Run("each period has its own KID and key", func(t *testing.T) {
		for i := range periods {
			for j := range i {
				if periods[i].Key.KID == periods[j].Key.KID || periods[i].Key.Value == periods[j].Key.Value {
					t.Errorf("periods %d and %d share a KID or a key", j, i)
				}
			}
		}
	})
	t.Run("each request carries its period's index and scheme", func(t *testing.T) {
		for n, p := range periods {
			doc := string(srv.Document("live", uint64(n)))
			for _, want := range []string{
				fmt.Sprintf(`index="%d"`, n),
				fmt.Sprintf(`periodId="keyPeriod_%d"`, n),
				`commonEncryptionScheme="cenc"`,
				`kid="` + p.Key.KID.UUID() + `"`,
				`intendedTrackType="ALL"`,
			} {
				if !strings.Contains(doc, want) {
					t.Errorf("period %d: the request has no %s:\n%s", n, want, doc)
				}
			}
		}
	})
	t.Run("two relays ask for the same KID and get the same key", func(t *testing.T) {
		other := newSPEKE(t, srv, keys.SPEKEConfig{RotateEvery: 4, Scheme: cenc.CENC, KIDSalt: []byte("a")})
		p, err := other.Period(ctx, "live", 1)
		if err != nil {
			t.Fatal(err)
		}
		if p.Key != periods[1].Key {
			t.Errorf("the second relay's period 1 is %v, the first's %v", p.Key, periods[1].Key)
		}
	})
	t.Run("another salt asks other KIDs", func(t *testing.T) {
		other := newSPEKE(t, srv, keys.SPEKEConfig{RotateEvery: 4, Scheme: cenc.CENC, KIDSalt: []byte("b")})
		p, err := other.Period(ctx, "live", 1)
		if err != nil {
			t.Fatal(err)
		}
		if p.Key.KID == periods[1].Key.KID {
			t.Error("two salts, one KID")
		}
	})
}

func TestSPEKEPrefetch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv := speketest.New(t, speketest.Options{})
	s := newSPEKE(t, srv, keys.SPEKEConfig{RotateEvery: 2})
	if _, err := s.Period(ctx, "live", 0); err != nil {
		t.Fatal(err)
	}
	t.Run("period n+1 is asked once period n is", func(t *testing.T) {
		if err := srv.WaitRequests(ctx, "live", 1, 1); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the period fetched ahead is not asked again", func(t *testing.T) {
		if _, err := s.Period(ctx, "live", 1); err != nil {
			t.Fatal(err)
		}
		if got := srv.Requests("live", 1); got != 1 {
			t.Errorf("%d requests for period 1, want 1", got)
		}
	})
	t.Run("old periods are dropped beyond the cache's size", func(t *testing.T) {
		s := newSPEKE(t, srv, keys.SPEKEConfig{RotateEvery: 2, CachePeriods: 2})
		for n := range uint64(6) {
			if _, err := s.Period(ctx, "small", n); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Period(ctx, "small", 0); err != nil {
			t.Fatal(err)
		}
		if got := srv.Requests("small", 0); got != 2 {
			t.Errorf("period 0 asked %d times after 6 periods with a cache of 2, want 2 (dropped, asked again)", got)
		}
	})
}

func TestSPEKEFailure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv := speketest.New(t, speketest.Options{})
	clk := newClock()
	rec := logtest.New()
	s := newSPEKE(t, srv, keys.SPEKEConfig{RotateEvery: 2, Attempts: 2, Hold: time.Minute, Now: clk.Now, Logger: rec.Logger()})
	p0, err := s.Period(ctx, "live", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Period 1's request (fetched ahead) is answered; then the server fails.
	if err := srv.WaitRequests(ctx, "live", 1, 1); err != nil {
		t.Fatal(err)
	}
	srv.Fail(speketest.Unavailable)
	p1, err := s.Period(ctx, "live", 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a failure gives the last period with a StaleError", func(t *testing.T) {
		p, err := s.Period(ctx, "live", 2)
		var stale *keys.StaleError
		if !errors.As(err, &stale) {
			t.Fatalf("error %v, want a *StaleError", err)
		}
		if stale.Channel != "live" || stale.Want != 2 || stale.Have != 1 || p.Key != p1.Key {
			t.Errorf("stale %+v with %v, want period 1's %v", stale, p.Key, p1.Key)
		}
		if !strings.Contains(err.Error(), "503") {
			t.Errorf("error %q does not say what the key server answered", err)
		}
	})
	t.Run("a failure is tried Attempts times", func(t *testing.T) {
		if got := srv.Requests("live", 2); got != 2 {
			t.Errorf("%d requests for period 2, want 2", got)
		}
	})
	t.Run("during the hold, later periods are stale without a request", func(t *testing.T) {
		p, err := s.Period(ctx, "live", 3)
		var stale *keys.StaleError
		if !errors.As(err, &stale) || p.Key != p1.Key || stale.Have != 1 {
			t.Errorf("period 3: %v, %v", p.Key, err)
		}
		if got := srv.Requests("live", 3); got != 0 {
			t.Errorf("%d requests for period 3 during the hold", got)
		}
	})
	t.Run("kept periods are still answered", func(t *testing.T) {
		if p, err := s.Period(ctx, "live", 0); err != nil || p.Key != p0.Key {
			t.Errorf("period 0: %v, %v", p.Key, err)
		}
	})
	t.Run("after the hold, the key server is asked again and recovery is fresh", func(t *testing.T) {
		srv.Fail(speketest.Answer)
		clk.Add(time.Minute)
		p, err := s.Period(ctx, "live", 3)
		if err != nil {
			t.Fatal(err)
		}
		if p.Key != speketest.Key(p.Key.KID) || p.Key == p1.Key {
			t.Errorf("period 3 after recovery: %v", p.Key)
		}
	})
	t.Run("no key value in the log", func(t *testing.T) {
		lines := strings.Join(rec.Lines(), "\n")
		for _, p := range []cenc.Period{p0, p1} {
			if strings.Contains(strings.ToLower(lines), hex.EncodeToString(p.Key.Value[:])) {
				t.Error("a key value is in the log")
			}
		}
		if !strings.Contains(lines, "key server request failed") {
			t.Errorf("no failure in the log:\n%s", lines)
		}
	})
}

func TestSPEKEBadAnswers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name     string
		mode     speketest.Mode
		attempts int    // requests made
		want     string // in the error
	}{
		{"nothing yet and a failure is an error", speketest.Unavailable, 3, "503"},
		{"a client error is not tried again", speketest.Refuse, 1, "403"},
		{"garbage is an error", speketest.Garbage, 1, "not a CPIX document"},
		{"a KID other than the one asked is an error", speketest.WrongKID, 1, "answered KID"},
		{"a missing key is an error naming channel and period", speketest.NoKey, 1, "channel live: key period 0"},
		{"a missing pssh is an error naming the system", speketest.NoPSSH, 1, "DRM system widevine: PSSH: empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := speketest.New(t, speketest.Options{})
			srv.Fail(tc.mode)
			s := newSPEKE(t, srv, keys.SPEKEConfig{})
			_, err := s.Period(ctx, "live", 0)
			var stale *keys.StaleError
			if err == nil || errors.As(err, &stale) {
				t.Fatalf("error %v, want an error that is no StaleError", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "channel live") {
				t.Errorf("error %q, want it to name the channel and contain %q", err, tc.want)
			}
			if got := srv.Requests("live", 0); got != tc.attempts {
				t.Errorf("%d requests, want %d", got, tc.attempts)
			}
		})
	}
}

func TestSPEKETimeout(t *testing.T) {
	srv := speketest.New(t, speketest.Options{})
	srv.Fail(speketest.Hang)
	s := newSPEKE(t, srv, keys.SPEKEConfig{Timeout: 50 * time.Millisecond, Attempts: 2})
	start := time.Now()
	_, err := s.Period(context.Background(), "live", 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want a deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a hanging key server held Period %v", d)
	}
	if got := srv.Requests("live", 0); got != 2 {
		t.Errorf("%d requests, want 2 (one timed out, tried again)", got)
	}
}

func TestSPEKECloseEndsFetches(t *testing.T) {
	srv := speketest.New(t, speketest.Options{})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	before := runtime.NumGoroutine()
	s, err := keys.NewSPEKE(keys.SPEKEConfig{URL: srv.URL, RotateEvery: 1, Timeout: time.Hour, HTTPClient: &http.Client{Transport: tr}, Logger: logtest.New().Logger()})
	if err != nil {
		t.Fatal(err)
	}
	// Period 0 is answered, period 1 (fetched ahead) hangs.
	if _, err := s.Period(context.Background(), "live", 0); err != nil {
		t.Fatal(err)
	}
	srv.Fail(speketest.Hang)
	if err := srv.WaitRequests(context.Background(), "live", 1, 1); err != nil {
		t.Fatal(err)
	}
	// A caller's context bounds its wait, not the fetch. (No subtests
	// here: they would count as goroutines.)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Period(ctx, "live", 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a caller's deadline: error %v", err)
	}
	// Close ends the fetch under way and leaves no goroutine.
	s.Close()
	tr.CloseIdleConnections()
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
	}
	// After Close, a period not kept is an error, asked of no one.
	if _, err := s.Period(context.Background(), "other", 0); err == nil || srv.Requests("other", 0) != 0 {
		t.Errorf("a period after Close: %v, %d requests", err, srv.Requests("other", 0))
	}
}

func TestSPEKESigV4(t *testing.T) {
	ctx := context.Background()
	creds := aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", SessionToken: "session"}
	clk := newClock()
	srv := speketest.New(t, speketest.Options{Credentials: &creds, Region: "eu-west-1"})
	t.Run("a request signed at the clock's time is taken by an IAM-authorized key server", func(t *testing.T) {
		var sent http.Header
		s := newSPEKE(t, srv, keys.SPEKEConfig{
			Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken),
			Region:      "eu-west-1", Now: clk.Now,
			HTTPClient: &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
				sent = r.Header.Clone()
				return http.DefaultTransport.RoundTrip(r)
			})},
		})
		if _, err := s.Period(ctx, "live", 0); err != nil {
			t.Fatal(err)
		}
		for h, want := range map[string]string{
			"X-Amz-Date":           "20261207T200000Z",
			"X-Amz-Security-Token": "session",
			"Authorization":        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261207/eu-west-1/execute-api/aws4_request, SignedHeaders=",
		} {
			if got := sent.Get(h); !strings.HasPrefix(got, want) {
				t.Errorf("%s: %q, want %q", h, got, want)
			}
		}
	})
	t.Run("without credentials or with others it is refused", func(t *testing.T) {
		refusing := speketest.New(t, speketest.Options{Credentials: &creds, Region: "eu-west-1", AllowViolations: true})
		for _, cfg := range []keys.SPEKEConfig{
			{},
			{Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "other", ""), Region: "eu-west-1", Now: clk.Now},
			{Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken), Region: "us-east-1", Now: clk.Now},
		} {
			s := newSPEKE(t, refusing, cfg)
			if _, err := s.Period(ctx, "live", 0); err == nil || !strings.Contains(err.Error(), "422") {
				t.Errorf("error %v, want the key server's refusal", err)
			}
		}
		if got := len(refusing.Violations()); got != 3 {
			t.Errorf("%d refusals, want 3", got)
		}
	})
	t.Run("a SigV4 source needs a region", func(t *testing.T) {
		_, err := keys.NewSPEKE(keys.SPEKEConfig{URL: srv.URL, Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
		if err == nil {
			t.Error("no error")
		}
	})
}

func TestNewSPEKERefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  keys.SPEKEConfig
	}{
		{"no URL", keys.SPEKEConfig{}},
		{"a URL that is no http(s) one", keys.SPEKEConfig{URL: "ftp://k/"}},
		{"an unknown scheme", keys.SPEKEConfig{URL: "https://k/", Scheme: "cbc1"}},
		{"ClearKey", keys.SPEKEConfig{URL: "https://k/", Systems: []cenc.SystemID{cenc.ClearKey}}},
		{"a system twice", keys.SPEKEConfig{URL: "https://k/", Systems: []cenc.SystemID{cenc.Widevine, cenc.Widevine}}},
		{"a bad channel name", keys.SPEKEConfig{URL: "https://k/", Channels: []string{"a/b"}}},
		{"a negative rotation", keys.SPEKEConfig{URL: "https://k/", RotateEvery: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := keys.NewSPEKE(tc.cfg); err == nil {
				t.Error("no error")
			}
		})
	}
}

// roundTripper is an http.RoundTripper of a function.
type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/config"
	"github.com/smoothcast/smoothcast/shared/tlsfile"
)

// parseRunTLS reads run's TLS flags from args.
func parseRunTLS(t *testing.T, args ...string) *runTLS {
	t.Helper()
	fs := config.New("run", config.Prefix)
	fs.LookupEnv = func(string) (string, bool) { return "", false }
	o := &runTLS{}
	o.define(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return o
}

// `smoothcast run` keeps clear-text HTTP by default; -tls makes a
// self-signed certificate under -data-dir/tls and finds the same one on
// the next start (the fingerprint an encoder was told stays the same),
// with the -tls-host names added; without -data-dir it lives in a
// temporary directory removed at exit; -tls-cert takes a given one (and
// implies -tls), -tls-key alone is refused.
func TestRunTLSCertificate(t *testing.T) {
	given, givenKey, _, err := tlsfile.SelfSigned(t.TempDir(), []string{"given.example"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name    string
		args    []string
		dataDir string
		none    bool     // no TLS
		names   []string // the certificate holds them
		err     string
	}{
		{name: "off by default", none: true},
		{name: "-tls: self-signed, under -data-dir", args: []string{"-tls", "-tls-host", "relay.example, 192.0.2.7"}, dataDir: "data", names: []string{"localhost", "127.0.0.1", "::1", "relay.example", "192.0.2.7"}},
		{name: "-tls without -data-dir: a temporary directory", args: []string{"-tls"}, names: []string{"localhost"}},
		{name: "-tls-cert: the given certificate", args: []string{"-tls-cert", given, "-tls-key", givenKey}, dataDir: "data", names: []string{"given.example"}},
		{name: "-tls-key alone", args: []string{"-tls-key", givenKey}, err: "-tls-key needs -tls-cert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := ""
			if tc.dataDir != "" {
				dir = filepath.Join(t.TempDir(), tc.dataDir)
			}
			start := func() (*runTLS, *x509.Certificate) {
				o := parseRunTLS(t, tc.args...)
				o.dataDir = dir
				k, err := o.load(log, time.Now())
				if tc.err != "" {
					if err == nil || !strings.Contains(err.Error(), tc.err) {
						t.Fatalf("error %v, want %q", err, tc.err)
					}
					return o, nil
				}
				if err != nil {
					t.Fatal(err)
				}
				if k == nil {
					return o, nil
				}
				c, err := k.Get()
				if err != nil {
					t.Fatal(err)
				}
				return o, c.Leaf
			}
			o, first := start()
			if tc.err != "" {
				return
			}
			if (first == nil) != tc.none {
				t.Fatalf("TLS on: %v, want %v", first != nil, !tc.none)
			}
			if first == nil {
				return
			}
			for _, n := range tc.names {
				if err := first.VerifyHostname(n); err != nil {
					t.Errorf("%s: %v", n, err)
				}
			}
			if o.generated && dir != "" && o.certFile != filepath.Join(dir, "tls", "cert.pem") {
				t.Errorf("certificate in %s, want under -data-dir/tls", o.certFile)
			}
			if banner := o.banner(mustLoad(t, o.certFile), "https://127.0.0.1:8080", "rtmps://127.0.0.1:1936/live"); !strings.Contains(banner, tlsfile.Fingerprint(first)) ||
				!strings.Contains(banner, "-ca_file "+o.certFile) || !strings.Contains(banner, "rtmps://127.0.0.1:1936/live/{channel}") {
				t.Errorf("the banner lacks the fingerprint, the file or the RTMPS URL:\n%s", banner)
			}
			o.close()
			if dir == "" {
				if _, err := os.Stat(o.certFile); err == nil {
					t.Errorf("%s outlives the run without -data-dir", o.certFile)
				}
				return
			}
			_, again := start()
			if tlsfile.Fingerprint(again) != tlsfile.Fingerprint(first) {
				t.Errorf("the next start serves %s, not %s", tlsfile.Fingerprint(again), tlsfile.Fingerprint(first))
			}
		})
	}
}

// mustLoad loads a certificate whose key is in the same directory.
func mustLoad(t *testing.T, certFile string) *tlsfile.KeyPair {
	t.Helper()
	keyFile := filepath.Join(filepath.Dir(certFile), "key.pem")
	k, err := tlsfile.Load(certFile, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// With -tls the local stack's ingest is HTTPS only (a clear-text request
// is answered 400) and its RTMPS listener is up, both with the
// certificate the banner names, which a client that trusts that file
// verifies.
func TestRunTLSStack(t *testing.T) {
	o := parseRunTLS(t, "-tls")
	o.dataDir = t.TempDir()
	k, err := o.load(slog.New(slog.DiscardHandler), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	st, err := stack.Start(context.Background(), stack.Options{
		IngestAddr: "127.0.0.1:0", EdgeAddr: "127.0.0.1:0", IngestTLS: k.Config(), RTMPSAddr: "127.0.0.1:0", RTMPTLS: k.Config(),
		Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	if !strings.HasPrefix(st.IngestURL, "https://") || !strings.HasPrefix(st.RTMPSURL, "rtmps://") {
		t.Fatalf("ingest %s, RTMPS %s", st.IngestURL, st.RTMPSURL)
	}
	pem, err := os.ReadFile(o.certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	trusting := &tls.Config{RootCAs: roots, ServerName: "localhost"}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: trusting}}
	resp, err := client.Get(st.IngestURL + "/live/a.isml/Streams(a)")
	if err != nil {
		t.Fatalf("a client that trusts %s: %v", o.certFile, err)
	}
	resp.Body.Close()
	resp, err = http.Get("http://" + strings.TrimPrefix(st.IngestURL, "https://") + "/live/a.isml/Streams(a)")
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("clear text: %s %q, want 400", resp.Status, msg)
	}
	conn, err := tls.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(st.RTMPSURL, "rtmps://"), "/live"), trusting)
	if err != nil {
		t.Fatalf("RTMPS: %v", err)
	}
	conn.Close()
}

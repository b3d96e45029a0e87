package tlsfile

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/internal/testtool/logtest"
)

// selfSigned makes a certificate for hosts under a new directory.
func selfSigned(t *testing.T, hosts ...string) (certFile, keyFile string, leaf *x509.Certificate) {
	t.Helper()
	certFile, keyFile, _, err := SelfSigned(t.TempDir(), hosts, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, c.Leaf
}

// The fingerprint is the one `openssl x509 -noout -fingerprint -sha256`
// prints, which an operator compares with what an encoder shows.
func TestFingerprintIsOpenSSLs(t *testing.T) {
	openssl := testtool.Require(t, "openssl")
	certFile, _, leaf := selfSigned(t)
	out, err := exec.Command(openssl, "x509", "-noout", "-fingerprint", "-sha256", "-in", certFile).Output()
	if err != nil {
		t.Fatal(err)
	}
	_, want, _ := strings.Cut(strings.TrimSpace(string(out)), "Fingerprint=")
	if got := Fingerprint(leaf); got != want {
		t.Errorf("fingerprint %s, openssl says %s", got, want)
	}
}

// A key pair is read again when its files change: a renewed certificate
// is served without a restart; a renewal that does not load keeps the
// certificate before it, and is logged once; one file may hold the
// certificate and the key.
func TestKeyPairIsReadAgainWhenItChanges(t *testing.T) {
	dir := t.TempDir()
	both := filepath.Join(dir, "both.pem")
	cat := func(certFile, keyFile string) []byte {
		var b []byte
		for _, f := range []string{certFile, keyFile} {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, data...)
		}
		return b
	}
	write := func(data []byte, mtime time.Time) {
		if err := os.WriteFile(both, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(both, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	c1, k1, first := selfSigned(t)
	c2, k2, second := selfSigned(t, "renewed.example")
	start := time.Now().Add(-time.Hour)
	write(cat(c1, k1), start)
	rec := logtest.New()
	kp, err := Load(both, "", slog.New(rec))
	if err != nil {
		t.Fatal(err)
	}
	served := func() *x509.Certificate {
		kp.mu.Lock()
		kp.checked = time.Time{} // the next Get looks at the file
		kp.mu.Unlock()
		c, err := kp.Get()
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf
	}
	for i, step := range []struct {
		name   string
		data   []byte
		want   *x509.Certificate
		errors int // log lines so far
	}{
		{"unchanged", nil, first, 0},
		{"renewed", cat(c2, k2), second, 0},
		{"a renewal that does not load", []byte("garbage"), second, 1},
		{"the same failure again, not logged again", []byte("garbage!"), second, 1},
		{"renewed again", cat(c1, k1), first, 1},
	} {
		if step.data != nil {
			write(step.data, start.Add(time.Duration(i)*time.Minute))
		}
		if got := served(); !got.Equal(step.want) {
			t.Errorf("%s: serves %s, want %s", step.name, Fingerprint(got), Fingerprint(step.want))
		}
		if n := len(rec.Records()); n != step.errors {
			t.Errorf("%s: %d log lines, want %d:\n%s", step.name, n, step.errors, strings.Join(rec.Lines(), "\n"))
		}
	}
	if cfg := kp.Config(); cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion %x, want TLS 1.2", cfg.MinVersion)
	}
}

// The local stack's certificate is kept across restarts (the fingerprint
// an encoder trusts stays the same), and made again when it lacks a host
// asked for, expires within 30 days, or does not load; it holds
// localhost, 127.0.0.1 and ::1 always, and its key is readable by its
// owner only.
func TestSelfSignedIsKeptUnlessItMustChange(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name   string
		before func(dir string)
		hosts  []string
		when   time.Time
		made   bool
	}{
		{name: "kept across restarts", hosts: nil, when: now},
		{name: "kept for a host it holds", hosts: []string{"127.0.0.1", "localhost"}, when: now},
		{name: "made again for a new host", hosts: []string{"relay.example", "192.0.2.7"}, when: now, made: true},
		{name: "made again a month before it expires", when: now.Add(selfSignedFor - 29*24*time.Hour), made: true},
		{name: "kept two months before", when: now.Add(selfSignedFor - 60*24*time.Hour)},
		{name: "made again when it does not load", before: func(dir string) {
			if err := os.WriteFile(filepath.Join(dir, "cert.pem"), []byte("garbage"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, when: now, made: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "tls")
			c1, k1, made, err := SelfSigned(dir, nil, now)
			if err != nil || !made {
				t.Fatalf("first: made %v, %v", made, err)
			}
			firstPEM, _ := os.ReadFile(c1)
			if tc.before != nil {
				tc.before(dir)
			}
			c2, k2, made, err := SelfSigned(dir, tc.hosts, tc.when)
			if err != nil || c2 != c1 || k2 != k1 {
				t.Fatalf("second: %s %s, %v", c2, k2, err)
			}
			secondPEM, _ := os.ReadFile(c2)
			if made != tc.made || (string(firstPEM) == string(secondPEM)) == tc.made {
				t.Errorf("made %v (certificate changed: %v), want %v", made, string(firstPEM) != string(secondPEM), tc.made)
			}
			pair, err := tls.LoadX509KeyPair(c2, k2)
			if err != nil {
				t.Fatal(err)
			}
			leaf := pair.Leaf
			for _, h := range append(slices.Clone(DefaultHosts), tc.hosts...) {
				if err := leaf.VerifyHostname(h); err != nil {
					t.Errorf("%s: %v", h, err)
				}
			}
			if fi, err := os.Stat(k2); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("key file %v, %v; want mode 0600", fi.Mode(), err)
			}
			roots := x509.NewCertPool()
			roots.AddCert(leaf)
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost", CurrentTime: tc.when}); err != nil {
				t.Errorf("not trusted as its own root: %v", err)
			}
		})
	}
}

// A client that speaks clear-text HTTP to an HTTPS server is answered
// 400 by net/http, and logged once per remote host, however often it
// comes back; a failed handshake of another kind is logged once too, and
// the server's other error lines reach the log as errors.
func TestHandshakeLogOncePerRemoteHost(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t)
	kp, err := Load(certFile, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := logtest.New()
	hl := NewHandshakeLog(slog.New(rec))
	srv := &http.Server{Handler: http.NotFoundHandler(), ErrorLog: hl.ErrorLog()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(tls.NewListener(ln, kp.Config())) }()
	t.Cleanup(func() { _ = srv.Close() })
	for range 3 {
		// Headers alone: net/http reads them whole before it answers (a
		// body still coming would meet a reset connection).
		resp, err := http.Get("http://" + ln.Addr().String() + "/live/a.isml/Manifest")
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), "HTTP request to an HTTPS server") {
			t.Errorf("clear text: %s %q", resp.Status, msg)
		}
	}
	// net/http logs after it has answered.
	rec.Wait(t, slog.LevelWarn, "clear-text connection to a TLS port refused: the encoder must use https:// or rtmps:// (logged once per remote host)", map[string]string{"remote": "127.0.0.1"})

	// The lines net/http writes, as it writes them, from one host and
	// another.
	w := hl.ErrorLog().Writer()
	for _, line := range []string{
		"http: TLS handshake error from 127.0.0.1:40001: client sent an HTTP request to an HTTPS server\n",
		"http: TLS handshake error from 127.0.0.1:40002: client sent an HTTP request to an HTTPS server\n",
		"http: TLS handshake error from [2001:db8::1]:40003: client sent an HTTP request to an HTTPS server\n",
		"http: TLS handshake error from 127.0.0.1:40004: remote error: tls: bad certificate\n",
		"http: TLS handshake error from 127.0.0.1:40005: EOF\n",
		"http: Accept error: too many open files; retrying in 5ms\n",
	} {
		if _, err := io.WriteString(w, line); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, r := range rec.Records() {
		got = append(got, r.Level.String()+" "+logtest.Attrs(r)["remote"]+" "+logtest.Attrs(r)["err"])
	}
	want := []string{
		"WARN 127.0.0.1 client sent an HTTP request to an HTTPS server",
		"WARN 2001:db8::1 client sent an HTTP request to an HTTPS server",
		"INFO 127.0.0.1 remote error: tls: bad certificate",
		"ERROR  http: Accept error: too many open files; retrying in 5ms",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("logged:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

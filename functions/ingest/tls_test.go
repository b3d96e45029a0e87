package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/internal/testtool/logtest"
	"github.com/smoothcast/smoothcast/shared/store/storetest"
	"github.com/smoothcast/smoothcast/shared/tlsfile"
)

// With -tls-cert, -addr serves HTTPS only: a push over https:// is
// stored; a push in clear-text HTTP is answered 400 (net/http's "Client
// sent an HTTP request to an HTTPS server"), stores nothing, and is
// logged once for the remote host however often it comes; a client that
// offers TLS 1.1 at most is refused. At start the certificate's
// fingerprint, names and addresses are logged.
func TestIngestServesHTTPSOnly(t *testing.T) {
	body, err := os.ReadFile("../../shared/ingest/testdata/ffmpeg-isml.ismv")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, _, err := tlsfile.SelfSigned(t.TempDir(), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	o, err := parseWithEnv([]string{"-tls-cert", certFile, "-tls-key", keyFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := logtest.New()
	log := slog.New(rec)
	cert, err := o.tls.load(log)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := cert.Get()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rec.Find(slog.LevelInfo, "ingest certificate (-tls-cert)", map[string]string{
		"fingerprint_sha256": tlsfile.Fingerprint(leaf.Leaf), "dns_names": "[localhost]", "ip_addresses": "[127.0.0.1 ::1]",
	}); !ok {
		t.Errorf("no start line with the certificate's fingerprint, names and addresses:\n%s", strings.Join(rec.Lines(), "\n"))
	}
	mem := &storetest.Mem{}
	rl := relay.New(mem, relay.DefaultConfig(), log)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, log, rl, listenTLS(rl, raw, cert), nil, time.Second, 5*time.Second)
	}()
	t.Cleanup(func() { stop(); <-done })
	addr := raw.Addr().String()

	for range 3 {
		// The encoder reads net/http's 400, or (when it is still sending
		// as the relay closes) a broken pipe or reset connection.
		resp, err := http.Post("http://"+addr+"/live/clear.isml/Streams(enc1)", "video/mp4", bytes.NewReader(body))
		if err == nil {
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), "HTTPS") {
				t.Fatalf("a clear-text push: %s %q, want 400 naming HTTPS", resp.Status, msg)
			}
		} else if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("a clear-text push: %v, want 400, a broken pipe or a reset", err)
		}
	}
	if n := mem.Len(); n != 0 {
		t.Fatalf("clear-text pushes stored %d objects", n)
	}
	// net/http logs after it has answered.
	rec.Wait(t, slog.LevelWarn, "clear-text connection to a TLS port refused: the encoder must use https:// or rtmps:// (logged once per remote host)", map[string]string{"remote": "127.0.0.1"})
	warned := 0
	for _, r := range rec.Records() {
		if strings.HasPrefix(r.Message, "clear-text connection to a TLS port refused") {
			warned++
		}
	}
	if warned != 1 {
		t.Errorf("%d warnings for 3 clear-text pushes from one host, want 1:\n%s", warned, strings.Join(rec.Lines(), "\n"))
	}

	if _, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("a TLS 1.1 client was served")
	}

	roots := x509.NewCertPool()
	roots.AddCert(leaf.Leaf)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := client.Post("https://"+addr+"/live/secure.isml/Streams(enc1)", "video/mp4", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || mem.Len() == 0 {
		t.Errorf("a push over HTTPS: %s, %d objects stored", resp.Status, mem.Len())
	}
}

// The ingest certificate's flags: -tls-key without -tls-cert is refused,
// and the key defaults to the certificate's file (one PEM holding both).
func TestTLSOptions(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      []string
		cert, key string
		wantErr   string
	}{
		{name: "none: clear-text HTTP"},
		{name: "a certificate and its key", args: []string{"-tls-cert", "c.pem", "-tls-key", "k.pem"}, cert: "c.pem", key: "k.pem"},
		{name: "one file holding both", args: []string{"-tls-cert", "both.pem"}, cert: "both.pem"},
		{name: "a key without a certificate", args: []string{"-tls-key", "k.pem"}, wantErr: "-tls-key needs -tls-cert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseWithEnv(tc.args, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || o.tls.cert != tc.cert || o.tls.key != tc.key {
				t.Fatalf("cert %q key %q, %v; want %q %q", o.tls.cert, o.tls.key, err, tc.cert, tc.key)
			}
		})
	}
}

// The SRT passphrase may come from an SSM parameter (a SecureString,
// SMOOTHCAST_SRT_PASSPHRASE_PARAMETER), read at start as the ingest
// secret is: the value is the passphrase, white space around it trimmed;
// one SRT cannot use (empty, too short, too long) or a parameter that
// does not exist stops the relay with an error that never shows the
// passphrase; the flag and -srt-passphrase together are refused; the
// configuration's log line names the parameter, not its value.
func TestSRTPassphraseFromSSM(t *testing.T) {
	const good, short = "ssm-passphrase-0123", "short-pas"
	ssm := testtool.NewSSM(t, map[string]string{
		"/smoothcast/srt": good + "\n", "/smoothcast/short": short, "/smoothcast/long": strings.Repeat("p", 80), "/smoothcast/empty": " ",
	})
	t.Setenv("AWS_ENDPOINT_URL_SSM", ssm.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	for _, tc := range []struct {
		name     string
		env      map[string]string
		args     []string
		want     string
		parseErr string
		loadErr  string
	}{
		{name: "the parameter from the environment", env: map[string]string{"SMOOTHCAST_SRT_PASSPHRASE_PARAMETER": "/smoothcast/srt"}, want: good},
		{name: "the parameter from the flag", args: []string{"-srt-passphrase-parameter", "/smoothcast/srt"}, want: good},
		{name: "too short", args: []string{"-srt-passphrase-parameter", "/smoothcast/short"}, loadErr: "9 characters; SRT takes 10 to 79"},
		{name: "too long", args: []string{"-srt-passphrase-parameter", "/smoothcast/long"}, loadErr: "80 characters; SRT takes 10 to 79"},
		{name: "empty", args: []string{"-srt-passphrase-parameter", "/smoothcast/empty"}, loadErr: "/smoothcast/empty (-srt-passphrase-parameter) is empty"},
		{name: "a parameter that does not exist", args: []string{"-srt-passphrase-parameter", "/smoothcast/none"}, loadErr: "ParameterNotFound"},
		{name: "both the passphrase and its parameter", args: []string{"-srt-passphrase", good, "-srt-passphrase-parameter", "/smoothcast/srt"}, parseErr: "set one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseWithEnv(tc.args, tc.env)
			if tc.parseErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.parseErr) || strings.Contains(err.Error(), good) {
					t.Fatalf("error %v, want %q without the passphrase", err, tc.parseErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rec := logtest.New()
			o.settings.Log(slog.New(rec), "configuration")
			if lines := strings.Join(rec.Lines(), "\n"); !strings.Contains(lines, "srt_passphrase_parameter=/smoothcast/") {
				t.Errorf("the configuration does not name the parameter: %s", lines)
			}
			got, err := loadSRTPassphrase(context.Background(), o.srtPassphraseParameter, "us-east-1")
			if tc.loadErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.loadErr) || strings.Contains(err.Error(), short) {
					t.Fatalf("error %v, want %q without the passphrase", err, tc.loadErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("passphrase %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// RTMPS takes no clear text: an rtmp:// publish to its port (RTMP's
// handshake where TLS's was due) is closed before anything reaches the
// relay, and logged once for the remote host however often it comes.
func TestRTMPInClearTextToRTMPSIsRefused(t *testing.T) {
	certFile, keyFile, _, err := tlsfile.SelfSigned(t.TempDir(), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	o, err := parseWithEnv([]string{"-rtmp-addr", "", "-rtmps-addr", "127.0.0.1:0", "-tls-cert", certFile, "-tls-key", keyFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mem := &storetest.Mem{}
	srv, rec, err := startRTMP(t, o, mem)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	addr := rec.Wait(t, slog.LevelInfo, "rtmp listener", map[string]string{"tls": "true"})["addr"]
	const clearText = "clear-text connection to a TLS port refused: the encoder must use https:// or rtmps:// (logged once per remote host)"
	for i := range 3 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		// C0 (version 3) and C1 (time, zero, 1528 bytes), as an RTMP
		// client opens.
		if _, err := conn.Write(append([]byte{3}, make([]byte, 1536)...)); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(conn)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("attempt %d: still open", i)
		}
		if len(got) > 0 && got[0] == 3 {
			t.Fatalf("attempt %d: answered with RTMP's S0", i)
		}
		conn.Close()
		if i == 0 {
			rec.Wait(t, slog.LevelWarn, clearText, map[string]string{"remote": "127.0.0.1"})
		}
	}
	// The server logs before it closes: every attempt is in by now.
	warned := 0
	for _, r := range rec.Records() {
		if r.Message == clearText {
			warned++
		}
	}
	if warned != 1 || mem.Len() != 0 {
		t.Errorf("%d warnings for 3 attempts from one host (want 1), %d objects stored (want 0):\n%s", warned, mem.Len(), strings.Join(rec.Lines(), "\n"))
	}
}

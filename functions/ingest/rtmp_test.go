package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/functions/ingest/rtmp"
	"github.com/smoothcast/smoothcast/internal/testtool/logtest"
	"github.com/smoothcast/smoothcast/shared/store/storetest"
	"github.com/smoothcast/smoothcast/shared/tlsfile"
)

// RTMP listens on :1935 unless turned off; RTMPS takes its address, its
// certificate and its key together, or its address and the ingest
// listener's certificate (-tls-cert); a certificate that does not load
// stops the relay, an address that is taken only costs its publishes
// (logged loudly), as the admin address does.
func TestRTMPListeners(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	bad := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	good, goodKey, _, err := tlsfile.SelfSigned(t.TempDir(), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		args     []string
		parseErr string // parseOptions refuses
		listens  int    // listeners up
		err      string // listenRTMP refuses
		logged   string
	}{
		{name: "RTMP on a free port", args: []string{"-rtmp-addr", "127.0.0.1:0"}, listens: 1},
		{name: "RTMP off", args: []string{"-rtmp-addr", ""}},
		{name: "RTMP on a taken port", args: []string{"-rtmp-addr", taken.Addr().String()}, logged: "NO RTMP PUBLISHES"},
		{name: "RTMPS without a certificate", args: []string{"-rtmps-addr", "127.0.0.1:0"}, parseErr: "-rtmps-addr needs -rtmps-cert and -rtmps-key"},
		{name: "a certificate without RTMPS", args: []string{"-rtmps-cert", bad, "-rtmps-key", bad}, parseErr: "-rtmps-addr needs"},
		{name: "RTMPS with a certificate that does not load", args: []string{"-rtmp-addr", "", "-rtmps-addr", "127.0.0.1:0", "-rtmps-cert", bad, "-rtmps-key", bad}, err: "rtmps certificate"},
		{name: "RTMPS with its own certificate", args: []string{"-rtmp-addr", "", "-rtmps-addr", "127.0.0.1:0", "-rtmps-cert", good, "-rtmps-key", goodKey}, listens: 1},
		{name: "RTMPS with the ingest listener's certificate", args: []string{"-rtmp-addr", "", "-rtmps-addr", "127.0.0.1:0", "-tls-cert", good, "-tls-key", goodKey}, listens: 1},
		{name: "RTMPS with half a certificate of its own", args: []string{"-rtmps-addr", "127.0.0.1:0", "-rtmps-cert", good, "-tls-cert", good}, parseErr: "-rtmps-addr needs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseOptions(append([]string{"-bucket", "b"}, tc.args...), func(string) (string, bool) { return "", false })
			if tc.parseErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.parseErr) {
					t.Fatalf("parseOptions: %v, want %q", err, tc.parseErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			srv, rec, err := startRTMP(t, o, &storetest.Mem{})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("listenRTMP: %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if srv != nil {
				defer srv.Close()
			}
			up := 0
			for _, r := range rec.Records() {
				if r.Message == "rtmp listener" {
					up++
				}
			}
			if up != tc.listens {
				t.Errorf("%d listeners up, want %d", up, tc.listens)
			}
			if lines := strings.Join(rec.Lines(), "\n"); tc.logged != "" && !strings.Contains(lines, tc.logged) {
				t.Errorf("the log does not say %q:\n%s", tc.logged, lines)
			}
		})
	}
}

// startRTMP runs listenRTMP as run does (-tls-cert's certificate loaded)
// for a relay over mem, logging to rec.
func startRTMP(t *testing.T, o options, mem *storetest.Mem) (*rtmp.Server, *logtest.Recorder, error) {
	t.Helper()
	rec := logtest.New()
	log := slog.New(rec)
	var err error
	if o.rtmp.ingestCert, err = o.tls.load(log); err != nil {
		t.Fatal(err)
	}
	srv, err := listenRTMP(context.Background(), log, relay.New(mem, relay.DefaultConfig(), log), o.rtmp)
	return srv, rec, err
}

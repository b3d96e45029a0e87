package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/functions/ingest/srt"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/stack"
)

// An encoder that listens (ffmpeg -f mpegts 'srt://...?mode=listener')
// is called by the relay it is configured in (-srt-pull), with and
// without SRT's encryption; no ingest secret is asked (authentication is
// on in the encrypted case: the operator configured the pull). When
// ffmpeg ends the stream the manifests turn VOD, ffmpeg decodes the
// whole archive through HLS and DASH, and smoothcast check finds nothing
// missing.
func TestFFmpegSRTListenerIsPulledAndPlaysInEveryFormat(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	for _, tc := range []struct {
		name, passphrase string
		auth             bool
	}{
		{"in the clear, authentication off", "", false},
		{"encrypted, authentication on", "srt-pull-passphrase-01", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := testtool.FreeUDPAddr(t)
			q := url.Values{"mode": {"listener"}, "linger": {"1"}}
			if tc.passphrase != "" {
				q.Set("passphrase", tc.passphrase)
			}
			// The encoder first, so that the relay's first call finds it.
			enc := ffmpegSRTPush(context.Background(), ffmpeg, "srt://"+addr+"?"+q.Encode(), pushSeconds)
			var stderr bytes.Buffer
			enc.Stderr = &stderr
			if err := enc.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if enc.ProcessState == nil {
					_ = enc.Process.Kill()
					_ = enc.Wait()
				}
			})
			// gosrt's dial sends its first handshake once: a call before
			// ffmpeg has bound its port waits out the dial timeout (3 s).
			waitUntil(t, 10*time.Second, "ffmpeg listening on "+addr, func() bool { return udpBound(t, addr) })
			const channel = "pulled"
			st := startStackWith(t, "", func(o *stack.Options) {
				o.SRT.Pull = []srt.Pull{{Channel: channel, Addr: addr, Passphrase: tc.passphrase}}
				if tc.auth {
					o.Relay.Secrets = relay.Secrets{Default: "srt-pull-e2e-secret-0123456789"}
				}
			})
			if st.SRTURL != "" {
				t.Errorf("a stack that only pulls listens at %s", st.SRTURL)
			}
			if err := enc.Wait(); err != nil {
				t.Fatalf("ffmpeg listening: %v\n%s", err, stderr.String())
			}
			checkFinished(t, ffmpeg, st, channel, pushSeconds, 0)
			for _, ch := range st.Relay.Status().RecentErrors {
				if strings.Contains(ch.Message, tc.passphrase) && tc.passphrase != "" {
					t.Errorf("the passphrase in /status: %s", ch.Message)
				}
			}
		})
	}
}

// udpBound reports whether a socket is bound to addr's UDP port, as
// /proc/net/udp lists them (a probe that bound the port itself could make
// ffmpeg's bind fail).
func udpBound(t *testing.T, addr string) bool {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		t.Skipf("no /proc/net/udp: %v", err)
	}
	return strings.Contains(string(b), fmt.Sprintf(":%04X ", n))
}

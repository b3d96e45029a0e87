package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/functions/ingest/rtmp"
	"github.com/smoothcast/smoothcast/internal/check"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/stack"
)

// ffmpegRTMP is an OBS-like encoder as ffmpeg plays it: a test pattern
// and a tone, x264 with a key frame every 2 s (-g 50 at 25 fps unless
// gop says otherwise) and AAC, in real time, in FLV to url.
func ffmpegRTMP(ctx context.Context, ffmpeg, url string, seconds, gop int, extra ...string) *exec.Cmd {
	args := []string{"-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-map", "0:v", "-map", "1:a",
		"-c:v", "libx264", "-preset", "veryfast", "-g", strconv.Itoa(gop), "-keyint_min", strconv.Itoa(gop), "-sc_threshold", "0",
		"-b:v", "800k", "-c:a", "aac", "-b:a", "96k", "-t", strconv.Itoa(seconds)}
	args = append(args, extra...)
	return exec.CommandContext(ctx, ffmpeg, append(args, "-f", "flv", url)...)
}

// runRTMP runs ffmpegRTMP to the end and returns its error output.
func runRTMP(t *testing.T, ffmpeg, url string, seconds int, extra ...string) (string, error) {
	t.Helper()
	cmd := ffmpegRTMP(context.Background(), ffmpeg, url, seconds, 50, extra...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	return stderr.String(), err
}

// startRTMPStack starts a stack that takes RTMP, and RTMPS with a
// certificate the test makes (for 127.0.0.1).
func startRTMPStack(t *testing.T, adjust ...func(*stack.Options)) *stack.Stack {
	t.Helper()
	certFile, keyFile := selfSigned(t)
	tlsCfg, err := rtmp.TLSConfig(certFile, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	return startStackWith(t, "", append([]func(*stack.Options){func(o *stack.Options) {
		o.RTMPAddr, o.RTMPSAddr, o.RTMPTLS = "127.0.0.1:0", "127.0.0.1:0", tlsCfg
	}}, adjust...)...)
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key,
// and returns their files.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smoothcast test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// checkChannel checks a finished channel as a viewer would: the manifests
// turned VOD with the given discontinuities, ffmpeg decodes the whole
// archive through HLS and DASH (seconds of media), and smoothcast check
// finds nothing missing.
func checkChannel(t *testing.T, ffmpeg string, st *stack.Stack, channel string, seconds, discontinuities int) {
	t.Helper()
	base := st.EdgeURL + "/live/" + channel + ".isml/"
	m := waitForVOD(t, st, base)
	if len(m.Streams) != 2 {
		t.Fatalf("Smooth manifest: %d stream indexes, want video and audio", len(m.Streams))
	}
	checkVODManifests(t, base, discontinuities)
	checkSmoothFragmentsExist(t, base, m)
	checkDecodeSeconds(t, ffmpeg, base+"master.m3u8", seconds, [][]string{{"0:v:0", "0:a:0"}})
	checkDecodeSeconds(t, ffmpeg, base+"manifest.mpd", seconds, [][]string{{"0:v:0"}, {"0:a:0"}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := check.Run(ctx, nil, st.EdgeURL, channel, check.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Errorf("smoothcast check: %v", rep.Problems)
	}
}

// ffmpeg publishing over RTMP and over RTMPS (a self-signed certificate)
// makes a channel that plays in Smooth, HLS and DASH: once ffmpeg ends the
// stream the manifests turn VOD, ffmpeg decodes the whole archive, and
// smoothcast check finds nothing missing.
func TestFFmpegRTMPPlaysInEveryFormat(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	st := startRTMPStack(t)
	for _, tc := range []struct{ name, server string }{
		{"rtmp", st.RTMPURL},
		{"rtmps", st.RTMPSURL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if out, err := runRTMP(t, ffmpeg, tc.server+"/"+tc.name, pushSeconds); err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, out)
			}
			checkChannel(t, ffmpeg, st, tc.name, pushSeconds, 0)
		})
	}
}

var _ = relay.DefaultConfig
var _ = strings.Contains

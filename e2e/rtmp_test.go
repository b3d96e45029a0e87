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
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/functions/ingest/rtmp"
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

// checkFinished checks a finished channel as a viewer would: the
// manifests turned VOD with the given discontinuities, ffmpeg decodes the
// whole archive through HLS and DASH (seconds of media), and smoothcast
// check finds nothing missing.
func checkFinished(t *testing.T, ffmpeg string, st *stack.Stack, channel string, seconds, discontinuities int) {
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
	checkChannel(t, st, channel)
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
			t.Parallel() // a channel each
			if out, err := runRTMP(t, ffmpeg, tc.server+"/"+tc.name, pushSeconds); err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, out)
			}
			checkFinished(t, ffmpeg, st, tc.name, pushSeconds, 0)
		})
	}
}

// With authentication on, ffmpeg publishes with the channel's secret in
// the stream key ({channel}?secret={secret}) and the channel plays; with
// a wrong secret or none ffmpeg is refused, prints why, and nothing of it
// is stored.
func TestFFmpegRTMPAuthentication(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	besideAnother(t)
	ffmpeg := testtool.Require(t, "ffmpeg")
	const secret = "rtmp-e2e-secret-0123456789"
	st := startRTMPStack(t, func(o *stack.Options) {
		var err error
		if o.Relay.Secrets, err = relay.ParseSecrets("news=" + secret); err != nil {
			t.Fatal(err)
		}
	})
	for _, tc := range []struct{ name, key, says string }{
		{"a wrong secret", "news?secret=not-" + secret, "wrong secret"},
		{"no secret", "news", "authentication required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runRTMP(t, ffmpeg, st.RTMPURL+"/"+tc.key, 4)
			if err == nil || !strings.Contains(out, "Server error: "+tc.says) {
				t.Errorf("ffmpeg: %v, %q; want a failure saying %q", err, out, tc.says)
			}
		})
	}
	if resp, _ := get(t, st.EdgeURL+"/live/news.isml/Manifest"); resp.StatusCode != 404 {
		t.Fatalf("refused publishes stored something: Manifest %d", resp.StatusCode)
	}
	// RTMPS, as a careful operator would have it: the secret never travels
	// in clear.
	if out, err := runRTMP(t, ffmpeg, st.RTMPSURL+"/news?secret="+secret, 6); err != nil {
		t.Fatalf("ffmpeg with the secret: %v\n%s", err, out)
	}
	checkFinished(t, ffmpeg, st, "news", 6, 0)
}

// An encoder killed mid-GOP (kill -9: the connection drops without an
// end) and started again continues the channel: at most one
// discontinuity, nothing of the group of pictures it was sending, and
// the whole archive decodes.
func TestFFmpegRTMPReconnectAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	besideAnother(t)
	ffmpeg := testtool.Require(t, "ffmpeg")
	// A restart is told from a reconnect when it starts further back than
	// the drift limit from what the channel published.
	st := startRTMPStack(t, func(o *stack.Options) { o.Relay.MaxDrift = 3 * time.Second })
	const channel = "reconnect"
	base := st.EdgeURL + "/live/" + channel + ".isml/"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := ffmpegRTMP(ctx, ffmpeg, st.RTMPURL+"/"+channel, 60, 50)
	var firstErr bytes.Buffer
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	// The Smooth manifest lists 3 video fragments once GOP 3 is stored,
	// as GOP 4 begins: kill a second into it (a restart from zero then
	// starts further back than the drift limit, and is rebased).
	waitForFragments(t, base+"Manifest", 3, 30*time.Second)
	time.Sleep(1300 * time.Millisecond)
	_ = first.Process.Signal(syscall.SIGKILL)
	_ = first.Wait()
	st.Settle(context.Background())
	before := storedFragments(t, st, channel)
	t.Logf("stored before the kill: %d fragments", len(before))

	if out, err := runRTMP(t, ffmpeg, st.RTMPURL+"/"+channel, 6); err != nil {
		t.Fatalf("the second ffmpeg: %v\n%s", err, out)
	}
	m := waitForVOD(t, st, base)
	after := storedFragments(t, st, channel)
	for key, f := range before {
		if g, ok := after[key]; !ok || g != f {
			t.Errorf("%s, stored before the kill, is now %+v", key, g)
		}
	}
	// Every stored video fragment is a whole 2 s GOP (ffmpeg -g 50 at 25
	// fps): nothing of the cut one.
	var videoSeconds float64
	for key, f := range after {
		if strings.Contains(key, "video") {
			if f.Samples != 50 {
				t.Errorf("%s: %d pictures, want 50 (a whole GOP)", key, f.Samples)
			}
			videoSeconds += 2
		}
	}
	n := 0
	for _, pl := range mediaPlaylists(t, base) {
		n = max(n, discontinuitiesOf(pl))
	}
	t.Logf("%d video fragments before the kill, %d in all, %d discontinuity", len(before)/2, len(after)/2, n)
	if n > 1 {
		t.Errorf("%d discontinuities, want at most one", n)
	}
	checkSmoothFragmentsExist(t, base, m)
	span := time.Duration(videoSeconds * float64(time.Second))
	checkDecodeSpan(t, ffmpeg, base+"master.m3u8", span, span, [][]string{{"0:v:0", "0:a:0"}})
}

// ffmpeg with a key frame every 24 s (-g 600 at 25 fps) is refused once
// the first GOP passes the relay's limit (10 s): the error is on /status
// and in the log, ffmpeg is told, and nothing of the channel is stored.
func TestFFmpegRTMPKeyFramesTooFarApart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	besideAnother(t)
	ffmpeg := testtool.Require(t, "ffmpeg")
	st := startRTMPStack(t)
	cmd := ffmpegRTMP(context.Background(), ffmpeg, st.RTMPURL+"/longgop", 16, 600)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	st.Settle(context.Background())
	var found *relay.ErrorStatus
	for _, e := range st.Relay.Status().RecentErrors {
		if e.Channel == "longgop" && strings.Contains(e.Message, "key frames too far apart") {
			found = &e
		}
	}
	if found == nil {
		t.Fatalf("no GOP error on /status: %+v", st.Relay.Status().RecentErrors)
	}
	t.Logf("/status: %s; ffmpeg: %v %s", found.Message, err, strings.TrimSpace(stderr.String()))
	if !strings.Contains(found.Message, "keyframe interval") {
		t.Errorf("the error does not say what to change: %s", found.Message)
	}
	if err == nil || !strings.Contains(stderr.String(), "key frames too far apart") {
		t.Errorf("ffmpeg was not told: %v %s", err, stderr.String())
	}
	if resp, _ := get(t, st.EdgeURL+"/live/longgop.isml/Manifest"); resp.StatusCode != 404 {
		t.Errorf("Manifest %d: something of the long GOP was stored", resp.StatusCode)
	}
}

// Hostile connections to the RTMP port (garbage after the handshake, an
// absurd chunk size, a 16 MB frame, a publish cut mid-chunk) end with a
// clear error and store nothing; ffmpeg publishes right after them and its
// channel plays.
func TestRTMPHostileConnectionsThenFFmpeg(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	st := startRTMPStack(t)
	addr := strings.TrimSuffix(strings.TrimPrefix(st.RTMPURL, "rtmp://"), "/live")
	handshake := append([]byte{3}, make([]byte, 2*1536)...)
	chunk0 := func(csid, typ byte, length int) []byte {
		return []byte{csid, 0, 0, 0, byte(length >> 16), byte(length >> 8), byte(length), typ, 0, 0, 0, 0}
	}
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"garbage after the handshake", slices.Concat(handshake, bytes.Repeat([]byte{0xc7, 0x13, 0x37}, 4000))},
		{"a chunk size of 2^31-1", slices.Concat(handshake, chunk0(2, 1, 4), []byte{0x7f, 0xff, 0xff, 0xff})},
		{"a 16 MB frame", slices.Concat(handshake, chunk0(6, 9, 1<<24-1))},
		{"a connect cut mid-chunk", slices.Concat(handshake, chunk0(3, 20, 300), []byte{2, 0, 7, 'c', 'o', 'n'})},
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write(tc.send)
		if tc.name == "a connect cut mid-chunk" {
			_ = c.(*net.TCPConn).CloseWrite()
		}
		start := time.Now()
		_ = c.SetReadDeadline(start.Add(15 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%s: the relay did not close the connection: %v", tc.name, err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s: closed after %v: the relay waited for more instead of refusing", tc.name, took)
		}
		c.Close()
	}
	if out, err := runRTMP(t, ffmpeg, st.RTMPURL+"/after", 6); err != nil {
		t.Fatalf("ffmpeg after the hostile connections: %v\n%s", err, out)
	}
	checkFinished(t, ffmpeg, st, "after", 6, 0)
	if n := st.Relay.Active(); n != 0 {
		t.Errorf("%d streams still open", n)
	}
}

package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/infra/boot"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/tlsfile"
)

// tlsSeconds is how long each encoder of TestTLSIngest sends: three
// GOPs.
const tlsSeconds = 6

// The relay binary started as the AWS stack starts it with TLS on (-addr
// HTTPS only, -tls-cert and -tls-key one PEM file holding both, no RTMP,
// RTMPS with the same certificate, SRT with the passphrase read from an
// SSM parameter) takes ffmpeg's encoders over TLS, each channel
// published (fragments in the store, the manifests final in every
// format): a Smooth push over https:// and RTMPS, both verifying the
// certificate (-tls_verify 1 -ca_file), an HLS fMP4 upload (-method PUT)
// over https://, and SRT with the passphrase. The same encoders in clear
// text (http:// to the HTTPS port, rtmp:// to the RTMPS port, SRT
// without the passphrase) are refused and store nothing, and those that
// can tell (ffmpeg's ismv, flv and SRT outputs) fail; ffmpeg's HLS muxer
// ignores its uploads' failures.
func TestTLSIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	const passphrase, parameter = "tls-e2e-srt-passphrase", "/smoothcast/srt-passphrase"
	ssm := testtool.NewSSM(t, map[string]string{parameter: passphrase})
	// The relay's environment is the test's (startRelay).
	t.Setenv("AWS_ENDPOINT_URL_SSM", ssm.URL)
	pem := tlsPEM(t)
	rtmpsAddr, srtAddr := freeAddr(t), testtool.FreeUDPAddr(t)
	st := startStack(t)
	// The relay's settings are the stack's (infra/boot), TLS on, with the
	// test's addresses, certificate file, bucket and store in place of
	// the instance's (and no ingest secret, no CloudWatch).
	relay := boot.Relay{Name: "a", Region: "us-east-1", Bucket: st.Store.Bucket, IngestPort: 8080, RTMPPort: 1935, RTMPSPort: 1936, SRTPort: 9000,
		TLS: &boot.TLS{CertParameter: "/smoothcast/Test/tls-certificate", SRTPassphraseParameter: parameter}}
	flags := stackFlags(t, relay, map[string]string{
		"-addr": "", "-admin-addr": "", "-rtmps-addr": rtmpsAddr, "-srt-addr": srtAddr,
		"-tls-cert": pem, "-tls-key": pem, "-bucket": st.Store.Bucket,
	})
	rp := startRelay(t, buildRelay(t), st, flags...)
	if ssm.Reads.Load() != 1 {
		t.Fatalf("the relay read the SRT passphrase's parameter %d times, want once", ssm.Reads.Load())
	}
	verify := []string{"-tls_verify", "1", "-ca_file", pem}
	encoders := []*tlsEncoder{
		{name: "Smooth push over https", channel: "https-push",
			cmd: withOutputOptions(ffmpegPush(context.Background(), ffmpeg, "https://"+rp.addr+"/live/https-push.isml/Streams(enc1)", tlsSeconds, true), verify...)},
		{name: "HLS fMP4 upload over https", channel: "https-upload",
			cmd: ffmpegUpload(context.Background(), ffmpeg, "https://"+rp.addr+"/live/https-upload.isml", "hls", tlsSeconds)},
		{name: "RTMPS", channel: "rtmps",
			cmd: ffmpegRTMP(context.Background(), ffmpeg, "rtmps://"+rtmpsAddr+"/live/rtmps", tlsSeconds, 50, verify...)},
		{name: "SRT with the passphrase", channel: "srt-encrypted",
			cmd: ffmpegSRTPush(context.Background(), ffmpeg, srtURL("srt://"+srtAddr, "srt-encrypted", "", passphrase), tlsSeconds)},
		{name: "a Smooth push in clear text to the HTTPS port", channel: "clear-push", refused: true,
			cmd: ffmpegPush(context.Background(), ffmpeg, "http://"+rp.addr+"/live/clear-push.isml/Streams(enc1)", tlsSeconds, true)},
		{name: "an HLS upload in clear text to the HTTPS port", channel: "clear-upload", refused: true, unaware: true,
			cmd: ffmpegUpload(context.Background(), ffmpeg, "http://"+rp.addr+"/live/clear-upload.isml", "hls", tlsSeconds)},
		{name: "RTMP in clear text to the RTMPS port", channel: "clear-rtmp", refused: true,
			cmd: ffmpegRTMP(context.Background(), ffmpeg, "rtmp://"+rtmpsAddr+"/live/clear-rtmp", tlsSeconds, 50)},
		{name: "SRT without the passphrase", channel: "clear-srt", refused: true,
			cmd: ffmpegSRTPush(context.Background(), ffmpeg, srtURL("srt://"+srtAddr, "clear-srt", "", ""), tlsSeconds)},
	}
	// Every encoder at once (they do not share a channel); each is
	// checked once all are done.
	var wg sync.WaitGroup
	for _, e := range encoders {
		e.cmd.Stderr = &e.stderr
		if err := e.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { e.err = e.cmd.Wait() })
	}
	wg.Wait()
	for _, e := range encoders {
		t.Run(e.name, func(t *testing.T) {
			if e.refused {
				if e.err == nil && !e.unaware {
					t.Errorf("ffmpeg succeeded:\n%s", e.stderr.String())
				}
				if keys := channelKeys(t, st, e.channel); len(keys) > 0 {
					t.Errorf("stored %d objects: %q", len(keys), keys)
				}
				return
			}
			if e.err != nil {
				t.Fatalf("ffmpeg: %v\n%s", e.err, e.stderr.String())
			}
			base := st.EdgeURL + "/live/" + e.channel + ".isml/"
			m := waitForVOD(t, st, base)
			if len(m.Streams) != 2 {
				t.Errorf("Smooth manifest: %d stream indexes, want video and audio", len(m.Streams))
			}
			checkVODManifests(t, base, 0)
			if n := len(storedFragments(t, st, e.channel)); n == 0 {
				t.Error("no fragment stored")
			}
		})
	}
}

// tlsEncoder is one of TestTLSIngest's encoders, and how it ended.
type tlsEncoder struct {
	name, channel string
	cmd           *exec.Cmd
	refused       bool // the relay refuses it: nothing stored, ffmpeg fails
	unaware       bool // ffmpeg does not notice (its HLS muxer)
	stderr        bytes.Buffer
	err           error
}

// channelKeys lists what the store holds of channel.
func channelKeys(t *testing.T, st *stack.Stack, channel string) []string {
	t.Helper()
	var keys []string
	for _, k := range testtool.Keys(t, st.Store) {
		if strings.HasPrefix(k, layout.LivePrefix+channel+".isml/") {
			keys = append(keys, k)
		}
	}
	return keys
}

// stackFlags turns the relay's environment as the stack writes it
// (boot.Relay.Environment: SMOOTHCAST_<FLAG>=value) into the flags it
// stands for (-flag value), each replaced by replace's value where it
// has one ("" for -addr: startRelay's own). A variable that names no
// flag of the relay fails the relay's start, so a misspelt setting in
// infra/boot cannot go unnoticed.
func stackFlags(t *testing.T, r boot.Relay, replace map[string]string) []string {
	t.Helper()
	var flags []string
	for _, kv := range r.Environment() {
		k, v, _ := strings.Cut(kv, "=")
		name, ok := strings.CutPrefix(k, "SMOOTHCAST_")
		if !ok {
			continue // AWS_REGION: startRelay sets the store's
		}
		flag := "-" + strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		if flag == "-ingest-secret-parameter" {
			flag = "-secret-parameter" // the unit's name for it (the flag's is older)
		}
		if repl, ok := replace[flag]; ok {
			if repl == "" {
				continue
			}
			v = repl
		}
		flags = append(flags, flag, v)
	}
	return flags
}

// tlsPEM writes a self-signed certificate for localhost and 127.0.0.1
// and its key into one PEM file, as the stack's boot script writes the
// certificate for -tls-cert and -tls-key, and returns its name.
func tlsPEM(t *testing.T) string {
	t.Helper()
	certFile, keyFile, _, err := tlsfile.SelfSigned(t.TempDir(), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var both []byte
	for _, f := range []string{certFile, keyFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		both = append(both, b...)
	}
	name := filepath.Join(t.TempDir(), "ingest.pem")
	if err := os.WriteFile(name, both, 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// withOutputOptions inserts opts before cmd's last argument, its output
// URL.
func withOutputOptions(cmd *exec.Cmd, opts ...string) *exec.Cmd {
	n := len(cmd.Args)
	cmd.Args = append(append(cmd.Args[:n-1:n-1], opts...), cmd.Args[n-1])
	return cmd
}

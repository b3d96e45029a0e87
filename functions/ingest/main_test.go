package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/internal/testtool/logtest"
	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/store/storetest"
)

// The relay binary as make build-relay ships it (linux/arm64, static,
// stripped), run under qemu-aarch64 with the configuration the stack's
// systemd unit gives it (SMOOTHCAST_BUCKET, AWS_REGION, -addr), takes a
// recorded ffmpeg push and stores its init segments, fragments and end
// markers.
func TestShippedRelayBinaryStoresAPush(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the relay: skipped with -short")
	}
	qemu := testtool.Require(t, "qemu-aarch64")
	bin := filepath.Join(t.TempDir(), "smoothcast-ingest")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	srv, st := testtool.Store(t, "relay-binary-test")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := aln.Addr().String()
	aln.Close()
	// The unit's -srt-addr :9000 on a port of the test's own.
	cmd := exec.Command(qemu, bin, "-addr", addr, "-admin-addr", adminAddr, "-endpoint", srv.URL, "-srt-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "SMOOTHCAST_BUCKET=relay-binary-test", "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID="+s3local.AccessKey, "AWS_SECRET_ACCESS_KEY="+s3local.SecretKey)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitOnce sync.Once
	var waitErr error
	wait := func() error {
		waitOnce.Do(func() { waitErr = cmd.Wait() })
		return waitErr
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatalf("the relay does not listen\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	body, err := os.ReadFile("../../shared/ingest/testdata/ffmpeg-isml.ismv")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+addr+"/live/arm.isml/Streams(enc1)", "video/mp4", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("push: %s\n%s", resp.Status, stderr.String())
	}
	kinds := map[layout.ObjectKind]int{}
	err = st.List(context.Background(), layout.LivePrefix, func(page []store.Listed) error {
		for _, o := range page {
			obj, _ := layout.Parse(o.Key)
			kinds[obj.Kind]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if kinds[layout.KindInit] != 3 || kinds[layout.KindFragment] != 6 || kinds[layout.KindEnd] != 3 {
		t.Fatalf("stored %v, want 3 init segments, 6 fragments, 3 end markers\n%s", kinds, stderr.String())
	}
	// The admin listener counts the push; SIGTERM stops the relay cleanly.
	resp, err = http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `smoothcast_fragments_total{outcome="written"} 6`) {
		t.Errorf("admin /metrics does not count the push's 6 fragments:\n%s", metrics)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("after SIGTERM the relay exited with %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the relay did not exit after SIGTERM\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "relay shut down") {
		t.Errorf("no shutdown in the log:\n%s", stderr.String())
	}
	// The configuration, once, as the systemd unit gave it.
	if n := strings.Count(stderr.String(), `"msg":"configuration"`); n != 1 || !strings.Contains(stderr.String(), `"from_env":["SMOOTHCAST_BUCKET"]`) ||
		!strings.Contains(stderr.String(), `"bucket":"relay-binary-test"`) {
		t.Errorf("%d configuration lines, want one naming the bucket and SMOOTHCAST_BUCKET:\n%s", n, stderr.String())
	}
}

// A secrets file is either usable or a startup error: one with nothing
// but comments or blank lines would otherwise turn authentication off.
// At start the relay logs which mode is in force.
func TestSecretsAtStart(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		err        bool
		level      slog.Level
		msg, mode  string
	}{
		{"no secret configured", "", false, slog.LevelWarn, "INGEST AUTHENTICATION IS OFF", "off"},
		{"one secret", "only-secret-0123456789\n", false, slog.LevelInfo, "ingest authentication on", "one secret for every channel"},
		{"per channel with a default", "*=default-secret-0123456789\nnews=news-secret-0123456789\n", false, slog.LevelInfo, "ingest authentication on", "the default secret for the others"},
		{"per channel only", "news=news-secret-0123456789\n", false, slog.LevelInfo, "ingest authentication on", "every other channel is refused"},
		{"an empty file", "\n", true, 0, "", ""},
		{"a file of comments", "# news=news-secret-0123456789\n\n# todo\n", true, 0, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = filepath.Join(t.TempDir(), "secrets")
				if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			secrets, from, err := loadSecrets(context.Background(), path, "", "", "us-east-1")
			if (err != nil) != tc.err {
				t.Fatalf("err %v, want an error: %v", err, tc.err)
			}
			if tc.err {
				return
			}
			rec := logtest.New()
			logAuth(slog.New(rec), secrets, from)
			if len(rec.Records()) != 1 {
				t.Fatalf("%d log lines, want 1", len(rec.Records()))
			}
			r := rec.Records()[0]
			var mode string
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "mode" {
					mode = a.Value.String()
				}
				return true
			})
			if r.Level != tc.level || !strings.HasPrefix(r.Message, tc.msg) || !strings.Contains(mode, tc.mode) {
				t.Errorf("logged %s %q mode %q; want %s %q mode %q", r.Level, r.Message, mode, tc.level, tc.msg, tc.mode)
			}
		})
	}
}

// A client that does not finish its request headers within
// ReadHeaderTimeout is disconnected; one that does is served.
func TestSlowHeadersAreDisconnected(t *testing.T) {
	const timeout = 300 * time.Millisecond
	srv := newServer(context.Background(), "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}), timeout)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	for _, tc := range []struct {
		name   string
		sent   string
		served bool
	}{
		{"nothing sent", "", false},
		{"half a request line", "POST /live/ch1.isml/Str", false},
		{"headers without the blank line", "POST /live/ch1.isml/Streams(a) HTTP/1.1\r\nHost: relay\r\nTransfer-Encoding: chunked\r\n", false},
		{"complete headers", "POST /live/ch1.isml/Streams(a) HTTP/1.1\r\nHost: relay\r\nContent-Length: 0\r\n\r\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			if _, err := conn.Write([]byte(tc.sent)); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(start.Add(timeout + time.Second))
			if tc.served {
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil || resp.StatusCode != http.StatusNoContent {
					t.Fatalf("complete headers: %v, %v; want 204", resp, err)
				}
				return
			}
			got, err := io.ReadAll(conn)
			took := time.Since(start)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("still connected %v after connecting, header timeout %v", took.Round(time.Millisecond), timeout)
			}
			if len(got) > 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 4")) {
				t.Errorf("answered %q", got)
			}
			if took < timeout-50*time.Millisecond {
				t.Errorf("disconnected after %v, before the header timeout %v", took, timeout)
			}
			t.Logf("disconnected after %v", took.Round(time.Millisecond))
		})
	}
}

// Every flag can be set from its SMOOTHCAST_ variable; the command line
// wins, and a bad value names the variable. The secret parameter answers
// to the variable the stack's systemd unit sets, and to the name derived
// from the flag with a deprecation warning.
func TestOptionsFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name      string
		env       map[string]string
		args      []string
		want      time.Duration
		parameter string
		warning   string
		wantErr   string
	}{
		{"default", nil, nil, 30 * time.Second, "", "", ""},
		{"from the environment", map[string]string{"SMOOTHCAST_READ_TIMEOUT": "5s"}, nil, 5 * time.Second, "", "", ""},
		{"the command line wins", map[string]string{"SMOOTHCAST_READ_TIMEOUT": "5s"}, []string{"-read-timeout", "7s"}, 7 * time.Second, "", "", ""},
		{"a bad value names the variable", map[string]string{"SMOOTHCAST_READ_TIMEOUT": "soon"}, nil, 0, "", "", "SMOOTHCAST_READ_TIMEOUT"},
		{"the stack's secret parameter variable", map[string]string{"SMOOTHCAST_INGEST_SECRET_PARAMETER": "/smoothcast/ingest-secret"}, nil, 30 * time.Second, "/smoothcast/ingest-secret", "", ""},
		{"the deprecated secret parameter variable, with a warning", map[string]string{"SMOOTHCAST_SECRET_PARAMETER": "/old"}, nil, 30 * time.Second, "/old", "SMOOTHCAST_SECRET_PARAMETER is deprecated", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseWithEnv(tc.args, tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || o.relay.ReadTimeout != tc.want || o.secretParameter != tc.parameter {
				t.Fatalf("read-timeout %v, secret parameter %q, %v; want %v, %q", o.relay.ReadTimeout, o.secretParameter, err, tc.want, tc.parameter)
			}
			rec := logtest.New()
			o.settings.Log(slog.New(rec), "configuration")
			var warnings []string
			for _, r := range rec.Records() {
				if r.Level == slog.LevelWarn {
					warnings = append(warnings, r.Message)
				}
			}
			if got := strings.Join(warnings, "\n"); tc.warning == "" && got != "" || !strings.Contains(got, tc.warning) {
				t.Errorf("warnings %q, want %q", got, tc.warning)
			}
		})
	}
}

// parseWithEnv is parseOptions with env as the environment, the bucket
// set.
func parseWithEnv(args []string, env map[string]string) (options, error) {
	all := map[string]string{"SMOOTHCAST_BUCKET": "b"}
	maps.Copy(all, env)
	return parseOptions(args, func(name string) (string, bool) { v, ok := all[name]; return v, ok })
}

// The SRT settings are read as every flag is: the passphrase from the
// command line or SMOOTHCAST_SRT_PASSPHRASE, masked in the configuration's
// log line; one SRT cannot use is refused at start.
func TestSRTOptions(t *testing.T) {
	const pass = "srt-passphrase-0123"
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		addr    string
		pass    string
		wantErr string
	}{
		{name: "defaults: port 9000, no passphrase", addr: ":9000"},
		{name: "the passphrase from the environment", env: map[string]string{"SMOOTHCAST_SRT_PASSPHRASE": pass}, addr: ":9000", pass: pass},
		{name: "no SRT", args: []string{"-srt-addr", ""}},
		{name: "a passphrase SRT refuses", args: []string{"-srt-passphrase", "short"}, wantErr: "SRT takes 10 to 79"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseWithEnv(tc.args, tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "short") {
					t.Fatalf("error %v, want one saying %q without the passphrase", err, tc.wantErr)
				}
				return
			}
			if err != nil || o.srt.Addr != tc.addr || o.srt.Passphrase != tc.pass {
				t.Fatalf("srt %q %q, %v; want %q %q", o.srt.Addr, o.srt.Passphrase, err, tc.addr, tc.pass)
			}
			rec := logtest.New()
			o.settings.Log(slog.New(rec), "configuration")
			if lines := strings.Join(rec.Lines(), "\n"); strings.Contains(lines, pass) {
				t.Errorf("the passphrase in the log: %s", lines)
			}
		})
	}
}

// serve answers on the ingest listener and, when there is one, on the
// admin listener (health, metrics, status: never on the ingest port); when
// its context ends (SIGTERM) it shuts the relay down, letting a push store
// the fragment it is receiving, and returns with both listeners closed.
func TestServeShutsDownOnSignal(t *testing.T) {
	body, err := os.ReadFile("../../shared/ingest/testdata/ffmpeg-isml.ismv")
	if err != nil {
		t.Fatal(err)
	}
	const firstMdatEnd = 4801 + 14661 // the fixture's first fragment ends here
	for _, tc := range []struct {
		name  string
		admin bool
	}{
		{"with the admin listener", true},
		{"without it (-admin-addr empty)", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, st := testtool.Store(t, "serve-test")
			rl := relay.New(st, relay.DefaultConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)))
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var adminLn net.Listener
			if tc.admin {
				if adminLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
					t.Fatal(err)
				}
			}
			ctx, signal := context.WithCancel(context.Background())
			defer signal()
			done := make(chan error, 1)
			go func() {
				done <- serve(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), rl, ln, adminLn, time.Second, 5*time.Second)
			}()
			ingest := "http://" + ln.Addr().String()
			if resp, err := http.Get(ingest + "/healthz"); err != nil || resp.StatusCode != 404 {
				t.Fatalf("ingest port /healthz: %v %v, want 404", resp, err)
			}
			if tc.admin {
				resp, err := http.Get("http://" + adminLn.Addr().String() + "/healthz")
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("admin /healthz: %v %v", resp, err)
				}
				resp.Body.Close()
			}
			// A push that has sent its first fragment, and then half the next.
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			sent := firstMdatEnd + 2000
			if _, err := fmt.Fprintf(conn, "POST /live/sig.isml/Streams(enc1) HTTP/1.1\r\nHost: relay\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", sent, body[:sent]); err != nil {
				t.Fatal(err)
			}
			read := func() int64 {
				for _, c := range rl.Status().Channels {
					for _, s := range c.Streams {
						return s.Bytes
					}
				}
				return 0
			}
			for deadline := time.Now().Add(5 * time.Second); read() != int64(sent); time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the relay read %d bytes of the push, want %d", read(), sent)
				}
			}
			signal()
			for deadline := time.Now().Add(5 * time.Second); !rl.ShuttingDown(); time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the relay does not shut down")
				}
			}
			if _, err := fmt.Fprintf(conn, "%x\r\n%s\r\n", len(body)-sent, body[sent:]); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("serve did not return")
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil || resp.StatusCode != 503 {
				t.Fatalf("the push was answered %v, %v; want 503", resp, err)
			}
			kinds := map[layout.ObjectKind]int{}
			err = st.List(context.Background(), layout.LivePrefix, func(page []store.Listed) error {
				for _, o := range page {
					obj, _ := layout.Parse(o.Key)
					kinds[obj.Kind]++
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if kinds[layout.KindFragment] != 2 || kinds[layout.KindEnd] != 2 {
				t.Errorf("stored %v, want the 2 fragments sent and 2 end markers", kinds)
			}
			for _, l := range []net.Listener{ln, adminLn} {
				if l == nil {
					continue
				}
				if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
					c.Close()
					t.Errorf("%s still accepts connections", l.Addr())
				}
			}
		})
	}
}

// The admin listener is optional, and a taken address costs the metrics,
// not the relay.
func TestListenAdmin(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct {
		name, addr string
		listens    bool
		logged     string
	}{
		{"disabled", "", false, ""},
		{"a free port", "127.0.0.1:0", true, ""},
		{"a taken port", taken.Addr().String(), false, "NO METRICS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := logtest.New()
			ln, at := listenAdmin(slog.New(rec), tc.addr)
			if ln != nil {
				defer ln.Close()
			}
			if (ln != nil) != tc.listens || (ln != nil && at != ln.Addr().String()) || (ln == nil && at != "none") {
				t.Errorf("listener %v at %q; want one: %v", ln, at, tc.listens)
			}
			var msgs []string
			for _, r := range rec.Records() {
				msgs = append(msgs, r.Message)
			}
			if got := strings.Join(msgs, "\n"); (tc.logged == "") != (got == "") || !strings.Contains(got, tc.logged) {
				t.Errorf("logged %q, want %q", got, tc.logged)
			}
		})
	}
}

// The encoders the relay calls are read from -srt-pull, repeated, or
// from SMOOTHCAST_SRT_PULL, entries separated by white space; a bad
// entry stops the relay at start with an error that names it (its
// passphrase masked), and the configuration's log line masks every
// passphrase.
func TestSRTPullOptions(t *testing.T) {
	const pass = "pull-passphrase-0123"
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		want    []string // the pulls, as Pull.String writes them
		wantErr string
	}{
		{name: "none by default"},
		{name: "the flag, repeated", args: []string{"-srt-pull", "news=srt://10.0.0.5:9000", "-srt-pull", "sport=srt://enc.example:9001?latency=250"},
			want: []string{"news=srt://10.0.0.5:9000", "sport=srt://enc.example:9001?latency=250ms"}},
		{name: "the variable, entries separated by spaces and new lines", env: map[string]string{"SMOOTHCAST_SRT_PULL": "news=srt://10.0.0.5:9000?passphrase=" + pass + "\n sport=srt://[::1]:9001?streamid=#!::r=cam1,m=request"},
			want: []string{"news=srt://10.0.0.5:9000?passphrase=(secret)", "sport=srt://[::1]:9001?streamid=#!::r=cam1,m=request"}},
		{name: "the flag wins over the variable", env: map[string]string{"SMOOTHCAST_SRT_PULL": "news=srt://10.0.0.5:9000"}, args: []string{"-srt-pull", "other=srt://10.0.0.6:9000"},
			want: []string{"other=srt://10.0.0.6:9000"}},
		{name: "a bad entry in the variable is named, its passphrase masked", env: map[string]string{"SMOOTHCAST_SRT_PULL": "news=srt://10.0.0.5:9000 bad/name=srt://10.0.0.6:9000?passphrase=" + pass},
			wantErr: `srt pull "bad/name=srt://10.0.0.6:9000?passphrase=(secret)": channel name "bad/name"`},
		{name: "a short passphrase is refused without being shown", args: []string{"-srt-pull", "news=srt://10.0.0.5:9000?passphrase=short"},
			wantErr: "passphrase of 5 characters: SRT takes 10 to 79"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseWithEnv(tc.args, tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), pass) || strings.Contains(err.Error(), "short") {
					t.Fatalf("error %v, want one saying %q without the passphrase", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range o.srt.Pull {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("pulls %q, want %q", got, tc.want)
			}
			rec := logtest.New()
			o.settings.Log(slog.New(rec), "configuration")
			lines := strings.Join(rec.Lines(), "\n")
			if strings.Contains(lines, pass) {
				t.Errorf("a passphrase in the log: %s", lines)
			}
			if len(tc.want) > 0 && !strings.Contains(lines, "srt_pull=") {
				t.Errorf("the pulls are not in the configuration's log line: %s", lines)
			}
		})
	}
}

// The pulls need no listener: with -srt-addr empty, or taken by another
// process (logged loudly), the relay still calls its encoders.
func TestSRTPullsRunWithoutTheListener(t *testing.T) {
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	for _, tc := range []struct {
		name, addr, logged string
	}{
		{name: "no listener", addr: ""},
		{name: "the listener's port taken", addr: taken.LocalAddr().String(), logged: "NO SRT PUBLISHES"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each Close waits for the dial in progress (3 s)
			o, err := parseWithEnv([]string{"-srt-addr", tc.addr, "-srt-pull", "pulled=srt://" + taken.LocalAddr().String()}, nil)
			if err != nil {
				t.Fatal(err)
			}
			rec := logtest.New()
			log := slog.New(rec)
			rl := relay.New(&storetest.Mem{}, relay.DefaultConfig(), log)
			srv := listenSRT(log, rl, o.srt)
			if srv == nil {
				t.Fatal("no SRT server for the pulls")
			}
			rec.Wait(t, slog.LevelInfo, "srt pull: calling the encoder", map[string]string{"channel": "pulled"})
			if err := rl.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			_ = srv.Close()
			if lines := strings.Join(rec.Lines(), "\n"); tc.logged != "" && !strings.Contains(lines, tc.logged) {
				t.Errorf("the log does not say %q:\n%s", tc.logged, lines)
			}
		})
	}
}

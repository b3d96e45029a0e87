package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/shared/emf"
	"github.com/smoothcast/smoothcast/shared/metricname"
)

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runtimeAPI is a small Lambda Runtime API server (2018-06-01): it hands
// the bootstrap one invocation at a time and records what comes back.
type runtimeAPI struct {
	events chan []byte
	mu     sync.Mutex
	ids    int
	result map[string]invocation
	done   chan string
}

type invocation struct {
	ok   bool
	body string
}

func (a *runtimeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const base = "/2018-06-01/runtime/"
	switch {
	case r.Method == http.MethodGet && r.URL.Path == base+"invocation/next":
		var ev []byte
		select {
		case ev = <-a.events:
		case <-r.Context().Done():
			return
		}
		a.mu.Lock()
		a.ids++
		id := "req-" + strconv.Itoa(a.ids)
		a.mu.Unlock()
		w.Header().Set("Lambda-Runtime-Aws-Request-Id", id)
		w.Header().Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(30*time.Second).UnixMilli(), 10))
		w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:smoothcast-manifest")
		w.Header().Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
		_, _ = w.Write(ev)
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, base+"invocation/"):
		rest := strings.TrimPrefix(r.URL.Path, base+"invocation/")
		id, kind, _ := strings.Cut(rest, "/")
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.result[id] = invocation{ok: kind == "response", body: string(body)}
		a.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		a.done <- id
	case r.Method == http.MethodPost && r.URL.Path == base+"init/error":
		body, _ := io.ReadAll(r.Body)
		a.done <- "init error: " + string(body)
		w.WriteHeader(http.StatusAccepted)
	default:
		http.NotFound(w, r)
	}
}

// The bootstrap answers each sample event in events/ through the Lambda
// Runtime API: the S3 event is handled (its object is missing: ignored,
// not an error), and the Function URL requests get HTTP responses. With
// the store failing, the S3 event ends in an invocation error, which is
// what makes Lambda retry it. It runs
// twice: built for this machine, and built exactly as make build-lambda
// ships it (linux/arm64, static, stripped) and run under qemu-aarch64.
func TestBootstrapAnswersTheSampleEventsThroughTheRuntimeAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the bootstrap: skipped with -short")
	}
	t.Run("this machine", func(t *testing.T) {
		bin := buildBootstrap(t, nil)
		runBootstrap(t, exec.Command(bin), true)
	})
	t.Run("linux/arm64 under qemu", func(t *testing.T) {
		qemu := testtool.Require(t, "qemu-aarch64")
		bin := buildBootstrap(t, []string{"GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0"}, "-trimpath", "-ldflags=-s -w")
		runBootstrap(t, exec.Command(qemu, bin), false)
	})
}

// buildBootstrap builds this package with the Lambda tags.
func buildBootstrap(t *testing.T, env []string, flags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bootstrap")
	args := append([]string{"build", "-tags", "lambda.norpc"}, flags...)
	build := exec.Command("go", append(args, "-o", bin, ".")...)
	build.Env = append(os.Environ(), env...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the bootstrap: %v\n%s", err, out)
	}
	return bin
}

// runBootstrap runs cmd against a Runtime API server and the sample
// events; measure logs its peak resident memory (meaningless under qemu).
// Its stdout holds JSON log lines and, for each S3 event, one EMF
// document: the ignored one (its object is missing) processed, the one
// with the store down an error.
func runBootstrap(t *testing.T, cmd *exec.Cmd, measure bool) {
	t.Helper()
	srv, _ := testtool.Store(t, "bootstrap-test")

	api := &runtimeAPI{events: make(chan []byte), result: map[string]invocation{}, done: make(chan string, 16)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: api}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })

	cmd.Env = append(os.Environ(),
		"AWS_LAMBDA_RUNTIME_API="+ln.Addr().String(),
		"AWS_LAMBDA_FUNCTION_NAME=smoothcast-manifest", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256", "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"_HANDLER=bootstrap", "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID="+s3local.AccessKey, "AWS_SECRET_ACCESS_KEY="+s3local.SecretKey,
		"SMOOTHCAST_BUCKET=bootstrap-test", "SMOOTHCAST_ENDPOINT="+srv.URL)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	var stdout lockedBuffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	for _, tc := range []struct {
		file   string
		status int  // 0: an S3 event, whose response is null
		down   bool // the store fails every request: the invocation must fail, so that Lambda retries the event
	}{
		{"fragment-created.json", 0, false},
		{"manifest-request.json", http.StatusNotFound, false}, // no such channel yet
		{"playlist-request.json", http.StatusNotFound, false},
		{"fragment-created.json", 0, true},
	} {
		func() {
			if tc.down {
				srv.SetFaults(s3local.Faults{ErrorRate: 1})
				defer srv.SetFaults(s3local.Faults{})
			}
			ev, err := os.ReadFile(filepath.Join("..", "..", "events", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			select {
			case api.events <- ev:
			case <-time.After(20 * time.Second):
				t.Fatalf("the bootstrap never asked for an invocation\n%s", stderr.String())
			}
			var id string
			select {
			case id = <-api.done:
			case <-time.After(20 * time.Second):
				t.Fatalf("no answer to %s\n%s", tc.file, stderr.String())
			}
			api.mu.Lock()
			res := api.result[id]
			api.mu.Unlock()
			if tc.down {
				if res.ok || !strings.Contains(res.body, "503") && !strings.Contains(res.body, "500") && !strings.Contains(res.body, "unavailable") {
					t.Errorf("%s with the store down: answered ok=%v %s, want an invocation error naming the store's failure", tc.file, res.ok, res.body)
				}
				return
			}
			if !res.ok {
				t.Fatalf("%s: error %s", tc.file, res.body)
			}
			if tc.status == 0 {
				if res.body != "null" {
					t.Errorf("S3 event answered %s, want null", res.body)
				}
				return
			}
			var resp struct {
				StatusCode int               `json:"statusCode"`
				Headers    map[string]string `json:"headers"`
			}
			if err := json.Unmarshal([]byte(res.body), &resp); err != nil || resp.StatusCode != tc.status {
				t.Errorf("%s: %s (%v), want status %d", tc.file, res.body, err, tc.status)
			}
			if cc := resp.Headers["Cache-Control"]; !strings.Contains(cc, "max-age=1") {
				t.Errorf("%s: Cache-Control %q", tc.file, cc)
			}
		}()
	}
	// The output reaches the buffer through a pipe: wait for the second
	// document, which the failed invocation wrote before it answered.
	for deadline := time.Now().Add(10 * time.Second); strings.Count(stdout.String(), `"_aws"`) < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	var docs []emf.Document
	for line := range strings.Lines(stdout.String()) {
		if !strings.Contains(line, `"_aws"`) {
			if !json.Valid([]byte(line)) {
				t.Errorf("stdout line is not JSON: %s", line)
			}
			continue
		}
		d, err := emf.Parse([]byte(strings.TrimSpace(line)))
		if err != nil {
			t.Errorf("EMF line: %v\n%s", err, line)
			continue
		}
		docs = append(docs, d)
	}
	metric := func(d emf.Document, name string) float64 {
		for _, m := range d.Metrics {
			if m.Name == name {
				return m.Values[0]
			}
		}
		return -1
	}
	if len(docs) != 2 || docs[0].DimensionValues[metricname.DimensionChannel] != "demo" ||
		metric(docs[0], metricname.EventsProcessed) != 1 || metric(docs[0], metricname.Errors) != 0 || metric(docs[1], metricname.Errors) != 1 {
		t.Errorf("EMF documents on stdout: %+v; want two for channel demo, the second an error\n%s", docs, stdout.String())
	}
	// What the function's memory setting is measured against.
	if !measure {
		return
	}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status"); err == nil {
		for line := range strings.Lines(string(b)) {
			if strings.HasPrefix(line, "VmHWM:") {
				t.Logf("bootstrap peak resident memory: %s", strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")))
			}
		}
	}
}

// The function reads its settings from the environment the way the relay
// reads its flags (shared/config): every variable the stack sets, a bad
// or non-positive duration refused with the variable's name, and the
// configuration logged once.
func TestSettingsFromEnv(t *testing.T) {
	base := map[string]string{"SMOOTHCAST_BUCKET": "media", "AWS_REGION": "eu-west-1"}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		dvr     time.Duration
		wantErr string
	}{
		{"the defaults", nil, 30 * time.Minute, ""},
		{"the variables the stack sets", map[string]string{"SMOOTHCAST_DVR_WINDOW": "1h0m0s", "SMOOTHCAST_RETENTION": "72h0m0s"}, time.Hour, ""},
		{"a bad duration names its variable", map[string]string{"SMOOTHCAST_GAP_TIMEOUT": "soon"}, 0, `SMOOTHCAST_GAP_TIMEOUT="soon": want a Go duration`},
		{"a zero duration names its variable", map[string]string{"SMOOTHCAST_DVR_WINDOW": "0s"}, 0, `SMOOTHCAST_DVR_WINDOW="0s": want a positive Go duration`},
		{"a retention too short for the window", map[string]string{"SMOOTHCAST_RETENTION": "20m"}, 0, "retention 20m0s must be at least the DVR window"},
		{"no bucket", map[string]string{"SMOOTHCAST_BUCKET": ""}, 0, "bucket name is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := maps.Clone(base)
			maps.Copy(env, tc.env)
			var logged strings.Builder
			h, err := setup(context.Background(), slog.New(slog.NewJSONHandler(&logged, nil)), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || h.Cfg.DVRWindow != tc.dvr {
				t.Fatalf("DVR window %v, %v; want %v", h.Cfg.DVRWindow, err, tc.dvr)
			}
			if n := strings.Count(logged.String(), `"msg":"manifest function"`); n != 1 || !strings.Contains(logged.String(), `"bucket":"media"`) {
				t.Errorf("%d configuration lines, want one naming the bucket: %s", n, logged.String())
			}
		})
	}
}

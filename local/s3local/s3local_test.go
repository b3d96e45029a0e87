package s3local_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/shared/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type recorder struct {
	mu     sync.Mutex
	events []events.S3Event
	fail   int // fail this many deliveries first
}

func (r *recorder) notify(_ context.Context, ev events.S3Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return errors.New("injected failure")
	}
	r.events = append(r.events, ev)
	return nil
}

func start(t testing.TB, opts s3local.Options) (*s3local.Server, *store.Store) {
	t.Helper()
	ctx := context.Background()
	opts.Addr, opts.Bucket, opts.Log = "127.0.0.1:0", "smoothcast-test", quiet
	srv, err := s3local.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.New(ctx, store.Config{Bucket: opts.Bucket, Endpoint: srv.URL, AccessKey: s3local.AccessKey, SecretKey: s3local.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return srv, st
}

// modes are the server's two ways of keeping objects: each test of what
// the server promises runs in both.
var modes = []struct {
	name    string
	dataDir func(t testing.TB) string
}{
	{"in memory", func(testing.TB) string { return "" }},
	{"in a data directory", func(t testing.TB) string { return t.TempDir() }},
}

// restart closes srv and starts a server again with opts.
func restart(t testing.TB, srv *s3local.Server, opts s3local.Options) (*s3local.Server, *store.Store) {
	t.Helper()
	if err := srv.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	return start(t, opts)
}

// Every object written that passes the filter becomes the event JSON S3
// sends, in the shape of the sample event AWS documents (events/); writes
// the filter leaves out and refused writes produce none.
func TestWritesBecomeS3Events(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { testWritesBecomeS3Events(t, m.dataDir(t)) })
	}
}

func testWritesBecomeS3Events(t *testing.T, dataDir string) {
	ctx := context.Background()
	rec := &recorder{fail: 1}
	srv, st := start(t, s3local.Options{DataDir: dataDir, Filter: func(key string) bool { return strings.HasPrefix(key, "live/") && strings.HasSuffix(key, ")") }, Notify: rec.notify})
	defer srv.Close(ctx)
	key := "live/demo.isml/QualityLevels(800000)/Fragments(video=20000000)"
	etag, err := st.Put(ctx, key, []byte("fragment"), store.PutOptions{IfNoneMatch: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, key, []byte("fragment"), store.PutOptions{IfNoneMatch: true}); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("second write: %v", err)
	}
	for _, k := range []string{"state/demo/channel.json", "live/demo.isml/QualityLevels(800000)/Init(video).mp4"} {
		if _, err := st.Put(ctx, k, []byte("{}"), store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	srv.Drain()
	if len(rec.events) != 1 {
		t.Fatalf("%d events, want 1 (delivered on the retry after one failure)", len(rec.events))
	}
	got := rec.events[0].Records[0]
	sample, err := os.ReadFile("../../events/fragment-created.json")
	if err != nil {
		t.Fatal(err)
	}
	var want events.S3Event
	if err := json.Unmarshal(sample, &want); err != nil {
		t.Fatal(err)
	}
	w := want.Records[0]
	if got.EventSource != w.EventSource || got.EventName != w.EventName || got.EventVersion != w.EventVersion ||
		got.S3.Bucket.Name != "smoothcast-test" || got.S3.Object.Key != w.S3.Object.Key ||
		got.S3.Object.Size != int64(len("fragment")) || `"`+got.S3.Object.ETag+`"` != etag || got.S3.Object.Sequencer == "" {
		t.Fatalf("event record\n got %+v\nwant the shape of %+v", got, w)
	}
	req := srv.Requests()
	if req["PUT"] != 4 || req["PUT 412"] != 1 {
		t.Errorf("request counts %v, want 4 PUTs, 1 refused", req)
	}
}

// With a data directory, objects outlive the server.
func TestDataDirKeepsObjects(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv, st := start(t, s3local.Options{DataDir: dir})
	if _, err := st.Put(ctx, "live/x", []byte("kept"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	srv, st = restart(t, srv, s3local.Options{DataDir: dir})
	defer srv.Close(ctx)
	obj, err := st.Get(ctx, "live/x")
	if err != nil || string(obj.Body) != "kept" {
		t.Fatalf("after restart: %q, %v", obj.Body, err)
	}
}

func TestEncodeKey(t *testing.T) {
	for in, want := range map[string]string{
		"live/a b/c":                  "live/a+b/c",
		"live/ch.isml/Fragments(v=1)": "live/ch.isml/Fragments%28v%3D1%29",
	} {
		if got := s3local.EncodeKey(in); got != want {
			t.Errorf("EncodeKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// The fault decisions come from the seed: requests and events made one
// after the other meet the same errors and the same duplicates under the
// same seed, and other ones under another.
func TestFaultSeedReplaysTheDecisions(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { testFaultSeedReplaysTheDecisions(t, m.dataDir) })
	}
}

func testFaultSeedReplaysTheDecisions(t *testing.T, dataDir func(testing.TB) string) {
	ctx := context.Background()
	run := func(seed uint64) string {
		rec := &recorder{}
		srv, _ := start(t, s3local.Options{DataDir: dataDir(t), FaultSeed: seed, Notify: rec.notify})
		defer srv.Close(ctx)
		if srv.FaultSeed() != seed {
			t.Fatalf("FaultSeed() = %d, want %d", srv.FaultSeed(), seed)
		}
		srv.SetFaults(s3local.Faults{ErrorRate: 0.5, DuplicateRate: 0.5})
		var outcomes strings.Builder
		for i := range 48 {
			// Plain PUTs, one request each (the SDK would retry).
			req, err := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/smoothcast-test/live/k%02d", srv.URL, i), strings.NewReader("x"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			fmt.Fprintf(&outcomes, "%d:%d ", i, resp.StatusCode)
		}
		srv.Drain()
		srv.SetFaults(s3local.Faults{})
		req := srv.Requests()
		fmt.Fprintf(&outcomes, "| 500: %d, 503: %d | events:", req["PUT 500"], req["PUT 503"])
		rec.mu.Lock()
		keys := make([]string, 0, len(rec.events))
		for _, ev := range rec.events {
			keys = append(keys, ev.Records[0].S3.Object.Key)
		}
		rec.mu.Unlock()
		slices.Sort(keys)
		fmt.Fprint(&outcomes, keys)
		return outcomes.String()
	}
	first := run(42)
	if again := run(42); again != first {
		t.Errorf("seed 42 twice:\n%s\n%s", first, again)
	}
	if other := run(43); other == first {
		t.Errorf("seeds 42 and 43 made the same decisions: %s", first)
	}
	if !strings.Contains(first, ":200") || !strings.Contains(first, ":503") || !strings.Contains(first, ":500") {
		t.Errorf("a rate of 0.5 failed all requests or none: %s", first)
	}
}

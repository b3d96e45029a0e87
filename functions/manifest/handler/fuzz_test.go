package handler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/internal/testtool/bucket"
	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
)

// guardStore is the store as the handler sees it, with every write
// checked (only keys under state/{channel}/ of a channel that the event
// being handled names) and every read bounded (fragments by range, at
// most fmp4.MaxMoof).
type guardStore struct {
	handler.ObjectStore

	mu      sync.Mutex
	allowed map[string]bool // channels the current invocation's records name
	bad     []string        // writes outside them
	writes  int             // writes allowed
}

// maxRead is the most the handler may read of one object at once: a
// fragment's moof, capped (handler.readArrival).
const maxRead = fmp4.MaxMoof

func (g *guardStore) GetRange(ctx context.Context, key string, first, last int64) (store.Object, error) {
	if first < 0 || last-first+1 > maxRead {
		g.mu.Lock()
		g.bad = append(g.bad, fmt.Sprintf("read of %s bytes %d-%d", key, first, last))
		g.mu.Unlock()
	}
	return g.ObjectStore.GetRange(ctx, key, first, last)
}

// Get reads whole objects: state, init segments and end markers, never
// a fragment (those are read by range).
func (g *guardStore) Get(ctx context.Context, key string) (store.Object, error) {
	if obj, err := layout.Parse(key); err == nil && obj.Kind == layout.KindFragment {
		g.mu.Lock()
		g.bad = append(g.bad, "whole read of the fragment "+key)
		g.mu.Unlock()
	}
	return g.ObjectStore.Get(ctx, key)
}

func (g *guardStore) Put(ctx context.Context, key string, body []byte, o store.PutOptions) (string, error) {
	g.mu.Lock()
	ok := false
	for ch := range g.allowed {
		if strings.HasPrefix(key, layout.StatePrefix+ch+"/") && !strings.Contains(key, "..") {
			ok = true
		}
	}
	if !ok {
		g.bad = append(g.bad, key)
	} else {
		g.writes++
	}
	g.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("guard: write outside the event's channel state: %s", key)
	}
	return g.ObjectStore.Put(ctx, key, body, o)
}

// expect resets the guard for an invocation: the channels its S3 records
// name, decoded as the handler decodes them (none for anything else).
func (g *guardStore) expect(payload []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.allowed, g.bad, g.writes = map[string]bool{}, nil, 0
	// Record by record, as Invoke reads them: one that does not decode is
	// dropped, the others stand.
	var ev struct {
		Records []json.RawMessage `json:"Records"`
	}
	if json.Unmarshal(payload, &ev) != nil {
		return
	}
	for _, raw := range ev.Records {
		var rec events.S3EventRecord
		if json.Unmarshal(raw, &rec) != nil {
			continue
		}
		key, err := url.QueryUnescape(rec.S3.Object.Key)
		if err != nil {
			continue
		}
		if obj, err := layout.Parse(key); err == nil && layout.ValidName(obj.Channel) {
			g.allowed[obj.Channel] = true
		}
	}
}

// fuzzSeeds are invocations of every shape: the sample events, and S3
// events for the objects of a real push (fragments and end markers), for
// keys outside the layout and for state objects.
func fuzzSeeds(t testing.TB, st *store.Store) [][]byte {
	t.Helper()
	var seeds [][]byte
	files, err := filepath.Glob("../../../events/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no sample events: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	// What the relay stores for a recorded ffmpeg push.
	objs, err := bucket.Load(storedPush)
	if err != nil {
		t.Fatal(err)
	}
	if err := bucket.Write(context.Background(), st, layout.LivePrefix+"fz.isml/", objs); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 12, 0, 4, 0, time.UTC)
	var stored []string
	err = st.List(context.Background(), layout.LivePrefix+"fz.isml/", func(page []store.Listed) error {
		for _, o := range page {
			if obj, err := layout.Parse(o.Key); err == nil && (obj.Kind == layout.KindFragment || obj.Kind == layout.KindEnd) {
				stored = append(stored, o.Key)
			}
		}
		return nil
	})
	if err != nil || len(stored) == 0 {
		t.Fatalf("the push stored %v: %v", stored, err)
	}
	event := func(keys ...string) []byte {
		ev := events.S3Event{}
		for i, k := range keys {
			ev.Records = append(ev.Records, s3local.Event("b", k, "ObjectCreated:Put", 1000, "", uint64(i), at).Records...)
		}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	seeds = append(seeds, event(stored[0]), event(stored[len(stored)-1]), event(stored...),
		event("state/fz/channel.json"), event("live/../state/fz/channel.json"),
		event("live/fz.isml/QualityLevels(800000)/Fragments(video=007)"),
		[]byte(`{"Records":[{"s3":{"object":{"key":"%ZZ","size":-1}}}]}`),
		[]byte(`{"Records":null,"requestContext":{"http":{"method":"GET","path":"/state/fz/channel.json"}},"rawPath":"/state/fz/channel.json"}`),
		[]byte(`{"requestContext":{"http":{"method":"GET"}},"rawPath":"/live/fz.isml/Manifest","queryStringParameters":{"t":"-1"}}`),
		[]byte(`[]`), []byte(`null`), []byte(`{"Records":{}}`))
	return seeds
}

// FuzzInvoke feeds arbitrary JSON to the Lambda entry point, over a store
// that holds a real push: it must never panic; it writes only under
// state/{channel}/ of a channel that an S3 record of the invocation
// names (nothing at all for a Function URL request), reads fragments only
// by range and at most fmp4.MaxMoof at once, and serves nothing of state/.
func FuzzInvoke(f *testing.F) {
	_, st := testtool.Store(f, "fuzz-invoke")
	for _, s := range fuzzSeeds(f, st) {
		f.Add(s)
	}
	guard := &guardStore{ObjectStore: st}
	quietLog := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, payload []byte) {
		guard.expect(payload)
		h := handler.New(guard, handler.DefaultConfig(), quietLog)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, _ := h.Invoke(ctx, json.RawMessage(payload))
		guard.mu.Lock()
		bad := guard.bad
		guard.mu.Unlock()
		if len(bad) > 0 {
			t.Fatalf("%v; the invocation names only channels %v", bad, guard.allowed)
		}
		if resp, ok := out.(events.LambdaFunctionURLResponse); ok && resp.StatusCode/100 == 2 {
			var req events.LambdaFunctionURLRequest
			_ = json.Unmarshal(payload, &req)
			p := req.RawPath // what the handler answers
			if p == "" {
				p = req.RequestContext.HTTP.Path
			}
			if u, err := url.PathUnescape(p); err == nil && strings.Contains("/"+strings.TrimPrefix(u, "/"), "/"+layout.StatePrefix) {
				t.Fatalf("%d for %q: state is never served", resp.StatusCode, p)
			}
		}
	})
}

// The guard is not vacuous: the seeds of a real push's objects make the
// handler write its state, under the push's channel only, and a write
// elsewhere, an oversized read or a whole fragment read is caught.
func TestFuzzInvokeGuard(t *testing.T) {
	_, st := testtool.Store(t, "fuzz-invoke")
	guard := &guardStore{ObjectStore: st}
	quietLog := slog.New(slog.NewTextHandler(io.Discard, nil))
	writes := 0
	for _, s := range fuzzSeeds(t, st) {
		guard.expect(s)
		if _, err := handler.New(guard, handler.DefaultConfig(), quietLog).Invoke(context.Background(), s); err != nil {
			t.Logf("seed %.60s: %v", s, err)
		}
		if len(guard.bad) > 0 {
			t.Fatalf("seed %.80s wrote %v", s, guard.bad)
		}
		writes += guard.writes
	}
	if writes == 0 {
		t.Fatal("no seed made the handler write its state")
	}
	guard.expect([]byte(`{"Records":[{"s3":{"object":{"key":"live/fz.isml/QualityLevels(1000)/Fragments(video=0)"}}}]}`))
	for _, key := range []string{"state/other/channel.json", "live/fz.isml/Manifest", "state/fz.json", "state/fzz/channel.json"} {
		if _, err := guard.Put(context.Background(), key, nil, store.PutOptions{}); err == nil {
			t.Errorf("the guard let %s through", key)
		}
	}
	guard.bad = nil
	_, _ = guard.GetRange(context.Background(), "live/fz.isml/x", 0, maxRead)
	_, _ = guard.Get(context.Background(), "live/fz.isml/QualityLevels(1000)/Fragments(video=0)")
	if len(guard.bad) != 2 {
		t.Errorf("the guard saw %v, want an oversized range and a whole fragment", guard.bad)
	}
}

package stack_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// states reads each track's state from what a stack left in dir, with an
// embedded store of its own (no events, no stack).
func states(t *testing.T, dir string, ids []layout.TrackID) map[layout.TrackID]*timeline.TrackState {
	t.Helper()
	ctx := context.Background()
	srv, err := s3local.Start(ctx, s3local.Options{Addr: "127.0.0.1:0", Bucket: "smoothcast", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Close(ctx) }()
	st, err := store.New(ctx, store.Config{Bucket: "smoothcast", Endpoint: srv.URL, AccessKey: s3local.AccessKey, SecretKey: s3local.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	out := map[layout.TrackID]*timeline.TrackState{}
	for _, id := range ids {
		out[id] = trackState(t, st, id)
	}
	return out
}

// trackState is the state of track id of channel "crash" (empty when there
// is none).
func trackState(t *testing.T, st *store.Store, id layout.TrackID) *timeline.TrackState {
	t.Helper()
	o, err := st.Get(context.Background(), layout.TrackStateKey("crash", id))
	if errors.Is(err, store.ErrNotFound) {
		return &timeline.TrackState{}
	}
	if err != nil {
		t.Fatal(err)
	}
	s, err := timeline.UnmarshalTrackState(o.Body)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A stack killed mid-push (its event queue lost, its push ended by
// nothing) leaves fragments stored that the state does not list, and the
// channel's connection open for ever. A stack started again over the same
// data directory lists them, in time order, and ends the connection as a
// drop would: an end marker at the newest fragment's end, nothing pending.
// A second start finds nothing to do.
func TestAStartReconcilesWhatAKilledStackLeft(t *testing.T) {
	const handled, total = 2, 5 // fragments per track whose events the killed stack handled, and stored
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := synth.New(synth.Config{FragmentDuration: 2 * time.Second, SMIL: true,
		Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 300_000}, {Kind: timeline.Audio, Bitrate: 64_000}}})
	if err != nil {
		t.Fatal(err)
	}
	ids := []layout.TrackID{{Name: "video", Bitrate: 300_000}, {Name: "audio", Bitrate: 64_000}}
	index := map[string]int{} // each fragment's key: its index
	for k := range total {
		for i, id := range ids {
			index[layout.FragmentKey("crash", id, uint64(s.Start(i, k)))] = k
		}
	}
	// Each fragment's events wait at the tap until the test lets them
	// through: the first ones' once they are stored, so that the handler
	// reads while the relay does not write (the bbolt backend of
	// -data-dir faults under concurrent reads and writes: the issue's
	// first class); the last ones' never, so that they are lost when the
	// process dies.
	gates := make([]chan struct{}, total)
	for k := range gates {
		gates[k] = make(chan struct{})
	}
	var mu sync.Mutex
	var lost []string
	tap := func(ev events.S3Event) {
		key, _ := url.QueryUnescape(ev.Records[0].S3.Object.Key)
		k, ok := index[key]
		if !ok {
			return
		}
		if k >= handled {
			mu.Lock()
			lost = append(lost, key)
			mu.Unlock()
		}
		<-gates[k]
	}
	opts := stack.Options{IngestAddr: "127.0.0.1:0", EdgeAddr: "127.0.0.1:0", DataDir: dir, Log: quiet, EventTap: tap, EventWorkers: 1}
	first, err := stack.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first.Settle(ctx) // its reconciliation of the empty directory is over
	header, err := s.Header()
	if err != nil {
		t.Fatal(err)
	}
	push := testtool.OpenPush(t, first.IngestURL, "/live/crash.isml/Streams(enc1)")
	defer push.Conn().Close()
	push.Send(t, header)
	puts := func() int { return first.S3.Requests()["PUT 200"] }
	for k := range total {
		frag, err := s.AppendFragment(nil, k)
		if err != nil {
			t.Fatal(err)
		}
		// The relay stores a fragment per track (and first their init
		// segments) as the push goes, not as it is sent.
		want := puts() + len(ids)
		if k == 0 {
			want += len(ids)
		}
		push.Send(t, frag)
		for deadline := time.Now().Add(20 * time.Second); puts() < want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("fragment %d: %d PUTs, want %d", k, puts(), want)
			}
		}
		if k < handled {
			close(gates[k])
			first.S3.Drain()
		}
	}
	stack.Kill(first, func() {
		for _, g := range gates[handled:] {
			close(g)
		}
	})

	// What the killed stack left: every fragment stored, the last ones
	// never listed, nothing ended.
	before := states(t, dir, ids)
	for i, id := range ids {
		st := before[id]
		if end := uint64(s.Start(i, handled)); st.Timeline.End() != end || len(st.Ends) != 0 {
			t.Fatalf("the killed stack's %s state: published to %d, ends %v; want to %d, none", id.Name, st.Timeline.End(), st.Ends, end)
		}
	}
	mu.Lock()
	t.Logf("events lost with the killed stack, those that reached its queue's worker: %q", lost)
	mu.Unlock()

	opts.EventTap = nil
	second, err := stack.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Close(context.Background()) })
	second.Settle(ctx)
	for i, id := range ids {
		st := trackState(t, second.Store, id)
		end := uint64(s.Start(i, total))
		if st.Timeline.End() != end || len(st.Pending) != 0 || st.Timeline.Len() != total {
			t.Errorf("%s: published %d fragments to %d (%d pending), want the %d stored, to %d", id.Name, st.Timeline.Len(), st.Timeline.End(), len(st.Pending), total, end)
		}
		if len(st.Ends) != 1 || st.Ends[0].Time != end || st.Ends[0].Stream {
			t.Errorf("%s: ends %+v, want the connection dropped at %d", id.Name, st.Ends, end)
		}
		marker, err := second.Store.Get(ctx, layout.EndKey("crash", id, end))
		var m struct {
			Stream *bool `json:"eos"`
		}
		if err != nil || json.Unmarshal(marker.Body, &m) != nil || m.Stream == nil || *m.Stream {
			t.Errorf("%s: end marker %s: %v %q, want a drop's", id.Name, layout.EndKey("crash", id, end), err, marker.Body)
		}
	}
	// The playlists list the last fragment now.
	resp, err := second.Handler.HandleURL(ctx, events.LambdaFunctionURLRequest{RawPath: "/" + layout.MediaPlaylistPath("crash", ids[0]),
		RequestContext: events.LambdaFunctionURLRequestContext{HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: "GET"}}})
	if last := "Fragments(video=" + strconv.FormatInt(s.Start(0, total-1), 10) + ")"; err != nil || !strings.Contains(resp.Body, last) {
		t.Errorf("the playlist lacks %s: %v\n%s", last, err, resp.Body)
	}

	// Started again, there is nothing left to do: no event, no marker.
	if err := second.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var replayed atomic.Int64
	opts.EventTap = func(events.S3Event) { replayed.Add(1) }
	third, err := stack.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = third.Close(context.Background()) })
	third.Settle(ctx)
	if n := replayed.Load(); n != 0 {
		t.Errorf("a start after a clean stop sent %d events", n)
	}
}

package janitor_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/aws/aws-lambda-go/events"

	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/internal/testtool/bucket"
	"github.com/smoothcast/smoothcast/local/janitor"
	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
)

// Media go once past the retention; init segments, a channel's state
// written within the retention plus layout.StateGrace, and keys outside
// the layout stay. (The state used to stay for ever; it now expires
// StateGrace after the media: TestStateExpiresWithItsMediaNeverWhileLive.)
func TestSweepRemovesOldMediaOnly(t *testing.T) {
	_, st := testtool.Store(t, "janitor-test")
	ctx := context.Background()
	v := layout.TrackID{Name: "video", Bitrate: 1000}
	keys := []string{
		layout.FragmentKey("ch", v, 0), layout.FragmentKey("ch", v, 20), layout.EndKey("ch", v, 40),
		layout.InitKey("ch", v), layout.TrackStateKey("ch", v), layout.ChannelStateKey("ch"),
		"live/not-in-the-layout",
	}
	for _, k := range keys {
		if _, err := st.Put(ctx, k, []byte("x"), store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing is old yet.
	if n, err := janitor.Sweep(ctx, st, time.Now(), time.Hour); err != nil || n != 0 {
		t.Fatalf("sweep of fresh objects: %d, %v", n, err)
	}
	// Everything is past the retention: only fragments and end markers go.
	n, err := janitor.Sweep(ctx, st, time.Now().Add(2*time.Hour), time.Hour)
	if err != nil || n != 3 {
		t.Fatalf("sweep: deleted %d, %v; want 3", n, err)
	}
	left := testtool.Keys(t, st)
	want := keys[3:]
	slices.Sort(want)
	slices.Sort(left)
	if !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
}

// clockedStore is a bucket whose clock the test moves: each write is
// stamped with the clock's time (its Last-Modified, which the lifecycle
// rules and the janitor go by) and keeps its tag set. It has S3's
// conditions (If-None-Match, If-Match).
type clockedStore struct {
	mu   sync.Mutex
	now  time.Time
	objs map[string]clockedObject
	etag int
}

type clockedObject struct {
	store.Object
	modified time.Time
	tagging  string
}

func (c *clockedStore) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clockedStore) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *clockedStore) Get(_ context.Context, key string) (store.Object, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.objs[key]
	if !ok {
		return store.Object{}, store.ErrNotFound
	}
	return o.Object, nil
}

func (c *clockedStore) GetRange(ctx context.Context, key string, first, last int64) (store.Object, error) {
	o, err := c.Get(ctx, key)
	o.Body = o.Body[min(first, o.Size):min(last+1, o.Size)]
	return o, err
}

func (c *clockedStore) Put(_ context.Context, key string, body []byte, o store.PutOptions) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, exists := c.objs[key]
	if o.IfNoneMatch && exists || o.IfMatch != "" && (!exists || old.ETag != o.IfMatch) {
		return "", store.ErrPreconditionFailed
	}
	c.etag++
	etag := strconv.Itoa(c.etag)
	c.objs[key] = clockedObject{store.Object{Body: bytes.Clone(body), ETag: etag, Metadata: o.Metadata, Size: int64(len(body))}, c.now, o.Tagging}
	return etag, nil
}

func (c *clockedStore) List(_ context.Context, prefix string, fn func([]store.Listed) error) error {
	c.mu.Lock()
	var page []store.Listed
	for _, k := range slices.Sorted(maps.Keys(c.objs)) {
		if strings.HasPrefix(k, prefix) {
			page = append(page, store.Listed{Key: k, Size: c.objs[k].Size, Modified: c.objs[k].modified})
		}
	}
	c.mu.Unlock()
	return fn(page)
}

func (c *clockedStore) Delete(_ context.Context, keys []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		delete(c.objs, k)
	}
	return nil
}

// under returns the keys under prefix.
func (c *clockedStore) under(prefix string) []string {
	var keys []string
	_ = c.List(context.Background(), prefix, func(page []store.Listed) error {
		for _, o := range page {
			keys = append(keys, o.Key)
		}
		return nil
	})
	return keys
}

// fragment is a stored fragment (as the relay writes it: tfxd and tfdt,
// 10 MHz) of two samples lasting d from start.
func fragment(t *testing.T, start uint64, d time.Duration) []byte {
	t.Helper()
	frag, err := mp4.CreateFragment(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	half := uint64(d/time.Second) * 10_000_000 / 2
	for i := range uint64(2) {
		frag.AddFullSample(mp4.FullSample{Sample: mp4.Sample{Flags: mp4.SyncSampleFlags, Dur: uint32(half), Size: 8}, DecodeTime: start + i*half, Data: make([]byte, 8)})
	}
	frag.Moof.Traf.Tfdt.Version = 1
	tfxd := mp4.NewTfxdBox(start, 2*half)
	tfxd.Tfxd.Version = 1
	if err := frag.Moof.Traf.AddChild(tfxd); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := frag.Encode(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A channel's state (its index and track states) expires with its media,
// as the bucket's lifecycle rules expire it on AWS: a channel that a
// stranger pushed one fragment to is forgotten once that fragment is past
// the retention and the state's grace, while a channel live for three
// days, thirty times the retention, keeps its state throughout (the
// function writes its track state at every fragment, its index every
// layout.StateRefresh). At no time is a state document gone while media
// of its channel are still stored. Once the live channel stops, its state
// goes the same way.
func TestStateExpiresWithItsMediaNeverWhileLive(t *testing.T) {
	ctx := context.Background()
	objs, err := bucket.Load("../../functions/manifest/handler/testdata/stored-push.json")
	if err != nil {
		t.Fatal(err)
	}
	v := layout.TrackID{Name: "video", Bitrate: 60000}
	var init []byte
	for _, o := range objs {
		if o.Key == "QualityLevels(60000)/Init(video).mp4" {
			init = o.Body
		}
	}
	const retention = 2 * time.Hour
	const every = 10 * time.Minute // fragment duration, and time between events
	st := &clockedStore{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), objs: map[string]clockedObject{}}
	cfg := handler.DefaultConfig()
	cfg.Retention = retention
	h := handler.New(st, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h.Now = st.Now
	next := map[string]uint64{} // each channel's next fragment
	push := func(ch string) {
		t.Helper()
		if next[ch] == 0 {
			if _, err := st.Put(ctx, layout.InitKey(ch, v), init, store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		k := next[ch]
		next[ch]++
		start := k * uint64(every/time.Second) * 10_000_000
		key := layout.FragmentKey(ch, v, start)
		o := store.PutOptions{Tagging: layout.ExpireTag}
		if k > 0 {
			o.Metadata = map[string]string{layout.MetaPrev: strconv.FormatUint(start-uint64(every/time.Second)*10_000_000, 10)}
		}
		body := fragment(t, start, every)
		if _, err := st.Put(ctx, key, body, o); err != nil {
			t.Fatal(err)
		}
		if err := h.HandleS3(ctx, s3local.Event("b", key, "ObjectCreated:Put", int64(len(body)), "", k, st.Now())); err != nil {
			t.Fatal(err)
		}
	}
	sweep := func() {
		t.Helper()
		if _, err := janitor.Sweep(ctx, st, st.Now(), retention); err != nil {
			t.Fatal(err)
		}
		for _, ch := range []string{"junk", "live"} {
			media, state := st.under(layout.LivePrefix+ch+".isml/QualityLevels(60000)/Fragments("), st.under(layout.StatePrefix+ch+"/")
			if len(media) > 0 && len(state) != 2 {
				t.Fatalf("%v: %s still stores %d fragments and only the state %v", st.Now(), ch, len(media), state)
			}
		}
	}
	state := func(ch string) []string { return st.under(layout.StatePrefix + ch + "/") }
	live := func() int {
		t.Helper()
		resp, err := h.HandleURL(ctx, urlRequest("/"+layout.MediaPlaylistPath("live", v)))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v: the live channel's playlist: %d %v %s", st.Now(), resp.StatusCode, err, resp.Body)
		}
		return strings.Count(resp.Body, "#EXTINF")
	}

	started := st.Now()
	push("junk")
	for st.Now().Sub(started) < 3*24*time.Hour {
		st.advance(every)
		push("live")
		sweep()
		if n := live(); n < min(int(next["live"]), 3) { // the DVR window, 30 min
			t.Fatalf("%v, %v after it started: the live channel lists %d fragments", st.Now(), st.Now().Sub(started), n)
		}
		if got := state("live"); len(got) != 2 {
			t.Fatalf("%v, %v after it started: the live channel's state is %v", st.Now(), st.Now().Sub(started), got)
		}
		if st.Now().Sub(started) == retention+time.Hour && len(state("junk")) != 2 {
			t.Fatalf("the junk channel's state went with its media, before the grace: %v", state("junk"))
		}
	}
	if got := state("junk"); len(got) != 0 {
		t.Errorf("three days on, the one-fragment channel's state is still there: %v", got)
	}
	if got := st.under(layout.LivePrefix + "junk.isml/"); !slices.Equal(got, []string{layout.InitKey("junk", v)}) {
		t.Errorf("the one-fragment channel left %v, want its init segment only", got)
	}
	// The live channel stops: its state goes once its media have, and not
	// before.
	for stopped := st.Now(); st.Now().Sub(stopped) <= retention+layout.StateGrace; {
		st.advance(time.Hour)
		sweep()
	}
	if got := state("live"); len(got) != 0 {
		t.Errorf("the stopped channel's state outlived its media by more than the grace: %v", got)
	}
}

func urlRequest(path string) events.LambdaFunctionURLRequest {
	return events.LambdaFunctionURLRequest{
		Version: "2.0", RawPath: path,
		RequestContext: events.LambdaFunctionURLRequestContext{HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: "GET", Path: path}},
	}
}

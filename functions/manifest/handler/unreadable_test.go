package handler_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/internal/testtool/bucket"
	"github.com/smoothcast/smoothcast/internal/testtool/logtest"
	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/shared/emf"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/metricname"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/store/storetest"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// paddedFragment is a stored fragment of one 2 s sample at start (10 MHz,
// tfxd and tfdt, as the relay writes them) whose moof is padded with a
// free box to moofSize bytes, then a small mdat.
func paddedFragment(t *testing.T, start uint64, moofSize int) []byte {
	t.Helper()
	frag, err := mp4.CreateFragment(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	frag.AddFullSample(mp4.FullSample{Sample: mp4.Sample{Flags: mp4.SyncSampleFlags, Dur: 20_000_000, Size: 16}, DecodeTime: start, Data: make([]byte, 16)})
	frag.Moof.Traf.Tfdt.Version = 1
	tfxd := mp4.NewTfxdBox(start, 20_000_000)
	tfxd.Tfxd.Version = 1
	if err := frag.Moof.Traf.AddChild(tfxd); err != nil {
		t.Fatal(err)
	}
	pad := moofSize - int(frag.Moof.Size()) - 8
	if pad < 0 {
		t.Fatalf("a moof of %d bytes is too small for a fragment", moofSize)
	}
	if err := frag.Moof.AddChild(mp4.NewFreeBox(make([]byte, pad))); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := frag.Encode(&b); err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint32(b.Bytes()); got != uint32(moofSize) {
		t.Fatalf("moof of %d bytes, want %d", got, moofSize)
	}
	return b.Bytes()
}

// shortReads truncates every ranged read to at most 64 KiB, as a read that
// falls short would.
type shortReads struct{ handler.ObjectStore }

func (s shortReads) GetRange(ctx context.Context, key string, first, last int64) (store.Object, error) {
	o, err := s.ObjectStore.GetRange(ctx, key, first, last)
	if len(o.Body) > 64<<10 {
		o.Body = o.Body[:64<<10]
	}
	return o, err
}

// What the relay accepts the function reads: a moof of up to
// fmp4.MaxMoof is published. An object whose own bytes the function can
// never publish from (a moof larger than that, bytes that are no moof, a
// time that is not its key's, an object ending inside its moof, an end
// marker that is not one) is logged once with its key and reason,
// counted as an error, and not retried (HandleS3 returns nil: Lambda
// would retry it and then park it in the failure queue). A read of the
// store that falls short is still an error, retried.
func TestUnreadableObjectsAreLoggedCountedAndNotRetried(t *testing.T) {
	ctx := context.Background()
	objs, err := bucket.Load(storedPush)
	if err != nil {
		t.Fatal(err)
	}
	video := layout.TrackID{Name: "video", Bitrate: 60000}
	const second = 10_000_000
	for _, tc := range []struct {
		name     string
		key      string
		body     func(t *testing.T, key string) []byte
		dropped  string // the reason logged; empty: published
		retried  bool   // an error for Lambda to retry
		wrapping func(handler.ObjectStore) handler.ObjectStore
	}{
		{name: "a moof of fmp4.MaxMoof bytes is published", key: layout.FragmentKey("ch", video, 100*second),
			body: func(t *testing.T, _ string) []byte { return paddedFragment(t, 100*second, fmp4.MaxMoof) }},
		{name: "a moof of the issue's 24 MB is dropped", key: layout.FragmentKey("ch", video, 100*second),
			body:    func(t *testing.T, _ string) []byte { return paddedFragment(t, 100*second, 24_000_000) },
			dropped: "larger than the 8388608 bytes the pipeline carries"},
		{name: "a moof a byte over fmp4.MaxMoof is dropped", key: layout.FragmentKey("ch", video, 100*second),
			body:    func(t *testing.T, _ string) []byte { return paddedFragment(t, 100*second, fmp4.MaxMoof+1) },
			dropped: "larger than"},
		{name: "bytes that are no moof are dropped", key: layout.FragmentKey("ch", video, 100*second),
			body:    func(*testing.T, string) []byte { return []byte("\x00\x00\x00\x10junkjunkjunkjunk") },
			dropped: "decode moof"},
		{name: "a moof whose time is not its key's is dropped", key: layout.FragmentKey("ch", video, 100*second),
			body:    func(t *testing.T, _ string) []byte { return paddedFragment(t, 102*second, 4096) },
			dropped: "does not match its key"},
		{name: "an object that ends inside its moof is dropped", key: layout.FragmentKey("ch", video, 100*second),
			body:    func(t *testing.T, _ string) []byte { return paddedFragment(t, 100*second, 1<<20)[:300<<10] },
			dropped: "ends inside its moof"},
		{name: "an end marker that is not JSON is dropped", key: layout.EndKey("ch", video, 100*second),
			body:    func(*testing.T, string) []byte { return []byte("{eos") },
			dropped: "end marker"},
		{name: "a read that falls short is retried", key: layout.FragmentKey("ch", video, 100*second),
			body:     func(t *testing.T, _ string) []byte { return paddedFragment(t, 100*second, 1<<20) },
			retried:  true,
			wrapping: func(s handler.ObjectStore) handler.ObjectStore { return shortReads{s} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := &storetest.Mem{}
			for _, o := range objs {
				if _, err := mem.Put(ctx, layout.LivePrefix+"ch.isml/"+o.Key, o.Body, store.PutOptions{Metadata: o.Metadata}); err != nil {
					t.Fatal(err)
				}
			}
			body := tc.body(t, tc.key)
			if _, err := mem.Put(ctx, tc.key, body, store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			var st handler.ObjectStore = mem
			if tc.wrapping != nil {
				st = tc.wrapping(st)
			}
			rec := logtest.New()
			var metrics bytes.Buffer
			h := handler.New(st, handler.DefaultConfig(), rec.Logger())
			h.Metrics = emf.NewWriter(&metrics)
			at := time.Now()
			h.Now = func() time.Time { return at }
			ev := s3local.Event("b", tc.key, "ObjectCreated:Put", int64(len(body)), "", 1, at)
			err := h.HandleS3(ctx, ev)
			if tc.retried {
				if err == nil {
					t.Fatal("a short read was not returned for Lambda to retry")
				}
				return
			}
			if err != nil {
				t.Fatalf("HandleS3 = %v: Lambda would retry it, and fail again, for ever", err)
			}
			docs := metricsOf(t, strings.Split(strings.TrimSpace(metrics.String()), "\n"))
			if len(docs) != 1 {
				t.Fatalf("%d metrics documents, want 1", len(docs))
			}
			errs := value(docs[0], metricname.Errors)
			var found []string
			for _, r := range rec.Records() {
				if r.Level == slog.LevelError {
					found = append(found, r.Message)
				}
			}
			if tc.dropped == "" {
				st, err := mem.Get(ctx, layout.TrackStateKey("ch", video))
				if err != nil {
					t.Fatal(err)
				}
				ts, err := timeline.UnmarshalTrackState(st.Body)
				if err != nil || !ts.Timeline.Contains(100*second) && len(ts.Pending) != 1 {
					t.Fatalf("the fragment is neither published nor pending: %+v, %v", ts, err)
				}
				if errs != 0 || len(found) != 0 {
					t.Errorf("Errors = %v, error lines %q for a fragment that was read", errs, found)
				}
				return
			}
			rec.Wait(t, slog.LevelError, "event dropped: the object cannot be read", map[string]string{"key": tc.key, "reason": tc.dropped})
			if len(found) != 1 {
				t.Errorf("error lines %q, want the one", found)
			}
			if errs != 1 {
				t.Errorf("Errors = %v, want 1", errs)
			}
			if _, err := mem.Get(ctx, layout.TrackStateKey("ch", video)); err == nil {
				t.Error("the track's state was written for an object that was dropped")
			}
		})
	}
}

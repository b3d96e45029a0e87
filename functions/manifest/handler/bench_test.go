package handler_test

import (
	"bytes"
	"context"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/aws/aws-lambda-go/events"

	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/store/storetest"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// countingStore counts the handler's store requests and the bytes it
// writes.
type countingStore struct {
	handler.ObjectStore
	gets, puts, written atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, key string) (store.Object, error) {
	c.gets.Add(1)
	return c.ObjectStore.Get(ctx, key)
}

func (c *countingStore) GetRange(ctx context.Context, key string, first, last int64) (store.Object, error) {
	c.gets.Add(1)
	return c.ObjectStore.GetRange(ctx, key, first, last)
}

func (c *countingStore) Put(ctx context.Context, key string, body []byte, o store.PutOptions) (string, error) {
	c.puts.Add(1)
	c.written.Add(int64(len(body)))
	return c.ObjectStore.Put(ctx, key, body, o)
}

// liveChannel is the benchmarks' channel in the embedded store: the
// channel index and the six track states of manifesttest.Long(window), and
// a way to store each track's next fragment as the relay would.
type liveChannel struct {
	st     handler.ObjectStore
	p      *timeline.Presentation
	next   []timeline.Fragment // each track's next fragment
	aac    []uint64            // the audio track's durations, by fragment index
	counts []int               // fragments published per track
}

func newLiveChannel(b *testing.B, window time.Duration, inMemory bool) *liveChannel {
	b.Helper()
	var st handler.ObjectStore = &storetest.Mem{}
	if !inMemory {
		_, st = testtool.Store(b, "bench-bucket")
	}
	ctx := context.Background()
	p := manifesttest.Long(window)
	// Media time zero a window ago: the live edge is now, and nothing is
	// past retention.
	ch := timeline.Channel{Version: timeline.StateVersion, Name: p.Channel, Epoch: time.Now().Add(-window).Truncate(time.Millisecond).UTC()}
	lc := &liveChannel{st: st, p: p}
	for _, tv := range p.Tracks {
		ch.Tracks = append(ch.Tracks, tv.Track)
		doc, err := timeline.MarshalTrackState(&tv.State)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Put(ctx, layout.TrackStateKey(p.Channel, tv.ID), doc, store.PutOptions{ContentType: "application/json"}); err != nil {
			b.Fatal(err)
		}
		last, _ := tv.State.Timeline.Last()
		lc.next = append(lc.next, timeline.Fragment{Start: last.End(), Duration: last.Duration})
		lc.counts = append(lc.counts, tv.State.Timeline.Len())
	}
	lc.aac = manifesttest.AACDurations(48000, lc.counts[len(lc.counts)-1]+1<<20)
	doc, err := timeline.MarshalChannel(&ch)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.Put(ctx, layout.ChannelStateKey(p.Channel), doc, store.PutOptions{ContentType: "application/json"}); err != nil {
		b.Fatal(err)
	}
	return lc
}

// storeNext stores track i's next fragment (a moof with tfdt and one
// sample of the fragment's duration, and a small mdat) with the relay's
// metadata, and returns its key and size.
func (lc *liveChannel) storeNext(b *testing.B, i int) (string, int64) {
	b.Helper()
	tv := lc.p.Tracks[i]
	f := lc.next[i]
	if tv.Kind == timeline.Audio {
		f.Duration = lc.aac[lc.counts[i]]
	}
	frag, err := mp4.CreateFragment(uint32(lc.counts[i]+1), 1)
	if err != nil {
		b.Fatal(err)
	}
	frag.AddFullSample(mp4.FullSample{Sample: mp4.Sample{Flags: mp4.SyncSampleFlags, Dur: uint32(f.Duration), Size: 64}, DecodeTime: f.Start, Data: make([]byte, 64)})
	frag.Moof.Traf.Tfdt.Version = 1
	var buf bytes.Buffer
	if err := frag.Encode(&buf); err != nil {
		b.Fatal(err)
	}
	prevStart := f.Start - lc.next[i].Duration
	if tv.Kind == timeline.Audio {
		prevStart = f.Start - lc.aac[lc.counts[i]-1]
	}
	key := layout.FragmentKey(lc.p.Channel, tv.ID, f.Start)
	if _, err := lc.st.Put(context.Background(), key, buf.Bytes(), store.PutOptions{ContentType: "video/mp4",
		Metadata: map[string]string{layout.MetaPrev: strconv.FormatUint(prevStart, 10)}}); err != nil {
		b.Fatal(err)
	}
	lc.next[i] = timeline.Fragment{Start: f.End(), Duration: f.Duration}
	lc.counts[i]++
	return key, int64(buf.Len())
}

// eventFor is the notification for a fragment the benchmark stored.
func eventFor(key string, size int64, at time.Time) events.S3Event {
	return s3local.Event("bench-bucket", key, "ObjectCreated:Put", size, "", 0, at)
}

// BenchmarkFragmentEvent is the manifest function's whole work for one
// fragment event: a ranged GET of the fragment's head, a GET of the
// track's state, the timeline update, and the conditional PUT of the
// state, against the embedded S3 store over loopback and, for the
// handler's own CPU, against a map. Events go round the six tracks of
// the benchmarks' channel (five video renditions, AAC audio) at three DVR
// windows. Besides ns/op it reports the store requests and the bytes the
// handler writes per event.
func BenchmarkFragmentEvent(b *testing.B) {
	for _, w := range manifesttest.Windows {
		for _, inMemory := range []bool{false, true} {
			name := w.Name + "/embedded-s3"
			if inMemory {
				name = w.Name + "/in-memory" // the handler's own work
			}
			b.Run(name, func(b *testing.B) { benchmarkFragmentEvent(b, w.D, inMemory) })
		}
	}
}

func benchmarkFragmentEvent(b *testing.B, window time.Duration, inMemory bool) {
	lc := newLiveChannel(b, window, inMemory)
	cs := &countingStore{ObjectStore: lc.st}
	cfg := handler.DefaultConfig()
	cfg.DVRWindow, cfg.Retention = window, window+time.Hour
	h := handler.New(cs, cfg, quiet)
	ctx := context.Background()
	at := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		key, size := lc.storeNext(b, i%len(lc.p.Tracks))
		ev := eventFor(key, size, at)
		b.StartTimer()
		if err := h.HandleS3(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cs.gets.Load())/float64(b.N), "gets/op")
	b.ReportMetric(float64(cs.puts.Load())/float64(b.N), "puts/op")
	b.ReportMetric(float64(cs.written.Load())/float64(b.N), "written-B/op")
}

// BenchmarkWarmContainerPeakHeap is one warm function container serving
// a channel with a 24 h window: fragment events for every track, and each
// manifest (Smooth, DASH, the HLS master and media playlists) rendered,
// as CloudFront asks at most once per second per format. A sampler reads
// the Go heap (runtime/metrics, objects live and not yet swept) every
// millisecond; peak-heap-MB is the highest reading above the heap before
// the work (the embedded store runs in the same process, so it is an
// upper bound).
func BenchmarkWarmContainerPeakHeap(b *testing.B) {
	lc := newLiveChannel(b, 24*time.Hour, false)
	cfg := handler.DefaultConfig()
	cfg.DVRWindow, cfg.Retention = 24*time.Hour, 25*time.Hour
	h := handler.New(lc.st, cfg, quiet)
	ctx := context.Background()
	paths := []string{layout.SmoothManifestPath("ch"), layout.DASHManifestPath("ch"), layout.MasterPlaylistPath("ch")}
	for _, tv := range lc.p.Tracks {
		paths = append(paths, layout.MediaPlaylistPath("ch", tv.ID))
	}
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	runtime.GC()
	base := read()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if v := read(); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	var bytesOut int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range lc.p.Tracks {
			key, size := lc.storeNext(b, k)
			if err := h.HandleS3(ctx, eventFor(key, size, time.Now())); err != nil {
				b.Fatal(err)
			}
		}
		for _, p := range paths {
			resp, err := h.HandleURL(ctx, urlRequest("GET", "/"+p))
			if err != nil || resp.StatusCode != 200 {
				b.Fatalf("%s: %v %d", p, err, resp.StatusCode)
			}
			bytesOut += len(resp.Body)
		}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(peak.Load()-min(base, peak.Load()))/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(bytesOut)/float64(b.N), "manifest-B/op")
}

package stack_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// The local stack on its data directory, as `smoothcast run` starts it,
// holds under its own load: 40 channels pushed 12 at a time by encoders
// that send as fast as they are taken, while 4 viewers fetch through the
// edge each fragment as soon as it is stored, and the channels' manifests,
// and 2 viewers on slow connections fetch fragments that they stop
// reading part of the way until the store has doubled. The process
// survives; every fragment a viewer got, and every fragment listed
// afterwards, is whole; no manifest fails.
func TestLocalStackHoldsUnderBurstPushesAndReads(t *testing.T) {
	channels, atOnce, viewers, slowViewers, fragments := 40, 12, 4, 2, 6
	if testing.Short() {
		channels, fragments = 12, 3
	}
	cfg := synth.Config{SMIL: true, Tracks: []synth.Track{
		{Kind: timeline.Video, Bitrate: 6_000_000, Name: "video", Width: 1920, Height: 1080},
		{Kind: timeline.Video, Bitrate: 1_000_000, Name: "video", Width: 640, Height: 360},
		{Kind: timeline.Audio, Bitrate: 128_000, Name: "audio"},
	}}
	// One channel in 20 is UHD, its fragments 4 s at 40 Mbit/s: 20 MB,
	// more than the sockets between store, edge and viewer hold.
	uhd := synth.Config{SMIL: true, FragmentDuration: 4 * time.Second, Tracks: []synth.Track{
		{Kind: timeline.Video, Bitrate: 40_000_000, Name: "video", Width: 3840, Height: 2160},
		{Kind: timeline.Audio, Bitrate: 128_000, Name: "audio"},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The viewers learn each fragment from its object-created event.
	stored := make(chan string, channels*fragments*len(cfg.Tracks))
	var (
		mu       sync.Mutex
		grew     = sync.NewCond(&mu) // storedMB grew, or the pushes ended
		storedMB int64
		top      []string // UHD fragments stored
		ended    bool
	)
	st, err := stack.Start(ctx, stack.Options{
		IngestAddr: "127.0.0.1:0", EdgeAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		EventTap: func(ev events.S3Event) {
			key, err := url.QueryUnescape(ev.Records[0].S3.Object.Key)
			o, perr := layout.Parse(key)
			if err != nil || perr != nil || o.Kind != layout.KindFragment {
				return
			}
			select {
			case stored <- key:
			default:
			}
			mu.Lock()
			defer mu.Unlock()
			storedMB += ev.Records[0].S3.Object.Size
			if o.Track.Bitrate == uhd.Tracks[0].Bitrate {
				top = append(top, key)
			}
			grew.Broadcast()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })

	began := time.Now()
	var pushes sync.WaitGroup
	slots := make(chan struct{}, atOnce)
	for ch := range channels {
		pushes.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			c := cfg
			if ch%20 == 0 {
				c = uhd
			}
			s, err := synth.New(c)
			if err != nil {
				t.Error(err)
				return
			}
			u := fmt.Sprintf("%s/live/load%02d.isml/Streams(enc)", st.IngestURL, ch)
			if err := synth.Push(ctx, http.DefaultClient, u, s, synth.Range{Count: fragments, End: true}); err != nil {
				t.Errorf("channel %d: %v", ch, err)
			}
		})
	}
	var fetched, manifests atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	for v := range viewers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(v), 0))
			for {
				var key string
				select {
				case <-done:
					return
				case key = <-stored:
				}
				fetchFragment(t, st.EdgeURL, key)
				fetched.Add(1)
				if r.IntN(8) == 0 {
					o, _ := layout.Parse(key)
					code, _ := get(t, st.EdgeURL+"/"+layout.SmoothManifestPath(o.Channel))
					if code >= 500 {
						t.Errorf("manifest of %s: %d", o.Channel, code)
					}
					manifests.Add(1)
				}
			}
		})
	}
	// A slow viewer stalls after the first bytes of a UHD fragment until
	// the bucket has doubled: the edge and the store are
	// in the middle of sending it all that time.
	var stalled atomic.Int64
	for range slowViewers {
		wg.Go(func() {
			for n := 0; ; n++ {
				mu.Lock()
				for len(top) <= n && !ended {
					grew.Wait()
				}
				if ended {
					mu.Unlock()
					return
				}
				key := top[n]
				mu.Unlock()
				resp, err := http.Get(st.EdgeURL + "/" + key)
				if err != nil {
					t.Errorf("GET %s: %v", key, err)
					return
				}
				head := make([]byte, 32<<10)
				_, err = io.ReadFull(resp.Body, head)
				mu.Lock()
				for target := 2 * storedMB; storedMB < target && !ended; {
					grew.Wait()
				}
				mu.Unlock()
				rest, err2 := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || err2 != nil || resp.StatusCode != http.StatusOK {
					t.Errorf("GET %s: %s, %v, %v", key, resp.Status, err, err2)
					return
				}
				if _, err := fmp4.Inspect(append(head, rest...)); err != nil {
					t.Errorf("%s, read slowly (%d bytes): %v", key, len(head)+len(rest), err)
				}
				stalled.Add(1)

			}
		})
	}
	pushes.Wait()
	st.Settle(ctx)
	mu.Lock()
	ended = true
	grew.Broadcast()
	mu.Unlock()
	close(done)
	wg.Wait()
	elapsed := time.Since(began)

	var listed int
	var size int64
	err = st.Store.List(ctx, layout.LivePrefix, func(page []store.Listed) error {
		for _, o := range page {
			if obj, err := layout.Parse(o.Key); err == nil && obj.Kind == layout.KindFragment {
				listed++
				size += o.Size
				fetchFragment(t, st.EdgeURL, o.Key)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d channels, %d at a time: %d fragments (%d MB) stored in %v, %d fetched and %d manifests while they were, %d fetched slowly",
		channels, atOnce, listed, size>>20, elapsed.Round(time.Millisecond), fetched.Load(), manifests.Load(), stalled.Load())
	uhds := (channels + 19) / 20
	if want := (channels-uhds)*fragments*len(cfg.Tracks) + uhds*fragments*len(uhd.Tracks); listed != want {
		t.Errorf("%d fragments listed, want %d", listed, want)
	}
}

// fetchFragment gets the fragment at key through the edge and checks that
// it is whole.
func fetchFragment(t *testing.T, edge, key string) {
	t.Helper()
	code, body := get(t, edge+"/"+key)
	if code != http.StatusOK {
		t.Errorf("%s: %d", key, code)
		return
	}
	if _, err := fmp4.Inspect(body); err != nil {
		t.Errorf("%s (%d bytes): %v", key, len(body), err)
	}
}

func get(t *testing.T, u string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Errorf("GET %s: %v", u, err)
		return 0, nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("GET %s: %v", u, err)
	}
	return resp.StatusCode, body
}

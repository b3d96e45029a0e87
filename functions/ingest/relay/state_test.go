package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// tinyRendition is a small video rendition as an encoder uploads it, and
// the same media as a push.
func tinyRendition(t *testing.T) (init []byte, segments [][]byte, push []byte) {
	t.Helper()
	cfg := synth.Config{FragmentDuration: 200 * time.Millisecond, FrameRate: 10,
		Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 20_000, Width: 32, Height: 16}}}
	var b bytes.Buffer
	s, err := synth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteTo(context.Background(), &b, synth.Range{Count: 2, End: true}); err != nil {
		t.Fatal(err)
	}
	cfg.CMAF = true
	if s, err = synth.New(cfg); err != nil {
		t.Fatal(err)
	}
	if init, err = s.Header(); err != nil {
		t.Fatal(err)
	}
	for k := range 2 {
		seg, err := s.AppendFragment(nil, k)
		if err != nil {
			t.Fatal(err)
		}
		segments = append(segments, seg)
	}
	return init, segments, b.Bytes()
}

// Channels come and go: each of 10,000 uploads a rendition (an init
// segment, two segments, and a playlist that ends it, or silence) and
// takes a short push. Once they are done the relay holds nothing of them:
// no upload state, no stream in progress, no metric series, and its heap
// is back within a few MiB of where it was before them.
func TestChannelsComeAndGoLeaveNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 channels: skipped with -short")
	}
	init, segs, push := tinyRendition(t)
	cfg := relay.DefaultConfig()
	cfg.ReadTimeout = 3 * time.Second // idle renditions end, quiet channels are forgotten, this soon (1 s dropped some under a load of 8)
	cfg.MaxStreams = 0                // lingering renditions (2 s each) pile up past 256
	rl := relay.New(nullStore{}, cfg, quiet)
	h := rl.Handler()
	send := func(method, path string, body []byte) int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, path, bytes.NewReader(body)))
		return w.Code
	}
	channel := func(i int) error {
		ch := fmt.Sprintf("/live/c%d.isml/", i)
		for _, u := range []struct {
			file string
			body []byte
			want int
		}{
			{"init-stream0.m4s", init, 200},
			{"chunk-stream0-00001.m4s", segs[0], 200},
			{"chunk-stream0-00002.m4s", segs[1], 200},
		} {
			if code := send(http.MethodPut, ch+u.file, u.body); code != u.want {
				return fmt.Errorf("channel %d: %s: %d", i, u.file, code)
			}
		}
		if i%2 == 0 { // else the rendition goes idle
			pl := "#EXTM3U\n#EXT-X-MAP:URI=\"init-stream0.m4s\"\n#EXTINF:0.2,\nchunk-stream0-00001.m4s\n#EXTINF:0.2,\nchunk-stream0-00002.m4s\n#EXT-X-ENDLIST\n"
			if code := send(http.MethodPut, ch+"stream0.m3u8", []byte(pl)); code != 200 {
				return fmt.Errorf("channel %d: playlist: %d", i, code)
			}
		}
		if code := send(http.MethodPost, ch+"Streams(enc)", push); code != 200 {
			return fmt.Errorf("channel %d: push: %d", i, code)
		}
		return nil
	}
	run := func(from, to int) {
		var wg sync.WaitGroup
		next := make(chan int)
		for range 16 {
			wg.Go(func() {
				for i := range next {
					if err := channel(i); err != nil {
						t.Error(err)
					}
				}
			})
		}
		for i := from; i < to; i++ {
			next <- i
		}
		close(next)
		wg.Wait()
		for deadline := time.Now().Add(time.Minute); rl.UploadChannels() > 0 || rl.Active() > 0; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("after a minute: %d channels with upload state, %d streams in progress", rl.UploadChannels(), rl.Active())
			}
		}
	}
	// A first round of the same shape grows what the runtime keeps for
	// good: the goroutines of the most channels alive at once (every
	// goroutine ever made stays on the runtime's list, to be reused), the
	// pools, the metrics' fixed series.
	const n = 10_000
	began := time.Now()
	run(0, n)
	before := settledHeap()
	run(n, 2*n)
	after := settledHeap()
	t.Logf("%d channels in %v: heap %.1f MiB after the first %d, %.1f MiB after %d more", 2*n, time.Since(began).Round(time.Millisecond), mb(before), n, mb(after), n)
	if after > before+4<<20 {
		t.Errorf("heap grew from %.1f to %.1f MiB over %d channels that came and went", mb(before), mb(after), n)
	}
	if used := scrape(t, rl)["smoothcast_memory_budget_used_bytes"]; used != 0 {
		t.Errorf("%.0f bytes of the memory budget still drawn", used)
	}
	for series := range scrape(t, rl) {
		if strings.Contains(series, `channel="c`) {
			t.Errorf("a series of a channel that went: %s", series)
		}
	}
	if st := rl.Status(); len(st.Channels) != 0 {
		t.Errorf("status lists %d channels, want none", len(st.Channels))
	}
}

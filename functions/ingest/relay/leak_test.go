package relay_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
)

// Uploads refused with 429 under new names (the relay at its stream
// limit, init segments to ever new channels), and playlists under new
// names into a live channel, leave nothing behind: once answered, the
// relay holds no upload state for the refused channels (it held each for
// -read-timeout, a goroutine, a timer and its map entry: about 2 KB a
// name, and the map and the goroutines' records never shrink), no metric
// series, and its heap is where it was.
func TestRefusalsUnderNewNamesLeaveNothing(t *testing.T) {
	init, segs, _ := tinyRendition(t)
	cfg := relay.DefaultConfig()
	cfg.MaxStreams = 1
	cfg.ReadTimeout = time.Minute // the busy rendition lives, a quiet channel is kept, this long
	rl := relay.New(nullStore{}, cfg, quiet)
	h := rl.Handler()
	send := func(method, path string, body []byte) int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, path, bytes.NewReader(body)))
		return w.Code
	}
	// The one stream the relay takes: a live upload rendition.
	for _, u := range []struct {
		file string
		body []byte
	}{{"init-stream0.m4s", init}, {"chunk-stream0-00001.m4s", segs[0]}} {
		if code := send(http.MethodPut, "/live/busy.isml/"+u.file, u.body); code != 200 {
			t.Fatalf("%s: %d", u.file, code)
		}
	}
	const n = 5000
	round := 0
	refuse := func() {
		round++
		for i := range n {
			if code := send(http.MethodPut, fmt.Sprintf("/live/r%d-%d.isml/init-stream0.m4s", round, i), init); code != 429 {
				t.Fatalf("init segment %d: %d, want 429", i, code)
			}
			pl := fmt.Sprintf("#EXTM3U\n#EXT-X-MAP:URI=\"init-%d-%d.m4s\"\n#EXTINF:0.2,\ns%d-%d-1.m4s\n", round, i, round, i)
			if code := send(http.MethodPut, fmt.Sprintf("/live/busy.isml/s%d-%d-.m3u8", round, i), []byte(pl)); code != 200 {
				t.Fatalf("playlist %d: %d, want 200", i, code)
			}
		}
		// The channel goroutines answer, then retire: wait for the last.
		for deadline := time.Now().Add(10 * time.Second); rl.UploadChannels() != 1; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d channels with upload state 10 s after %d refusals under new names, want 1 (the busy one)", rl.UploadChannels(), n)
			}
		}
	}
	refuse() // a first round grows what the runtime keeps for good (pools, goroutine records)
	before := settledHeap()
	refuse()
	after := settledHeap()
	t.Logf("heap %.1f MiB after a first round of %d refusals and playlists, %.1f MiB after a second", mb(before), n, mb(after))
	if per := (int64(after) - int64(before)) / n; per > 100 {
		t.Errorf("the heap grew by %d bytes per refusal under a new name", per)
	}
	for series := range scrape(t, rl) {
		if strings.Contains(series, `channel="r`) {
			t.Errorf("a series of a refused channel: %s", series)
		}
	}
}

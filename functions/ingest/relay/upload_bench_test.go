package relay_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/shared/synth"
)

// BenchmarkUpload uploads an encoder's CMAF ladder (synth.Ladder: five
// H.264 renditions and AAC, 2 s segments, 30 of each) to the relay with a
// store that keeps nothing: its own work on uploads (telling files apart,
// placing and ordering segments, the session), each rendition's files one
// after the other and the renditions at once, as ffmpeg's muxers send
// them, straight into the handler (no network).
func BenchmarkUpload(b *testing.B) {
	cfg := synth.Config{CMAF: true, Tracks: synth.Ladder()}
	type rendition struct {
		init     []byte
		segments [][]byte
	}
	var rs []rendition
	size := 0
	for _, c := range cfg.Split() {
		s, err := synth.New(c)
		if err != nil {
			b.Fatal(err)
		}
		var r rendition
		if r.init, err = s.Header(); err != nil {
			b.Fatal(err)
		}
		for k := range 30 {
			seg, err := s.AppendFragment(nil, k)
			if err != nil {
				b.Fatal(err)
			}
			r.segments = append(r.segments, seg)
			size += len(seg)
		}
		rs = append(rs, r)
	}
	rcfg := relay.DefaultConfig()
	rcfg.MaxStreams = 0 // each round's renditions linger 2 s after it
	rl := relay.New(nullStore{}, rcfg, quiet)
	h := rl.Handler()
	b.Cleanup(rl.CloseUploads)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		var wg sync.WaitGroup
		for ri, r := range rs {
			wg.Go(func() {
				put := func(file string, body []byte) {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, httptest.NewRequest(http.MethodPut, fmt.Sprintf("/live/b%d.isml/%s", i, file), bytes.NewReader(body)))
					if w.Code != http.StatusOK {
						b.Errorf("%s: %d %s", file, w.Code, w.Body)
					}
				}
				put(fmt.Sprintf("init-stream%d.m4s", ri), r.init)
				for k, seg := range r.segments {
					put(fmt.Sprintf("chunk-stream%d-%05d.m4s", ri, k+1), seg)
				}
			})
		}
		wg.Wait()
	}
}

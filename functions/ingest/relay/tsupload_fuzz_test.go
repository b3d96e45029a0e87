package relay_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
)

// FuzzTSUpload: whatever MPEG-TS segments an encoder uploads after its
// playlist, the relay answers each with a status that says what it did
// (stored, held, refused), never panics, and ends every session it
// started. Seeded with ffmpeg's HLS segments (package upload's testdata).
func FuzzTSUpload(f *testing.F) {
	var segs [][]byte
	for _, name := range []string{"index0.ts", "index1.ts", "index2.ts", "nokey.ts"} {
		b, err := os.ReadFile("../upload/testdata/ts/" + name)
		if err != nil {
			f.Fatal(err)
		}
		segs = append(segs, b)
	}
	f.Add(segs[0], segs[1])
	f.Add(segs[1], segs[0])
	f.Add(segs[0], segs[3])
	f.Add(segs[2][:188*5], segs[2][188*5:])
	playlist := []byte("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:0.2,\nindex0.ts\n#EXTINF:0.2,\nindex1.ts\n")
	allowed := map[int]bool{200: true, 202: true, 400: true, 409: true, 413: true, 503: true}
	f.Fuzz(func(t *testing.T, seg1, seg2 []byte) {
		cfg := relay.DefaultConfig()
		cfg.MaxBox, cfg.ReadTimeout, cfg.ReorderWait = 1<<20, time.Second, 10*time.Millisecond
		rl := relay.New(nullStore{}, cfg, quiet)
		h := rl.Handler()
		for _, u := range []struct {
			file string
			body []byte
		}{{"index.m3u8", playlist}, {"index0.ts", seg1}, {"index1.ts", seg2}, {"index2.ts", seg1}} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodPut, "/live/fz.isml/"+u.file, bytes.NewReader(u.body)))
			if !allowed[w.Code] {
				t.Fatalf("PUT %s (%d bytes): status %d %s", u.file, len(u.body), w.Code, w.Body)
			}
		}
		endUploads(t, rl)
	})
}

// endUploads closes the relay's uploads: every session must end, and none
// be counted after.
func endUploads(t *testing.T, rl *relay.Relay) {
	t.Helper()
	done := make(chan struct{})
	go func() { rl.CloseUploads(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the upload sessions did not end")
	}
	if n := rl.Active(); n != 0 {
		t.Fatalf("%d sessions still counted after CloseUploads", n)
	}
}

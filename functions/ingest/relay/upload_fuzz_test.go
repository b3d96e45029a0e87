package relay_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
)

// FuzzUpload: whatever an encoder uploads, in whatever order and under
// whatever name, the relay answers with a status that says what it did,
// never panics, and ends every session it started.
func FuzzUpload(f *testing.F) {
	inits, segs := cmafRenditions(f, 2)
	f.Add("init-stream0.m4s", inits[0], "chunk-stream0-00001.m4s", segs[0][0])
	f.Add("stream_0.m3u8", []byte("#EXTM3U\n#EXT-X-MAP:URI=\"init_0.mp4\"\nstream_00.m4s\n#EXT-X-ENDLIST\n"), "stream_00.m4s", segs[2][1])
	f.Add("manifest.mpd", []byte(mpd("static")), "init-stream2.m4s", inits[2])
	f.Add("a.m4s", segs[1][0][:100], "b.m4s", append(bytes.Clone(inits[1]), segs[1][1]...))
	allowed := map[int]bool{200: true, 202: true, 204: true, 400: true, 404: true, 409: true, 413: true, 503: true}
	f.Fuzz(func(t *testing.T, file1 string, body1 []byte, file2 string, body2 []byte) {
		cfg := relay.DefaultConfig()
		cfg.MaxBox, cfg.ReadTimeout, cfg.ReorderWait = 1<<20, time.Second, 10*time.Millisecond
		rl := relay.New(nullStore{}, cfg, quiet)
		h := rl.Handler()
		for _, u := range []struct {
			file string
			body []byte
		}{{file1, body1}, {file2, body2}, {file1, body2}} {
			req, err := http.NewRequest(http.MethodPut, "http://relay/live/fz.isml/"+u.file, bytes.NewReader(u.body))
			if err != nil {
				continue // not a URL
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if !allowed[w.Code] {
				t.Fatalf("PUT %q (%d bytes): status %d %s", u.file, len(u.body), w.Code, w.Body)
			}
		}
		endUploads(t, rl)
	})
}

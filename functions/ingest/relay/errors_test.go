package relay_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
)

// A chunked body that net/http cannot read as chunks is the encoder's
// malformed request: 400 and a log line that says so, for a push and an
// upload alike (it was 408, as if the connection had broken), counted as
// a protocol error.
func TestMalformedChunkedBodyIs400(t *testing.T) {
	good := testtool.Chunk(fixture(t)[:2000])
	for _, tc := range []struct {
		name, bad string
	}{
		{"a chunk length that is not hex", "zz\r\n"},
		{"a chunk length of 2^72", "ffffffffffffffffff\r\n"},
		{"a chunk line ending with a bare LF", "10\nxxxx"},
		{"chunk data not followed by CRLF", "4\r\nabcdXY"},
	} {
		for _, req := range []struct{ method, path, log string }{
			{"POST", "/live/ch.isml/Streams(e)", "push refused: malformed chunked body"},
			{"PUT", "/live/ch.isml/init.mp4", "upload refused: malformed chunked body"},
		} {
			t.Run(tc.name+" "+req.method, func(t *testing.T) {
				hs, _, rec, rl := newRelay(t, relay.DefaultConfig())
				conn := testtool.RawRequest(t, hs.URL, req.method+" "+req.path+" HTTP/1.1\r\nHost: relay\r\nTransfer-Encoding: chunked\r\n\r\n"+string(good)+tc.bad)
				resp, msg, _ := readResponse(t, conn, 10*time.Second)
				if resp.StatusCode != 400 {
					t.Fatalf("%d %q, want 400", resp.StatusCode, msg)
				}
				rec.Wait(t, slog.LevelWarn, req.log, nil)
				if errs := rl.Status().RecentErrors; len(errs) != 1 || errs[0].Kind != "protocol" {
					t.Errorf("recent errors %+v, want one protocol error", errs)
				}
				if !strings.Contains(msg, "chunk") {
					t.Errorf("the answer %q does not say what was wrong", msg)
				}
			})
		}
	}
}

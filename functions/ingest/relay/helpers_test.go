package relay_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/internal/testtool/logtest"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/store"
)

// newRelay starts a relay with cfg over an embedded S3 server; its log
// goes to the recorder.
func newRelay(t *testing.T, cfg relay.Config) (*httptest.Server, *store.Store, *logtest.Recorder, *relay.Relay) {
	t.Helper()
	_, st := testtool.Store(t, "relay-test")
	rec := logtest.New()
	rl := relay.New(st, cfg, slog.New(rec))
	hs := httptest.NewServer(rl.Handler())
	t.Cleanup(hs.Close)
	return hs, st, rec, rl
}

// snapshot is every object of the bucket: key to body, content type and
// metadata.
func snapshot(t *testing.T, st *store.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range testtool.Keys(t, st) {
		o, err := st.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		var meta []string
		for mk, mv := range o.Metadata {
			meta = append(meta, mk+"="+mv)
		}
		sort.Strings(meta)
		out[k] = fmt.Sprintf("%s\x00%s\x00%x", o.ContentType, strings.Join(meta, ","), o.Body)
	}
	return out
}

// box is a top-level box of a push.
type box struct {
	typ       string
	at, size  int
	headerLen int
}

// topBoxes lists the top-level boxes of b.
func topBoxes(t *testing.T, b []byte) []box {
	t.Helper()
	var out []box
	for bx, err := range mp4box.All(b) {
		if err != nil {
			t.Fatalf("fixture: %v", err)
		}
		out = append(out, box{typ: bx.Type, at: int(bx.Pos), size: bx.Size(), headerLen: bx.HeaderSize})
	}
	return out
}

// nth returns the n-th (from 0) top-level box of type typ.
func nth(t *testing.T, b []byte, typ string, n int) box {
	t.Helper()
	for _, bx := range topBoxes(t, b) {
		if bx.typ == typ {
			if n == 0 {
				return bx
			}
			n--
		}
	}
	t.Fatalf("no %s box %d", typ, n)
	return box{}
}

// withTrackID returns body with the n-th moof's tfhd naming track id.
func withTrackID(t *testing.T, body []byte, n int, id uint32) []byte {
	t.Helper()
	out := bytes.Clone(body)
	moof := nth(t, out, "moof", n)
	i := bytes.Index(out[moof.at:moof.at+moof.size], []byte("tfhd"))
	if i < 0 {
		t.Fatal("moof without tfhd")
	}
	binary.BigEndian.PutUint32(out[moof.at+i+8:], id) // after type and version/flags
	return out
}

// inMoov returns body with the first old in its moov replaced by new (of
// the same length): a sample entry of another codec.
func inMoov(t *testing.T, body []byte, old, new string) []byte {
	t.Helper()
	out := bytes.Clone(body)
	moov := nth(t, out, "moov", 0)
	i := bytes.Index(out[moov.at:moov.at+moov.size], []byte(old))
	if i < 0 || len(old) != len(new) {
		t.Fatalf("no %s in the moov", old)
	}
	copy(out[moov.at+i:], new)
	return out
}

// garbageSMIL returns body with the live server manifest's XML replaced by
// as many bytes of garbage.
func garbageSMIL(t *testing.T, body []byte) []byte {
	t.Helper()
	out := bytes.Clone(body)
	i, j := bytes.Index(out, []byte("<?xml")), bytes.Index(out, []byte("</smil>"))
	if i < 0 || j < i {
		t.Fatal("fixture without SMIL")
	}
	garbage := []byte("<<this is not XML>> & neither is this \x00\x01\x02 ")
	for k := i; k < j+len("</smil>"); k++ {
		out[k] = garbage[(k-i)%len(garbage)]
	}
	return out
}

// largesize returns body with the box at bx rewritten with a 64-bit size
// (size field 1).
func largesize(body []byte, bx box) []byte {
	out := append([]byte{}, body[:bx.at]...)
	hdr := make([]byte, 16)
	binary.BigEndian.PutUint32(hdr, 1)
	copy(hdr[4:8], body[bx.at+4:bx.at+8])
	binary.BigEndian.PutUint64(hdr[8:], uint64(bx.size+8))
	out = append(out, hdr...)
	out = append(out, body[bx.at+8:bx.at+bx.size]...)
	return append(out, body[bx.at+bx.size:]...)
}

// readResponse reads one response from conn, waiting up to d.
func readResponse(t *testing.T, conn net.Conn, d time.Duration) (*http.Response, string, *bufio.Reader) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(d))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response within %v: %v", d, err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(msg), br
}

// closedWithin asserts that the peer closes conn within d.
func closedWithin(t *testing.T, conn net.Conn, br *bufio.Reader, d time.Duration) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(d))
	if br == nil {
		br = bufio.NewReader(conn)
	}
	if n, err := io.Copy(io.Discard, br); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("the connection is still open after %v (%d more bytes)", d, n)
		}
		// A reset is a close too.
	}
}

// settledHeap is the heap in use once the garbage collector has run (a
// few times: finalizers free more).
func settledHeap() uint64 {
	var m runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

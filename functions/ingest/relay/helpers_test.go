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
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/store"
)

// recorder is a slog handler that keeps every record, so that tests can
// assert the relay's log lines.
type recorder struct {
	mu    *sync.Mutex
	recs  *[]slog.Record
	attrs []slog.Attr
}

func newRecorder() *recorder { return &recorder{mu: &sync.Mutex{}, recs: &[]slog.Record{}} }

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(r.attrs...)
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.recs = append(*r.recs, rec)
	return nil
}

func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	c.attrs = append(slices.Clone(r.attrs), as...)
	return &c
}

func (r *recorder) WithGroup(string) slog.Handler { return r }

// records returns what was logged so far.
func (r *recorder) records() []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(*r.recs)
}

// attrs returns a record's attributes as strings.
func attrs(rec slog.Record) map[string]string {
	m := map[string]string{}
	rec.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	return m
}

// wait returns the first record at level with message msg whose
// attributes contain each of want (key: substring of the value), waiting
// up to two seconds for it: some lines are logged as the response goes.
func (r *recorder) wait(t *testing.T, level slog.Level, msg string, want map[string]string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		r.mu.Lock()
		recs := slices.Clone(*r.recs)
		r.mu.Unlock()
	next:
		for _, rec := range recs {
			if rec.Level != level || rec.Message != msg {
				continue
			}
			as := attrs(rec)
			for k, v := range want {
				if !strings.Contains(as[k], v) {
					continue next
				}
			}
			return as
		}
		if time.Now().After(deadline) {
			var seen []string
			for _, rec := range recs {
				seen = append(seen, fmt.Sprintf("%s %q %v", rec.Level, rec.Message, attrs(rec)))
			}
			t.Fatalf("no %s log line %q with %v; logged:\n%s", level, msg, want, strings.Join(seen, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newRelay starts a relay with cfg over an embedded S3 server; its log
// goes to the recorder.
func newRelay(t *testing.T, cfg relay.Config) (*httptest.Server, *store.Store, *recorder, *relay.Relay) {
	t.Helper()
	_, st := testtool.Store(t, "relay-test")
	rec := newRecorder()
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
	for _, k := range keys(t, st) {
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

// rawRequest opens a connection to hs and sends head as it is (a request
// line and headers, finished or not).
func rawRequest(t *testing.T, hs *httptest.Server, head string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(hs.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	return conn
}

// chunk is body as one chunk of a chunked request body.
func chunk(body []byte) []byte {
	return append(append([]byte(fmt.Sprintf("%x\r\n", len(body))), body...), "\r\n"...)
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

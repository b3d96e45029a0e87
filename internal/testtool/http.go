package testtool

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/shared/store"
)

// Do sends one request with body (chunked: without a Content-Length, as
// an encoder's push goes) and returns the answer's status and body.
func Do(t testing.TB, method, url string, body []byte, chunked bool) (int, string) {
	t.Helper()
	var r io.Reader = bytes.NewReader(body)
	if chunked {
		r = io.MultiReader(r) // hides the length: the client sends chunked
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(msg)
}

// Get is the body of url, which must answer 200.
func Get(t testing.TB, url string) []byte {
	t.Helper()
	code, body := Do(t, http.MethodGet, url, nil, false)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	return []byte(body)
}

// RawRequest opens a connection to addr (host:port, or an http:// URL)
// and sends head as it is: a request line and headers, finished or not.
// The connection is closed when the test ends.
func RawRequest(t testing.TB, addr, head string) net.Conn {
	t.Helper()
	addr = strings.TrimPrefix(addr, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	return conn
}

// Chunk is body as one chunk of a chunked request body.
func Chunk(body []byte) []byte {
	return append(append([]byte(fmt.Sprintf("%x\r\n", len(body))), body...), "\r\n"...)
}

// Keys lists every key in st's bucket.
func Keys(t testing.TB, st *store.Store) []string {
	t.Helper()
	var ks []string
	err := st.List(context.Background(), "", func(page []store.Listed) error {
		for _, o := range page {
			ks = append(ks, o.Key)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// SteppedPush is a push over a connection of its own whose chunked body
// the test writes a piece at a time.
type SteppedPush struct {
	conn net.Conn
	br   *bufio.Reader
}

// OpenPush starts a push (POST, chunked) to path on the server at base
// (an http:// URL), its body to come.
func OpenPush(t testing.TB, base, path string) *SteppedPush {
	t.Helper()
	conn := RawRequest(t, base, "POST "+path+" HTTP/1.1\r\nHost: relay\r\nTransfer-Encoding: chunked\r\n\r\n")
	return &SteppedPush{conn: conn, br: bufio.NewReader(conn)}
}

// Send writes b as one chunk of the body.
func (p *SteppedPush) Send(t testing.TB, b []byte) {
	t.Helper()
	if _, err := p.conn.Write(Chunk(b)); err != nil {
		t.Errorf("push: %v", err)
	}
}

// Finish ends the body and reads the answer (20 s at most).
func (p *SteppedPush) Finish(t testing.TB) (int, string) {
	t.Helper()
	if _, err := p.conn.Write([]byte("0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	return p.Answer(t, 20*time.Second)
}

// Answer reads the answer, body not ended (a push the server stops), d
// at most.
func (p *SteppedPush) Answer(t testing.TB, d time.Duration) (int, string) {
	t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(msg)
}

// Conn is the push's connection (to cut it, or to set its deadlines).
func (p *SteppedPush) Conn() net.Conn { return p.conn }

// FreeUDPAddr returns a loopback UDP address nothing listens on: a port
// the system just gave and took back (for an SRT peer the test starts).
func FreeUDPAddr(t testing.TB) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

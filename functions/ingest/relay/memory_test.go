package relay_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/tlsfile"
)

// budgetUsed is what the relay's buffers hold of its memory budget.
func budgetUsed(t *testing.T, rl *relay.Relay) float64 {
	t.Helper()
	return scrape(t, rl)["smoothcast_memory_budget_used_bytes"]
}

// Every buffer an encoder sizes draws from the relay's memory budget, and
// past it the request is refused with 503 and Retry-After: a connection
// the budget cannot take is answered before its request is read, an
// upload as its body grows past what is left, a push as its box does.
// What they drew is given back as they end.
func TestMemoryBudget(t *testing.T) {
	cfg := relay.DefaultConfig()
	cfg.MemoryBudget = 4 << 20 // under twice MemoryOverhead: half of it for buffers
	rl := relay.New(nullStore{}, cfg, quiet)
	hs := httptest.NewUnstartedServer(rl.Handler())
	hs.Listener = rl.Listener(hs.Listener)
	hs.Config.MaxHeaderBytes = relay.MaxHeaderBytes
	hs.Start()
	defer hs.Close()
	answer := func(resp *http.Response, err error) (int, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After") + " " + string(msg)
	}

	// An upload of 4 MiB: its body outgrows what is left.
	code, msg := answer(http.Post(hs.URL+"/live/m.isml/big.m4s", "video/mp4", bytes.NewReader(make([]byte, 4<<20))))
	if code != 503 || !strings.HasPrefix(msg, "5 ") || !strings.Contains(msg, "memory budget") {
		t.Errorf("a 4 MiB upload: %d %q, want 503 with Retry-After", code, msg)
	}
	// A push whose mdat declares 3 MiB.
	body := fixture(t)
	mdat := nth(t, body, "mdat", 0)
	huge := append(binary.BigEndian.AppendUint32(bytes.Clone(body[:mdat.at]), 8+3<<20), "mdat"...)
	code, msg = testtool.Do(t, "POST", hs.URL+"/live/m.isml/Streams(e)", append(huge, make([]byte, 3<<20)...), true)
	if code != 503 || !strings.Contains(msg, "memory budget") {
		t.Errorf("a push of a 3 MiB box: %d %q, want 503", code, msg)
	}
	// Connections that hold what is left: the next is refused at once.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 2 << 20 / (relay.MaxHeaderBytes + 12<<10) {
		c, err := net.Dial("tcp", strings.TrimPrefix(hs.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	refused := testtool.RawRequest(t, hs.URL, "GET /live/m.isml/Streams(x) HTTP/1.1\r\nHost: relay\r\n\r\n")
	_ = refused.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(refused), nil)
	if err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a connection past the budget: %v %v, want 503 with Retry-After", resp, err)
	}
	for _, c := range held {
		c.Close()
	}
	// Everything given back: a small upload and a whole push go through.
	waitFor(t, "the connections' cost given back", func() bool { return budgetUsed(t, rl) <= 2*(relay.MaxHeaderBytes+12<<10) })
	if code, msg := testtool.Do(t, "POST", hs.URL+"/live/ok.isml/Streams(e)", body, true); code != 200 {
		t.Errorf("a push within the budget: %d %s", code, msg)
	}
	if code, msg := testtool.Do(t, "PUT", hs.URL+"/live/ok.isml/x.m3u8", []byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n"), false); code != 200 {
		t.Errorf("an upload within the budget: %d %s", code, msg)
	}
	// A header past the limit: 431.
	if code, _ := answer(http.Get(hs.URL + "/live/ok.isml/Streams(e)?" + strings.Repeat("a", relay.MaxHeaderBytes+8<<10))); code != 431 && code != 414 {
		t.Errorf("a request line past the header limit: %d, want 431 (or 414)", code)
	}
}

// Over TLS, a connection the budget cannot take gets its 503 over TLS
// (the encoder speaks nothing else on that port), not a clear-text
// answer its TLS stack would take for garbage.
func TestMemoryBudgetRefusesOverTLS(t *testing.T) {
	certFile, keyFile, _, err := tlsfile.SelfSigned(t.TempDir(), []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kp, err := tlsfile.Load(certFile, keyFile, quiet)
	if err != nil {
		t.Fatal(err)
	}
	cfg := relay.DefaultConfig()
	cfg.MemoryBudget = 4 << 20
	rl := relay.New(nullStore{}, cfg, quiet)
	hs := httptest.NewUnstartedServer(rl.Handler())
	hs.Listener = rl.TLSListener(hs.Listener, kp.Config())
	hs.Config.MaxHeaderBytes = relay.MaxHeaderBytes
	hs.Start() // the listener serves TLS itself
	defer hs.Close()
	addr := strings.TrimPrefix(hs.URL, "http://")
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 2 << 20 / (relay.MaxHeaderBytes + 12<<10) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("the refused connection's handshake: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write([]byte("GET /live/m.isml/Streams(x) HTTP/1.1\r\nHost: relay\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a TLS connection past the budget: %v %v, want 503 with Retry-After over TLS", resp, err)
	}
}

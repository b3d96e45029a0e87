package rtmp

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
)

// recordingConn keeps what a client writes.
type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *recordingConn) take() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := bytes.Clone(c.out.Bytes())
	c.out.Reset()
	return b
}

// recordPublish has gortmplib's client publish m's samples [0, n) to a
// harness and returns what it sent: up to its publish command (the
// handshake, connect, createStream, publish), then the rest (metadata,
// sequence headers, media, and the end when end).
func recordPublish(t testing.TB, m *media, n int, end bool) (prefix, rest []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A server that takes the publish and reads the rest.
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		sc := &gortmplib.ServerConn{RW: nc}
		if sc.Initialize() != nil || sc.AcceptConn() != nil || sc.AcceptAction() != nil {
			return
		}
		_, _ = io.Copy(io.Discard, nc)
	}()
	var rc *recordingConn
	u, _ := url.Parse("rtmp://" + ln.Addr().String() + "/live#news")
	c := &gortmplib.Client{URL: u, Publish: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		rc = &recordingConn{Conn: nc}
		return rc, err
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Initialize(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prefix = rc.take()
	e := &encoder{c: c, m: m}
	e.vt, e.at = newTracks(m)
	e.w = &gortmplib.Writer{Conn: c, Tracks: []*gortmplib.Track{e.vt, e.at}}
	if err := e.w.Initialize(); err != nil {
		t.Fatal(err)
	}
	if err := e.send(0, n); err != nil {
		t.Fatal(err)
	}
	if end {
		if err := e.end(); err != nil {
			t.Fatal(err)
		}
	}
	return prefix, rc.take()
}

// FuzzConn feeds arbitrary bytes, after a client's handshake, connect and
// publish, through a connection into the server: whatever they are, the
// connection ends, the stream closes, and what the store holds of it is
// whole fragments.
func FuzzConn(f *testing.F) {
	m := newMedia(f, 5, 2*time.Second)
	prefix, whole := recordPublish(f, m, len(m.samples), true)
	_, cut := recordPublish(f, m, m.keyIndex(2)+7, false)
	f.Add(whole)
	f.Add(cut)
	f.Add(whole[:len(whole)/3])
	f.Add([]byte{})
	st := &keyStore{}
	rl := relay.New(st, relay.DefaultConfig(), slog.New(slog.DiscardHandler))
	s := New(rl, Config{ReadTimeout: 5 * time.Second, HandshakeTimeout: 5 * time.Second}, slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		if !s.track(server) {
			t.Fatal("the server refused the connection")
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer s.untrack(server)
			s.serveConn(server)
		}()
		go func() { _, _ = io.Copy(io.Discard, client) }()
		before, _ := st.written(0)
		_, _ = client.Write(append(bytes.Clone(prefix), data...))
		_ = client.Close()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("the connection did not end")
		}
		if n := rl.Active(); n != 0 {
			t.Fatalf("%d streams open after the connection ended", n)
		}
		_, added := st.written(before)
		for _, k := range added {
			if obj, err := layout.Parse(k); err != nil || obj.Kind != layout.KindFragment {
				continue
			}
			o, err := st.Get(context.Background(), k)
			if err != nil {
				t.Fatal(err)
			}
			if info, err := fmp4.Inspect(o.Body); err != nil || info.Samples == 0 {
				t.Fatalf("stored %s is not a whole fragment: %+v, %v", k, info, err)
			}
		}
	})
}

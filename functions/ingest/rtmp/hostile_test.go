package rtmp

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// handshake is what a client sends before its first chunk (C0, C1, C2).
func handshake() []byte { return append([]byte{3}, make([]byte, 2*1536)...) }

// nestedCommand is a command message of n bytes whose body nests strict
// arrays as deep as it goes: gortmplib's AMF0 decoder would recurse once
// per level (a 10 MiB one overflows the goroutine's stack).
func nestedCommand(n int) []byte {
	b := chunk0(3, typeCommandAMF0, n)
	for len(b)+5 <= 12+n {
		b = append(b, 0x0a, 0, 0, 0, 1)
	}
	return append(b, make([]byte, 12+n-len(b))...)
}

// waitServerClose reads c until the server closes it.
func waitServerClose(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			t.Fatal("the server did not close the connection")
		}
	}
}

// Hostile input gets a clear error, costs the relay little and stores
// nothing partial, and the relay takes the next encoder of the channel as
// if nothing had happened.
func TestHostileInputIsRefusedAndTheNextEncoderPublishes(t *testing.T) {
	m := newMedia(t, 8, 2*time.Second)
	// publishThen publishes GOP 0 and part of GOP 1 (GOP 0 is stored),
	// then does bad.
	publishThen := func(bad func(t *testing.T, e *encoder)) func(t *testing.T, h *harness) net.Conn {
		return func(t *testing.T, h *harness) net.Conn {
			e, err := dial(t, h.url("news"), m)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.send(0, m.keyIndex(1)+20); err != nil {
				t.Fatal(err)
			}
			bad(t, e)
			return e.c.NetConn()
		}
	}
	raw := func(b []byte) func(t *testing.T, e *encoder) {
		return func(t *testing.T, e *encoder) { _, _ = e.c.NetConn().Write(b) }
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	garbage := make([]byte, 64<<10)
	for i := range garbage {
		garbage[i] = byte(rnd.Uint32())
	}
	cases := []struct {
		name string
		do   func(t *testing.T, h *harness) net.Conn
		log  string // what the log says of it
		gops int    // whole GOPs stored before it (0 or 1)
	}{
		{name: "garbage after the handshake", do: func(t *testing.T, h *harness) net.Conn {
			c, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = c.Write(append(handshake(), garbage...))
			return c
		}, log: "rtmp connection ended before publishing"},
		{name: "a 10 MiB command of nested arrays before connect", do: func(t *testing.T, h *harness) net.Conn {
			c, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			go func() { _, _ = c.Write(append(handshake(), nestedCommand(10<<20)...)) }()
			return c
		}, log: "command message of 10485760 bytes, limit 16384"},
		{name: "garbage while publishing", do: publishThen(raw(garbage)), log: "rtmp publish refused", gops: 1},
		{name: "a chunk cut short", do: publishThen(func(t *testing.T, e *encoder) {
			b := append(chunk0(6, typeVideo, 50000), 0x17, 1, 0, 0, 0)
			_, _ = e.c.NetConn().Write(append(b, make([]byte, 1000)...))
			e.c.Close()
		}), log: "rtmp publish dropped", gops: 1},
		{name: "a chunk size of 2^31-1", do: publishThen(raw(setChunkSize(1<<31 - 1))), log: "chunk size 2147483647: want 128 to 10485760", gops: 1},
		{name: "a 16 MB frame", do: publishThen(raw(append(chunk0(6, typeVideo, 1<<24-1), make([]byte, 4096)...))), log: "video message of 16777215 bytes, limit 8388608", gops: 1},
		{name: "frames begun on every chunk stream, none finished", do: publishThen(func(t *testing.T, e *encoder) {
			_, _ = e.c.NetConn().Write(setChunkSize(1 << 20))
			for csid := byte(10); csid < 64; csid++ {
				b := append(chunk0(csid, typeVideo, 8<<20-1), 0x27, 1, 0, 0, 0)
				if _, err := e.c.NetConn().Write(append(b, make([]byte, 1<<20-5)...)); err != nil {
					return
				}
			}
		}), log: "messages in progress would hold", gops: 1},
		{name: "timestamps going backwards", do: publishThen(func(t *testing.T, e *encoder) {
			_ = e.send(m.keyIndex(1)+20, m.keyIndex(2)+5)
			e.offset = -3 * time.Second
			_ = e.send(m.keyIndex(2)+5, m.keyIndex(3))
		}), log: "timestamp goes back", gops: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, relay.DefaultConfig(), Config{})
			c := tc.do(t, h)
			waitServerClose(t, c)
			h.waitIdle(t)
			lines := strings.Join(h.rec.Lines(), "\n")
			for _, l := range h.rec.Lines() {
				if strings.Contains(l, tc.log) {
					t.Log(l)
				}
			}
			if !strings.Contains(lines, tc.log) {
				t.Errorf("the log does not say %q:\n%s", tc.log, lines)
			}
			got := h.st.channel(t, "news")
			if v := got.count(timeline.Video); v != tc.gops {
				t.Errorf("stored %d video fragments, want %d (the whole GOPs before it)", v, tc.gops)
			}
			checkWholeGOPs(t, got)
			// The next encoder publishes as if nothing had happened.
			next := h.publishAll(t, "news", "news", newMedia(t, 6, 2*time.Second), 20*time.Second) // after what the channel has
			if v := next.count(timeline.Video); v != tc.gops+3 {
				t.Errorf("after the next encoder, %d video fragments, want %d", v, tc.gops+3)
			}
		})
	}
}

// The time and the connections a client may take before it publishes,
// the silence a publisher may keep, and what gortmplib may hold while it
// finds the tracks are bounded: each ends the connection with a clear
// error.
func TestConnectionLimits(t *testing.T) {
	t.Run("a handshake that never comes", func(t *testing.T) {
		h := newHarness(t, relay.DefaultConfig(), Config{HandshakeTimeout: 200 * time.Millisecond})
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = c.Write([]byte{3}) // C0, then nothing
		start := time.Now()
		waitServerClose(t, c)
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("closed after %v, want the handshake timeout (200ms)", took)
		}
	})
	t.Run("connections that do not publish", func(t *testing.T) {
		h := newHarness(t, relay.DefaultConfig(), Config{MaxConnecting: 2})
		var conns []net.Conn
		for range 3 {
			c, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			conns = append(conns, c)
		}
		waitServerClose(t, conns[2]) // the third, at once
		if lines := strings.Join(h.rec.Lines(), "\n"); !strings.Contains(lines, "too many connections have not published yet") {
			t.Errorf("not logged:\n%s", lines)
		}
	})
	t.Run("a publisher that falls silent", func(t *testing.T) {
		h := newHarness(t, relay.DefaultConfig(), Config{ReadTimeout: 300 * time.Millisecond})
		m := newMedia(t, 8, 2*time.Second)
		e, err := dial(t, h.url("news"), m)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.send(0, m.keyIndex(2)+5); err != nil {
			t.Fatal(err)
		}
		e.waitClosed(t)
		h.waitIdle(t)
		got := h.st.channel(t, "news")
		if v := got.count(timeline.Video); v != 2 {
			t.Errorf("stored %d video fragments, want the 2 whole GOPs", v)
		}
		checkEnds(t, got, 2, false)
		if errs := h.rl.Status().RecentErrors; len(errs) != 1 || errs[0].Kind != "timeout" {
			t.Errorf("recent errors %+v, want a timeout", errs)
		}
	})
	t.Run("media that does not advance while the tracks are found", func(t *testing.T) {
		h := newHarness(t, relay.DefaultConfig(), Config{})
		m := newMedia(t, 2, 2*time.Second)
		e, err := dial(t, h.url("news"), m)
		if err != nil {
			t.Fatal(err)
		}
		frame := [][]byte{append([]byte{0x41}, make([]byte, 1<<20)...)} // a 1 MiB picture
		for range 25 {
			if err := e.w.WriteH264(e.vt, 0, 0, frame); err != nil {
				break
			}
		}
		e.waitClosed(t)
		h.waitIdle(t)
		if lines := strings.Join(h.rec.Lines(), "\n"); !strings.Contains(lines, "before 2 s of media showed which tracks the stream has") {
			t.Errorf("not refused:\n%s", lines)
		}
	})
}

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
			next := newMedia(t, 6, 2*time.Second)
			e, err := dial(t, h.url("news"), next)
			if err != nil {
				t.Fatalf("the next encoder: %v", err)
			}
			e.offset = 20 * time.Second // after what the channel has
			if err := e.send(0, len(next.samples)); err != nil {
				t.Fatal(err)
			}
			if err := e.end(); err != nil {
				t.Fatal(err)
			}
			e.waitClosed(t)
			h.waitIdle(t)
			if v := h.st.channel(t, "news").count(timeline.Video); v != tc.gops+3 {
				t.Errorf("after the next encoder, %d video fragments, want %d", v, tc.gops+3)
			}
		})
	}
}

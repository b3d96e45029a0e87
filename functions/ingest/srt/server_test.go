package srt

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gosrt "github.com/datarhei/gosrt"
	"github.com/datarhei/gosrt/packet"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/internal/testtool/logtest"
	"github.com/smoothcast/smoothcast/shared/store"
)

// testServer is a relay over the embedded store and an SRT server on a
// loopback port, with what its connections ingested.
type testServer struct {
	*Server
	rl    *relay.Relay
	store *store.Store
	rec   *logtest.Recorder
	addr  string
}

// startServer starts a relay (adjusted by rcfg) and an SRT server (cfg;
// its Addr is set) over it whose connections go to ingest (nil: the TS
// pipeline), closed when the test ends.
func startServer(t *testing.T, rcfg relay.Config, cfg Config, ingest func(*conn) error) *testServer {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	ts := startServerWith(t, rcfg, cfg, func(s *Server) {
		if ingest != nil {
			s.ingest = ingest
		}
	})
	ts.addr = ts.Addr().String()
	return ts
}

// startServerWith starts a relay (adjusted by rcfg) and an SRT server
// (cfg, as it is) over it, adjusted by setup before it serves, closed
// when the test ends.
func startServerWith(t *testing.T, rcfg relay.Config, cfg Config, setup func(*Server)) *testServer {
	t.Helper()
	_, st := testtool.Store(t, "srt-test")
	rec := logtest.New()
	rl := relay.New(st, rcfg, slog.New(rec))
	s, err := Listen(rl, cfg)
	if err != nil {
		t.Fatal(err)
	}
	setup(s)
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{Server: s, rl: rl, store: st, rec: rec}
}

// collect is an ingest that keeps every byte a connection delivers, and
// reports each connection's bytes and how its read ended (nil: an end of
// stream).
func collect() (func(*conn) error, <-chan ingested) {
	out := make(chan ingested, 16)
	return func(c *conn) error {
		var b bytes.Buffer
		_, err := io.Copy(&b, c)
		out <- ingested{b.Bytes(), err}
		return err
	}, out
}

type ingested struct {
	bytes []byte
	err   error
}

// dial connects as an SRT caller.
func dial(addr, streamID, passphrase string, keyLen int) (gosrt.Conn, error) {
	cfg := gosrt.DefaultConfig()
	cfg.StreamId = streamID
	cfg.Passphrase = passphrase
	if keyLen != 0 {
		cfg.PBKeylen = keyLen
	}
	cfg.ConnectionTimeout = 10 * time.Second // a loaded machine answers late
	return gosrt.Dial("srt", addr, cfg)
}

// waitRefusal waits for the warning that refused a caller (the source's,
// "srt publish refused: ...", or the relay's) and checks that it says
// why.
func waitRefusal(t *testing.T, rec *logtest.Recorder, says string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, r := range rec.Records() {
			if r.Level == slog.LevelWarn && strings.HasPrefix(r.Message, "srt publish ") {
				if reason := logtest.Attrs(r)["reason"]; !strings.Contains(reason, says) {
					t.Errorf("refusal logged as %q: %q; want it to say %q", r.Message, reason, says)
				}
				return
			}
		}
	}
	t.Fatalf("no refusal logged:\n%s", strings.Join(rec.Lines(), "\n"))
}

// rejected is the error gosrt's caller gives for a rejection reason.
func rejected(r gosrt.RejectionReason) string {
	return "connection rejected: " + packet.HandshakeType(onWire(r)).String()
}

// waitSent waits until everything written on c has been acknowledged
// (gosrt's Close discards what is not).
func waitSent(t *testing.T, c gosrt.Conn) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st gosrt.Statistics
		c.Stats(&st)
		if st.Instantaneous.PktSendBuf == 0 && st.Accumulated.PktSentUnique > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sent data not acknowledged: %+v", st.Instantaneous)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// tsBytes is n bytes of 188-byte packets with the MPEG-TS sync byte and
// a counter, so that a copy can be checked whole and in order.
func tsBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		if i%188 == 0 {
			b[i] = 0x47
		} else {
			b[i] = byte(i / 188)
		}
	}
	return b
}

// write sends b in SRT's live-mode chunks (at most 1316 bytes: seven TS
// packets, as encoders send them).
func write(t *testing.T, c gosrt.Conn, b []byte) {
	t.Helper()
	for len(b) > 0 {
		n := min(len(b), 1316)
		if _, err := c.Write(b[:n]); err != nil {
			t.Fatal(err)
		}
		b = b[n:]
	}
}

// Whether a caller may publish is decided at the handshake, with the
// reasons SRT defines: the stream ID's syntax and mode (the access
// control guidelines), the encryption (the relay's passphrase), and what
// the relay decides of the channel (its secret, its limits, shutdown).
// The log says why, and never shows a secret.
func TestHandshakeAdmitsOrRefusesWithSRTReasons(t *testing.T) {
	const secret, pass = "news-secret-0123456789", "relay-passphrase-01"
	secrets := relay.Secrets{PerChannel: map[string]string{"news": secret}}
	cases := []struct {
		name       string
		secrets    relay.Secrets
		passphrase string // the relay's
		perChannel bool   // one stream per channel, and one open
		shutdown   bool
		streamID   string
		callerPass string
		keyLen     int
		want       gosrt.RejectionReason // 0: admitted
		says       string                // in the refusal's log line
	}{
		{name: "the bare channel name opens it while authentication is off", streamID: "demo"},
		{name: "the access control form opens it", streamID: "#!::r=demo,m=publish"},
		{name: "the secret in smoothcast_secret opens its channel", secrets: secrets, streamID: "#!::r=news,m=publish,smoothcast_secret=" + secret},
		{name: "a passphrase of 16 bytes' key", passphrase: pass, streamID: "demo", callerPass: pass, keyLen: 16},
		{name: "a passphrase of 24 bytes' key", passphrase: pass, streamID: "demo", callerPass: pass, keyLen: 24},
		{name: "a passphrase of 32 bytes' key", passphrase: pass, streamID: "demo", callerPass: pass, keyLen: 32},
		{name: "a request to play is a bad mode", streamID: "#!::r=demo,m=request", want: gosrt.REJX_BAD_MODE, says: "m=publish"},
		{name: "bidirectional is a bad mode", streamID: "#!::r=demo,m=bidirectional", want: gosrt.REJX_BAD_MODE, says: "m=publish"},
		{name: "a file transfer is media not supported", streamID: "#!::r=demo,t=file", want: gosrt.REJX_NOTSUP_MEDIA, says: "t=stream"},
		{name: "no stream ID is a bad request", streamID: "", want: gosrt.REJX_BAD_REQUEST, says: "empty"},
		{name: "no r is a bad request", streamID: "#!::m=publish", want: gosrt.REJX_BAD_REQUEST, says: "no channel"},
		{name: "a channel name no path can carry is a bad request", streamID: "#!::r=../x", want: gosrt.REJX_BAD_REQUEST, says: "channel name"},
		{name: "no secret is unauthorized", secrets: secrets, streamID: "#!::r=news", want: gosrt.REJX_UNAUTHORIZED, says: "credentials required"},
		{name: "the bare name carries no secret", secrets: secrets, streamID: "news", want: gosrt.REJX_UNAUTHORIZED, says: "credentials required"},
		{name: "a wrong secret is forbidden", secrets: secrets, streamID: "#!::r=news,smoothcast_secret=not-the-secret-012345", want: gosrt.REJX_FORBIDDEN, says: "wrong ingest secret"},
		{name: "a caller without the passphrase is unsecure", passphrase: pass, streamID: "demo", want: gosrt.REJ_UNSECURE, says: "passphrase required"},
		{name: "a caller with another passphrase has a bad secret", passphrase: pass, streamID: "demo", callerPass: "another-passphrase", want: gosrt.REJ_BADSECRET, says: "wrong passphrase"},
		{name: "a caller that encrypts when the relay does not is unsecure", streamID: "demo", callerPass: pass, want: gosrt.REJ_UNSECURE, says: "relay has no passphrase"},
		{name: "over the streams per channel is overload", perChannel: true, streamID: "demo", want: gosrt.REJX_OVERLOAD, says: "too many pushes"},
		{name: "while the relay shuts down it is down", shutdown: true, streamID: "demo", want: gosrt.REJX_DOWN, says: "shutting down"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rcfg := relay.DefaultConfig()
			rcfg.Secrets = tc.secrets
			if tc.perChannel {
				rcfg.MaxStreamsPerChannel = 1
			}
			cfg := DefaultConfig()
			cfg.Passphrase = tc.passphrase
			ingest, got := collect()
			ts := startServer(t, rcfg, cfg, ingest)
			if tc.perChannel {
				first, err := ts.rl.OpenLive(context.Background(), relay.LiveRequest{Kind: "srt", Channel: "demo"})
				if err != nil {
					t.Fatal(err)
				}
				defer first.Close(nil)
			}
			if tc.shutdown {
				if err := ts.rl.Shutdown(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			c, err := dial(ts.addr, tc.streamID, tc.callerPass, tc.keyLen)
			if tc.want != 0 {
				if err == nil {
					c.Close()
					t.Fatal("admitted")
				}
				if err.Error() != rejected(tc.want) {
					t.Errorf("dial: %v; want %q (%s)", err, rejected(tc.want), reasonName(tc.want))
				}
				waitRefusal(t, ts.rec, tc.says)
			} else {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				sent := tsBytes(10 * 188)
				write(t, c, sent)
				waitSent(t, c)
				c.Close()
				if in := <-got; in.err != nil || !bytes.Equal(in.bytes, sent) {
					t.Errorf("ingested %d bytes (%v); want the %d sent, then the end", len(in.bytes), in.err, len(sent))
				}
			}
			for _, l := range ts.rec.Lines() {
				if strings.Contains(l, secret) || strings.Contains(l, pass) {
					t.Errorf("a secret in the log: %s", l)
				}
			}
		})
	}
}

// A caller that closes its connection ends the stream (the manifests
// turn VOD) with every byte it sent, even those SRT still held for their
// time to play when its SHUTDOWN came; a caller that vanishes, or that
// stays connected and sends nothing, is a drop, and so is one the store
// has fallen too far behind; the log says which.
func TestConnectionEndTellsEndOfStreamFromDrop(t *testing.T) {
	cases := []struct {
		name string
		// latency is the caller's (SRT holds each packet this long).
		latency    time.Duration
		peerIdle   time.Duration
		read       time.Duration
		backlog    int
		stall      bool // the ingest reads nothing
		end        func(c gosrt.Conn, p *udpProxy)
		wantEnd    bool   // an end of stream
		wantErr    string // else the drop's reason
		wantLogged string // the relay's word for it
	}{
		{name: "the caller closes: an end of stream, whole", latency: time.Second, end: func(c gosrt.Conn, _ *udpProxy) { c.Close() }, wantEnd: true},
		{name: "the caller vanishes: a drop at the peer idle timeout", peerIdle: time.Second,
			end: func(_ gosrt.Conn, p *udpProxy) { p.blackhole() }, wantErr: "connection lost", wantLogged: "srt publish dropped"},
		{name: "the caller stays and sends nothing: a drop at the read timeout", read: time.Second, peerIdle: time.Minute,
			end: func(gosrt.Conn, *udpProxy) {}, wantErr: "no media for 1s", wantLogged: "srt publish dropped"},
		{name: "the store too far behind: a drop", backlog: 4 * 1316, stall: true,
			end: func(gosrt.Conn, *udpProxy) {}, wantErr: "bytes behind the encoder", wantLogged: "srt publish dropped"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := DefaultConfig()
			if tc.peerIdle != 0 {
				cfg.PeerIdleTimeout = tc.peerIdle
			}
			cfg.ReadTimeout = cmp.Or(tc.read, 30*time.Second)
			if tc.backlog != 0 {
				cfg.MaxBacklog = tc.backlog
			}
			ingest, got := collect()
			if tc.stall {
				inner := ingest
				ingest = func(c *conn) error {
					<-c.readDone // the reader gave up: the backlog is full
					return inner(c)
				}
			}
			ts := startServer(t, relay.DefaultConfig(), cfg, ingest)
			proxy := newUDPProxy(t, ts.addr)
			ccfg := gosrt.DefaultConfig()
			ccfg.StreamId = "#!::r=ends,m=publish"
			if tc.latency != 0 {
				ccfg.Latency = tc.latency
			}
			c, err := gosrt.Dial("srt", proxy.addr, ccfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			sent := tsBytes(200 * 188)
			write(t, c, sent)
			if !tc.stall {
				waitSent(t, c)
			}
			tc.end(c, proxy)
			in := <-got
			switch {
			case tc.wantEnd && (in.err != nil || !bytes.Equal(in.bytes, sent)):
				t.Errorf("ingested %d bytes of %d, then %v; want all, then the end of stream", len(in.bytes), len(sent), in.err)
			case !tc.wantEnd && (in.err == nil || !strings.Contains(in.err.Error(), tc.wantErr)):
				t.Errorf("read ended with %v; want a drop saying %q", in.err, tc.wantErr)
			case !tc.wantEnd && !tc.stall && !bytes.Equal(in.bytes, sent):
				t.Errorf("ingested %d bytes of %d before the drop", len(in.bytes), len(sent))
			}
			if tc.wantEnd {
				ts.rec.Wait(t, slog.LevelInfo, "srt publish ended", map[string]string{"end_of_stream": "true"})
			} else {
				ts.rec.Wait(t, slog.LevelWarn, tc.wantLogged, map[string]string{"err": tc.wantErr})
			}
		})
	}
}

// udpProxy forwards one caller's datagrams to a server and back, until
// blackhole: then it drops everything, as a network that went away.
type udpProxy struct {
	addr string
	gone atomic.Bool
}

func newUDPProxy(t *testing.T, server string) *udpProxy {
	t.Helper()
	front, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.Dial("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	p := &udpProxy{addr: front.LocalAddr().String()}
	var mu sync.Mutex
	var caller net.Addr
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := front.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			caller = from
			mu.Unlock()
			if !p.gone.Load() {
				_, _ = back.Write(buf[:n])
			}
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, err := back.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // a refused datagram (ICMP) before the server answered
			}
			mu.Lock()
			to := caller
			mu.Unlock()
			if to != nil && !p.gone.Load() {
				_, _ = front.WriteTo(buf[:n], to)
			}
		}
	}()
	t.Cleanup(func() {
		front.Close()
		back.Close()
		wg.Wait()
	})
	return p
}

func (p *udpProxy) blackhole() { p.gone.Store(true) }

// restore forwards again, as a network that came back.
func (p *udpProxy) restore() { p.gone.Store(false) }

package rtmp

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/shared/store"
)

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// replayConn is a connection that hands out recorded bytes and drops
// what is written to it.
type replayConn struct {
	r *bytes.Reader
}

func (c *replayConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *replayConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *replayConn) Close() error                { return nil }
func (c *replayConn) LocalAddr() net.Addr         { return &net.TCPAddr{} }
func (c *replayConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1935}
}
func (c *replayConn) SetDeadline(time.Time) error      { return nil }
func (c *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (c *replayConn) SetWriteDeadline(time.Time) error { return nil }

// drain is a store that takes every write and keeps nothing.
type drain struct{ etag atomic.Int64 }

func (d *drain) PutParts(context.Context, string, [][]byte, store.PutOptions) (string, error) {
	return strconv.FormatInt(d.etag.Add(1), 10), nil
}
func (d *drain) Get(context.Context, string) (store.Object, error) {
	return store.Object{}, store.ErrNotFound
}

// The server's cost per hour of media: a minute of 3 Mbit/s H.264 (2 s
// GOPs, 25 fps) and AAC as gortmplib's client sends it (chunks of 64 KiB),
// replayed into a connection: the guard, gortmplib's reader, the packager
// and the relay's session, into a store that keeps nothing.
func BenchmarkServeConn(b *testing.B) {
	m := newMediaRate(b, 60, 2*time.Second, 3_000_000)
	prefix, rest := recordPublish(b, m, len(m.samples), true)
	rec := append(prefix, rest...)
	rl := relay.New(&drain{}, relay.DefaultConfig(), slog.New(slog.DiscardHandler))
	s := New(rl, Config{}, slog.New(slog.DiscardHandler))
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		c := &replayConn{r: bytes.NewReader(rec)}
		s.track(c)
		s.serveConn(c)
		s.untrack(c)
	}
	b.ReportMetric((cpuTime(b)-start).Seconds()/(float64(b.N)*60/3600), "cpu-s/media-h")
}

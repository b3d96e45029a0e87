package relay

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// MaxHeaderBytes is the most a request's headers may take (net/http adds
// 4 KiB of slack and answers 431 past it): an encoder sends a few hundred
// bytes, a Bearer token or Basic credentials included.
const MaxHeaderBytes = 16 << 10

// connCost is what one connection holds before its handler runs: its
// headers at most, and net/http's read and write buffers.
const connCost = MaxHeaderBytes + 4<<10 + 8<<10

// errMemory refuses what would take the relay past its memory budget.
var errMemory = errors.New("the relay's memory budget is spent: try again shortly")

// memory is the relay's memory budget: what its buffers may hold at
// once, every buffer whose size an encoder decides drawing from it: each
// connection's headers, each push's box buffer, each upload's body while
// it is read, stored, waits or is held. Past it a request is refused
// (503 with Retry-After) instead of the process growing. Safe for
// concurrent use.
type memory struct {
	limit int64 // bytes; 0: no budget (what is drawn is still counted)
	used  atomic.Int64
}

// draw takes n bytes from the budget, or refuses with errMemory.
func (m *memory) draw(n int) error {
	for {
		u := m.used.Load()
		if m.limit > 0 && u+int64(n) > m.limit {
			return fmt.Errorf("%w (%d of %d bytes held)", errMemory, u, m.limit)
		}
		if m.used.CompareAndSwap(u, u+int64(n)) {
			return nil
		}
	}
}

// give returns n bytes to the budget.
func (m *memory) give(n int) { m.used.Add(-int64(n)) }

// readAll reads r whole, up to limit+1 bytes, drawing what its buffer
// holds from the budget as it grows; release gives it back (once, however
// often it is called). On error, nothing stays drawn. size is the length
// the sender declared (a request's Content-Length; 0 or less: unknown):
// the buffer then grows fourfold, not twofold, and to size+1 at most, so
// that a segment of 800 KB is copied once (64 KiB, then 256 KiB, then
// whole) and held in 800 KB, where doubling copied it four times and held
// 1 MiB. A sender must still send a quarter of what it makes the relay
// draw, whatever it declares.
func (m *memory) readAll(r io.Reader, limit, size int) (b []byte, release func(), err error) {
	held := 0
	grow := func(c int) error {
		if err := m.draw(c - cap(b)); err != nil {
			return err
		}
		held += c - cap(b)
		nb := make([]byte, len(b), c)
		copy(nb, b)
		b = nb
		return nil
	}
	first := 64 << 10
	if size >= 0 && size < first {
		first = size + 1
	}
	if err := grow(min(first, limit+1)); err != nil {
		return nil, func() {}, err
	}
	for {
		if len(b) == cap(b) {
			if len(b) > limit {
				break
			}
			next := 2 * cap(b)
			if size > 0 && size >= len(b) {
				next = min(4*cap(b), size+1)
			}
			if err := grow(min(next, limit+1)); err != nil {
				m.give(held)
				return nil, func() {}, err
			}
		}
		n, rerr := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			m.give(held)
			return nil, func() {}, rerr
		}
	}
	var once sync.Once
	return b, func() { once.Do(func() { m.give(held) }) }, nil
}

// Listener returns ln with each connection drawing its cost (its headers
// and buffers, connCost) from the relay's memory budget while it is open:
// a connection the budget cannot take is answered 503 at once and closed.
// Serve the ingest handler on it, with MaxHeaderBytes.
func (rl *Relay) Listener(ln net.Listener) net.Listener { return &budgetListener{Listener: ln, rl: rl} }

// TLSListener is Listener serving TLS with cfg: each connection draws
// its cost before its handshake, and one the budget cannot take gets its
// 503 over TLS (the encoder speaks nothing else on that port).
func (rl *Relay) TLSListener(ln net.Listener, cfg *tls.Config) net.Listener {
	return tls.NewListener(&budgetListener{Listener: ln, rl: rl, tls: cfg}, cfg)
}

type budgetListener struct {
	net.Listener
	rl  *Relay
	tls *tls.Config // refusals are answered over TLS
}

func (l *budgetListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if err := l.rl.mem.draw(connCost); err != nil {
			l.rl.noteError(errLimit, "", "", c.RemoteAddr().String(), fmt.Errorf("connection refused: %w", err))
			if l.tls != nil {
				c = tls.Server(c, l.tls)
			}
			go refuseConn(c)
			continue
		}
		return &budgetConn{Conn: c, mem: &l.rl.mem}, nil
	}
}

// refuseConn answers a connection the budget cannot take, without reading
// its request, and closes it.
func refuseConn(c net.Conn) {
	const msg = "the relay's memory budget is spent: try again shortly\n"
	// (Over TLS the write makes the handshake first, reads included.)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s", len(msg), msg)
	_ = c.Close()
}

// budgetConn gives its cost back when it closes.
type budgetConn struct {
	net.Conn
	mem  *memory
	once sync.Once
}

func (c *budgetConn) Close() error {
	c.once.Do(func() { c.mem.give(connCost) })
	return c.Conn.Close()
}

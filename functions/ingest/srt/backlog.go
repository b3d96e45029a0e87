package srt

import (
	"fmt"
	"sync"
)

// backlog carries a connection's bytes from its reader goroutine to its
// ingest goroutine. SRT's live mode has no flow control: gosrt delivers
// each packet at its time and drops it when the reader is not there to
// take it (its read queue holds 1024 packets, about 1.3 MB). The ingest
// goroutine waits for the store while it writes a fragment (retried for
// up to the relay's StoreTimeout), so the reader keeps reading into the
// backlog meanwhile, up to its bound: past it the connection ends as a
// drop, with an error that says the store is that far behind, rather
// than with media silently missing.
type backlog struct {
	mu   sync.Mutex
	cond sync.Cond
	buf  []byte // unread bytes are buf[off:]
	off  int
	max  int
	err  error // why the writer stopped; nil while it goes on
}

func newBacklog(max int) *backlog {
	b := &backlog{max: max}
	b.cond.L = &b.mu
	return b
}

// write appends p (copied). It fails when the unread bytes would exceed
// the bound, and once the backlog is closed.
func (b *backlog) write(p []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	if n := len(b.buf) - b.off + len(p); n > b.max {
		return fmt.Errorf("the store is %d bytes behind the encoder: %d at most", n, b.max)
	}
	if b.off > 0 && (b.off == len(b.buf) || b.off >= cap(b.buf)/2) {
		// Move what is unread to the front rather than grow.
		b.buf = b.buf[:copy(b.buf, b.buf[b.off:])]
		b.off = 0
	}
	b.buf = append(b.buf, p...)
	b.cond.Signal()
	return nil
}

// close ends the writes with err (io.EOF: the stream ended): Read returns
// it once the bytes before it are read.
func (b *backlog) close(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err = err
	}
	b.cond.Signal()
}

// Read is io.Reader's: it waits for bytes, or for the end.
func (b *backlog) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.off == len(b.buf) && b.err == nil {
		b.cond.Wait()
	}
	if b.off == len(b.buf) {
		return 0, b.err
	}
	n := copy(p, b.buf[b.off:])
	b.off += n
	return n, nil
}

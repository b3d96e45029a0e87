// Package chunked gives tests readers that hand out a body in chunks of
// other sizes than it was written in, as a network does: a reader of a
// stream must give the same result whatever they are.
package chunked

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing/iotest"
)

// Reader returns at most N bytes per Read; with Rand set, a size from 1 to
// 4096 drawn for each Read instead.
type Reader struct {
	R    io.Reader
	N    int
	Rand *rand.Rand
}

// Read reads at most the chunk's size from R.
func (c *Reader) Read(p []byte) (int, error) {
	n := c.N
	if c.Rand != nil {
		n = 1 + c.Rand.IntN(4096)
	}
	return c.R.Read(p[:min(len(p), max(n, 1))])
}

// Readers are b read whole, a byte at a time, 7 bytes at a time, and in
// chunks of seeded random sizes, by name.
func Readers(b []byte) map[string]func() io.Reader {
	return map[string]func() io.Reader{
		"whole":   func() io.Reader { return bytes.NewReader(b) },
		"1 byte":  func() io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"7 bytes": func() io.Reader { return &Reader{R: bytes.NewReader(b), N: 7} },
		"random":  func() io.Reader { return &Reader{R: bytes.NewReader(b), Rand: rand.New(rand.NewPCG(1, 2))} },
	}
}

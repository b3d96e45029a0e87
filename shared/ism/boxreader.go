// Package ism reads a Smooth Streaming push (MS-SSTR 3.3.4, the fragmented
// MP4 live ingest format) from an unending request body: a box reader that
// never holds more than one box, the live server manifest (SMIL), and a
// session that splits the stream per track into init segments and
// fragments.
package ism

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Box is one whole box as read from the stream. Data holds the header and
// the payload; it is only valid until the next call to Next.
type Box struct {
	Type       string
	Pos        uint64 // offset of the box in the stream
	HeaderSize int    // 8, 16 (64-bit size) or 24/32 with a uuid
	Data       []byte
}

// Payload is the box's content after its header.
func (b Box) Payload() []byte { return b.Data[b.HeaderSize:] }

// Errors of the box reader.
var (
	// ErrBoxTooLarge is returned for a box larger than the reader's limit,
	// before anything is allocated for it.
	ErrBoxTooLarge = errors.New("box larger than the limit")
	// ErrBadBox is returned for a malformed box header.
	ErrBadBox = errors.New("malformed box header")
	// ErrTruncated is returned when the stream ends inside a box.
	ErrTruncated = errors.New("stream ends inside a box")
)

// BoxReader reads boxes one at a time from r, reusing one buffer.
type BoxReader struct {
	r      io.Reader
	max    int
	pos    uint64
	buf    []byte
	hdr    [16]byte
	closed bool
}

// NewBoxReader returns a reader that refuses boxes larger than maxBox bytes.
func NewBoxReader(r io.Reader, maxBox int) *BoxReader {
	return &BoxReader{r: r, max: maxBox}
}

// Next reads the next box. It returns io.EOF at a clean end of the stream
// (between boxes), ErrTruncated (wrapping the read error) when the stream
// ends inside a box, and any other read error as it is.
func (br *BoxReader) Next() (Box, error) {
	if br.closed {
		return Box{}, io.EOF
	}
	start := br.pos
	n, err := io.ReadFull(br.r, br.hdr[:8])
	br.pos += uint64(n)
	if err != nil {
		if err == io.EOF {
			return Box{}, io.EOF
		}
		return Box{}, br.truncated(start, "header", err)
	}
	size := uint64(binary.BigEndian.Uint32(br.hdr[:4]))
	typ := string(br.hdr[4:8])
	if !printable(br.hdr[4:8]) {
		return Box{}, fmt.Errorf("%w at offset %d: type %q is not a box type", ErrBadBox, start, br.hdr[4:8])
	}
	hsize := 8
	switch size {
	case 1: // 64-bit largesize follows
		n, err := io.ReadFull(br.r, br.hdr[8:16])
		br.pos += uint64(n)
		if err != nil {
			return Box{}, br.truncated(start, typ+" largesize", err)
		}
		size = binary.BigEndian.Uint64(br.hdr[8:16])
		hsize = 16
		if size < 16 {
			return Box{}, fmt.Errorf("%w at offset %d: %s largesize %d", ErrBadBox, start, typ, size)
		}
	case 0: // the box extends to the end of the stream
		return br.readToEnd(start, typ)
	default:
		if size < 8 {
			return Box{}, fmt.Errorf("%w at offset %d: %s size %d", ErrBadBox, start, typ, size)
		}
	}
	if size > uint64(br.max) {
		return Box{}, fmt.Errorf("%w: %s box of %d bytes at offset %d, limit %d", ErrBoxTooLarge, typ, size, start, br.max)
	}
	buf, err := br.readBody(int(size), hsize)
	if err != nil {
		return Box{}, br.truncated(start, typ, err)
	}
	return Box{Type: typ, Pos: start, HeaderSize: hsize, Data: buf}, nil
}

// growStep is the most a box's buffer grows ahead of the bytes that have
// arrived: a header that declares a huge box costs memory only as its
// bytes come, so that slow or lying clients cannot reserve MaxBox each.
const growStep = 64 << 10

// readBody reads a box of size bytes whose header (hsize bytes) is in
// br.hdr, growing the buffer as the body arrives.
func (br *BoxReader) readBody(size, hsize int) ([]byte, error) {
	if cap(br.buf) >= size {
		buf := br.buf[:size]
		copy(buf, br.hdr[:hsize])
		n, err := io.ReadFull(br.r, buf[hsize:])
		br.pos += uint64(n)
		return buf, err
	}
	buf := br.buf[:0]
	buf = append(buf, br.hdr[:hsize]...)
	for len(buf) < size {
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), min(size, max(2*cap(buf), len(buf)+growStep)))
			copy(nb, buf)
			buf = nb
		}
		n, err := io.ReadFull(br.r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		br.pos += uint64(n)
		if err != nil {
			return nil, err
		}
	}
	br.buf = buf
	return buf, nil
}

// readToEnd reads a box of size 0, which runs to the end of the stream.
func (br *BoxReader) readToEnd(start uint64, typ string) (Box, error) {
	buf := br.grow(8)
	copy(buf, br.hdr[:8])
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= br.max {
				return Box{}, fmt.Errorf("%w: %s box to end of stream at offset %d exceeds %d bytes", ErrBoxTooLarge, typ, start, br.max)
			}
			nb := make([]byte, len(buf), min(2*cap(buf)+512, br.max))
			copy(nb, buf)
			buf = nb
		}
		n, err := br.r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		br.pos += uint64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return Box{}, br.truncated(start, typ, err)
		}
	}
	br.buf = buf[:0]
	br.closed = true
	binary.BigEndian.PutUint32(buf[:4], uint32(min(len(buf), 1<<32-1)))
	return Box{Type: typ, Pos: start, HeaderSize: 8, Data: buf}, nil
}

func (br *BoxReader) grow(n int) []byte {
	if cap(br.buf) < n {
		br.buf = make([]byte, n)
	}
	return br.buf[:n]
}

func (br *BoxReader) truncated(start uint64, what string, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: %s of the box at offset %d", ErrTruncated, what, start)
	}
	return fmt.Errorf("read %s of the box at offset %d: %w", what, start, err)
}

// Offset is the number of bytes read so far.
func (br *BoxReader) Offset() uint64 { return br.pos }

// printable reports whether b can be the type of a top-level box of a
// push: letters, digits and spaces (as in "url "); ©xyz style types are
// not top-level boxes, and punctuation means the stream is not MP4.
func printable(b []byte) bool {
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ' ') {
			return false
		}
	}
	return true
}

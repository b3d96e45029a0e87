// Package mp4box reads the top-level boxes of MP4 data, with one set of
// header rules for two shapes of input: Reader, over a stream that may
// never end (a push's request body), holding one box at a time; and All,
// over bytes already in hand (an uploaded segment, a fetched object),
// copying nothing. Both take 32-bit sizes, 64-bit largesizes (size field
// 1) and boxes that run to the end of the input (size field 0), refuse a
// type that is not printable and a size smaller than its header, and
// agree box for box on any input (FuzzReaderAndAllAgree). The contents of
// a box are mp4ff's business: Decode hands a box to it.
package mp4box

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// Box is one whole top-level box. Data holds the header and the payload,
// as they arrived (the size field of a box that runs to the end of the
// input still says 0). From a Reader, Data is valid only until the next
// call to Next; from All, it is a slice of the input.
type Box struct {
	Type       string
	Pos        uint64 // offset of the box in the input
	HeaderSize int    // 8, or 16 with a largesize
	Data       []byte
}

// Payload is the box's content after its header.
func (b Box) Payload() []byte { return b.Data[b.HeaderSize:] }

// Size is the box's size in bytes, header included.
func (b Box) Size() int { return len(b.Data) }

// Errors of both readers.
var (
	// ErrTooLarge is returned for a box larger than the Reader's limit,
	// before anything is allocated for it.
	ErrTooLarge = errors.New("box larger than the limit")
	// ErrBadBox is returned for a malformed box header.
	ErrBadBox = errors.New("malformed box header")
	// ErrTruncated is returned when the input ends inside a box.
	ErrTruncated = errors.New("input ends inside a box")
)

// errNeedLarge says a header's size field is 1 and its largesize has not
// been read yet.
var errNeedLarge = errors.New("largesize not read")

// header decodes the box header at the start of b, which holds at least 8
// bytes (16 when the size field is 1, else errNeedLarge). size is the
// whole box's, header included; 0 means the box runs to the end.
func header(b []byte, pos uint64) (typ string, size uint64, hsize int, err error) {
	size = uint64(binary.BigEndian.Uint32(b))
	if !printable(b[4:8]) {
		return "", 0, 0, fmt.Errorf("%w at offset %d: type %q is not a box type", ErrBadBox, pos, b[4:8])
	}
	typ, hsize = string(b[4:8]), 8
	switch {
	case size == 1:
		if len(b) < 16 {
			return typ, 0, 0, errNeedLarge
		}
		size, hsize = binary.BigEndian.Uint64(b[8:16]), 16
		if size < 16 {
			return "", 0, 0, fmt.Errorf("%w at offset %d: %s largesize %d", ErrBadBox, pos, typ, size)
		}
	case size != 0 && size < 8:
		return "", 0, 0, fmt.Errorf("%w at offset %d: %s size %d", ErrBadBox, pos, typ, size)
	}
	return typ, size, hsize, nil
}

// Header decodes the header of the box at the start of b, which need
// hold only the header (a fragment's head ends with its mdat's): the
// box's type, its whole size (header included; 0: it runs to the end of
// its file) and its header's size. A short b is ErrTruncated, a
// malformed header ErrBadBox.
func Header(b []byte) (typ string, size uint64, hsize int, err error) {
	if len(b) < 8 {
		return "", 0, 0, fmt.Errorf("%w: %d bytes of a box header", ErrTruncated, len(b))
	}
	typ, size, hsize, err = header(b, 0)
	if errors.Is(err, errNeedLarge) {
		return "", 0, 0, fmt.Errorf("%w: %s largesize", ErrTruncated, typ)
	}
	return typ, size, hsize, err
}

// printable reports whether b can be the type of a top-level box: letters,
// digits and spaces (as in "url "); ©xyz style types are not top-level
// boxes, and punctuation means the input is not MP4.
func printable(b []byte) bool {
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ' ') {
			return false
		}
	}
	return true
}

// All iterates over the top-level boxes of b, in order, without copying.
// A malformed header, or a box that b ends inside of, yields a Box with
// only its Pos and Type (when known) and an error, and ends the
// iteration; so does nothing else.
func All(b []byte) iter.Seq2[Box, error] {
	return func(yield func(Box, error) bool) {
		for off := 0; off < len(b); {
			rest := b[off:]
			if len(rest) < 8 {
				yield(Box{Pos: uint64(off)}, fmt.Errorf("%w: header of the box at offset %d", ErrTruncated, off))
				return
			}
			typ, size, hsize, err := header(rest, uint64(off))
			switch {
			case errors.Is(err, errNeedLarge):
				yield(Box{Type: typ, Pos: uint64(off)}, fmt.Errorf("%w: %s largesize of the box at offset %d", ErrTruncated, typ, off))
				return
			case err != nil:
				yield(Box{Pos: uint64(off)}, err)
				return
			case size == 0:
				size = uint64(len(rest))
			case size > uint64(len(rest)):
				yield(Box{Type: typ, Pos: uint64(off)}, fmt.Errorf("%w: %s of the box at offset %d (%d bytes, %d left)", ErrTruncated, typ, off, size, len(rest)))
				return
			}
			if !yield(Box{Type: typ, Pos: uint64(off), HeaderSize: hsize, Data: rest[:size]}, nil) {
				return
			}
			off += int(size)
		}
	}
}

// Find returns the first top-level box of type typ in b; ok is false when
// there is none before b ends or stops being whole boxes.
func Find(b []byte, typ string) (Box, bool) {
	for box, err := range All(b) {
		if err != nil {
			break
		}
		if box.Type == typ {
			return box, true
		}
	}
	return Box{}, false
}

// Decode decodes a whole box with mp4ff. Its header is given to the
// decoder as a 32-bit size (mp4ff takes no largesize on some boxes, and no
// size 0), copying the box only when that changes it. The result may keep
// slices of b.Data: clone a Reader's box before decoding it if the result
// outlives the next call to Next.
func Decode(b Box) (mp4.Box, error) {
	data := b.Data
	if b.HeaderSize != 8 || binary.BigEndian.Uint32(data) == 0 {
		n := len(data) - b.HeaderSize + 8
		if n > math.MaxUint32 {
			return nil, fmt.Errorf("decode %s at offset %d: %d bytes: too large", b.Type, b.Pos, len(data))
		}
		data = make([]byte, n)
		binary.BigEndian.PutUint32(data, uint32(n))
		copy(data[4:8], b.Type)
		copy(data[8:], b.Payload())
	}
	box, err := mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(data))
	if err != nil {
		return nil, fmt.Errorf("decode %s at offset %d: %w", b.Type, b.Pos, err)
	}
	return box, nil
}

// Reader reads top-level boxes one at a time from a stream, reusing one
// buffer, and refuses a box larger than its limit (for its type, see
// SetLimit) before allocating for it.
type Reader struct {
	r         io.Reader
	max       int
	limit     func(typ string) int
	pos       uint64
	buf       []byte
	hdr       [16]byte
	closed    bool
	alloc     func(n int) error
	allocated int
}

// Budget makes the reader ask alloc before it grows its buffer by n
// bytes (a memory budget shared with other readers); an error from alloc
// ends the read with that error, the buffer as it was. Allocated says how
// much it asked for in all: what to give back once the reader is done.
func (br *Reader) Budget(alloc func(n int) error) { br.alloc = alloc }

// Allocated is what the reader's buffer grew by, as Budget was asked.
func (br *Reader) Allocated() int { return br.allocated }

// grow makes a buffer of capacity c holding buf, once the budget allows
// its growth.
func (br *Reader) grow(buf []byte, c int) ([]byte, error) {
	if br.alloc != nil {
		if err := br.alloc(c - cap(buf)); err != nil {
			return nil, err
		}
	}
	br.allocated += c - cap(buf)
	nb := make([]byte, len(buf), c)
	copy(nb, buf)
	return nb, nil
}

// NewReader returns a reader of r that refuses boxes larger than maxBox
// bytes.
func NewReader(r io.Reader, maxBox int) *Reader {
	return &Reader{r: r, max: maxBox}
}

// SetLimit sets a limit per box type, within the reader's own: a box of
// type typ larger than limit(typ) bytes is refused as ErrTooLarge once its
// header is read (when limit(typ) is positive and below the reader's
// limit; otherwise the reader's applies). A source passes the limits of
// what comes after it: a live server manifest (uuid) is a few kilobytes,
// a moof no larger than what the manifest function reads.
func (br *Reader) SetLimit(limit func(typ string) int) { br.limit = limit }

// maxFor is the limit on a box of type typ.
func (br *Reader) maxFor(typ string) int {
	if br.limit != nil {
		if l := br.limit(typ); l > 0 && l < br.max {
			return l
		}
	}
	return br.max
}

// Next reads the next box. It returns io.EOF at a clean end of the stream
// (between boxes), ErrTruncated (wrapping the read error) when the stream
// ends inside a box, and any other read error as it is. It reads nothing
// of the stream beyond the box it returns.
func (br *Reader) Next() (Box, error) {
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
	typ, size, hsize, err := header(br.hdr[:8], start)
	if errors.Is(err, errNeedLarge) {
		n, rerr := io.ReadFull(br.r, br.hdr[8:16])
		br.pos += uint64(n)
		if rerr != nil {
			return Box{}, br.truncated(start, typ+" largesize", rerr)
		}
		typ, size, hsize, err = header(br.hdr[:16], start)
	}
	if err != nil {
		return Box{}, err
	}
	if size == 0 {
		return br.readToEnd(start, typ)
	}
	if limit := br.maxFor(typ); size > uint64(limit) {
		return Box{}, fmt.Errorf("%w: %s box of %d bytes at offset %d, limit %d", ErrTooLarge, typ, size, start, limit)
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
func (br *Reader) readBody(size, hsize int) ([]byte, error) {
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
			nb, err := br.grow(buf, min(size, max(2*cap(buf), len(buf)+growStep)))
			if err != nil {
				return nil, err
			}
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
func (br *Reader) readToEnd(start uint64, typ string) (Box, error) {
	limit := br.maxFor(typ)
	buf := br.buf[:0]
	buf = append(buf, br.hdr[:8]...)
	for {
		// The buffer may be larger than this type's limit (a reused one):
		// read no further than the limit.
		room := min(cap(buf), limit)
		if len(buf) >= room {
			if len(buf) >= limit {
				return Box{}, fmt.Errorf("%w: %s box to the end of the stream at offset %d exceeds %d bytes", ErrTooLarge, typ, start, limit)
			}
			nb, err := br.grow(buf, min(2*cap(buf)+512, limit))
			if err != nil {
				return Box{}, err
			}
			buf, room = nb, cap(nb)
		}
		n, err := br.r.Read(buf[len(buf):room])
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
	return Box{Type: typ, Pos: start, HeaderSize: 8, Data: buf}, nil
}

func (br *Reader) truncated(start uint64, what string, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: %s of the box at offset %d", ErrTruncated, what, start)
	}
	return fmt.Errorf("read %s of the box at offset %d: %w", what, start, err)
}

// Offset is the number of bytes read so far.
func (br *Reader) Offset() uint64 { return br.pos }

// Types lists the types of b's top-level boxes, as far as they are whole:
// for tests and log lines.
func Types(b []byte) []string {
	var types []string
	for box, err := range All(b) {
		if err != nil {
			break
		}
		types = append(types, box.Type)
	}
	return types
}

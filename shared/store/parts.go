package store

import "io"

// partsReader reads the concatenation of byte slices, seekably (the SDK
// rewinds a body to sign it and to retry; the direct path takes a new
// one for each send), without copying them into one.
type partsReader struct {
	*io.SectionReader
	size int64
}

func newPartsReader(parts [][]byte) *partsReader {
	at := partsAt(parts)
	var size int64
	for _, p := range parts {
		size += int64(len(p))
	}
	return &partsReader{SectionReader: io.NewSectionReader(at, 0, size), size: size}
}

// partsAt is an io.ReaderAt over the concatenation of its slices.
type partsAt [][]byte

func (p partsAt) ReadAt(b []byte, off int64) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n := 0
	for _, part := range p {
		if off >= int64(len(part)) {
			off -= int64(len(part))
			continue
		}
		c := copy(b[n:], part[off:])
		n += c
		off = 0
		if n == len(b) {
			return n, nil
		}
	}
	return n, io.EOF
}

package relay

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// mp4Box is a box of type typ with n bytes of payload, with a 64-bit size
// when large.
func mp4Box(typ string, n int, large bool) []byte {
	if large {
		b := make([]byte, 16+n)
		binary.BigEndian.PutUint32(b, 1)
		copy(b[4:], typ)
		binary.BigEndian.PutUint64(b[8:], uint64(16+n))
		return b
	}
	b := make([]byte, 8+n)
	binary.BigEndian.PutUint32(b, uint32(8+n))
	copy(b[4:], typ)
	return b
}

// The box tracker tells a boundary between fragments from anywhere else,
// however the bytes are split into reads.
func TestBoxTracker(t *testing.T) {
	moov, moof, mdat := mp4Box("moov", 40, false), mp4Box("moof", 30, false), mp4Box("mdat", 100, true)
	stream := bytes.Join([][]byte{moov, moof, mdat, moof}, nil)
	fragEnd := len(moov) + len(moof) + len(mdat)
	// Where the tracker says "between fragments", byte by byte.
	want := map[int]bool{0: true, len(moov): true, fragEnd: true}
	for _, tc := range []struct {
		name  string
		reads []int // read sizes, cycled
	}{
		{"one byte at a time", []int{1}},
		{"three bytes", []int{3}},
		{"header-sized", []int{8}},
		{"odd", []int{5, 11, 2, 17}},
		{"the box reader's", []int{8, 32, 8, 22, 8, 8, 100, 8, 22}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b boxTracker
			for off, i := 0, 0; off < len(stream); i++ {
				n := min(tc.reads[i%len(tc.reads)], len(stream)-off)
				b.feed(stream[off : off+n])
				off += n
				if got := b.between(); got != want[off] {
					t.Fatalf("after %d bytes: between %v, want %v", off, got, want[off])
				}
			}
		})
	}
	t.Run("a box to the end of the stream", func(t *testing.T) {
		var b boxTracker
		b.feed(append(append([]byte{}, moov...), 0, 0, 0, 0, 'm', 'd', 'a', 't'))
		b.feed([]byte("media"))
		if b.between() {
			t.Fatal("between fragments inside a box of size 0")
		}
	})
}

package mp4box

import (
	"errors"
	"testing"
)

// Header reads a box's header without its data (a fragment's head ends
// with its mdat's), and says what is wrong with one that is not whole.
func TestHeaderNeedsOnlyTheHeader(t *testing.T) {
	for _, tc := range []struct {
		name  string
		b     []byte
		typ   string
		size  uint64
		hsize int
		err   error
	}{
		{"an mdat header without its data", []byte{0, 0, 0x10, 0, 'm', 'd', 'a', 't'}, "mdat", 4096, 8, nil},
		{"a largesize header", []byte{0, 0, 0, 1, 'm', 'd', 'a', 't', 0, 0, 0, 1, 0, 0, 0, 0}, "mdat", 1 << 32, 16, nil},
		{"a box to the end of its file", []byte{0, 0, 0, 0, 'm', 'd', 'a', 't'}, "mdat", 0, 8, nil},
		{"seven bytes", []byte{0, 0, 0, 8, 'm', 'o', 'o'}, "", 0, 0, ErrTruncated},
		{"a largesize cut short", []byte{0, 0, 0, 1, 'm', 'd', 'a', 't', 0, 0}, "", 0, 0, ErrTruncated},
		{"a type that is no box type", []byte{0, 0, 0, 8, 'm', 0, 'a', 't'}, "", 0, 0, ErrBadBox},
		{"a size under its header", []byte{0, 0, 0, 4, 'm', 'o', 'o', 'f'}, "", 0, 0, ErrBadBox},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ, size, hsize, err := Header(tc.b)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("error %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || typ != tc.typ || size != tc.size || hsize != tc.hsize {
				t.Fatalf("Header = %q %d %d %v, want %q %d %d", typ, size, hsize, err, tc.typ, tc.size, tc.hsize)
			}
		})
	}
}

package store

import (
	"bytes"
	"io"
	"testing"
)

// The parts reader reads, seeks and reads at any offset as the joined
// bytes would, whatever the split (empty parts included).
func TestPartsReader(t *testing.T) {
	whole := []byte("moof....mdat0123456789")
	for _, tc := range []struct {
		name  string
		parts [][]byte
	}{
		{"one", [][]byte{whole}},
		{"head and payload", [][]byte{whole[:12], whole[12:]}},
		{"with empty parts", [][]byte{nil, whole[:3], {}, whole[3:20], whole[20:], nil}},
		{"every byte", func() (p [][]byte) {
			for i := range whole {
				p = append(p, whole[i:i+1])
			}
			return p
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newPartsReader(tc.parts)
			if r.size != int64(len(whole)) {
				t.Fatalf("size %d, want %d", r.size, len(whole))
			}
			for range 2 { // read, rewind, read again (a retry)
				got, err := io.ReadAll(r)
				if err != nil || !bytes.Equal(got, whole) {
					t.Fatalf("read %q, %v", got, err)
				}
				if _, err := r.Seek(0, io.SeekStart); err != nil {
					t.Fatal(err)
				}
			}
			for off := range len(whole) + 1 {
				for n := range len(whole) - off + 2 {
					b := make([]byte, n)
					k, err := r.ReadAt(b, int64(off))
					want := whole[off:min(len(whole), off+n)]
					if k != len(want) || !bytes.Equal(b[:k], want) || n > 0 && (k < n) != (err == io.EOF) {
						t.Fatalf("ReadAt(%d bytes at %d) = %d %q, %v; want %q", n, off, k, b[:k], err, want)
					}
				}
			}
		})
	}
}

package relay

import (
	"bytes"
	"errors"
	"testing"
	"testing/iotest"
)

// readAll holds a body whose size was declared in exactly that many bytes
// (and one to see its end), grows to it in fewer, larger steps than
// doubling, draws from the budget just what it holds, and gives it all
// back; an undeclared size still doubles, a body over the limit stops at
// limit+1, and a budget too small refuses with nothing left drawn.
func TestReadAllHoldsWhatTheSenderDeclared(t *testing.T) {
	const limit = 4 << 20
	for _, tc := range []struct {
		name    string
		body    int
		size    int // declared; -1 unknown
		budget  int64
		wantCap int // 0: not checked
		wantErr error
	}{
		{"declared 800 KB: held in 800 KB", 800_000, 800_000, 0, 800_001, nil},
		{"declared 10 bytes", 10, 10, 0, 11, nil},
		{"declared empty", 0, 0, 0, 1, nil},
		{"declared 64 KiB exactly", 64 << 10, 64 << 10, 0, 64<<10 + 1, nil},
		{"unknown 800 KB: doubles", 800_000, -1, 0, 1 << 20, nil},
		{"over the limit: stops past it", limit + 10, limit + 10, 0, limit + 1, nil},
		{"over the budget", 800_000, 800_000, 300 << 10, 0, errMemory},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &memory{limit: tc.budget}
			body := bytes.Repeat([]byte{7}, tc.body)
			// One byte short of a read's worth at a time, as a socket.
			r := iotest.HalfReader(bytes.NewReader(body))
			b, release, err := m.readAll(r, limit, tc.size)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				if u := m.used.Load(); u != 0 {
					t.Errorf("refused, yet %d bytes stay drawn", u)
				}
				return
			}
			if want := min(tc.body, limit+1); !bytes.Equal(b, body[:want]) {
				t.Errorf("read %d bytes, want the body's first %d", len(b), want)
			}
			if tc.wantCap != 0 && cap(b) != tc.wantCap {
				t.Errorf("holds %d bytes, want %d", cap(b), tc.wantCap)
			}
			if u := m.used.Load(); u != int64(cap(b)) {
				t.Errorf("%d bytes drawn for a buffer of %d", u, cap(b))
			}
			release()
			release()
			if u := m.used.Load(); u != 0 {
				t.Errorf("%d bytes drawn after release", u)
			}
		})
	}
}

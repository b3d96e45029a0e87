package mp4box

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"slices"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/internal/testtool/chunked"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// push is a short synthetic Smooth push: ftyp, the live server manifest,
// moov, moof+mdat pairs, mfra.
func push(t testing.TB) []byte {
	t.Helper()
	s, err := synth.New(synth.Config{SMIL: true, Tracks: []synth.Track{
		{Kind: timeline.Video, Bitrate: 300_000}, {Kind: timeline.Audio, Bitrate: 64_000},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := s.WriteTo(context.Background(), &b, synth.Range{Count: 2, End: true}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// readAll is every box a Reader gives for b, and the error that ended
// it (nil at a clean end).
func readAll(b []byte, open func() io.Reader, maxBox int) ([]Box, error) {
	br := NewReader(open(), maxBox)
	var boxes []Box
	for {
		box, err := br.Next()
		if err == io.EOF {
			return boxes, nil
		}
		if err != nil {
			return boxes, err
		}
		box.Data = bytes.Clone(box.Data)
		boxes = append(boxes, box)
	}
}

// allOf is every box All gives for b, and the error that ended it.
func allOf(b []byte) ([]Box, error) {
	var boxes []Box
	for box, err := range All(b) {
		if err != nil {
			return boxes, err
		}
		boxes = append(boxes, box)
	}
	return boxes, nil
}

func TestReaderGivesTheSameBoxesWhateverTheChunkSize(t *testing.T) {
	body := push(t)
	for name, open := range chunked.Readers(body) {
		t.Run(name, func(t *testing.T) {
			boxes, err := readAll(body, open, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			var all []byte
			for _, box := range boxes {
				if int(box.Pos) != len(all) {
					t.Fatalf("box %s at %d, want %d", box.Type, box.Pos, len(all))
				}
				all = append(all, box.Data...)
			}
			if !bytes.Equal(all, body) {
				t.Fatalf("boxes do not add up to the body (%d of %d bytes)", len(all), len(body))
			}
			types := Types(body)
			if types[0] != "ftyp" || types[len(types)-1] != "mfra" || len(types) != len(boxes) {
				t.Fatalf("box order %v, %d boxes read", types, len(boxes))
			}
		})
	}
}

// The rules of a header, as both readers apply them.
func TestBadHeadersAreRefusedByBoth(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want error // nil: a clean end
	}{
		{"nothing: a clean end", nil, nil},
		{"truncated header", []byte{0, 0, 0}, ErrTruncated},
		{"truncated payload", []byte{0, 0, 0, 16, 'f', 'r', 'e', 'e', 1, 2}, ErrTruncated},
		{"truncated largesize", []byte{0, 0, 0, 1, 'm', 'd', 'a', 't', 0, 0}, ErrTruncated},
		{"size below 8", []byte{0, 0, 0, 4, 'f', 'r', 'e', 'e'}, ErrBadBox},
		{"largesize below 16", []byte{0, 0, 0, 1, 'm', 'd', 'a', 't', 0, 0, 0, 0, 0, 0, 0, 8}, ErrBadBox},
		{"binary type", []byte{0, 0, 0, 8, 0, 1, 2, 3}, ErrBadBox},
		{"absurd 32-bit size", []byte{0xff, 0xff, 0xff, 0xff, 'm', 'd', 'a', 't'}, ErrTooLarge},
		{"absurd 64-bit size", []byte{0, 0, 0, 1, 'm', 'd', 'a', 't', 0x40, 0, 0, 0, 0, 0, 0, 0}, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := NewReader(bytes.NewReader(tc.in), 1<<20)
			_, err := br.Next()
			if want := cmpOr(tc.want, io.EOF); !errors.Is(err, want) {
				t.Fatalf("Reader: err = %v, want %v", err, want)
			}
			if cap(br.buf) > 64 {
				t.Errorf("Reader allocated %d bytes for a refused box", cap(br.buf))
			}
			// All has the bytes in hand, so has no size limit: a box
			// larger than what it holds is cut short.
			want := tc.want
			if want == ErrTooLarge {
				want = ErrTruncated
			}
			_, err = allOf(tc.in)
			if !errors.Is(err, want) || (want == nil && err != nil) {
				t.Fatalf("All: err = %v, want %v", err, want)
			}
		})
	}
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func TestLargesizeAndToTheEnd(t *testing.T) {
	large := append([]byte{0, 0, 0, 1, 'f', 'r', 'e', 'e', 0, 0, 0, 0, 0, 0, 0, 20}, 1, 2, 3, 4)
	toEnd := []byte{0, 0, 0, 0, 'm', 'd', 'a', 't', 9, 9, 9}
	in := append(large, toEnd...)
	fromReader, err := readAll(in, func() io.Reader { return bytes.NewReader(in) }, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	fromAll, err := allOf(in)
	if err != nil {
		t.Fatal(err)
	}
	for name, boxes := range map[string][]Box{"Reader": fromReader, "All": fromAll} {
		if len(boxes) != 2 {
			t.Fatalf("%s: %d boxes, want 2", name, len(boxes))
		}
		if b := boxes[0]; b.HeaderSize != 16 || b.Size() != 20 || !bytes.Equal(b.Payload(), []byte{1, 2, 3, 4}) {
			t.Errorf("%s: largesize box %+v", name, b)
		}
		if b := boxes[1]; b.Type != "mdat" || b.Pos != 20 || !bytes.Equal(b.Payload(), []byte{9, 9, 9}) {
			t.Errorf("%s: size-0 box %+v", name, b)
		}
	}
}

// A header that declares a box of 60 MiB followed by 1 KiB (a lying or
// slow client) costs about what arrived, not what it declared: 200 such
// connections must not reserve 12 GiB.
func TestDeclaredHugeBoxCostsOnlyWhatArrives(t *testing.T) {
	hdr := []byte{0x03, 0xC0, 0x00, 0x00, 'm', 'd', 'a', 't'} // 60 MiB
	body := append(hdr, make([]byte, 1024)...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := NewReader(bytes.NewReader(body), 64<<20).Next()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("err %v, want truncation", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("allocated %d bytes for 1 KiB of a declared 60 MiB box", grew)
	}
}

// withLargesize returns b with its n-th top-level box of type typ given
// a 64-bit size.
func withLargesize(t testing.TB, b []byte, typ string, n int) []byte {
	t.Helper()
	for box, err := range All(b) {
		if err != nil {
			t.Fatal(err)
		}
		if box.Type != typ {
			continue
		}
		if n--; n >= 0 {
			continue
		}
		out := slices.Clone(b[:box.Pos])
		out = binary.BigEndian.AppendUint32(out, 1)
		out = append(out, typ...)
		out = binary.BigEndian.AppendUint64(out, uint64(box.Size()+8))
		out = append(out, box.Payload()...)
		return append(out, b[int(box.Pos)+box.Size():]...)
	}
	t.Fatalf("no %s box", typ)
	return nil
}

// Decode gives mp4ff the box whatever its header: a largesize moov and a
// moov that runs to the end decode as the plain one does.
func TestDecodeWhateverTheHeader(t *testing.T) {
	body := push(t)
	plain, ok := Find(body, "moov")
	if !ok {
		t.Fatal("no moov")
	}
	large, _ := Find(withLargesize(t, body, "moov", 0), "moov")
	toEnd := slices.Clone(plain.Data)
	binary.BigEndian.PutUint32(toEnd, 0)
	for name, box := range map[string]Box{
		"32-bit":     plain,
		"largesize":  large,
		"to the end": {Type: "moov", HeaderSize: 8, Data: toEnd},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := Decode(box)
			if err != nil {
				t.Fatal(err)
			}
			moov, ok := got.(*mp4.MoovBox)
			if !ok || len(moov.Traks) != 2 || moov.Mvex == nil || len(moov.Mvex.Trexs) != 2 {
				t.Fatalf("decoded %T %+v", got, got)
			}
		})
	}
	if _, err := Decode(Box{Type: "moov", HeaderSize: 8, Data: []byte{0, 0, 0, 12, 'm', 'o', 'o', 'v', 1, 2, 3, 4}}); err == nil {
		t.Error("a moov of garbage decoded")
	}
}

func TestFindAndTypes(t *testing.T) {
	body := push(t)
	if box, ok := Find(body, "mfra"); !ok || int(box.Pos)+box.Size() != len(body) {
		t.Errorf("mfra %+v %v, want the last box", box, ok)
	}
	if _, ok := Find(body, "sidx"); ok {
		t.Error("found a sidx in a push without one")
	}
	if _, ok := Find(body[:len(body)-1], "mfra"); ok {
		t.Error("found an mfra that is cut short")
	}
	if got := Types([]byte("not MP4 at all")); len(got) != 0 {
		t.Errorf("types of text: %v", got)
	}
}

// FuzzReaderAndAllAgree: on any input, the streaming reader (fed in
// chunks of any size) and the iterator give the same boxes and end for
// the same reason; All's only difference is that it has no size limit.
func FuzzReaderAndAllAgree(f *testing.F) {
	body := push(f)
	f.Add(body, uint16(7))
	f.Add(withLargesize(f, body, "moov", 0), uint16(1))
	f.Add([]byte{0, 0, 0, 0, 'm', 'd', 'a', 't', 9, 9, 9}, uint16(3))
	f.Add([]byte{0, 0, 0, 1, 'm', 'd', 'a', 't', 0, 0}, uint16(2))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint16) {
		fromAll, allErr := allOf(in)
		fromReader, readErr := readAll(in, func() io.Reader { return &chunked.Reader{R: bytes.NewReader(in), N: 1 + int(chunk)} }, len(in)+1)
		if len(fromAll) != len(fromReader) {
			t.Fatalf("All gave %d boxes (%v), Reader %d (%v)", len(fromAll), allErr, len(fromReader), readErr)
		}
		for i := range fromAll {
			a, r := fromAll[i], fromReader[i]
			if a.Type != r.Type || a.Pos != r.Pos || a.HeaderSize != r.HeaderSize || !bytes.Equal(a.Data, r.Data) {
				t.Fatalf("box %d: All %s@%d+%d, Reader %s@%d+%d", i, a.Type, a.Pos, a.Size(), r.Type, r.Pos, r.Size())
			}
		}
		// The Reader's limit is one byte more than the input: a box it
		// finds too large is one All finds cut short.
		tooLarge := errors.Is(readErr, ErrTooLarge)
		for _, e := range []error{ErrBadBox, ErrTruncated} {
			if errors.Is(allErr, e) != (errors.Is(readErr, e) || tooLarge && e == ErrTruncated) {
				t.Fatalf("All ended with %v, Reader with %v", allErr, readErr)
			}
		}
		if (allErr == nil) != (readErr == nil) {
			t.Fatalf("All ended with %v, Reader with %v", allErr, readErr)
		}
	})
}

// A reader with a budget asks it before each growth of its buffer, and
// stops at the first growth it refuses, with the budget's error; what it
// asked for adds up to its buffer's size.
func TestReaderAsksItsBudget(t *testing.T) {
	body := push(t)
	var asked int
	br := NewReader(bytes.NewReader(body), 1<<20)
	br.Budget(func(n int) error { asked += n; return nil })
	largest := 0
	for {
		box, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		largest = max(largest, box.Size())
	}
	if asked != br.Allocated() || asked+64 < largest || asked > 2*largest+growStep { // (a header's few bytes go uncounted)
		t.Errorf("asked for %d, allocated %d, for boxes of %d bytes at most", asked, br.Allocated(), largest)
	}
	errBudget := errors.New("budget spent")
	br = NewReader(bytes.NewReader(body), 1<<20)
	br.Budget(func(n int) error { return errBudget })
	for {
		_, err := br.Next()
		if err == io.EOF {
			t.Fatal("read to the end with no budget")
		}
		if err != nil {
			if !errors.Is(err, errBudget) || br.Allocated() != 0 {
				t.Fatalf("err %v (allocated %d), want the budget's", err, br.Allocated())
			}
			break
		}
	}
}

// A per-type limit (SetLimit) refuses a box of that type over it once its
// header is read, whatever its size field (32-bit, largesize, to the
// end), before anything is allocated or read for it; other types keep
// the reader's limit, and a limit above the reader's does not raise it.
func TestPerTypeLimit(t *testing.T) {
	limit := func(typ string) int {
		switch typ {
		case "uuid":
			return 1024
		case "moof":
			return 1 << 30 // above the reader's: the reader's applies
		}
		return 0
	}
	big := func(typ string, n int) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(n))
		return append(append(b, typ...), make([]byte, n-8)...)
	}
	toEnd := func(typ string, n int) []byte {
		return append(append([]byte{0, 0, 0, 0}, typ...), make([]byte, n-8)...)
	}
	largesize := func(typ string, n int) []byte {
		b := binary.BigEndian.AppendUint32(nil, 1)
		b = binary.BigEndian.AppendUint64(append(b, typ...), uint64(n))
		return append(b, make([]byte, n-16)...)
	}
	for _, tc := range []struct {
		name     string
		in       []byte
		refused  bool
		readUpTo uint64 // bytes the reader may have read when it refuses
	}{
		{"a uuid at the limit", big("uuid", 1024), false, 0},
		{"a uuid over it", big("uuid", 1025), true, 8},
		{"a uuid of 23 MB", big("uuid", 23<<20), true, 8},
		{"a largesize uuid over it", largesize("uuid", 4096), true, 16},
		{"a uuid to the end of the stream over it", toEnd("uuid", 4096), true, 1024},
		{"an mdat over the uuid limit", big("mdat", 4096), false, 0},
		{"a moof over the reader's limit", big("moof", 8192), true, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A reused buffer larger than the type's limit must not
			// let a box to the end read past it.
			in := append(big("free", 6000), tc.in...)
			br := NewReader(bytes.NewReader(in), 8000)
			br.SetLimit(limit)
			if _, err := br.Next(); err != nil {
				t.Fatal(err)
			}
			_, err := br.Next()
			if tc.refused != errors.Is(err, ErrTooLarge) || !tc.refused && err != nil {
				t.Fatalf("err %v, want refused %v", err, tc.refused)
			}
			if read := br.Offset() - 6000; tc.refused && read > tc.readUpTo {
				t.Errorf("read %d bytes of the refused box, want at most %d", read, tc.readUpTo)
			}
		})
	}
}

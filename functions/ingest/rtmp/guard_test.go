package rtmp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/chunk"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"

	"github.com/smoothcast/smoothcast/shared/mp4box"
)

// msgInfo is a message as its framing shows it.
type msgInfo struct {
	csid, typ byte
	length    int
}

func (m msgInfo) String() string { return fmt.Sprintf("cs%d/t%d/%d", m.csid, m.typ, m.length) }

// libraryMessages reads b (chunks, no handshake) with gortmplib's chunk
// reader, applying chunk sizes and aborts as its message reader does
// (pkg/message.Reader), and refusing the types that reader refuses.
func libraryMessages(b []byte) ([]msgInfo, error) {
	br := bytecounter.NewReader(bytes.NewReader(b))
	r := rawmessage.NewReader(br, br, func(uint32) error { return nil })
	var out []msgInfo
	for {
		m, err := r.Read()
		if err != nil {
			return out, err
		}
		out = append(out, msgInfo{m.ChunkStreamID, m.Type, len(m.Body)})
		switch m.Type {
		case typeSetChunkSize, typeAbort:
			if len(m.Body) != 4 {
				return out, errors.New("invalid body size")
			}
			v := binary.BigEndian.Uint32(m.Body)
			if m.Type == typeAbort {
				r.AbortChunkStream(v)
			} else if err := r.SetChunkSize(v); err != nil {
				return out, err
			}
		case 3, 4, 5, 6, typeAudio, typeVideo, typeDataAMF0, typeCommandAMF0:
		default:
			return out, fmt.Errorf("invalid message type %d", m.Type)
		}
	}
}

// guardMessages passes b through a guard, in pieces of the sizes pieces
// gives, and lists the messages it framed.
func guardMessages(b []byte, lim Limits, pieces func() int) ([]msgInfo, error) {
	g := newGuard(lim, false)
	var out []msgInfo
	g.onMessage = func(csid, typ byte, length uint32) { out = append(out, msgInfo{csid, typ, int(length)}) }
	for len(b) > 0 {
		n := min(len(b), max(1, pieces()))
		if err := g.Write(b[:n]); err != nil {
			return out, err
		}
		b = b[n:]
	}
	return out, nil
}

// wideLimits leave gortmplib's own rules the only ones that apply.
var wideLimits = Limits{MaxMessage: 1 << 24, MaxAMF: 1 << 24, MaxPending: 1 << 40}

// chunkWriter writes interleaved chunk streams as an encoder may: any
// header type the rules allow, extended timestamps, chunk size changes
// and aborts.
type chunkWriter struct {
	rnd       *rand.Rand
	maxFrame  int // the longest audio or video message
	buf       bytes.Buffer
	chunkSize uint32
	streams   map[byte]*writerStream
	want      []msgInfo
}

type writerStream struct {
	started     bool
	typ         byte
	length      uint32
	ext         bool
	body        []byte // the message in progress
	pos         int
	inProgress  bool
	lastLength  uint32
	lastTyp     byte
	lastStarted bool
}

func newChunkWriter(seed uint64) *chunkWriter {
	return &chunkWriter{rnd: rand.New(rand.NewPCG(seed, 1)), maxFrame: 20000, chunkSize: 128, streams: map[byte]*writerStream{}}
}

func (w *chunkWriter) timestamp() uint32 {
	if w.rnd.IntN(8) == 0 {
		return 0xffffff + uint32(w.rnd.IntN(3)) - 1 // around the extended boundary
	}
	return uint32(w.rnd.IntN(100000))
}

// start begins a message on csid: its first chunk.
func (w *chunkWriter) start(csid, typ byte, body []byte) {
	s := w.streams[csid]
	if s == nil {
		s = &writerStream{}
		w.streams[csid] = s
	}
	n := min(uint32(len(body)), w.chunkSize)
	length := uint32(len(body))
	var c []byte
	var err error
	choice := w.rnd.IntN(4)
	switch {
	case !s.started || choice == 0:
		ts := w.timestamp()
		c, err = chunk.Chunk0{ChunkStreamID: csid, Timestamp: ts, BodyLen: length, Type: typ, MessageStreamID: 1, Body: body[:n]}.Marshal(false)
		s.ext = ts >= 0xffffff
	case choice == 1 || s.length != length || s.typ != typ:
		ts := w.timestamp()
		c, err = chunk.Chunk1{ChunkStreamID: csid, TimestampDelta: ts, BodyLen: length, Type: typ, Body: body[:n]}.Marshal(false)
		s.ext = ts >= 0xffffff
	case choice == 2:
		ts := w.timestamp()
		c, err = chunk.Chunk2{ChunkStreamID: csid, TimestampDelta: ts, Body: body[:n]}.Marshal(false)
		s.ext = ts >= 0xffffff
	default:
		c, err = chunk.Chunk3{ChunkStreamID: csid, Body: body[:n]}.Marshal(s.ext)
	}
	if err != nil {
		panic(err)
	}
	w.buf.Write(c)
	s.started, s.typ, s.length = true, typ, length
	s.body, s.pos, s.inProgress = body, int(n), int(n) < len(body)
	if !s.inProgress {
		w.done(csid, typ, body)
	}
}

// next writes the next chunk of csid's message in progress.
func (w *chunkWriter) next(csid byte) {
	s := w.streams[csid]
	n := min(len(s.body)-s.pos, int(w.chunkSize))
	c, err := chunk.Chunk3{ChunkStreamID: csid, Body: s.body[s.pos : s.pos+n]}.Marshal(s.ext)
	if err != nil {
		panic(err)
	}
	w.buf.Write(c)
	s.pos += n
	if s.pos == len(s.body) {
		s.inProgress = false
		w.done(csid, s.typ, s.body)
	}
}

// done notes a whole message and applies what it changes.
func (w *chunkWriter) done(csid, typ byte, body []byte) {
	w.want = append(w.want, msgInfo{csid, typ, len(body)})
	switch typ {
	case typeSetChunkSize:
		w.chunkSize = binary.BigEndian.Uint32(body)
	case typeAbort:
		if s := w.streams[byte(binary.BigEndian.Uint32(body))]; s != nil && s.inProgress {
			s.inProgress, s.length = false, 0
		}
	}
}

// stream writes n messages of random types and lengths on chunk streams
// 2 to 7, interleaved chunk by chunk.
func (w *chunkWriter) stream(n int) []byte {
	for i := 0; i < n; {
		csid := byte(2 + w.rnd.IntN(6))
		s := w.streams[csid]
		if s != nil && s.inProgress {
			w.next(csid)
			continue
		}
		i++
		switch k := w.rnd.IntN(20); {
		case k == 0 && csid == 2:
			w.start(csid, typeSetChunkSize, binary.BigEndian.AppendUint32(nil, uint32(MinChunkSize+w.rnd.IntN(8000))))
		case k == 1:
			var victim byte
			for id, o := range w.streams {
				if o.inProgress {
					victim = id
				}
			}
			w.start(csid, typeAbort, binary.BigEndian.AppendUint32(nil, uint32(victim)))
		case k < 4:
			w.start(csid, byte(3+w.rnd.IntN(4)), make([]byte, w.rnd.IntN(11)))
		case k < 8:
			w.start(csid, []byte{typeDataAMF0, typeCommandAMF0}[w.rnd.IntN(2)], make([]byte, w.rnd.IntN(600)))
		default:
			w.start(csid, []byte{typeAudio, typeVideo}[w.rnd.IntN(2)], make([]byte, w.rnd.IntN(w.maxFrame)))
		}
	}
	for csid, s := range w.streams {
		for s.inProgress {
			w.next(csid)
		}
	}
	return w.buf.Bytes()
}

// The guard frames a chunk stream as gortmplib does, whatever header types,
// extended timestamps, chunk sizes, aborts and interleaving an encoder
// uses, and whatever pieces the network hands it: it never refuses what
// the library takes within the limits.
func TestGuardFramesAsGortmplib(t *testing.T) {
	for seed := range uint64(200) {
		w := newChunkWriter(seed)
		b := w.stream(150)
		lib, err := libraryMessages(b)
		if len(lib) != len(w.want) || !strings.Contains(fmt.Sprint(err), "EOF") {
			t.Fatalf("seed %d: the fixture is not what gortmplib reads: %d messages written, %d read (%v)", seed, len(w.want), len(lib), err)
		}
		rnd := rand.New(rand.NewPCG(seed, 2))
		got, err := guardMessages(b, wideLimits, func() int { return 1 + rnd.IntN(300) })
		if err != nil {
			t.Fatalf("seed %d: the guard refused a stream gortmplib takes: %v", seed, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(lib) {
			t.Fatalf("seed %d: the guard framed\n%v\ngortmplib\n%v", seed, got, lib)
		}
	}
}

// checkAgreement is the rule FuzzGuard holds for any bytes: where gortmplib
// reads messages the guard frames the same ones, and the guard calls a
// stream malformed only where gortmplib fails too, no later.
func checkAgreement(t *testing.T, b []byte, pieces func() int) {
	lib, libErr := libraryMessages(b)
	got, err := guardMessages(b, wideLimits, pieces)
	n := min(len(lib), len(got))
	if fmt.Sprint(got[:n]) != fmt.Sprint(lib[:n]) {
		t.Fatalf("the guard framed %v, gortmplib %v", got[:n], lib[:n])
	}
	switch {
	case err == nil:
		if len(got) < len(lib) {
			t.Fatalf("the guard framed %d messages, gortmplib %d", len(got), len(lib))
		}
	case errors.Is(err, errMalformed):
		if len(lib) > len(got) || libErr == nil {
			t.Fatalf("the guard refused (%v) after %d messages where gortmplib read %d (%v)", err, len(got), len(lib), libErr)
		}
	case errors.Is(err, errRefused), errors.Is(err, mp4box.ErrTooLarge):
	default:
		t.Fatalf("the guard's error is none of its kinds: %v", err)
	}
}

func FuzzGuard(f *testing.F) {
	for seed := range uint64(4) {
		w := newChunkWriter(seed)
		w.maxFrame = 400
		f.Add(w.stream(12), uint8(seed*37))
	}
	f.Add([]byte{0x02, 0xff, 0xff, 0xff, 0, 0, 4, 1, 0, 0, 0, 0, 0x7f, 0, 0, 0, 0, 0, 0, 1}, uint8(1))
	f.Add([]byte{0xc3, 0x43, 0, 0, 0, 0, 0, 5, 9}, uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, piece uint8) {
		checkAgreement(t, b, func() int { return int(piece) })
	})
}

// chunk0 is a type 0 chunk header on csid for a message of typ and length.
func chunk0(csid, typ byte, length int) []byte {
	return []byte{csid, 0, 0, 0, byte(length >> 16), byte(length >> 8), byte(length), typ, 0, 0, 0, 0}
}

// setChunkSize is a whole Set Chunk Size message.
func setChunkSize(v uint32) []byte {
	return binary.BigEndian.AppendUint32(chunk0(2, typeSetChunkSize, 4), v)
}

// What the guard refuses, and when: at the header that declares it,
// before gortmplib holds any of it.
func TestGuardRefuses(t *testing.T) {
	lim := DefaultLimits()
	nested := func(n int) []byte { // chunks of a command of n bytes
		var b []byte
		b = append(b, chunk0(3, typeCommandAMF0, n)...)
		return b
	}
	// A frame begun on each chunk stream, a chunk of 1 MiB each, none
	// finished.
	manyStreams := setChunkSize(1 << 20)
	for csid := byte(3); csid < 64; csid++ {
		manyStreams = append(manyStreams, chunk0(csid, typeVideo, lim.MaxMessage)...)
		manyStreams = append(manyStreams, make([]byte, 1<<20)...)
	}
	cases := []struct {
		name      string
		handshake bool
		b         []byte
		want      error
		wantText  string
	}{
		{name: "a command longer than MaxAMF (gortmplib's AMF0 decoder recurses per level)", b: nested(10 << 20), want: mp4box.ErrTooLarge, wantText: "command message of 10485760 bytes, limit 16384"},
		{name: "metadata longer than MaxAMF", b: chunk0(4, typeDataAMF0, lim.MaxAMF+1), want: mp4box.ErrTooLarge},
		{name: "a frame longer than MaxMessage", b: chunk0(6, typeVideo, lim.MaxMessage+1), want: mp4box.ErrTooLarge},
		{name: "a control message longer than its type needs", b: chunk0(2, 5, 65), want: mp4box.ErrTooLarge},
		{name: "frames begun on every chunk stream past MaxPending", b: manyStreams, want: mp4box.ErrTooLarge, wantText: "messages in progress would hold"},
		{name: "a chunk size of 1 (a slice header per byte)", b: setChunkSize(1), want: errRefused, wantText: "chunk size 1: want 128 to 10485760"},
		{name: "a chunk size of 2^31-1", b: setChunkSize(1<<31 - 1), want: errRefused},
		{name: "an AMF3 command", b: chunk0(3, 17, 10), want: errRefused},
		{name: "an aggregate message", b: chunk0(6, 22, 10), want: errRefused},
		{name: "a chunk size message of 5 bytes", b: chunk0(2, typeSetChunkSize, 5), want: errRefused},
		{name: "a chunk stream ID in two bytes", b: []byte{0x00, 0x40}, want: errMalformed},
		{name: "a type 1 chunk on a new chunk stream", b: []byte{0x45, 0, 0, 0, 0, 0, 1, 9}, want: errMalformed},
		{name: "a type 3 chunk on a new chunk stream", b: []byte{0xc5}, want: errMalformed},
		{name: "a type 0 chunk inside a message", b: append(append(chunk0(6, typeVideo, 1000), make([]byte, 128)...), chunk0(6, typeVideo, 10)...), want: errMalformed},
		{name: "RTMPE", handshake: true, b: []byte{6, 0, 0}, want: errRefused, wantText: "use RTMPS"},
		{name: "not RTMP at all", handshake: true, b: []byte("GET / HTTP/1.1\r\n"), want: errRefused},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newGuard(lim, tc.handshake)
			err := g.Write(tc.b)
			if !errors.Is(err, tc.want) || !strings.Contains(fmt.Sprint(err), tc.wantText) {
				t.Fatalf("Write = %v; want %v %q", err, tc.want, tc.wantText)
			}
			if g.Pending() > int64(lim.MaxPending) {
				t.Errorf("held %d bytes, limit %d", g.Pending(), lim.MaxPending)
			}
			if err2 := g.Write([]byte{0}); err2 == nil {
				t.Error("a refused guard takes more bytes")
			}
		})
	}
}

// The handshake passes whole, in any pieces, and the chunks after it are
// framed.
func TestGuardPassesTheHandshake(t *testing.T) {
	b := append([]byte{3}, make([]byte, 2*1536)...)
	b = append(b, setChunkSize(4096)...)
	b = append(b, chunk0(6, typeVideo, 5000)...)
	b = append(b, make([]byte, 4096)...)
	b = append(b, 0xc6)
	b = append(b, make([]byte, 904)...)
	g := newGuard(DefaultLimits(), true)
	var got []msgInfo
	g.onMessage = func(csid, typ byte, length uint32) { got = append(got, msgInfo{csid, typ, int(length)}) }
	for len(b) > 0 {
		n := min(len(b), 700)
		if err := g.Write(b[:n]); err != nil {
			t.Fatal(err)
		}
		b = b[n:]
	}
	if want := "[cs2/t1/4 cs6/t9/5000]"; fmt.Sprint(got) != want {
		t.Errorf("framed %v, want %s", got, want)
	}
	if g.Pending() != 0 {
		t.Errorf("%d bytes pending after whole messages", g.Pending())
	}
}

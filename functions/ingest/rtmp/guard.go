package rtmp

import (
	"errors"
	"fmt"

	"github.com/smoothcast/smoothcast/shared/mp4box"
)

// The guard stands between the connection and gortmplib: it frames the
// bytes that arrive into RTMP chunks exactly as gortmplib's chunk reader
// (pkg/rawmessage) will, one step ahead of it, and refuses at a chunk's
// header what the library would take too much memory or time to refuse:
//
//   - gortmplib v1.0.1 assembles a message of up to 10 MiB on each of 62
//     chunk streams before it looks at it (620 MiB for one connection),
//     and its AMF0 decoder recurses once per nesting level with no bound:
//     a 10 MiB command of nested arrays overflows the goroutine's 1 GB
//     stack, which kills the process (reproduced; TestGuardRefuses and
//     TestHostileInputIsRefusedAndTheNextEncoderPublishes send one);
//   - a chunk size of 1 makes it keep a slice header per byte received.
//
// So a message longer than its type needs (AMF commands and metadata
// MaxAMF, audio and video MaxMessage, control messages 64 bytes), messages
// begun and not complete holding more than MaxPending in all, a chunk
// size outside [MinChunkSize, MaxChunkSize], a type the library does not
// take, and RTMPE (encrypted RTMP: the chunks could not be read; RTMPS is
// the way) are refused before the library sees a byte of them.

// Limits bound what one RTMP connection may make the relay hold.
type Limits struct {
	// MaxMessage is the longest audio or video message (one frame).
	MaxMessage int
	// MaxAMF is the longest command or data message (connect, publish,
	// onMetaData): a few hundred bytes from any encoder.
	MaxAMF int
	// MaxPending is what the messages begun and not complete may hold in
	// all (a frame being received, interleaved with audio).
	MaxPending int
}

// DefaultLimits: frames of up to 8 MiB, AMF messages of up to 16 KiB,
// 9 MiB of messages in progress.
func DefaultLimits() Limits {
	return Limits{MaxMessage: 8 << 20, MaxAMF: 16 << 10, MaxPending: 9 << 20}
}

// Chunk sizes the guard lets an encoder set: not below the protocol's
// default (encoders raise it, to 4096 usually), not above gortmplib's
// largest message.
const (
	MinChunkSize = 128
	MaxChunkSize = 10 << 20
)

// handshakeLen is what a client sends before its first chunk: C0 (the
// version), C1 and C2 (1536 bytes each).
const handshakeLen = 1 + 1536 + 1536

// Message types (RTMP 1.0, 5.4 and 7.1).
const (
	typeSetChunkSize = 1
	typeAbort        = 2
	typeAudio        = 8
	typeVideo        = 9
	typeDataAMF0     = 18
	typeCommandAMF0  = 20
)

// The guard's refusals: errMalformed where gortmplib would fail too (the
// same framing rules, at the same byte), errRefused where the guard is
// stricter than the library (types, chunk sizes, RTMPE), and
// mp4box.ErrTooLarge over a size limit.
var (
	errMalformed = errors.New("malformed chunk stream")
	errRefused   = errors.New("refused")
)

// chunkStream is the guard's copy of what gortmplib keeps per chunk
// stream ID (rawmessage.readerChunkStream).
type chunkStream struct {
	started bool   // a type 0 chunk came (curTimestampAvailable)
	typ     uint8  // the current message's type
	length  uint32 // the current message's length
	recv    uint32 // bytes of it received (0: none in progress)
	ext     bool   // type 3 chunks carry an extended timestamp
}

// guard frames a connection's bytes. The zero value is not usable: see
// newGuard.
type guard struct {
	lim       Limits
	handshake int // bytes of the handshake still to pass
	chunkSize uint32
	streams   [64]chunkStream
	pending   int64 // bytes of the messages in progress, in all

	hdr  [16]byte // the chunk header being read
	hn   int      // its bytes so far
	need int      // its length, once known (0: not yet)
	cs   *chunkStream
	csid byte
	body uint32 // bytes of the current chunk's body still to pass
	done bool   // the current chunk ends its message
	ctl  [4]byte
	ctlN int
	err  error // the refusal, once refused

	// onMessage, when set, hears of each message as its last chunk
	// passes (the tests compare the guard's framing with gortmplib's).
	onMessage func(csid, typ byte, length uint32)
}

// newGuard returns a guard for a connection that starts with the client
// handshake (handshake true) or with its first chunk.
func newGuard(lim Limits, handshake bool) *guard {
	g := &guard{lim: lim, chunkSize: 128}
	if handshake {
		g.handshake = handshakeLen
	}
	return g
}

// Pending is what the messages in progress hold, in bytes.
func (g *guard) Pending() int64 { return g.pending }

// Write passes bytes received, in order; an error refuses the connection
// (and every later call returns an error too).
func (g *guard) Write(p []byte) error {
	if g.err != nil {
		return g.err
	}
	for len(p) > 0 {
		switch {
		case g.handshake > 0:
			if g.handshake == handshakeLen {
				switch p[0] {
				case 3:
				case 6:
					return g.fail(errRefused, "RTMPE (encrypted RTMP) is not taken: use RTMPS")
				default:
					return g.fail(errRefused, "version %d: not RTMP", p[0])
				}
			}
			n := min(len(p), g.handshake)
			g.handshake -= n
			p = p[n:]
		case g.body > 0:
			n := min(uint32(len(p)), g.body)
			if g.cs.typ == typeSetChunkSize || g.cs.typ == typeAbort {
				g.ctlN += copy(g.ctl[g.ctlN:], p[:n])
			}
			g.body -= n
			p = p[n:]
			if g.body == 0 {
				if err := g.endChunk(); err != nil {
					return err
				}
			}
		default:
			g.hdr[g.hn] = p[0]
			g.hn++
			p = p[1:]
			if err := g.header(); err != nil {
				return err
			}
		}
	}
	return nil
}

// fail refuses the connection, for good, with why (one of the guard's
// errors) and what.
func (g *guard) fail(why error, format string, args ...any) error {
	g.err = fmt.Errorf("rtmp: "+format+" (%w)", append(args, why)...)
	return g.err
}

// header takes the chunk header byte just received; once the header is
// whole it checks it and sets the body to pass.
func (g *guard) header() error {
	if g.hn == 1 {
		g.csid = g.hdr[0] & 0x3f
		if g.csid < 2 {
			return g.fail(errMalformed, "chunk stream IDs over 63 are not taken")
		}
		g.cs = &g.streams[g.csid]
		g.need = [4]int{12, 8, 4, 1}[g.hdr[0]>>6]
		if g.hdr[0]>>6 == 3 && g.cs.ext {
			g.need += 4
		}
	}
	if g.hn < g.need {
		return nil
	}
	fmtType := g.hdr[0] >> 6
	extended := fmtType < 3 && g.hdr[1] == 0xff && g.hdr[2] == 0xff && g.hdr[3] == 0xff
	if extended && g.need == [3]int{12, 8, 4}[fmtType] {
		g.need += 4 // an extended timestamp follows
		return nil
	}
	cs := g.cs
	// The timestamp (type 0) or delta (1, 2), from the extended field
	// when its own is 0xffffff: gortmplib decides from it whether type 3
	// chunks after it carry an extended timestamp.
	var ts uint32
	if fmtType < 3 {
		ts = uint32(g.hdr[1])<<16 | uint32(g.hdr[2])<<8 | uint32(g.hdr[3])
		if extended {
			x := g.need - 4
			ts = uint32(g.hdr[x])<<24 | uint32(g.hdr[x+1])<<16 | uint32(g.hdr[x+2])<<8 | uint32(g.hdr[x+3])
		}
	}
	g.hn, g.need = 0, 0
	switch fmtType {
	case 0, 1:
		if fmtType == 1 && !cs.started {
			return g.fail(errMalformed, "chunk stream %d: a type 1 chunk before any type 0", g.csid)
		}
		if cs.recv != 0 {
			return g.fail(errMalformed, "chunk stream %d: a type %d chunk inside a message", g.csid, fmtType)
		}
		cs.started = true
		cs.length = uint32(g.hdr[4])<<16 | uint32(g.hdr[5])<<8 | uint32(g.hdr[6])
		cs.typ = g.hdr[7]
		cs.ext = ts >= 0xffffff
		if err := g.checkMessage(cs); err != nil {
			return err
		}
	case 2:
		if !cs.started {
			return g.fail(errMalformed, "chunk stream %d: a type 2 chunk before any type 0", g.csid)
		}
		if cs.recv != 0 {
			return g.fail(errMalformed, "chunk stream %d: a type 2 chunk inside a message", g.csid)
		}
		cs.ext = ts >= 0xffffff
	default:
		if cs.recv == 0 && !cs.started {
			return g.fail(errMalformed, "chunk stream %d: a type 3 chunk before any type 0", g.csid)
		}
	}
	if cs.recv == 0 {
		g.ctlN = 0
	}
	g.body = min(cs.length-cs.recv, g.chunkSize)
	g.done = cs.recv+g.body == cs.length
	if !g.done {
		// gortmplib allocates the chunk's body before it reads it, and
		// keeps it until the message is whole.
		if g.pending+int64(g.body) > int64(g.lim.MaxPending) {
			return g.fail(mp4box.ErrTooLarge, "messages in progress would hold %d bytes, limit %d", g.pending+int64(g.body), g.lim.MaxPending)
		}
		g.pending += int64(g.body)
	}
	if g.body == 0 {
		return g.endChunk()
	}
	return nil
}

// checkMessage refuses, at its header, a message of a type gortmplib
// does not take or longer than its type needs.
func (g *guard) checkMessage(cs *chunkStream) error {
	limit := 0
	switch cs.typ {
	case typeSetChunkSize, typeAbort:
		if cs.length != 4 {
			return g.fail(errRefused, "message type %d of %d bytes, want 4", cs.typ, cs.length)
		}
		return nil
	case 3, 4, 5, 6: // acknowledgement, user control, window, peer bandwidth
		limit = 64
	case typeAudio, typeVideo:
		limit = g.lim.MaxMessage
	case typeDataAMF0, typeCommandAMF0:
		limit = g.lim.MaxAMF
	default:
		return g.fail(errRefused, "message type %d is not taken (AMF3, aggregate and shared object messages are not)", cs.typ)
	}
	if int(cs.length) > limit {
		return g.fail(mp4box.ErrTooLarge, "%s of %d bytes, limit %d", typeName(cs.typ), cs.length, limit)
	}
	return nil
}

// typeName names a message type, for errors.
func typeName(typ uint8) string {
	switch typ {
	case typeAudio:
		return "audio message"
	case typeVideo:
		return "video message"
	case typeDataAMF0:
		return "data message (metadata)"
	case typeCommandAMF0:
		return "command message"
	}
	return fmt.Sprintf("message type %d", typ)
}

// endChunk accounts for a chunk whose body has passed.
func (g *guard) endChunk() error {
	cs := g.cs
	if !g.done {
		cs.recv += min(cs.length-cs.recv, g.chunkSize)
		return nil
	}
	g.pending -= int64(cs.recv)
	cs.recv = 0
	if g.onMessage != nil {
		g.onMessage(g.csid, cs.typ, cs.length)
	}
	if (cs.typ == typeSetChunkSize || cs.typ == typeAbort) && g.ctlN != 4 {
		return g.fail(errMalformed, "message type %d of %d bytes, want 4", cs.typ, g.ctlN)
	}
	v := uint32(g.ctl[0])<<24 | uint32(g.ctl[1])<<16 | uint32(g.ctl[2])<<8 | uint32(g.ctl[3])
	switch cs.typ {
	case typeSetChunkSize:
		if v < MinChunkSize || v > MaxChunkSize {
			return g.fail(errRefused, "chunk size %d: want %d to %d", v, MinChunkSize, MaxChunkSize)
		}
		g.chunkSize = v
	case typeAbort:
		if v >= 2 && v <= 63 && g.streams[v].recv != 0 {
			a := &g.streams[v]
			g.pending -= int64(a.recv)
			a.recv, a.length = 0, 0
		}
	}
	return nil
}

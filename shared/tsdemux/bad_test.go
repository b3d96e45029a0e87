package tsdemux

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/packager"
)

// The fixtures' PIDs (ffmpeg's defaults).
const (
	pidPMT    = 0x1000
	pidVideo  = 0x100
	pidAudio  = 0x101
	pidAudio2 = 0x102
)

func pidOf(p []byte) uint16 { return uint16(p[1]&0x1f)<<8 | uint16(p[2]) }

func startsPES(p []byte) bool { return p[1]&0x40 != 0 }

// payloadAt is where packet p's payload begins.
func payloadAt(p []byte) int {
	if p[3]&0x20 != 0 {
		return 5 + int(p[4])
	}
	return 4
}

// packetsOf copies b's packets, keeping those keep says to (all if nil).
func packetsOf(b []byte, keep func(i int, p []byte) bool) []byte {
	var out []byte
	for i := 0; i*PacketSize < len(b); i++ {
		p := b[i*PacketSize : (i+1)*PacketSize]
		if keep == nil || keep(i, p) {
			out = append(out, p...)
		}
	}
	return out
}

// nth finds the index of the n-th (from 0) packet of pid that match.
func nth(b []byte, pid uint16, n int, match func(p []byte) bool) int {
	for i := 0; i*PacketSize < len(b); i++ {
		p := b[i*PacketSize : (i+1)*PacketSize]
		if pidOf(p) == pid && match(p) {
			if n == 0 {
				return i
			}
			n--
		}
	}
	panic("no such packet")
}

func packet(b []byte, i int) []byte { return b[i*PacketSize : (i+1)*PacketSize] }

func notStart(p []byte) bool { return !startsPES(p) }

// setPTS writes t as a PES header's PTS field at b, keeping its prefix
// and marker bits.
func setPTS(b []byte, t int64) {
	b[0] = b[0]&0xf1 | byte(t>>29)&0x0e
	b[1] = byte(t >> 22)
	b[2] = byte(t>>14) | 1
	b[3] = byte(t >> 7)
	b[4] = byte(t<<1) | 1
}

// Each is what an encoder or an attacker may send: a clear error naming
// the rule, a *ingest.ProtocolError, never a panic. An error in the first
// segment ends the demuxer; one in a later segment leaves it as it was
// before that segment, and the segment that follows the last good one is
// taken.
func TestBadInputIsAProtocolErrorThatSaysWhat(t *testing.T) {
	aac := fixture(t, "h264_aac.ts")
	segs := hlsSegments(t)
	random := make([]byte, 20*PacketSize)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	random[0] = 0
	for _, tc := range []struct {
		name string
		segs func() [][]byte
		want error
		next int // the index in segs of the segment taken after the error (0: none)
	}{
		{"garbage", func() [][]byte { return [][]byte{random} }, ErrSync, 0},
		{"garbage after good segments", func() [][]byte { return [][]byte{segs[0], random} }, ErrSync, 1},
		{"a segment cut inside a packet", func() [][]byte { return [][]byte{aac[:len(aac)-100]} }, ErrPacketSize, 0},
		{"an empty segment", func() [][]byte { return [][]byte{{}} }, ErrPacketSize, 0},
		{"a segment cut inside an audio PES", func() [][]byte {
			return [][]byte{aac[:(nth(aac, pidAudio, 0, notStart)+1)*PacketSize]}
		}, ErrTruncated, 0},
		{"a lost packet", func() [][]byte {
			lost := nth(aac, pidVideo, 2, notStart)
			return [][]byte{packetsOf(aac, func(i int, _ []byte) bool { return i != lost })}
		}, ErrContinuity, 0},
		{"a packet marked in error", func() [][]byte {
			b := bytes.Clone(aac)
			packet(b, nth(b, pidVideo, 3, notStart))[1] |= 0x80
			return [][]byte{b}
		}, ErrTransport, 0},
		{"a scrambled packet", func() [][]byte {
			b := bytes.Clone(aac)
			packet(b, nth(b, pidAudio, 1, startsPES))[3] |= 0x80
			return [][]byte{b}
		}, ErrScrambled, 0},
		{"timestamps going backwards", func() [][]byte { return [][]byte{segs[1], segs[0]} }, ErrBackwards, 2},
		{"an audio PES that starts before the last frame of the one before", func() [][]byte {
			b := bytes.Clone(aac)
			first := packet(b, nth(b, pidAudio, 0, startsPES))
			second := packet(b, nth(b, pidAudio, 1, startsPES))
			setPTS(second[payloadAt(second)+9:], clock(first[payloadAt(first)+9:])+1)
			return [][]byte{b}
		}, ErrBackwards, 0},
		{"a PES without PTS", func() [][]byte {
			b := bytes.Clone(aac)
			p := packet(b, nth(b, pidVideo, 1, startsPES))
			p[payloadAt(p)+7] &= 0x3f
			return [][]byte{b}
		}, ErrNoPTS, 0},
		{"a PES that is not one", func() [][]byte {
			b := bytes.Clone(aac)
			p := packet(b, nth(b, pidVideo, 1, startsPES))
			p[payloadAt(p)+2] = 0x07
			return [][]byte{b}
		}, ErrPES, 0},
		{"a PES longer than it says", func() [][]byte {
			b := bytes.Clone(aac)
			p := packet(b, nth(b, pidAudio, 0, startsPES))
			p[payloadAt(p)+5] -= 10
			return [][]byte{b}
		}, ErrPES, 0},
		{"a broken ADTS frame", func() [][]byte {
			b := bytes.Clone(aac)
			p := packet(b, nth(b, pidAudio, 2, startsPES))
			at := payloadAt(p)
			p[at+9+int(p[at+8])] = 0x00 // the ADTS sync word
			return [][]byte{b}
		}, ErrStream, 0},
		{"a PMT whose CRC fails", func() [][]byte {
			b := bytes.Clone(aac)
			packet(b, nth(b, pidPMT, 0, startsPES))[20] ^= 0xff
			return [][]byte{b}
		}, ErrTables, 0},
		{"a program whose streams change", func() [][]byte { return [][]byte{aac, fixture(t, "hevc_ac3.ts")} }, ErrProgramChanged, 0},
		{"no PAT or PMT", func() [][]byte {
			return [][]byte{packetsOf(aac, func(_ int, p []byte) bool { return pidOf(p) == pidVideo })}
		}, ErrNoProgram, 0},
		{"a segment with tables alone", func() [][]byte {
			return [][]byte{segs[0], packetsOf(segs[1], func(_ int, p []byte) bool { return pidOf(p) != pidVideo && pidOf(p) != pidAudio })}
		}, ErrEmptySegment, 1},
		{"no stream the packager takes", func() [][]byte {
			mp2 := fixture(t, "h264_eac3_mp2.ts")
			return [][]byte{packetsOf(mp2, func(_ int, p []byte) bool { return pidOf(p) != pidVideo && pidOf(p) != pidAudio })}
		}, ErrNoStreams, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &collector{}
			d := New(c, Options{})
			var err error
			for _, s := range tc.segs() {
				if err = d.Segment(context.Background(), s); err != nil {
					break
				}
			}
			var pe *ingest.ProtocolError
			if !errors.As(err, &pe) || !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want a *ingest.ProtocolError wrapping %q", err, tc.want)
			}
			t.Log(err)
			if tc.next == 0 {
				if again := d.Segment(context.Background(), aac); again == nil {
					t.Error("the demuxer took a segment after an error in its first")
				}
				return
			}
			if err := d.Segment(context.Background(), segs[tc.next]); err != nil {
				t.Errorf("the segment after the last good one: %v", err)
			}
		})
	}
}

// A PES that never ends (no payload unit start after it) costs at most
// MaxPES, whatever the input, in either way in.
func TestAnEndlessPESIsRefusedAtMaxPES(t *testing.T) {
	aac := fixture(t, "h264_aac.ts")
	head := packetsOf(aac, func(i int, p []byte) bool { return i < nth(aac, pidVideo, 0, startsPES)+1 })
	filler := bytes.Clone(packet(aac, nth(aac, pidVideo, 0, notStart)))
	filler[3] = filler[3]&0xd0 | 0x10 // payload only, no adaptation field
	const maxPES = 1 << 20
	for _, mode := range []string{"stream", "segment"} {
		t.Run(mode, func(t *testing.T) {
			d := New(&collector{}, Options{MaxPES: maxPES})
			filler := bytes.Clone(filler)
			cc := packet(head, len(head)/PacketSize-1)[3] & 0x0f
			next := func() []byte {
				cc = (cc + 1) & 0x0f
				filler[3] = filler[3]&0xf0 | cc
				return filler
			}
			var err error
			if mode == "segment" {
				b := bytes.Clone(head)
				for len(b) < 2*maxPES {
					b = append(b, next()...)
				}
				err = d.Segment(context.Background(), b)
			} else {
				ctx := context.Background()
				err = d.Write(ctx, head)
				for n := 0; err == nil && n < 2*maxPES/PacketSize; n++ {
					err = d.Write(ctx, next())
				}
			}
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("got %v, want %v", err, ErrTooLarge)
			}
			if d.buffered > maxPES || d.stats.Bytes > int64(len(head)+(maxPES/184+1)*PacketSize) {
				t.Fatalf("held %d bytes, read %d before refusing", d.buffered, d.stats.Bytes)
			}
		})
	}
}

// SRT loses packets when they come too late; with Lossy the PES a lost
// packet broke is dropped, the rest goes on, and Warn says so.
func TestLossyDropsWhatALostPacketBrokeAndGoesOn(t *testing.T) {
	aac := fixture(t, "h264_aac.ts")
	lost := nth(aac, pidVideo, 2, notStart)
	stream := packetsOf(aac, func(i int, _ []byte) bool { return i != lost })
	stream = append(stream[:PacketSize*30:PacketSize*30], append([]byte("garbage"), stream[PacketSize*30:]...)...)
	var warned []error
	c, err := demuxStream(t, Options{Lossy: true, Warn: func(err error) { warned = append(warned, err) }}, stream, 1316)
	if err != nil {
		t.Fatal(err)
	}
	if len(warned) != 2 || !errors.Is(warned[0], ErrSync) && !errors.Is(warned[1], ErrSync) ||
		!errors.Is(warned[0], ErrContinuity) && !errors.Is(warned[1], ErrContinuity) {
		t.Fatalf("warned %v, want lost sync and a continuity error", warned)
	}
	// The garbage may land in the middle of another PES: the lost packet
	// costs one access unit, the garbage at most one more.
	if n := c.counts(); n[0] < 8 || n[0] > 9 || n[1] < 47 {
		t.Fatalf("counts %v, want one or two video samples fewer than [10 48]", n)
	}
}

// A stream the PMT lists but that sends nothing before the tracks are
// fixed is left out; the others play.
func TestAStreamSilentUntilTheTracksAreFixedIsLeftOut(t *testing.T) {
	mp2 := fixture(t, "h264_eac3_mp2.ts")
	noEAC3 := packetsOf(mp2, func(_ int, p []byte) bool { return pidOf(p) != pidAudio })
	for _, tc := range []struct {
		name string
		run  func() (*collector, error)
	}{
		{"segment", func() (*collector, error) { return demuxSegments(t, Options{}, noEAC3) }},
		{"stream, to its end", func() (*collector, error) { return demuxStream(t, Options{}, noEAC3, 1316) }},
		{"stream, probe bound", func() (*collector, error) {
			c := &collector{}
			d := New(c, Options{MaxProbe: 2000})
			err := d.Write(context.Background(), noEAC3)
			if err == nil && c.calls != 1 {
				t.Error("the tracks were not fixed before the end of the stream")
			}
			return c, err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.run()
			if err != nil {
				t.Fatal(err)
			}
			if len(c.tracks) != 1 || c.tracks[0].Codec != packager.H264 || len(c.samples[0]) == 0 {
				t.Fatalf("tracks %+v with %v samples, want H.264 alone", c.tracks, c.counts())
			}
		})
	}
}

// A stream whose data comes only after the tracks were fixed cannot join
// the packager: it is ignored, and the rest goes on.
func TestAStreamThatStartsLateIsIgnored(t *testing.T) {
	segs := hlsSegments(t)
	segs[0] = packetsOf(segs[0], func(_ int, p []byte) bool { return pidOf(p) != pidAudio })
	c, err := demuxSegments(t, Options{}, segs...)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.tracks) != 1 || c.tracks[0].Codec != packager.H264 || len(c.samples[0]) != 15 {
		t.Fatalf("tracks %+v with %v samples, want H.264 alone with its 15", c.tracks, c.counts())
	}
}

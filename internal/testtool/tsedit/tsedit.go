// Package tsedit gives tests MPEG transport streams to send: cuts of a
// recorded one, and the faults of a broken or hostile encoder (packets cut
// short, a PES that never ends, timestamps that go back, padding only).
// It reads and writes only what these need of ISO/IEC 13818-1: packet
// headers, adaptation field lengths, PES headers and their PTS and DTS.
package tsedit

import (
	"bytes"
	"errors"
	"fmt"
)

// PacketSize is an MPEG-TS packet's size.
const PacketSize = 188

// pesHeader is the offset of the PES header in a packet that starts one
// (payload unit start, 00 00 01 after the adaptation field); ok is false
// for any other packet.
func pesHeader(p []byte) (int, bool) {
	if len(p) < PacketSize || p[0] != 0x47 || p[1]&0x40 == 0 {
		return 0, false
	}
	off := 4
	if p[3]&0x20 != 0 {
		off += 1 + int(p[4])
	}
	if off+19 > len(p) || p[off] != 0 || p[off+1] != 0 || p[off+2] != 1 {
		return 0, false
	}
	return off, true
}

// PTS is the PTS of a packet that starts a PES carrying one.
func PTS(p []byte) (int64, bool) {
	off, ok := pesHeader(p)
	if !ok || p[off+7]&0x80 == 0 {
		return 0, false
	}
	return readTimestamp(p[off+9 : off+14]), true
}

// readTimestamp and writeTimestamp read and write a PES header's 33-bit
// timestamp (5 bytes with marker bits), keeping its 4-bit prefix.
func readTimestamp(b []byte) int64 {
	return int64(b[0]>>1&7)<<30 | int64(b[1])<<22 | int64(b[2]>>1)<<15 | int64(b[3])<<7 | int64(b[4]>>1)
}

func writeTimestamp(b []byte, v int64) {
	v &= 1<<33 - 1
	b[0] = b[0]&0xf0 | byte(v>>29)&0x0e | 1
	b[1] = byte(v >> 22)
	b[2] = byte(v>>14)&0xfe | 1
	b[3] = byte(v >> 7)
	b[4] = byte(v<<1) | 1
}

// since is, for each packet of ts that starts a PES with a PTS, its offset
// in ts and its PTS less the stream's first, in seconds.
func since(ts []byte, f func(off int, sec float64) bool) {
	first := int64(-1)
	for off := 0; off+PacketSize <= len(ts); off += PacketSize {
		pts, ok := PTS(ts[off : off+PacketSize])
		if !ok {
			continue
		}
		if first < 0 {
			first = pts
		}
		if !f(off, float64(pts-first)/90000) {
			return
		}
	}
}

// UpTo is ts before the first packet whose PES starts at or after media
// time sec (PTS, from the stream's first): a whole number of packets.
func UpTo(ts []byte, sec float64) ([]byte, error) {
	end := -1
	since(ts, func(off int, at float64) bool {
		if at >= sec {
			end = off
			return false
		}
		return true
	})
	if end < 0 {
		return nil, fmt.Errorf("tsedit: no PES at or after %v s", sec)
	}
	return ts[:end], nil
}

// ShiftTimestamps is ts with the PTS and DTS of every PES that starts at
// or after media time from (seconds after the stream's first PTS) moved
// by delta (90 kHz ticks).
func ShiftTimestamps(ts []byte, from float64, delta int64) ([]byte, error) {
	out := bytes.Clone(ts)
	shifted := 0
	since(out, func(off int, at float64) bool {
		if at < from {
			return true
		}
		h, _ := pesHeader(out[off : off+PacketSize])
		h += off
		writeTimestamp(out[h+9:h+14], readTimestamp(out[h+9:h+14])+delta)
		if out[h+7]&0x40 != 0 {
			writeTimestamp(out[h+14:h+19], readTimestamp(out[h+14:h+19])+delta)
		}
		shifted++
		return true
	})
	if shifted == 0 {
		return nil, fmt.Errorf("tsedit: no PES at or after %v s", from)
	}
	return out, nil
}

// TruncatePackets is ts with every nth packet cut to its first keep
// bytes.
func TruncatePackets(ts []byte, nth, keep int) []byte {
	var out []byte
	for i := 0; i+PacketSize <= len(ts); i += PacketSize {
		p := ts[i : i+PacketSize]
		if (i/PacketSize)%nth == nth-1 {
			p = p[:keep]
		}
		out = append(out, p...)
	}
	return out
}

// EndlessPES is ts's PAT and its first PMT (ffmpeg's, PID 0x1000), then
// a video PES (stream ID 0xE0) that never ends: its first packet, then
// continuation packets up to size bytes.
func EndlessPES(ts []byte, size int) ([]byte, error) {
	var out, video []byte
	for i := 0; i+PacketSize <= len(ts); i += PacketSize {
		p := ts[i : i+PacketSize]
		if pid := int(p[1]&0x1f)<<8 | int(p[2]); pid == 0 || pid == 0x1000 {
			out = append(out, p...)
		}
		if off, ok := pesHeader(p); ok && p[off+3] == 0xe0 && video == nil {
			video = p
		}
	}
	if video == nil {
		return nil, errors.New("tsedit: no video PES")
	}
	out = append(out, video...)
	cc := video[3] & 0x0f
	for n := 0; n < size; n += PacketSize - 4 {
		cc = (cc + 1) & 0x0f
		p := make([]byte, PacketSize)
		p[0], p[1], p[2], p[3] = 0x47, video[1]&0x1f, video[2], 0x10|cc
		out = append(out, p...)
	}
	return out, nil
}

// NullPackets is n null packets (PID 0x1FFF): padding, no media.
func NullPackets(n int) []byte {
	b := make([]byte, 0, n*PacketSize)
	for i := range n {
		p := make([]byte, PacketSize)
		p[0], p[1], p[2], p[3] = 0x47, 0x1f, 0xff, 0x10|byte(i&0x0f)
		b = append(b, p...)
	}
	return b
}

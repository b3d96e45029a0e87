package tsdemux

// Span tells where a segment starts and ends, in 90 kHz ticks, by reading
// only its PES headers: it is for ordering segments before they are
// demultiplexed. Start is the earliest timestamp (DTS, else PTS) of the
// first PES of each PID, as sent (33 bits); end is, on the PID with the
// most PES packets, the last one's timestamp plus the interval between
// its last two (one frame of video), unwrapped from start. ok is false
// when no PES in seg has a timestamp. Span never fails: what it cannot
// read it skips, and Segment says what is wrong.
func Span(seg []byte) (start, end int64, ok bool) {
	type pidSpan struct {
		n          int
		last, prev int64
	}
	var pids [8]struct {
		pid uint16
		pidSpan
	}
	used := 0
	for ; len(seg) >= PacketSize; seg = seg[PacketSize:] {
		p := seg[:PacketSize]
		if p[0] != syncByte || p[1]&0x40 == 0 || p[3]&0x10 == 0 {
			continue // not a packet that starts a payload
		}
		at := 4
		if p[3]&0x20 != 0 {
			at += 1 + int(p[4])
		}
		if at+19 > PacketSize {
			continue
		}
		h := p[at:]
		if h[0] != 0 || h[1] != 0 || h[2] != 1 || h[3] < 0xbd || h[6]&0xc0 != 0x80 {
			continue // PSI, or a PES without timestamps
		}
		var t int64
		switch h[7] >> 6 {
		case 2:
			t = clock(h[9:14])
		case 3:
			t = clock(h[14:19])
		default:
			continue
		}
		pid := uint16(p[1]&0x1f)<<8 | uint16(p[2])
		i := 0
		for i < used && pids[i].pid != pid {
			i++
		}
		if i == used {
			if used == len(pids) {
				continue
			}
			used++
			pids[i].pid = pid
			// Before the other PIDs' first timestamps (within half the
			// 33-bit range) is earlier.
			if !ok || (t-start)&(wrap-1) >= halfWrap {
				start = t
			}
			ok = true
		}
		s := &pids[i].pidSpan
		s.n++
		s.prev, s.last = s.last, t
	}
	if !ok {
		return 0, 0, false
	}
	best := pids[0].pidSpan
	for _, p := range pids[1:used] {
		if p.n > best.n {
			best = p.pidSpan
		}
	}
	forward := func(d int64) int64 { // a forward distance, 0 if it is not one
		if d &= wrap - 1; d >= halfWrap {
			return 0
		}
		return d
	}
	end = start + forward(best.last-start)
	if best.n > 1 {
		end += forward(best.last - best.prev)
	}
	return start, end, true
}

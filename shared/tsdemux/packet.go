package tsdemux

import (
	"context"
)

const (
	pidPAT  = 0x0000
	pidNull = 0x1fff
)

// packet demultiplexes one 188-byte packet p (p[0] is the sync byte).
func (d *Demuxer) packet(ctx context.Context, p []byte) error {
	err := d.route(ctx, p)
	d.stats.Packets++
	d.stats.Bytes += PacketSize
	return err
}

func (d *Demuxer) route(ctx context.Context, p []byte) error {
	pid := uint16(p[1]&0x1f)<<8 | uint16(p[2])
	if pid == pidNull {
		return nil
	}
	psi := pid == pidPAT || (d.pmtPID >= 0 && int(pid) == d.pmtPID)
	var st *stream
	if !psi {
		if st = d.streams[pid]; st == nil {
			return nil // a PID of no interest (SDT, PCR only, streams left out)
		}
	}
	tei := p[1]&0x80 != 0
	pusi := p[1]&0x40 != 0
	afc := (p[3] >> 4) & 3
	cc := p[3] & 0x0f
	if p[3]>>6 != 0 {
		return d.protocolErr(ErrScrambled, "PID %d", pid)
	}
	if tei {
		if !d.opts.Lossy {
			return d.protocolErr(ErrTransport, "PID %d", pid)
		}
		d.lose(st, d.protocolErr(ErrTransport, "PID %d", pid))
		return nil
	}
	var payload []byte
	discontinuity := false
	switch afc {
	case 1:
		payload = p[4:]
	case 2:
		if p[4] > 183 {
			return d.protocolErr(ErrPacket, "PID %d: adaptation field of %d bytes", pid, p[4])
		}
	case 3:
		n := int(p[4])
		if n > 182 {
			return d.protocolErr(ErrPacket, "PID %d: adaptation field of %d bytes", pid, n)
		}
		discontinuity = n > 0 && p[5]&0x80 != 0
		payload = p[5+n:]
	default:
		return d.protocolErr(ErrPacket, "PID %d: reserved adaptation_field_control", pid)
	}
	if afc == 2 {
		return nil // no payload: nothing to count or to read
	}
	switch prev := d.ccs[pid]; {
	case prev == noCC || discontinuity || cc == (prev+1)&0x0f:
	case cc == prev:
		return nil // a duplicate packet (H.222 allows one)
	default:
		err := d.protocolErr(ErrContinuity, "PID %d: %d after %d", pid, cc, prev)
		if !d.opts.Lossy {
			return err
		}
		d.ccs[pid] = cc
		d.lose(st, err)
		if psi {
			d.psi.reset()
			d.psiBytes = [2]int{}
		}
		return nil
	}
	d.ccs[pid] = cc
	if psi {
		return d.psiPacket(ctx, pid, pusi, p)
	}
	return d.esPacket(ctx, st, pusi, payload)
}

// lose drops st's PES in progress (Lossy), telling Warn why.
func (d *Demuxer) lose(st *stream, why error) {
	d.warn(why)
	if st != nil && st.inPES {
		d.drop(st)
		d.stats.Dropped++
	}
}

// drop forgets st's PES in progress.
func (d *Demuxer) drop(st *stream) {
	d.buffered -= len(st.pes)
	st.pes = nil
	st.inPES = false
	st.declared = 0
}

// psiPacket hands a PAT or PMT packet to go-astits and acts on the tables
// it completes.
func (d *Demuxer) psiPacket(ctx context.Context, pid uint16, pusi bool, p []byte) error {
	slot := 0
	if pid != pidPAT {
		slot = 1
	}
	if pusi {
		d.psiBytes[slot] = 0
	}
	d.psiBytes[slot] += PacketSize
	if d.psiBytes[slot] > maxPSI {
		return d.protocolErr(ErrTables, "PID %d: a table of more than %d bytes", pid, maxPSI)
	}
	tables, err := d.psi.packet(p)
	if err != nil {
		if !d.opts.Lossy {
			return d.protocolErr(ErrTables, "PID %d: %v", pid, err)
		}
		d.warn(d.protocolErr(ErrTables, "PID %d: %v", pid, err))
	}
	for _, t := range tables {
		switch {
		case t.PAT != nil:
			d.pat(t.PAT.Programs)
		case t.PMT != nil && d.pmtPID >= 0 && t.PID == uint16(d.pmtPID):
			if err := d.pmt(ctx, t.PMT); err != nil {
				return err
			}
		}
	}
	return nil
}

// esPacket adds a packet's payload to st's PES, ending the PES before it
// at a payload unit start and this one when it reaches its declared size.
func (d *Demuxer) esPacket(ctx context.Context, st *stream, pusi bool, payload []byte) error {
	if pusi {
		if st.inPES {
			if err := d.endPES(ctx, st); err != nil {
				return err
			}
		}
		st.inPES = true
		st.synced = true
		st.pes = d.buffer(max(st.lastSize+st.lastSize/4, 2*PacketSize))
	} else if !st.inPES {
		if st.synced && len(payload) > 0 && !d.opts.Lossy {
			return d.protocolErr(ErrPES, "PID %d: %d bytes after the end of a PES", st.pid, len(payload))
		}
		return nil // the stream was joined inside a PES, or one was lost (Lossy)
	}
	if len(st.pes)+len(payload) > d.opts.MaxPES {
		return d.protocolErr(ErrTooLarge, "PID %d: more than %d bytes", st.pid, d.opts.MaxPES)
	}
	if d.buffered+len(payload) > 2*d.opts.MaxPES {
		return d.protocolErr(ErrTooLarge, "PID %d: more than %d bytes in PES packets in progress", st.pid, 2*d.opts.MaxPES)
	}
	st.pes = append(st.pes, payload...)
	d.buffered += len(payload)
	if st.declared == 0 && len(st.pes) >= 6 {
		if n := int(st.pes[4])<<8 | int(st.pes[5]); n > 0 {
			st.declared = 6 + n
		} else {
			st.declared = -1
		}
	}
	if st.declared > 0 && len(st.pes) >= st.declared {
		return d.endPES(ctx, st)
	}
	return nil
}

// endPES takes st's PES in progress, which ends here, and makes its
// samples.
func (d *Demuxer) endPES(ctx context.Context, st *stream) error {
	buf, declared := st.pes, st.declared
	d.drop(st)
	st.lastSize = len(buf)
	switch {
	case declared > 0 && len(buf) < declared:
		if d.opts.Lossy {
			d.warn(d.protocolErr(ErrTruncated, "PID %d: %d of %d bytes", st.pid, len(buf), declared))
			d.stats.Dropped++
			return nil
		}
		return d.protocolErr(ErrTruncated, "PID %d: %d of %d bytes", st.pid, len(buf), declared)
	case declared > 0 && len(buf) > declared:
		return d.protocolErr(ErrPES, "PID %d: %d bytes after the PES's declared end", st.pid, len(buf)-declared)
	}
	h, err := parsePES(buf)
	if err != nil {
		return d.protocolErr(err, "PID %d", st.pid)
	}
	d.stats.PES++
	if st.index < 0 && d.fixed {
		return nil // a stream left out when the tracks were fixed
	}
	if d.opts.Reuse && d.fixed {
		d.used = append(d.used, buf)
	}
	return d.samples(ctx, st, h)
}

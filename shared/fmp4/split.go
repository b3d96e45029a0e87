package fmp4

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/Eyevinn/mp4ff/mp4"
)

// DecodeMoofTracks decodes a moof box from its bytes (header included)
// that carries one traf or more (muxed fMP4: a traf per track), at most
// maxTrafs, each with a tfhd and each of a track of its own. A traf may
// have no trun (a track with no samples in this fragment). Split cuts it
// per track.
func DecodeMoofTracks(b []byte, maxTrafs int) (*mp4.MoofBox, error) {
	moof, err := decodeMoofBox(b)
	if err != nil {
		return nil, err
	}
	switch n := len(moof.Trafs); {
	case n == 0:
		return nil, errors.New("moof carries no traf")
	case n > maxTrafs:
		return nil, fmt.Errorf("%w: %d, limit %d", ErrTooManyTrafs, n, maxTrafs)
	}
	for i, traf := range moof.Trafs {
		if traf.Tfhd == nil {
			return nil, fmt.Errorf("%w: traf %d of %d", ErrNoTfhd, i+1, len(moof.Trafs))
		}
		for _, prev := range moof.Trafs[:i] {
			if prev.Tfhd.TrackID == traf.Tfhd.TrackID {
				return nil, fmt.Errorf("%w: track %d", ErrTrackTwice, traf.Tfhd.TrackID)
			}
		}
	}
	return moof, nil
}

// Part is one track's share of a moof and its mdat: the moof with that
// track's traf alone (and the moof's other boxes, mfhd first), and the
// sample data its runs describe. Split cuts a moof into parts; Rewrite
// makes a part the stored fragment of its track.
type Part struct {
	Moof    *mp4.MoofBox
	TrackID uint32
	// Data holds the part's samples. The only traf of a moof keeps the
	// whole mdat payload as it came. A traf of several keeps the bytes of
	// the mdat from its first run to its last, as they came, when no other
	// traf's samples lie among them (as encoders write a muxed mdat: track
	// after track); otherwise its runs are copied together, in trun
	// order.
	Data []byte
	pos  []int64 // where each trun's samples start in Data
}

// Samples counts the part's samples.
func (p *Part) Samples() int {
	n := 0
	for _, trun := range p.Moof.Traf.Truns {
		n += int(trun.SampleCount())
	}
	return n
}

// run is where one trun's samples lie in the mdat payload.
type run struct {
	traf, trun int
	at, size   int64
}

// Split cuts a moof (from DecodeMoofTracks or DecodeMoof) and its mdat
// (in's Moof, MoofPos, MdatHeader and Mdat; the rest of in is not read)
// into one Part per traf, in the moof's order. trex gives a track's
// defaults from the moov (nil: none): sample sizes may come from them.
//
// Each traf's runs are placed as ISO/IEC 14496-12 (8.8.7, 8.8.8) says: a
// tfhd base-data-offset is a position in the stream (MoofPos is the
// moof's); without it, default-base-is-moof, or the first traf of the
// moof, counts from the moof's first byte, and any other traf from the
// end of the previous traf's data; a trun's data_offset is from that
// base, and a trun without one follows the previous trun (the first, when
// its base is the moof, starts at the mdat's payload). A run that lies
// outside the mdat's payload is refused (ErrBadDataOffset), and so are two
// that overlap (ErrOverlappingData).
func Split(moof *mp4.MoofBox, in Input, trex func(trackID uint32) *mp4.TrexBox) ([]Part, error) {
	payloadAt := int64(len(in.Moof)) + int64(in.MdatHeader) // from the moof's first byte
	mdatLen := int64(len(in.Mdat))
	parts := make([]Part, len(moof.Trafs))
	var runs []run
	end := payloadAt // where the previous traf's data ended
	for k, traf := range moof.Trafs {
		tfhd := traf.Tfhd
		id := tfhd.TrackID
		var x *mp4.TrexBox
		if trex != nil {
			x = trex(id)
		}
		var base, next int64
		switch {
		case tfhd.HasBaseDataOffset():
			if tfhd.BaseDataOffset > math.MaxInt64/2 || in.MoofPos > math.MaxInt64/2 {
				return nil, fmt.Errorf("%w: track %d: base-data-offset %d", ErrBadDataOffset, id, tfhd.BaseDataOffset)
			}
			base = int64(tfhd.BaseDataOffset) - int64(in.MoofPos)
			next = base
		case tfhd.DefaultBaseIfMoof() || k == 0:
			base, next = 0, payloadAt
		default:
			base, next = end, end
		}
		pos := make([]int64, len(traf.Truns))
		for i, trun := range traf.Truns {
			trun.AddSampleDefaultValues(tfhd, x)
			start := next
			if trun.HasDataOffset() {
				start = base + int64(trun.DataOffset)
			}
			size := int64(trun.SizeOfData())
			next = start + size
			if size == 0 {
				continue // no data: wherever it points, it takes nothing
			}
			pos[i] = start - payloadAt
			if pos[i] < 0 || size > mdatLen || pos[i] > mdatLen-size {
				return nil, fmt.Errorf("%w: track %d trun %d at %d+%d, mdat payload %d bytes", ErrBadDataOffset, id, i, pos[i], size, mdatLen)
			}
			runs = append(runs, run{traf: k, trun: i, at: pos[i], size: size})
		}
		end = next
		parts[k] = Part{Moof: moof, TrackID: id, Data: in.Mdat, pos: pos}
	}
	slices.SortFunc(runs, func(a, b run) int { return cmp.Compare(a.at, b.at) })
	for i := 1; i < len(runs); i++ {
		if a, b := runs[i-1], runs[i]; b.at < a.at+a.size {
			return nil, fmt.Errorf("%w: track %d trun %d (%d+%d) and track %d trun %d (%d+%d)", ErrOverlappingData,
				parts[a.traf].TrackID, a.trun, a.at, a.size, parts[b.traf].TrackID, b.trun, b.at, b.size)
		}
	}
	if len(parts) == 1 {
		return parts, nil
	}
	for k := range parts {
		parts[k].own(moof, k, runs)
	}
	return parts, nil
}

// own makes p, the part of moof's traf k, a moof of its own and gives it
// its own data out of the mdat (runs: every run of the moof, by offset).
func (p *Part) own(moof *mp4.MoofBox, k int, runs []run) {
	traf := moof.Trafs[k]
	one := &mp4.MoofBox{}
	for _, c := range moof.Children {
		if t, ok := c.(*mp4.TrafBox); ok && t != traf {
			continue
		}
		_ = one.AddChild(c) // never fails
	}
	p.Moof = one
	lo, hi, mine := int64(math.MaxInt64), int64(0), 0
	for _, r := range runs {
		if r.traf == k {
			lo, hi, mine = min(lo, r.at), max(hi, r.at+r.size), mine+1
		}
	}
	if mine == 0 {
		p.Data = p.Data[:0]
		clear(p.pos)
		return
	}
	for _, r := range runs {
		if r.traf != k && r.at < hi && r.at+r.size > lo {
			p.gather(traf)
			return
		}
	}
	// Back to back, or with bytes no run claims between them: one slice.
	p.Data = p.Data[lo:hi:hi]
	for i, trun := range traf.Truns {
		if trun.SizeOfData() > 0 {
			p.pos[i] -= lo
		}
	}
}

// gather copies the part's runs together, in trun order, when another
// traf's samples lie among them (an interleaved mdat).
func (p *Part) gather(traf *mp4.TrafBox) {
	var size int64
	for _, trun := range traf.Truns {
		size += int64(trun.SizeOfData())
	}
	data := make([]byte, 0, size)
	for i, trun := range traf.Truns {
		at := p.pos[i]
		p.pos[i] = int64(len(data))
		data = append(data, p.Data[at:at+int64(trun.SizeOfData())]...)
	}
	p.Data = data
}

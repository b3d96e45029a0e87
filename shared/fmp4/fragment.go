package fmp4

import (
	"errors"
	"fmt"
	"slices"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/mp4box"
)

// Errors a fragment can be refused with.
var (
	// ErrMultiTrack: a moof of several trafs where one track's is wanted
	// (RewriteHead, Inspect); DecodeMoofTracks and Split take those.
	ErrMultiTrack    = errors.New("moof must carry exactly one traf")
	ErrNoTiming      = errors.New("fragment has neither tfxd nor tfdt")
	ErrNegativeStart = errors.New("fragment starts before time zero")
	ErrBadDataOffset = errors.New("trun data lies outside the mdat")
	// ErrOverlappingData: two runs of samples (of one track or two) claim
	// the same bytes of the mdat.
	ErrOverlappingData = errors.New("sample data of two runs overlap in the mdat")
	// ErrTooManyTrafs: a moof carries more trafs than a stream may have
	// tracks.
	ErrTooManyTrafs = errors.New("moof carries too many trafs")
	// ErrTrackTwice: a moof carries two trafs of one track.
	ErrTrackTwice = errors.New("moof carries two trafs of one track")
	// ErrNoTfhd: a traf without its tfhd says nothing of its track.
	ErrNoTfhd = errors.New("traf without tfhd")
)

// FragmentInfo is what a fragment says about itself.
type FragmentInfo struct {
	TrackID  uint32
	Start    uint64 // in the track's timescale, after any trimming
	Duration uint64 // sum of the sample durations
	Samples  int
	// Trimmed counts leading samples dropped because they started before
	// time zero (AAC priming that an encoder timestamps negatively).
	Trimmed int
}

// Input is one moof+mdat pair as it arrived.
type Input struct {
	Moof []byte // the whole moof box, header included
	// MoofPos is the moof's offset in the stream, needed only when tfhd
	// carries an absolute base-data-offset.
	MoofPos uint64
	// MdatHeader is the size of the mdat box header (8, or 16 with a 64-bit size).
	MdatHeader int
	Mdat       []byte // the mdat payload
	// Trex holds the track's defaults from the moov (may be nil).
	Trex *mp4.TrexBox
	// FallbackStart is used when the fragment has neither tfxd nor tfdt:
	// the running sum of the track's sample durations.
	FallbackStart uint64
	// Offset (in the track's timescale) is added to the fragment's start,
	// after any trimming: the relay rebases an encoder whose clock jumped.
	Offset int64
}

// DecodeMoof decodes a moof box from its bytes (header included).
func DecodeMoof(b []byte) (*mp4.MoofBox, error) {
	moof, err := decodeMoofBox(b)
	if err != nil {
		return nil, err
	}
	if len(moof.Trafs) != 1 || moof.Traf.Tfhd == nil || len(moof.Traf.Truns) == 0 {
		return nil, ErrMultiTrack
	}
	return moof, nil
}

// decodeMoofBox decodes b, which must be a moof box.
func decodeMoofBox(b []byte) (*mp4.MoofBox, error) {
	box, err := mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(b))
	if err != nil {
		return nil, fmt.Errorf("decode moof: %w", err)
	}
	moof, ok := box.(*mp4.MoofBox)
	if !ok {
		return nil, fmt.Errorf("decode moof: got %s box", box.Type())
	}
	return moof, nil
}

func tfxdOf(traf *mp4.TrafBox) *mp4.UUIDBox {
	for _, c := range traf.Children {
		if u, ok := c.(*mp4.UUIDBox); ok && u.Tfxd != nil {
			return u
		}
	}
	return nil
}

// Timing reads the start time and duration of a decoded moof: the start
// from tfxd, else tfdt; ok is false when it has neither. The start is signed:
// encoders put negative times (as two's complement) in tfxd.
func Timing(moof *mp4.MoofBox, trex *mp4.TrexBox) (start int64, dur uint64, ok bool) {
	traf := moof.Traf
	for _, trun := range traf.Truns {
		dur += trun.AddSampleDefaultValues(traf.Tfhd, trex)
	}
	if x := tfxdOf(traf); x != nil {
		return int64(x.Tfxd.FragmentAbsoluteTime), dur, true
	}
	if traf.Tfdt != nil {
		return int64(traf.Tfdt.BaseMediaDecodeTime()), dur, true
	}
	return 0, dur, false
}

// Rewrite turns one moof+mdat into the stored fragment, written over dst:
// tfhd loses any absolute base-data-offset and gets default-base-is-moof,
// a tfdt (version 1) and a tfxd carry the same start time, a tfrf announces
// the next fragment (starting at this one's end), trun data offsets are
// recomputed for the new moof size. Leading samples that start
// before time zero are dropped if they are all sync samples (audio);
// otherwise a fragment starting before zero is refused.
func Rewrite(dst []byte, in Input) ([]byte, FragmentInfo, error) {
	head, payload, info, err := RewriteHead(dst, in)
	if err != nil {
		return head, info, err
	}
	return append(head, payload...), info, nil
}

// RewriteHead is Rewrite without copying the media: it writes the new moof
// and the mdat header over dst and returns them as head, and the mdat
// payload as a slice of in.Mdat. The stored fragment is head followed by
// payload; the relay sends the two parts as they are, so that it holds
// each fragment's media once. A moof of several trafs is refused
// (ErrMultiTrack): DecodeMoofTracks, Split and Part.Rewrite take those.
func RewriteHead(dst []byte, in Input) (head, payload []byte, info FragmentInfo, err error) {
	moof, err := DecodeMoof(in.Moof)
	if err != nil {
		return dst, nil, info, err
	}
	parts, err := Split(moof, in, func(uint32) *mp4.TrexBox { return in.Trex })
	if err != nil {
		info.TrackID = moof.Traf.Tfhd.TrackID
		return dst, nil, info, err
	}
	return parts[0].Rewrite(dst, TrackInput{Trex: in.Trex, FallbackStart: in.FallbackStart, Offset: in.Offset})
}

// TrackInput is what the rewrite of a part needs of its track.
type TrackInput struct {
	// Trex holds the track's defaults from the moov (may be nil).
	Trex *mp4.TrexBox
	// FallbackStart is used when the fragment has neither tfxd nor tfdt:
	// the running sum of the track's sample durations.
	FallbackStart uint64
	// Offset (in the track's timescale) is added to the fragment's start,
	// after any trimming: the relay rebases an encoder whose clock jumped.
	Offset int64
}

// Rewrite is RewriteHead for one part of a moof (Split): it writes the
// part's new moof and mdat header over dst and returns them as head, and
// its samples (p.Data, or the part of it left after trimming) as payload.
// It changes p's traf: rewrite a part once.
func (p *Part) Rewrite(dst []byte, in TrackInput) (head, payload []byte, info FragmentInfo, err error) {
	moof := p.Moof
	traf := moof.Traf
	tfhd := traf.Tfhd
	info.TrackID = tfhd.TrackID
	start, dur, ok := Timing(moof, in.Trex)
	if !ok {
		start = int64(in.FallbackStart)
	}
	pos := p.pos
	payload = p.Data
	if start < 0 {
		trun := traf.Truns[0]
		if len(traf.Truns) != 1 {
			return dst, nil, info, fmt.Errorf("%w: track %d at %d (several truns)", ErrNegativeStart, info.TrackID, start)
		}
		// Only a fragment of sync samples alone (audio) can lose its
		// leading ones: dropping a video key frame would leave frames
		// that decode against nothing.
		for _, s := range trun.Samples {
			if !s.IsSync() && !mp4.IsSyncSampleFlags(s.Flags) {
				return dst, nil, info, fmt.Errorf("%w: track %d at %d (a fragment with non-sync samples)", ErrNegativeStart, info.TrackID, start)
			}
		}
		k, skip := 0, int64(0)
		for k < len(trun.Samples) && start < 0 {
			s := trun.Samples[k]
			start += int64(s.Dur)
			dur -= uint64(s.Dur)
			skip += int64(s.Size)
			k++
		}
		if k == len(trun.Samples) {
			return dst, nil, info, fmt.Errorf("%w: track %d: every sample is before zero", ErrNegativeStart, info.TrackID)
		}
		trun.Samples = trun.Samples[k:]
		if trun.HasFirstSampleFlags() {
			trun.RemoveFirstSampleFlags()
		}
		payload = payload[pos[0]+skip : pos[0]+int64(trun.SizeOfData())+skip]
		pos[0] = 0
		info.Trimmed = k
	}
	if start+in.Offset < 0 {
		return dst, nil, info, fmt.Errorf("%w: track %d at %d%+d", ErrNegativeStart, info.TrackID, start, in.Offset)
	}
	info.Start, info.Duration = uint64(start+in.Offset), dur
	for _, trun := range traf.Truns {
		info.Samples += int(trun.SampleCount())
	}

	tfhd.Flags = tfhd.Flags&^mp4.TfhdBaseDataOffsetPresentFlag | mp4.TfhdDefaultBaseIsMoofFlag
	tfhd.BaseDataOffset = 0
	selfContained(tfhd, in.Trex)
	if traf.Tfdt == nil {
		tfdt := mp4.CreateTfdt(info.Start)
		idx := slices.IndexFunc(traf.Children, func(b mp4.Box) bool { return b == mp4.Box(tfhd) })
		traf.Children = slices.Insert(traf.Children, idx+1, mp4.Box(tfdt))
		traf.Tfdt = tfdt
	}
	traf.Tfdt.SetBaseMediaDecodeTime(info.Start)
	traf.Tfdt.Version = 1 // 64-bit, as CMAF recommends
	if x := tfxdOf(traf); x != nil {
		x.Tfxd.Version = 1
		x.Tfxd.FragmentAbsoluteTime, x.Tfxd.FragmentAbsoluteDuration = info.Start, info.Duration
	} else {
		x := mp4.NewTfxdBox(info.Start, info.Duration)
		x.Tfxd.Version = 1 // 64-bit: 32 bits of 10 MHz ticks last only 7 minutes
		traf.Children = append(traf.Children, x)
	}
	// A tfrf announcing the next fragment: live Smooth clients that never
	// refresh the manifest (dash.js) extend their timeline from it. The next
	// fragment starts where this one ends; its duration is a guess (this
	// one's) that such clients correct when the fragment after it arrives.
	traf.Children = slices.DeleteFunc(traf.Children, func(b mp4.Box) bool {
		u, ok := b.(*mp4.UUIDBox)
		return ok && u.Tfrf != nil
	})
	announce := mp4.NewTfrfBox(1, []uint64{info.Start + info.Duration}, []uint64{info.Duration})
	announce.Tfrf.Version = 1
	traf.Children = append(traf.Children, announce)
	for _, trun := range traf.Truns {
		trun.Flags |= mp4.TrunDataOffsetPresentFlag
	}
	newMoofSize := moof.Size()
	for i, trun := range traf.Truns {
		trun.DataOffset = int32(int64(newMoofSize) + 8 + pos[i])
	}
	total := int(newMoofSize) + 8
	dst = slices.Grow(dst[:0], total)[:total]
	sw := bits.NewFixedSliceWriterFromSlice(dst[:newMoofSize])
	if err := moof.EncodeSW(sw); err != nil {
		return dst[:0], nil, info, fmt.Errorf("encode moof of track %d: %w", info.TrackID, err)
	}
	n := int(newMoofSize)
	mdatSize := uint32(8 + len(payload))
	dst[n], dst[n+1], dst[n+2], dst[n+3] = byte(mdatSize>>24), byte(mdatSize>>16), byte(mdatSize>>8), byte(mdatSize)
	copy(dst[n+4:], "mdat")
	return dst, payload, info, nil
}

// selfContained copies the track's trex defaults into tfhd where tfhd has
// none: Smooth clients never see the moov, so a stored fragment must not
// depend on it for its sample durations, sizes or flags.
func selfContained(tfhd *mp4.TfhdBox, trex *mp4.TrexBox) {
	if trex == nil {
		return
	}
	if !tfhd.HasDefaultSampleDuration() && trex.DefaultSampleDuration != 0 {
		tfhd.Flags |= mp4.TfhdDefaultSampleDurationPresentFlag
		tfhd.DefaultSampleDuration = trex.DefaultSampleDuration
	}
	if !tfhd.HasDefaultSampleSize() && trex.DefaultSampleSize != 0 {
		tfhd.Flags |= mp4.TfhdDefaultSampleSizePresentFlag
		tfhd.DefaultSampleSize = trex.DefaultSampleSize
	}
	if !tfhd.HasDefaultSampleFlags() && trex.DefaultSampleFlags != 0 {
		tfhd.Flags |= mp4.TfhdDefaultSampleFlagsPresentFlag
		tfhd.DefaultSampleFlags = trex.DefaultSampleFlags
	}
}

// ErrNotStored is returned by Inspect for bytes that are not a fragment as
// Rewrite stores it.
var ErrNotStored = errors.New("not a stored fragment")

// Inspect checks that b is a fragment as Rewrite stores it (any emsg
// boxes the relay keeps, at most MaxFragmentEvents, then one moof with
// a tfdt, and a tfxd that agrees with it when present, followed by one
// mdat that holds every sample the truns describe) and describes it.
// Readers use it on what they fetch back from the store or the CDN.
func Inspect(b []byte) (FragmentInfo, error) {
	var info FragmentInfo
	var boxes []mp4box.Box
	events := 0
	for box, err := range mp4box.All(b) {
		if err != nil {
			return info, fmt.Errorf("%w: %w", ErrNotStored, err)
		}
		if len(boxes) == 0 && box.Type == "emsg" {
			// In-band events (ad markers) come before the moof.
			if events++; events > MaxFragmentEvents {
				return info, fmt.Errorf("%w: more than %d emsg boxes", ErrNotStored, MaxFragmentEvents)
			}
			if _, err := DecodeEmsg(box.Data); err != nil {
				return info, fmt.Errorf("%w: %w", ErrNotStored, err)
			}
			b = b[box.Size():]
			continue
		}
		boxes = append(boxes, box)
		if len(boxes) > 2 {
			break
		}
	}
	if len(boxes) == 0 || boxes[0].Type != "moof" {
		return info, fmt.Errorf("%w: does not start with a moof", ErrNotStored)
	}
	if len(boxes) != 2 || boxes[1].Type != "mdat" {
		return info, fmt.Errorf("%w: the moof is not followed by one mdat that ends the fragment", ErrNotStored)
	}
	moofSize := uint64(boxes[0].Size())
	moof, err := DecodeMoof(boxes[0].Data)
	if err != nil {
		return info, fmt.Errorf("%w: %w", ErrNotStored, err)
	}
	traf := moof.Traf
	if traf.Tfdt == nil || !traf.Tfhd.DefaultBaseIfMoof() || traf.Tfhd.HasBaseDataOffset() {
		return info, fmt.Errorf("%w: track %d: no tfdt, or data not addressed from the moof", ErrNotStored, traf.Tfhd.TrackID)
	}
	info.TrackID = traf.Tfhd.TrackID
	info.Start = traf.Tfdt.BaseMediaDecodeTime()
	if x := tfxdOf(traf); x != nil && x.Tfxd.FragmentAbsoluteTime != info.Start {
		return info, fmt.Errorf("%w: track %d: tfxd time %d, tfdt %d", ErrNotStored, info.TrackID, x.Tfxd.FragmentAbsoluteTime, info.Start)
	}
	for i, trun := range traf.Truns {
		info.Duration += trun.AddSampleDefaultValues(traf.Tfhd, nil)
		info.Samples += int(trun.SampleCount())
		start := int64(trun.DataOffset)
		if !trun.HasDataOffset() || start < int64(moofSize)+8 || start+int64(trun.SizeOfData()) > int64(len(b)) {
			return info, fmt.Errorf("%w: track %d trun %d: data at %d+%d outside the mdat", ErrNotStored, info.TrackID, i, start, trun.SizeOfData())
		}
	}
	return info, nil
}

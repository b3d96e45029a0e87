package cenc

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// InitProtection reads the protection of an init segment's track: its
// scheme and default KID (tenc). ok is false for a clear track; an init
// segment that does not decode, or protected otherwise than by cbcs or
// cenc with a tenc, is an error.
func InitProtection(init []byte) (scheme Scheme, defaultKID KID, ok bool, err error) {
	seg, err := decodeInit(init)
	if err != nil {
		return "", KID{}, false, err
	}
	sinf, err := sinfOf(seg.Moov.Trak)
	if err != nil || sinf == nil {
		return "", KID{}, false, err
	}
	return sinfProtection(seg.Moov.Trak.Tkhd.TrackID, sinf)
}

// sinfOf is the sinf of trak's sample entry: nil for a clear one (neither
// encv nor enca).
func sinfOf(trak *mp4.TrakBox) (*mp4.SinfBox, error) {
	var sinf *mp4.SinfBox
	switch e := trak.Mdia.Minf.Stbl.Stsd.Children[0].(type) {
	case *mp4.VisualSampleEntryBox:
		if e.Type() != "encv" {
			return nil, nil
		}
		sinf = e.Sinf
	case *mp4.AudioSampleEntryBox:
		if e.Type() != "enca" {
			return nil, nil
		}
		sinf = e.Sinf
	default:
		return nil, nil
	}
	if sinf == nil {
		return nil, fmt.Errorf("cenc: track %d: encrypted sample entry without sinf", trak.Tkhd.TrackID)
	}
	return sinf, nil
}

// sinfProtection reads a sinf's scheme and default KID.
func sinfProtection(trackID uint32, sinf *mp4.SinfBox) (Scheme, KID, bool, error) {
	if sinf.Frma == nil || sinf.Schm == nil || sinf.Schi == nil || sinf.Schi.Tenc == nil {
		return "", KID{}, false, fmt.Errorf("cenc: track %d: sinf without frma, schm or tenc", trackID)
	}
	scheme, err := ParseScheme(sinf.Schm.SchemeType)
	if err != nil {
		return "", KID{}, false, fmt.Errorf("cenc: track %d: schm: %w", trackID, err)
	}
	var kid KID
	if len(sinf.Schi.Tenc.DefaultKID) != len(kid) {
		return "", KID{}, false, fmt.Errorf("cenc: track %d: tenc's default KID of %d bytes", trackID, len(sinf.Schi.Tenc.DefaultKID))
	}
	copy(kid[:], sinf.Schi.Tenc.DefaultKID)
	return scheme, kid, true, nil
}

// Decrypt returns the clear form of fragment, a stored fragment (any emsg
// boxes, the moof, the mdat) of the track whose protected init segment is
// protectedInit, with keys by KID: the init's default KID, or the KID of
// the fragment's seig sample group (a rotated key). The emsg boxes are
// kept; senc, saiz, saio, the seig sgpd and sbgp and the moof's pssh
// boxes go, and the trun's data offset follows. For tests and tools.
func Decrypt(protectedInit, fragment []byte, keys map[KID]Key) ([]byte, error) {
	seg, err := decodeInit(protectedInit)
	if err != nil {
		return nil, err
	}
	trackID := seg.Moov.Trak.Tkhd.TrackID
	var di mp4.DecryptInfo
	err = guard(func() (err error) {
		di, err = mp4.DecryptInit(seg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cenc: track %d: init segment: %w", trackID, err)
	}
	var ti *mp4.DecryptTrackInfo
	for i := range di.TrackInfos {
		if di.TrackInfos[i].TrackID == trackID && di.TrackInfos[i].Sinf != nil {
			ti = &di.TrackInfos[i]
		}
	}
	if ti == nil {
		return nil, fmt.Errorf("cenc: track %d: init segment is clear", trackID)
	}
	if _, _, _, err := sinfProtection(trackID, ti.Sinf); err != nil {
		return nil, err
	}
	emsgEnd, moofEnd, mdatHdr, err := splitFragment(fragment)
	if err != nil {
		return nil, fmt.Errorf("cenc: fragment of track %d: %w", trackID, err)
	}
	payload := append([]byte(nil), fragment[moofEnd+mdatHdr:]...)
	var moof []byte
	err = guard(func() (err error) {
		moof, err = decryptMoof(fragment[emsgEnd:moofEnd], mdatHdr, payload, di, *ti, keys)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cenc: fragment of track %d: %w", trackID, err)
	}
	out := make([]byte, 0, len(fragment))
	out = append(out, fragment[:emsgEnd]...)
	out = append(out, moof...)
	out = append(out, fragment[moofEnd:moofEnd+mdatHdr]...)
	return append(out, payload...), nil
}

// splitFragment finds, in a whole stored fragment, where its emsg boxes
// end, where its moof ends, and its mdat header's size; the mdat ends the
// fragment.
func splitFragment(b []byte) (emsgEnd, moofEnd, mdatHdr int, err error) {
	emsgEnd, moofEnd, mdatHdr, size, err := splitBoxes(b)
	if err != nil {
		return 0, 0, 0, err
	}
	if size != uint64(len(b)-moofEnd) {
		return 0, 0, 0, fmt.Errorf("mdat of %d bytes where %d are left", size, len(b)-moofEnd)
	}
	return emsgEnd, moofEnd, mdatHdr, nil
}

// decryptMoof decrypts payload, the samples of moofBytes (followed by an
// mdat header of mdatHdr bytes), in place and returns the clear moof.
func decryptMoof(moofBytes []byte, mdatHdr int, payload []byte, di mp4.DecryptInfo, ti mp4.DecryptTrackInfo, keys map[KID]Key) ([]byte, error) {
	moof, err := decodeMoof(moofBytes)
	if err != nil {
		return nil, err
	}
	traf := moof.Traf
	if traf.Tfhd.TrackID != ti.TrackID {
		return nil, fmt.Errorf("traf of track %d", traf.Tfhd.TrackID)
	}
	if traf.Tfhd.HasBaseDataOffset() || !traf.Trun.HasDataOffset() {
		return nil, errors.New("trun's data offset is not relative to the moof")
	}
	if err := checkSamples(traf.Trun, ti.Trex, traf.Tfhd, int64(traf.Trun.DataOffset)-int64(len(moofBytes)+mdatHdr), len(payload)); err != nil {
		return nil, err
	}
	// A rotated key: the fragment's seig sample group says which, in
	// place of the init's tenc.
	if seig, err := seigOf(traf); err != nil {
		return nil, err
	} else if seig != nil {
		sinf, schi, tenc := *ti.Sinf, *ti.Sinf.Schi, *ti.Sinf.Schi.Tenc
		tenc.DefaultKID = seig.KID
		tenc.DefaultIsProtected = seig.IsProtected
		tenc.DefaultPerSampleIVSize = seig.PerSampleIVSize
		tenc.DefaultConstantIV = seig.ConstantIV
		tenc.DefaultCryptByteBlock, tenc.DefaultSkipByteBlock = seig.CryptByteBlock, seig.SkipByteBlock
		schi.Tenc, sinf.Schi = &tenc, &schi
		ti.Sinf = &sinf
		di = mp4.DecryptInfo{TrackInfos: []mp4.DecryptTrackInfo{ti}}
	}
	kid := ti.Sinf.Schi.Tenc.DefaultKID
	var want KID
	copy(want[:], kid)
	key, ok := keys[want]
	if !ok {
		return nil, fmt.Errorf("no key for KID %s", want)
	}
	frag := mp4.NewFragment()
	frag.AddChild(moof)
	frag.AddChild(&mp4.MdatBox{StartPos: uint64(len(moofBytes)), LargeSize: mdatHdr == 16, Data: payload})
	byKID := map[string][]byte{hex.EncodeToString(want[:]): key.Value[:]}
	if err := mp4.DecryptFragmentWithKeys(frag, di, nil, byKID, true); err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	sw := bits.NewFixedSliceWriter(int(moof.Size()))
	if err := moof.EncodeSW(sw); err != nil {
		return nil, fmt.Errorf("encode moof: %w", err)
	}
	return sw.Bytes(), nil
}

// seigOf is the seig entry a traf's samples are mapped to (nil: none,
// the init's tenc applies). Only what Fragment writes is taken: one
// sbgp entry, every sample in the traf's first own sgpd entry.
func seigOf(traf *mp4.TrafBox) (*mp4.SeigSampleGroupEntry, error) {
	var sgpd *mp4.SgpdBox
	var sbgp *mp4.SbgpBox
	for _, c := range traf.Children {
		switch b := c.(type) {
		case *mp4.SgpdBox:
			if b.GroupingType == "seig" {
				sgpd = b
			}
		case *mp4.SbgpBox:
			if b.GroupingType == "seig" {
				sbgp = b
			}
		}
	}
	if sgpd == nil && sbgp == nil {
		return nil, nil
	}
	if sgpd == nil || sbgp == nil || len(sgpd.SampleGroupEntries) != 1 || len(sbgp.SampleCounts) != 1 ||
		len(sbgp.GroupDescriptionIndices) != 1 || sbgp.GroupDescriptionIndices[0] != 0x10001 ||
		sbgp.SampleCounts[0] != traf.Trun.SampleCount() {
		return nil, errors.New("seig sample group other than one entry for every sample")
	}
	seig, ok := sgpd.SampleGroupEntries[0].(*mp4.SeigSampleGroupEntry)
	if !ok || len(seig.KID) != 16 {
		return nil, errors.New("sgpd of seig without a seig entry")
	}
	return seig, nil
}

// Package fmp4test makes encrypted tracks for tests: a stored track's init
// segment and fragments protected with Common Encryption by mp4ff's
// encryption support, as the relay stores them (emsg boxes before the
// moof kept, pssh boxes in the moov, senc/saiz/saio in each traf, and an
// in-band key change as a seig sample group with the period's pssh boxes
// in the moof). It is the manifests' tests' stand-in for shared/cenc's
// encryptor: what they read is the boxes' layout, not its bytes.
package fmp4test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/fmp4"
)

// Protector encrypts one track's stored fragments, in decode order.
type Protector struct {
	ipd    *mp4.InitProtectData
	scheme cenc.Scheme
	kid    cenc.KID // the init's default KID
	iv     []byte
}

// Protect returns the protected init segment of a clear one (one track)
// for scheme, default key kid and the given pssh boxes (whole boxes,
// put in the moov), and the Protector of its fragments.
func Protect(clearInit []byte, scheme cenc.Scheme, kid cenc.KID, pssh ...[]byte) ([]byte, *Protector, error) {
	f, err := mp4.DecodeFile(bytes.NewReader(clearInit))
	if err != nil || f.Init == nil {
		return nil, nil, fmt.Errorf("decode init segment: %w", errors.Join(err, errors.New("no init")))
	}
	var boxes []*mp4.PsshBox
	for _, b := range pssh {
		box, err := mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(b))
		if err != nil {
			return nil, nil, fmt.Errorf("decode pssh: %w", err)
		}
		p, ok := box.(*mp4.PsshBox)
		if !ok {
			return nil, nil, fmt.Errorf("a %s box where a pssh was given", box.Type())
		}
		boxes = append(boxes, p)
	}
	p := &Protector{scheme: scheme, kid: kid, iv: bytes.Repeat([]byte{0x5a}, 16)}
	if scheme == cenc.CENC {
		p.iv = p.iv[:8]
	}
	p.ipd, err = mp4.InitProtect(f.Init, make([]byte, 16), p.iv, string(scheme), mp4.UUID(kid[:]), boxes)
	if err != nil {
		return nil, nil, fmt.Errorf("protect init: %w", err)
	}
	var out bytes.Buffer
	if err := f.Init.Encode(&out); err != nil {
		return nil, nil, err
	}
	return out.Bytes(), p, nil
}

// Fragment encrypts a stored fragment (any emsg boxes, one moof, one
// mdat) with key (whose value is what it encrypts with). When key is not
// the init's default KID, the fragment says so in band: an sgpd of one
// seig entry and an sbgp mapping every sample to it in its traf, and
// pssh (whole boxes) in its moof.
func (p *Protector) Fragment(stored []byte, key cenc.Key, pssh ...[]byte) ([]byte, error) {
	_, moofAt, _, err := fmp4.StoredHead(stored)
	if err != nil {
		return nil, err
	}
	f, err := mp4.DecodeFile(bytes.NewReader(stored[moofAt:]))
	if err != nil || len(f.Segments) != 1 || len(f.Segments[0].Fragments) != 1 {
		return nil, fmt.Errorf("decode fragment: %w", errors.Join(err, errors.New("not one fragment")))
	}
	frag := f.Segments[0].Fragments[0]
	if key.KID != p.kid {
		traf := frag.Moof.Traf
		seig := &mp4.SeigSampleGroupEntry{IsProtected: 1, KID: mp4.UUID(key.KID[:])}
		if p.scheme == cenc.CBCS {
			seig.ConstantIV = p.iv
			if p.ipd.Tenc.DefaultCryptByteBlock != 0 {
				seig.CryptByteBlock, seig.SkipByteBlock = 1, 9
			}
		} else {
			seig.PerSampleIVSize = 8
		}
		sgpd := &mp4.SgpdBox{Version: 1, GroupingType: "seig", DefaultLength: 20 + uint32(len(seig.ConstantIV)) + 1, SampleGroupEntries: []mp4.SampleGroupEntry{seig}}
		if len(seig.ConstantIV) == 0 {
			sgpd.DefaultLength = 20
		}
		sbgp := &mp4.SbgpBox{GroupingType: "seig", SampleCounts: []uint32{traf.Trun.SampleCount()}, GroupDescriptionIndices: []uint32{65537}}
		if err := traf.AddChild(sgpd); err != nil {
			return nil, err
		}
		if err := traf.AddChild(sbgp); err != nil {
			return nil, err
		}
		for _, b := range pssh {
			box, err := mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(b))
			if err != nil {
				return nil, fmt.Errorf("decode pssh: %w", err)
			}
			frag.Moof.AddChild(box)
		}
		// The pssh boxes before the traf, as packagers write them.
		moof := frag.Moof
		moof.Children = append(slices.DeleteFunc(moof.Children, func(b mp4.Box) bool { return b == mp4.Box(moof.Traf) }), moof.Traf)
	}
	next, err := mp4.EncryptFragment(frag, key.Value[:], p.iv, p.ipd)
	if err != nil {
		return nil, fmt.Errorf("encrypt fragment: %w", err)
	}
	if p.scheme == cenc.CENC {
		p.iv = next
	}
	out := bytes.NewBuffer(append([]byte(nil), stored[:moofAt]...))
	if err := frag.Encode(out); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

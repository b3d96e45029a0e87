package webvtt

import (
	"bytes"
	"fmt"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/mp4box"
)

// RoleScheme is the scheme of a track's role in udta/kind (DASH's Role
// scheme; timeline.RoleScheme).
const RoleScheme = "urn:mpeg:dash:role:2011"

// Track is what a wvtt track's init segment says of it.
type Track struct {
	ID        uint32 // track_ID; 1 when zero
	Timescale uint32 // 1000 when zero
	// Language is BCP 47 (elng), and ISO 639-2/T in mdhd when it is
	// three letters ("und" otherwise); "" when not known.
	Language string
	Label    string // udta/labl: the name a player shows
	Role     string // udta/kind in RoleScheme: subtitle, forced-subtitle, caption, ...
	// Default sets tkhd's enabled flag (a text track that plays unless
	// the viewer says otherwise); other text tracks are not enabled.
	Default bool
}

// Init writes the init segment (ftyp, moov) of a wvtt track.
func Init(t Track) ([]byte, error) {
	if t.ID == 0 {
		t.ID = 1
	}
	if t.Timescale == 0 {
		t.Timescale = 1000
	}
	init := mp4.CreateEmptyInit()
	mdhdLang := "und"
	if isISO6392(t.Language) {
		mdhdLang = t.Language
	}
	trak := init.AddEmptyTrack(t.Timescale, "wvtt", mdhdLang)
	trak.Tkhd.TrackID = t.ID
	init.Moov.Mvex.Trexs[0].TrackID = t.ID
	init.Moov.Mvhd.NextTrackID = t.ID + 1
	if t.Language != "" {
		trak.Mdia.AddChild(mp4.CreateElng(t.Language))
	}
	trak.Tkhd.Flags = 0x6 // in movie, in preview
	if t.Default {
		trak.Tkhd.Flags |= 0x1
	}
	if err := trak.SetWvttDescriptor("WEBVTT"); err != nil {
		return nil, err
	}
	if t.Label != "" || t.Role != "" {
		udta := &mp4.UdtaBox{}
		if t.Role != "" {
			udta.AddChild(&mp4.KindBox{SchemeURI: RoleScheme, Value: t.Role})
		}
		if t.Label != "" {
			udta.AddChild(&mp4.LablBox{Language: t.Language, Label: t.Label})
		}
		trak.AddChild(udta)
	}
	var buf bytes.Buffer
	if err := init.Encode(&buf); err != nil {
		return nil, fmt.Errorf("webvtt: init segment: %w", err)
	}
	return buf.Bytes(), nil
}

// isISO6392 reports whether lang is three lowercase letters (what mdhd
// can carry).
func isISO6392(lang string) bool {
	if len(lang) != 3 {
		return false
	}
	for _, r := range lang {
		if r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}

// Fragment writes a fragment (moof, mdat) of the wvtt track trackID
// holding samples, which follow each other from the first one's Time
// (its tfdt); every sample is a sync sample.
func Fragment(seq, trackID uint32, samples []Sample) ([]byte, error) {
	if len(samples) == 0 {
		return nil, fmt.Errorf("webvtt: a fragment needs a sample")
	}
	frag, err := mp4.CreateFragment(seq, trackID)
	if err != nil {
		return nil, err
	}
	for i, s := range samples {
		if i > 0 && s.Time != samples[i-1].Time+samples[i-1].Duration {
			return nil, fmt.Errorf("webvtt: sample %d starts at %d, not where the one before ends (%d)", i, s.Time, samples[i-1].Time+samples[i-1].Duration)
		}
		if s.Duration == 0 || s.Duration > 1<<32-1 {
			return nil, fmt.Errorf("webvtt: sample %d lasts %d ticks", i, s.Duration)
		}
		data := s.Encode()
		frag.AddFullSample(mp4.FullSample{
			Sample:     mp4.Sample{Flags: mp4.SyncSampleFlags, Dur: uint32(s.Duration), Size: uint32(len(data))},
			DecodeTime: s.Time,
			Data:       data,
		})
	}
	var buf bytes.Buffer
	if err := frag.Encode(&buf); err != nil {
		return nil, fmt.Errorf("webvtt: fragment: %w", err)
	}
	return buf.Bytes(), nil
}

// FragmentSamples reads the samples of the track trackID of a fragment
// (moof and mdat; trex, if not nil, its track's defaults from the init
// segment).
func FragmentSamples(frag []byte, trackID uint32, trex *mp4.TrexBox) ([]Sample, error) {
	var moof *mp4.MoofBox
	var moofPos uint64
	var mdat []byte // its payload
	var mdatPos uint64
	for box, err := range mp4box.All(frag) {
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSample, err)
		}
		switch {
		case box.Type == "moof" && moof == nil:
			m, err := mp4box.Decode(box)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrSample, err)
			}
			moof, _ = m.(*mp4.MoofBox)
			moofPos = box.Pos
		case box.Type == "mdat" && moof != nil && mdat == nil:
			mdat, mdatPos = box.Payload(), box.Pos+uint64(box.HeaderSize)
		}
	}
	if moof == nil || mdat == nil {
		return nil, fmt.Errorf("%w: a fragment needs a moof and an mdat after it", ErrSample)
	}
	var out []Sample
	for _, traf := range moof.Trafs {
		if traf.Tfhd == nil || traf.Tfhd.TrackID != trackID {
			continue
		}
		if trex != nil && trex.TrackID != trackID {
			trex = nil
		}
		var t uint64
		if traf.Tfdt != nil {
			t = traf.Tfdt.BaseMediaDecodeTime()
		}
		for _, trun := range traf.Truns {
			trun.AddSampleDefaultValues(traf.Tfhd, trex)
			base := moofPos
			if traf.Tfhd.HasBaseDataOffset() {
				base = traf.Tfhd.BaseDataOffset
			}
			if trun.HasDataOffset() {
				base = uint64(int64(base) + int64(trun.DataOffset))
			}
			at := base - mdatPos // wraps when before: caught below
			for i, smp := range trun.Samples {
				if at > uint64(len(mdat)) || uint64(smp.Size) > uint64(len(mdat))-at {
					return nil, fmt.Errorf("%w: sample %d (%d bytes) is outside the mdat (%d bytes)", ErrSample, len(out), smp.Size, len(mdat))
				}
				cues, err := DecodeSample(mdat[at : at+uint64(smp.Size)])
				if err != nil {
					return nil, fmt.Errorf("sample %d: %w", i, err)
				}
				out = append(out, Sample{Time: t, Duration: uint64(smp.Dur), Cues: cues})
				t += uint64(smp.Dur)
				at += uint64(smp.Size)
			}
		}
	}
	return out, nil
}

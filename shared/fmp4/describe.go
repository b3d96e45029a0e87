// Package fmp4 turns what a Smooth Streaming encoder sends into objects that
// serve every output format: per-track init segments (ftyp+moov of one
// track) and fragments that carry both the PIFF tfxd box Smooth clients read
// and the tfdt box HLS and DASH players read. It also describes tracks for
// the manifests (codec strings, CodecPrivateData) from their sample entries.
package fmp4

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/Eyevinn/mp4ff/aac"
	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/timeline"
)

// ErrUnsupportedCodec is returned for a track whose sample entry the
// manifests cannot describe.
var ErrUnsupportedCodec = errors.New("unsupported codec")

// Describe returns what the manifests need to know of a track, from its
// trak box. The ID is left for the caller to fill in.
func Describe(trak *mp4.TrakBox) (timeline.Track, error) {
	var t timeline.Track
	if trak == nil || trak.Mdia == nil || trak.Mdia.Mdhd == nil || trak.Mdia.Hdlr == nil ||
		trak.Mdia.Minf == nil || trak.Mdia.Minf.Stbl == nil || trak.Mdia.Minf.Stbl.Stsd == nil {
		return t, errors.New("trak lacks mdhd, hdlr or stsd")
	}
	t.Timescale = uint64(trak.Mdia.Mdhd.Timescale)
	if t.Timescale == 0 {
		return t, errors.New("mdhd timescale is 0")
	}
	t.Language = trak.Mdia.Mdhd.GetLanguage()
	if e := trak.Mdia.Elng; e != nil && e.Language != "" {
		// CMAF: the extended language (BCP 47) overrides mdhd's ISO 639-2.
		t.Language = e.Language
	}
	t.Role = Role(trak)
	stsd := trak.Mdia.Minf.Stbl.Stsd
	switch trak.Mdia.Hdlr.HandlerType {
	case "vide":
		t.Kind = timeline.Video
		v := stsd.AvcX
		if v == nil || v.AvcC == nil || len(v.AvcC.SPSnalus) == 0 || len(v.AvcC.PPSnalus) == 0 {
			return t, fmt.Errorf("%w: video sample entry is not avc1/avc3 with SPS and PPS", ErrUnsupportedCodec)
		}
		sps, err := avc.ParseSPSNALUnit(v.AvcC.SPSnalus[0], false)
		if err != nil {
			return t, fmt.Errorf("parse SPS: %w", err)
		}
		t.FourCC = "H264"
		t.Codecs = strings.ToLower(avc.CodecString("avc1", sps))
		t.Width, t.Height = int(v.Width), int(v.Height)
		if t.Width == 0 || t.Height == 0 {
			t.Width, t.Height = int(sps.Width), int(sps.Height)
		}
		var cpd bytes.Buffer
		for _, nalu := range append(append([][]byte{}, v.AvcC.SPSnalus...), v.AvcC.PPSnalus...) {
			cpd.Write([]byte{0, 0, 0, 1})
			cpd.Write(nalu)
		}
		t.CodecPrivateData = strings.ToUpper(hex.EncodeToString(cpd.Bytes()))
	case "soun":
		t.Kind = timeline.Audio
		a := stsd.Mp4a
		if a == nil || a.Esds == nil || a.Esds.DecConfigDescriptor == nil || a.Esds.DecConfigDescriptor.DecSpecificInfo == nil {
			return t, fmt.Errorf("%w: audio sample entry is not mp4a with an AudioSpecificConfig", ErrUnsupportedCodec)
		}
		asc := a.Esds.DecConfigDescriptor.DecSpecificInfo.DecConfig
		hdr, err := aac.DecodeAudioSpecificConfigHeader(bytes.NewReader(asc))
		if err != nil {
			return t, fmt.Errorf("parse AudioSpecificConfig: %w", err)
		}
		t.Codecs = "mp4a.40." + strconv.Itoa(int(hdr.ObjectType))
		t.FourCC = "AACL"
		if hdr.ObjectType == aac.HEAACv1 || hdr.ObjectType == aac.HEAACv2 {
			t.FourCC = "AACH"
		}
		t.SamplingRate = hdr.SamplingFrequency
		t.Channels = int(hdr.ChannelConfiguration)
		if t.Channels == 0 {
			t.Channels = int(a.ChannelCount)
		}
		t.BitsPerSample = 16
		t.PacketSize = 4
		t.AudioTag = 255
		t.CodecPrivateData = strings.ToUpper(hex.EncodeToString(asc))
	default:
		return t, fmt.Errorf("%w: handler %q", ErrUnsupportedCodec, trak.Mdia.Hdlr.HandlerType)
	}
	return t, nil
}

// roleValue is what a role may be: DASH's values are short lowercase words.
var roleValue = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// Role is a track's role from the kind boxes in its udta (CMAF, ISO/IEC
// 23000-19 7.5.3), "" when it declares none in timeline.RoleScheme.
func Role(trak *mp4.TrakBox) string {
	if trak == nil || trak.Udta == nil {
		return ""
	}
	for _, c := range trak.Udta.Children {
		if k, ok := c.(*mp4.KindBox); ok && strings.TrimRight(k.SchemeURI, "\x00") == timeline.RoleScheme {
			if v := strings.ToLower(strings.TrimRight(k.Value, "\x00")); roleValue.MatchString(v) {
				return v
			}
		}
	}
	return ""
}

// DeclaredBitrate is the bitrate a track's sample entry declares (btrt, or
// the esds average bitrate), or 0.
func DeclaredBitrate(trak *mp4.TrakBox) int {
	if trak == nil || trak.Mdia == nil || trak.Mdia.Minf == nil || trak.Mdia.Minf.Stbl == nil || trak.Mdia.Minf.Stbl.Stsd == nil {
		return 0
	}
	stsd := trak.Mdia.Minf.Stbl.Stsd
	if v := stsd.AvcX; v != nil && v.Btrt != nil && v.Btrt.AvgBitrate > 0 {
		return int(v.Btrt.AvgBitrate)
	}
	if a := stsd.Mp4a; a != nil {
		if a.Esds != nil && a.Esds.DecConfigDescriptor != nil && a.Esds.DecConfigDescriptor.AvgBitrate > 0 {
			return int(a.Esds.DecConfigDescriptor.AvgBitrate)
		}
	}
	return 0
}

// InitSegment builds the init segment of one track of moov: a CMAF-style
// ftyp, and a moov with the movie header, that track and its trex.
func InitSegment(moov *mp4.MoovBox, trackID uint32) ([]byte, error) {
	if moov == nil || moov.Mvhd == nil {
		return nil, errors.New("moov without mvhd")
	}
	var trak *mp4.TrakBox
	for _, t := range moov.Traks {
		if t.Tkhd != nil && t.Tkhd.TrackID == trackID {
			trak = t
		}
	}
	if trak == nil {
		return nil, fmt.Errorf("moov has no track %d", trackID)
	}
	var trex *mp4.TrexBox
	if moov.Mvex != nil {
		for _, tx := range moov.Mvex.Trexs {
			if tx.TrackID == trackID {
				trex = tx
			}
		}
	}
	if trex == nil {
		trex = &mp4.TrexBox{TrackID: trackID, DefaultSampleDescriptionIndex: 1}
	}
	mvhd := *moov.Mvhd
	mvhd.NextTrackID = trackID + 1
	out := mp4.NewMoovBox()
	out.AddChild(&mvhd)
	out.AddChild(trak)
	mvex := mp4.NewMvexBox()
	mvex.AddChild(trex)
	out.AddChild(mvex)
	ftyp := mp4.NewFtyp("iso6", 0, []string{"iso6", "isom", "dash"})
	var buf bytes.Buffer
	buf.Grow(int(ftyp.Size() + out.Size()))
	if err := ftyp.Encode(&buf); err != nil {
		return nil, err
	}
	if err := out.Encode(&buf); err != nil {
		return nil, fmt.Errorf("encode init segment of track %d: %w", trackID, err)
	}
	return buf.Bytes(), nil
}

// ParseInit decodes an init segment and describes its (first) track.
func ParseInit(b []byte) (timeline.Track, error) {
	f, err := mp4.DecodeFile(bytes.NewReader(b))
	if err != nil {
		return timeline.Track{}, fmt.Errorf("decode init segment: %w", err)
	}
	if f.Init == nil || f.Init.Moov == nil || f.Init.Moov.Trak == nil {
		return timeline.Track{}, errors.New("init segment has no track")
	}
	return Describe(f.Init.Moov.Trak)
}

// Package fmp4 turns what a Smooth Streaming encoder sends into objects that
// serve every output format: per-track init segments (ftyp+moov of one
// track) and fragments that carry both the PIFF tfxd box Smooth clients read
// and the tfdt box HLS and DASH players read. It also describes tracks for
// the manifests (codec strings, CodecPrivateData) from their sample entries.
package fmp4

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/Eyevinn/mp4ff/aac"
	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/timeline"
)

// ErrUnsupportedCodec is returned for a track whose sample entry the
// manifests cannot describe.
var ErrUnsupportedCodec = errors.New("unsupported codec")

// The sample entries Describe reads, for the error that names the others.
const (
	supportedVideo = "avc1, avc3, hvc1, hev1 or av01"
	supportedAudio = "mp4a (AAC), ac-3 or ec-3"
	supportedText  = "wvtt (WebVTT) or stpp (TTML, IMSC1)"
)

// Describe returns what the manifests need to know of a track, from its
// trak box. The ID is left for the caller to fill in.
//
// Video: H.264 (avc1, avc3), HEVC (hvc1, hev1; codec string per ISO/IEC
// 14496-15 Annex E) and AV1 (av01; codec string per the AV1 ISOBMFF
// binding). Audio: AAC (mp4a), AC-3 (ac-3) and E-AC-3 (ec-3, Dolby
// Atmos as joint object coding included). Text (handler text or subt):
// WebVTT (wvtt) and TTML or IMSC1 (stpp); see describeText. Anything else
// is ErrUnsupportedCodec, naming the sample entry or the handler.
//
// An encrypted track (encv, enca: Common Encryption, ISO/IEC 23001-7) is
// described as the clear track its sinf's frma names, from the same
// configuration boxes, with its Protection: the scheme (schm: cbcs or
// cenc) and the default KID (tenc). The DRM systems' pssh boxes are in
// the moov, not the trak: ParseInit and DescribeInit add them.
//
// Every kind: Language from mdhd, or elng when it has one; Role from a
// kind box (Role); Label from a labl box (Label); Captions, the CEA-608
// and CEA-708 services the kind boxes of the caption schemes declare
// (DeclaredCaptions).
//
// FourCC and CodecPrivateData are what the Smooth manifest says: H.264
// and HEVC their parameter sets in Annex B; AC-3 and E-AC-3 the
// WAVEFORMATEXTENSIBLE extension IIS and Azure Media Services write
// (describeDolby). AV1, and an hev1 track whose parameter sets are only in
// band, get no FourCC: Smooth clients know no way to carry them, and the
// Smooth manifest leaves them out.
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
	t.Label = Label(trak, t.Language)
	t.Captions = DeclaredCaptions(trak)
	stsd := trak.Mdia.Minf.Stbl.Stsd
	var err error
	switch trak.Mdia.Hdlr.HandlerType {
	case "vide":
		t.Kind = timeline.Video
		v, entry := stsd.Encv, ""
		if v != nil {
			if entry, t.Protection, err = protection(v.Sinf); err != nil {
				return t, err
			}
		}
		switch {
		case stsd.AvcX != nil:
			err = describeAVC(&t, stsd.AvcX)
		case stsd.HvcX != nil:
			err = describeHEVC(&t, stsd.HvcX, stsd.HvcX.Type())
		case stsd.Av01 != nil:
			err = describeAV1(&t, stsd.Av01)
		case entry == "avc1" || entry == "avc3":
			err = describeAVC(&t, v)
		case entry == "hvc1" || entry == "hev1" || entry == "dvh1" || entry == "dvhe":
			err = describeHEVC(&t, v, entry)
		case entry == "av01":
			err = describeAV1(&t, v)
		case v != nil:
			err = fmt.Errorf("%w: encrypted video sample entry of format %q (supported: %s)", ErrUnsupportedCodec, entry, supportedVideo)
		default:
			err = fmt.Errorf("%w: video sample entry %s (supported: %s)", ErrUnsupportedCodec, entryName(stsd), supportedVideo)
		}
	case "soun":
		t.Kind = timeline.Audio
		a, entry := stsd.Enca, ""
		if a != nil {
			if entry, t.Protection, err = protection(a.Sinf); err != nil {
				return t, err
			}
		}
		switch {
		case stsd.Mp4a != nil:
			err = describeAAC(&t, stsd.Mp4a)
		case stsd.AC3 != nil:
			err = describeAC3(&t, stsd.AC3)
		case stsd.EC3 != nil:
			err = describeEAC3(&t, stsd.EC3)
		case entry == "mp4a":
			err = describeAAC(&t, a)
		case entry == "ac-3":
			err = describeAC3(&t, a)
		case entry == "ec-3":
			err = describeEAC3(&t, a)
		case a != nil:
			err = fmt.Errorf("%w: encrypted audio sample entry of format %q (supported: %s)", ErrUnsupportedCodec, entry, supportedAudio)
		default:
			err = fmt.Errorf("%w: audio sample entry %s (supported: %s)", ErrUnsupportedCodec, entryName(stsd), supportedAudio)
		}
	default:
		if !text(trak) {
			err = fmt.Errorf("%w: handler %q", ErrUnsupportedCodec, trak.Mdia.Hdlr.HandlerType)
			break
		}
		t.Kind = timeline.Text
		err = describeText(&t, trak)
	}
	return t, err
}

// entryName is the type of stsd's first sample entry, quoted, or "none".
func entryName(stsd *mp4.StsdBox) string {
	if len(stsd.Children) == 0 {
		return "none"
	}
	return strconv.Quote(stsd.Children[0].Type())
}

// annexB is the Smooth CodecPrivateData of video parameter sets: each NAL
// unit after a start code, in upper-case hex.
func annexB(nalus ...[][]byte) string {
	var b bytes.Buffer
	for _, list := range nalus {
		for _, nalu := range list {
			b.Write([]byte{0, 0, 0, 1})
			b.Write(nalu)
		}
	}
	return strings.ToUpper(hex.EncodeToString(b.Bytes()))
}

// describeAVC describes H.264 video (avc1, avc3) from its avcC.
func describeAVC(t *timeline.Track, v *mp4.VisualSampleEntryBox) error {
	if v.AvcC == nil || len(v.AvcC.SPSnalus) == 0 || len(v.AvcC.PPSnalus) == 0 {
		return fmt.Errorf("%w: video sample entry %q without an avcC holding SPS and PPS", ErrUnsupportedCodec, v.Type())
	}
	sps, err := avc.ParseSPSNALUnit(v.AvcC.SPSnalus[0], false)
	if err != nil {
		return fmt.Errorf("parse SPS: %w", err)
	}
	t.FourCC = "H264"
	t.Codecs = strings.ToLower(avc.CodecString("avc1", sps))
	t.Width, t.Height = int(v.Width), int(v.Height)
	if t.Width == 0 || t.Height == 0 {
		t.Width, t.Height = int(sps.Width), int(sps.Height)
	}
	t.CodecPrivateData = annexB(v.AvcC.SPSnalus, v.AvcC.PPSnalus)
	return nil
}

// describeHEVC describes HEVC video (hvc1, hev1) from its hvcC: the codec
// string from the record's profile, tier and level (ISO/IEC 14496-15
// E.3), the size and transfer function from the SPS when it has one.
// hvc1 must carry its parameter sets there; hev1 may have them in band
// only, and then Smooth, whose clients build the decoder configuration
// from CodecPrivateData, cannot carry it.
//
// entry is the sample entry's type: v's own, or for an encrypted track
// (encv) its sinf's original format.
func describeHEVC(t *timeline.Track, v *mp4.VisualSampleEntryBox, entry string) error {
	if entry != "hvc1" && entry != "hev1" {
		// dvh1, dvhe: Dolby Vision, whose codec string and signalling the
		// manifests do not write.
		return fmt.Errorf("%w: video sample entry %q (Dolby Vision; supported: %s)", ErrUnsupportedCodec, entry, supportedVideo)
	}
	if v.HvcC == nil {
		return fmt.Errorf("%w: video sample entry %q without an hvcC", ErrUnsupportedCodec, entry)
	}
	rec := &v.HvcC.DecConfRec
	vps := rec.GetNalusForType(hevc.NALU_VPS)
	spss := rec.GetNalusForType(hevc.NALU_SPS)
	pps := rec.GetNalusForType(hevc.NALU_PPS)
	inBand := len(vps) == 0 || len(spss) == 0 || len(pps) == 0
	if inBand && entry == "hvc1" {
		return fmt.Errorf("video sample entry %q: hvcC lacks a VPS, SPS or PPS (hvc1 keeps them there; hev1 may send them in band)", entry)
	}
	t.Codecs = hevc.CodecString(entry, &hevc.SPS{ProfileTierLevel: hevc.ProfileTierLevel{
		GeneralProfileSpace:              rec.GeneralProfileSpace,
		GeneralTierFlag:                  rec.GeneralTierFlag,
		GeneralProfileIDC:                rec.GeneralProfileIDC,
		GeneralProfileCompatibilityFlags: rec.GeneralProfileCompatibilityFlags,
		GeneralConstraintIndicatorFlags:  rec.GeneralConstraintIndicatorFlags,
		GeneralLevelIDC:                  rec.GeneralLevelIDC,
	}})
	t.Width, t.Height = int(v.Width), int(v.Height)
	if len(spss) > 0 {
		// The SPS gives what the sample entry may lack; one mp4ff cannot
		// parse (an extension it does not know) takes nothing away.
		if sps, err := hevc.ParseSPSNALUnit(spss[0]); err == nil {
			if t.Width == 0 || t.Height == 0 {
				w, h := sps.ImageSize()
				t.Width, t.Height = int(w), int(h)
			}
			if sps.VUI != nil && sps.VUI.ColourDescriptionFlag {
				t.VideoRange = videoRange(sps.VUI.TransferCharacteristics)
			}
		}
	}
	if t.Width == 0 || t.Height == 0 {
		return fmt.Errorf("video sample entry %q: no picture size in the sample entry or an SPS", entry)
	}
	if !inBand {
		t.FourCC = strings.ToUpper(entry)
		t.CodecPrivateData = annexB(vps, spss, pps)
	}
	return nil
}

// describeAV1 describes AV1 video (av01) from its av1C: the codec string
// per the AV1 ISOBMFF binding, with the colour fields when the record
// carries the sequence header and they differ from the defaults. Smooth
// has no FourCC for AV1 that a client knows: FourCC stays empty, and
// CodecPrivateData holds the av1C record, so that a change of sequence
// header shows as a change of codec.
func describeAV1(t *timeline.Track, v *mp4.VisualSampleEntryBox) error {
	if v.Av1C == nil {
		return fmt.Errorf("%w: video sample entry \"av01\" without an av1C", ErrUnsupportedCodec)
	}
	rec := &v.Av1C.CodecConfRec
	t.Codecs = rec.CodecString("av01")
	t.Width, t.Height = int(v.Width), int(v.Height)
	if seq, err := rec.SequenceHeader(); err == nil {
		t.Codecs = seq.CodecString("av01")
		t.VideoRange = videoRange(seq.TransferCharacteristics)
		if t.Width == 0 || t.Height == 0 {
			t.Width, t.Height = int(seq.Width()), int(seq.Height())
		}
	}
	if t.Width == 0 || t.Height == 0 {
		return errors.New(`video sample entry "av01": no picture size in the sample entry or a sequence header`)
	}
	var b bytes.Buffer
	if err := rec.Encode(&b); err != nil {
		return fmt.Errorf("encode av1C: %w", err)
	}
	t.CodecPrivateData = strings.ToUpper(hex.EncodeToString(b.Bytes()))
	return nil
}

// videoRange is HLS's VIDEO-RANGE for a transfer characteristics code
// point (ISO/IEC 23091-2): PQ (16), HLG (18), else "" (SDR).
func videoRange(transfer byte) string {
	switch transfer {
	case 16:
		return "PQ"
	case 18:
		return "HLG"
	}
	return ""
}

// describeAAC describes AAC audio (mp4a) from its AudioSpecificConfig.
func describeAAC(t *timeline.Track, a *mp4.AudioSampleEntryBox) error {
	if a.Esds == nil || a.Esds.DecConfigDescriptor == nil || a.Esds.DecConfigDescriptor.DecSpecificInfo == nil {
		return fmt.Errorf("%w: audio sample entry \"mp4a\" without an AudioSpecificConfig", ErrUnsupportedCodec)
	}
	asc := a.Esds.DecConfigDescriptor.DecSpecificInfo.DecConfig
	hdr, err := aac.DecodeAudioSpecificConfigHeader(bytes.NewReader(asc))
	if err != nil {
		return fmt.Errorf("parse AudioSpecificConfig: %w", err)
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
	return nil
}

// ac3Rates are the sample rates of fscod 0 to 2 (ETSI TS 102 366 4.4.1.3).
var ac3Rates = [3]int{48000, 44100, 32000}

// ac3Kbps are the bitrates of AC-3's bit_rate_code 0 to 18 (ETSI TS 102
// 366 Table F.4.1).
var ac3Kbps = [19]int{32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 576, 640}

// describeAC3 describes AC-3 audio (ac-3) from its dac3.
func describeAC3(t *timeline.Track, a *mp4.AudioSampleEntryBox) error {
	d := a.Dac3
	if d == nil {
		return fmt.Errorf("%w: audio sample entry \"ac-3\" without a dac3", ErrUnsupportedCodec)
	}
	if int(d.FSCod) >= len(ac3Rates) || int(d.BitRateCode) >= len(ac3Kbps) {
		return fmt.Errorf(`audio sample entry "ac-3": dac3 sample rate code %d, bit rate code %d out of range`, d.FSCod, d.BitRateCode)
	}
	var payload bytes.Buffer
	if err := d.Encode(&payload); err != nil {
		return fmt.Errorf("encode dac3: %w", err)
	}
	t.Codecs, t.FourCC = "ac-3", "AC-3"
	layout := dolbyLayout(d.ACMod, d.LFEOn, 0)
	describeDolby(t, ac3Rates[d.FSCod], ac3Kbps[d.BitRateCode], layout, ac3GUID, payload.Bytes()[8:])
	return nil
}

// describeEAC3 describes E-AC-3 audio (ec-3) from its dec3: independent
// substream 0 with its dependent substreams' channels, the programme a
// decoder plays.
func describeEAC3(t *timeline.Track, a *mp4.AudioSampleEntryBox) error {
	d := a.Dec3
	if d == nil || len(d.EC3Subs) == 0 {
		return fmt.Errorf("%w: audio sample entry \"ec-3\" without a dec3", ErrUnsupportedCodec)
	}
	sub := d.EC3Subs[0]
	rate := int(a.SampleRate)
	if int(sub.FSCod) < len(ac3Rates) {
		rate = ac3Rates[sub.FSCod]
	}
	if rate == 0 {
		return errors.New(`audio sample entry "ec-3": no sample rate in the dec3 or the sample entry`)
	}
	var chanLoc uint16
	if sub.NumDepSub > 0 {
		chanLoc = sub.ChanLoc
	}
	var payload bytes.Buffer
	if err := d.Encode(&payload); err != nil {
		return fmt.Errorf("encode dec3: %w", err)
	}
	t.Codecs, t.FourCC = "ec-3", "EC-3"
	t.JOC = int(d.JOCComplexity)
	describeDolby(t, rate, int(d.DataRate), dolbyLayout(sub.ACMod, sub.LFEOn, chanLoc), eac3GUID, payload.Bytes()[8:])
	return nil
}

// channelLayout is where the channels of AC-3 or E-AC-3 audio play: the
// chanmap DASH's Dolby scheme writes, WAVEFORMATEXTENSIBLE's speaker mask
// and the number of channels.
type channelLayout struct {
	chanmap uint16
	wave    uint32
	count   int
}

// The speakers of acmod 0 to 7 (ETSI TS 102 366 Table 4.3; acmod 0, dual
// mono, plays as L and R), each as its chanmap bit (Table E.1.4, bit 15
// for L) and its WAVEFORMATEXTENSIBLE speaker bit.
var acmodSpeakers = [8][]struct {
	chanmap uint16
	wave    uint32
}{
	{{1 << 15, 0x1}, {1 << 13, 0x2}},
	{{1 << 14, 0x4}},
	{{1 << 15, 0x1}, {1 << 13, 0x2}},
	{{1 << 15, 0x1}, {1 << 14, 0x4}, {1 << 13, 0x2}},
	{{1 << 15, 0x1}, {1 << 13, 0x2}, {1 << 8, 0x100}},
	{{1 << 15, 0x1}, {1 << 14, 0x4}, {1 << 13, 0x2}, {1 << 8, 0x100}},
	{{1 << 15, 0x1}, {1 << 13, 0x2}, {1 << 12, 0x10}, {1 << 11, 0x20}},
	{{1 << 15, 0x1}, {1 << 14, 0x4}, {1 << 13, 0x2}, {1 << 12, 0x10}, {1 << 11, 0x20}},
}

// chanLocSpeakers are the channels bits 0 to 8 of a dec3's chan_loc add
// (ETSI TS 102 366 Table F.6.1: Lc/Rc, Lrs/Rrs, Cs, Ts, Lsd/Rsd, Lw/Rw,
// Vhl/Vhr, Vhc, LFE2): their chanmap bit, WAVEFORMATEXTENSIBLE speakers
// (none for those it has no speaker for) and channel count.
var chanLocSpeakers = [9]struct {
	chanmap uint16
	wave    uint32
	count   int
}{
	{1 << 10, 0x40 | 0x80, 2},
	{1 << 9, 0x200 | 0x400, 2},
	{1 << 8, 0x100, 1},
	{1 << 7, 0x800, 1},
	{1 << 6, 0, 2},
	{1 << 5, 0, 2},
	{1 << 4, 0x1000 | 0x4000, 2},
	{1 << 3, 0x2000, 1},
	{1 << 1, 0, 1},
}

// dolbyLayout is the channel layout of acmod and lfeon, with the channels
// a dec3's chan_loc adds.
func dolbyLayout(acmod, lfeon byte, chanLoc uint16) channelLayout {
	var l channelLayout
	for _, s := range acmodSpeakers[acmod&7] {
		l.chanmap |= s.chanmap
		l.wave |= s.wave
		l.count++
	}
	if lfeon != 0 {
		l.chanmap |= 1
		l.wave |= 0x8
		l.count++
	}
	for i, s := range chanLocSpeakers {
		if chanLoc&(1<<i) != 0 {
			l.chanmap |= s.chanmap
			l.wave |= s.wave
			l.count += s.count
		}
	}
	return l
}

// The WAVEFORMATEXTENSIBLE SubFormat GUIDs of Dolby audio, as their bytes
// are stored (the first three fields little-endian):
// MEDIASUBTYPE_DOLBY_AC3 {E06D802C-DB46-11CF-B4D1-00805F6CBBEA} and
// MEDIASUBTYPE_DOLBY_DDPLUS {A7FB87AF-2D02-42FB-A4D4-05CD93843BDD}.
var (
	ac3GUID  = []byte{0x2C, 0x80, 0x6D, 0xE0, 0x46, 0xDB, 0xCF, 0x11, 0xB4, 0xD1, 0x00, 0x80, 0x5F, 0x6C, 0xBB, 0xEA}
	eac3GUID = []byte{0xAF, 0x87, 0xFB, 0xA7, 0x02, 0x2D, 0xFB, 0x42, 0xA4, 0xD4, 0x05, 0xCD, 0x93, 0x84, 0x3B, 0xDD}
)

// dolbySamples is the number of samples a WAVEFORMATEXTENSIBLE block of
// AC-3 or E-AC-3 holds: one syncframe of six blocks of 256.
const dolbySamples = 1536

// describeDolby fills in what AC-3 and E-AC-3 share: the channel layout
// and, for the Smooth manifest, the QualityLevel IIS and Azure Media
// Services write for Dolby Digital Plus (Bento4's mp4-dash does the same):
// AudioTag 65534 (WAVE_FORMAT_EXTENSIBLE), 16 bits per sample, PacketSize
// the bytes of a syncframe at kbps, and as CodecPrivateData the
// WAVEFORMATEXTENSIBLE extension: wSamplesPerBlock (1536), dwChannelMask,
// the SubFormat GUID, then the dac3 or dec3 payload.
func describeDolby(t *timeline.Track, rate, kbps int, l channelLayout, guid, payload []byte) {
	t.SamplingRate = rate
	t.Channels = l.count
	t.ChannelMap = int(l.chanmap)
	t.BitsPerSample = 16
	t.AudioTag = 0xFFFE
	t.PacketSize = kbps * 1000 / 8 * dolbySamples / rate
	cpd := binary.LittleEndian.AppendUint16(nil, dolbySamples)
	cpd = binary.LittleEndian.AppendUint32(cpd, l.wave)
	cpd = append(append(cpd, guid...), payload...)
	t.CodecPrivateData = strings.ToUpper(hex.EncodeToString(cpd))
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

// DeclaredBitrate is the bitrate a track's sample entry declares (btrt,
// video's or text's, the esds average bitrate, or the dac3 or dec3
// bitrate), or 0.
func DeclaredBitrate(trak *mp4.TrakBox) int {
	if trak == nil || trak.Mdia == nil || trak.Mdia.Minf == nil || trak.Mdia.Minf.Stbl == nil || trak.Mdia.Minf.Stbl.Stsd == nil {
		return 0
	}
	stsd := trak.Mdia.Minf.Stbl.Stsd
	for _, v := range []*mp4.VisualSampleEntryBox{stsd.AvcX, stsd.HvcX, stsd.Av01, stsd.Encv} {
		if v != nil && v.Btrt != nil && v.Btrt.AvgBitrate > 0 {
			return int(v.Btrt.AvgBitrate)
		}
	}
	if a := cmp.Or(stsd.Mp4a, stsd.Enca); a != nil {
		if a.Esds != nil && a.Esds.DecConfigDescriptor != nil && a.Esds.DecConfigDescriptor.AvgBitrate > 0 {
			return int(a.Esds.DecConfigDescriptor.AvgBitrate)
		}
	}
	if a := cmp.Or(stsd.AC3, stsd.Enca); a != nil && a.Dac3 != nil && int(a.Dac3.BitRateCode) < len(ac3Kbps) {
		return ac3Kbps[a.Dac3.BitRateCode] * 1000
	}
	if a := cmp.Or(stsd.EC3, stsd.Enca); a != nil && a.Dec3 != nil {
		return int(a.Dec3.DataRate) * 1000
	}
	if e := stsd.Wvtt; e != nil && e.Btrt != nil {
		return int(e.Btrt.AvgBitrate)
	}
	if e := stsd.Stpp; e != nil && e.Btrt != nil {
		return int(e.Btrt.AvgBitrate)
	}
	return 0
}

// Track header flags (ISO/IEC 14496-12 8.3.2): a disabled track is
// treated as absent.
const (
	tkhdEnabled uint32 = 0x1
	tkhdInMovie uint32 = 0x2
)

// InitSegment builds the init segment of one track of moov: a CMAF-style
// ftyp, and a moov with the movie header, that track and its trex. A
// video or audio track is enabled and in the movie whatever moov says:
// ffmpeg's ismv muxer enables only the first track of a kind in its
// multi-track moov (flags 0x2 on the others), and a player that reads
// such a one-track init segment has nothing to play. A text track keeps
// its enabled flag as the encoder wrote it (it says whether the track is
// shown by default: Track.Default) and is put in the movie. The trak's
// udta (kind, labl boxes) and mdia's elng go along as they are.
func InitSegment(moov *mp4.MoovBox, trackID uint32) ([]byte, error) {
	return InitSegmentWithCaptions(moov, trackID, "")
}

// InitSegmentWithCaptions is InitSegment with the CEA-608 and CEA-708
// caption services found in the track's SEI (ScanCaptions) declared in
// its udta, as kind boxes of timeline.CEA608Scheme and CEA708Scheme
// (CaptionKinds): for each scheme only when the encoder's own kind boxes
// declare none in it (an encoder that says what its captions are, with
// their languages, is believed). Describe reads them back into
// Track.Captions.
func InitSegmentWithCaptions(moov *mp4.MoovBox, trackID uint32, found timeline.Captions) ([]byte, error) {
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
	out.AddChild(withCaptions(enabled(trak, text(trak)), found))
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

// text reports whether trak is a text track: its handler is text (WebVTT,
// ISO/IEC 14496-30), subt (TTML) or sbtl (3GPP timed text, as ffmpeg
// writes it).
func text(trak *mp4.TrakBox) bool {
	if trak.Mdia == nil || trak.Mdia.Hdlr == nil {
		return false
	}
	switch trak.Mdia.Hdlr.HandlerType {
	case "text", "subt", "sbtl":
		return true
	}
	return false
}

// enabled is trak with its track header's in-movie flag set and, unless
// keep (a text track's), its enabled flag (in-preview as it was); trak,
// the caller's, is left as it is.
func enabled(trak *mp4.TrakBox, keep bool) *mp4.TrakBox {
	want := tkhdEnabled | tkhdInMovie
	if keep {
		want = tkhdInMovie
	}
	if trak.Tkhd == nil || trak.Tkhd.Flags&want == want {
		return trak
	}
	out := mp4.NewTrakBox()
	for _, c := range trak.Children {
		if c == trak.Tkhd {
			tkhd := *trak.Tkhd
			tkhd.Flags |= want
			c = &tkhd
		}
		out.AddChild(c)
	}
	return out
}

// ParseInit decodes an init segment and describes its (first) track
// (DescribeInit).
func ParseInit(b []byte) (timeline.Track, error) {
	f, err := mp4.DecodeFile(bytes.NewReader(b))
	if err != nil {
		return timeline.Track{}, fmt.Errorf("decode init segment: %w", err)
	}
	if f.Init == nil || f.Init.Moov == nil || f.Init.Moov.Trak == nil {
		return timeline.Track{}, errors.New("init segment has no track")
	}
	return DescribeInit(f.Init.Moov, f.Init.Moov.Trak)
}

// DescribeInit is Describe of trak, one of moov's tracks, with, when the
// track is encrypted, the DRM systems of moov's pssh boxes (each whole
// box, in their order) in its Protection. A pssh that names key IDs but
// not the track's default KID is left out: it is for another track.
func DescribeInit(moov *mp4.MoovBox, trak *mp4.TrakBox) (timeline.Track, error) {
	t, err := Describe(trak)
	if err != nil || t.Protection == nil || moov == nil {
		return t, err
	}
	for _, p := range moov.Psshs {
		if len(p.SystemID) != 16 || !namesKID(p, t.Protection.KID) {
			continue
		}
		sw := bits.NewFixedSliceWriter(int(p.Size()))
		if err := p.EncodeSW(sw); err != nil {
			return t, fmt.Errorf("encode pssh of system %s: %w", p.SystemID, err)
		}
		t.Protection.Systems = append(t.Protection.Systems, timeline.ProtectionSystem{ID: p.SystemID.String(), PSSH: sw.Bytes()})
	}
	return t, nil
}

// namesKID reports whether pssh box p is for key kid (UUID form): it
// names no key IDs (version 0), or kid among them.
func namesKID(p *mp4.PsshBox, kid string) bool {
	if len(p.KIDs) == 0 {
		return true
	}
	for _, k := range p.KIDs {
		if len(k) == 16 && k.String() == kid {
			return true
		}
	}
	return false
}

// The protection schemes the manifests signal (ISO/IEC 23001-7 4.2): the
// two CMAF allows. cens and cbc1 are refused: no format signals them to
// players that play them.
const (
	schemeCBCS = "cbcs"
	schemeCENC = "cenc"
)

// protection reads an encrypted sample entry's sinf: the original format
// (frma) and the track's protection (schm, tenc).
func protection(sinf *mp4.SinfBox) (format string, p *timeline.Protection, err error) {
	if sinf == nil || sinf.Frma == nil {
		return "", nil, errors.New("encrypted sample entry without sinf/frma: its original format is unknown")
	}
	format = sinf.Frma.DataFormat
	if sinf.Schm == nil || sinf.Schi == nil || sinf.Schi.Tenc == nil {
		return format, nil, fmt.Errorf("encrypted %q sample entry without schm or tenc", format)
	}
	scheme := sinf.Schm.SchemeType
	if scheme != schemeCBCS && scheme != schemeCENC {
		return format, nil, fmt.Errorf("%w: encrypted %q sample entry of scheme %q (supported: cbcs, cenc)", ErrUnsupportedCodec, format, scheme)
	}
	tenc := sinf.Schi.Tenc
	if len(tenc.DefaultKID) != 16 || tenc.DefaultIsProtected != 1 {
		return format, nil, fmt.Errorf("encrypted %q sample entry: tenc declares no protection or no default KID", format)
	}
	return format, &timeline.Protection{Scheme: scheme, KID: tenc.DefaultKID.String()}, nil
}

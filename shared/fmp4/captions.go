package fmp4

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/Eyevinn/mp4ff/sei"

	"github.com/smoothcast/smoothcast/shared/timeline"
)

// DeclaredCaptions is the list of CEA-608 and CEA-708 caption services
// the kind boxes of trak's udta declare in timeline.CEA608Scheme and
// timeline.CEA708Scheme (what an encoder that knows its video carries
// captions says, and what the ingest session writes when it finds them
// in the video's SEI), CEA-608 channels first, each in number order. An
// entry that names no valid service is left out.
func DeclaredCaptions(trak *mp4.TrakBox) timeline.Captions {
	if trak == nil || trak.Udta == nil {
		return ""
	}
	var services []timeline.Caption
	for _, c := range trak.Udta.Children {
		k, ok := c.(*mp4.KindBox)
		if !ok {
			continue
		}
		value := strings.TrimRight(k.Value, "\x00")
		switch strings.TrimRight(k.SchemeURI, "\x00") {
		case timeline.CEA608Scheme:
			services = append(services, captionEntries(value, "CC", 4, "")...)
		case timeline.CEA708Scheme:
			services = append(services, captionEntries(value, "SERVICE", 63, "lang:")...)
		}
	}
	return makeCaptions(services)
}

// captionEntries reads the value of a caption kind box (or DASH
// Accessibility descriptor): entries joined by ";", each a service
// number (after prefix, "CC" for CEA-608, optional), "=" and its
// language, or the number alone, or a language alone for the services in
// order (ANSI/SCTE 214-1 6.7.1). CEA-708's language comes as "lang:eng"
// among ","-separated fields (langKey "lang:"). Numbers outside 1 to max
// are left out, and languages that are not one.
func captionEntries(value, prefix string, maxN int, langKey string) []timeline.Caption {
	var out []timeline.Caption
	for i, e := range strings.Split(value, ";") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		num, lang, hasLang := strings.Cut(e, "=")
		n, err := strconv.Atoi(strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(num)), prefix))
		switch {
		case err == nil: // a number, with its language or not
		case !hasLang:
			n, lang = i+1, num // a language alone
		default:
			continue
		}
		if langKey != "" && strings.Contains(lang, ":") {
			fields := lang
			lang = ""
			for _, f := range strings.Split(fields, ",") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(f), langKey); ok {
					lang = v
				}
			}
		}
		if n < 1 || n > maxN {
			continue
		}
		c := timeline.Caption{InstreamID: "SERVICE" + strconv.Itoa(n), Language: strings.TrimSpace(lang)}
		if prefix == "CC" {
			c.InstreamID = "CC" + strconv.Itoa(n)
		}
		if _, err := timeline.MakeCaptions([]timeline.Caption{c}).Services(); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// makeCaptions is services as a Captions list, CEA-608 first, each kind
// in number order, one entry per service (the first with a language
// wins).
func makeCaptions(services []timeline.Caption) timeline.Captions {
	slices.SortStableFunc(services, func(a, b timeline.Caption) int {
		if a.CEA608() != b.CEA608() {
			if a.CEA608() {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Number(), b.Number())
	})
	out := services[:0]
	for _, s := range services {
		if n := len(out); n > 0 && out[n-1].InstreamID == s.InstreamID {
			if out[n-1].Language == "" {
				out[n-1].Language = s.Language
			}
			continue
		}
		out = append(out, s)
	}
	return timeline.MakeCaptions(out)
}

// CaptionKinds are the kind boxes that declare services (a Captions list)
// in a video's udta: one for its CEA-608 channels in
// timeline.CEA608Scheme ("CC1=eng;CC3"), one for its CEA-708 services in
// timeline.CEA708Scheme ("1=lang:eng;2"), each only when it has some. An
// invalid list gives none.
func CaptionKinds(services timeline.Captions) []*mp4.KindBox {
	list, err := services.Services()
	if err != nil {
		return nil
	}
	var cc, svc []string
	for _, s := range list {
		switch {
		case s.CEA608() && s.Language != "":
			cc = append(cc, s.InstreamID+"="+s.Language)
		case s.CEA608():
			cc = append(cc, s.InstreamID)
		case s.Language != "":
			svc = append(svc, strconv.Itoa(s.Number())+"=lang:"+s.Language)
		default:
			svc = append(svc, strconv.Itoa(s.Number()))
		}
	}
	var out []*mp4.KindBox
	if len(cc) > 0 {
		out = append(out, &mp4.KindBox{SchemeURI: timeline.CEA608Scheme, Value: strings.Join(cc, ";")})
	}
	if len(svc) > 0 {
		out = append(out, &mp4.KindBox{SchemeURI: timeline.CEA708Scheme, Value: strings.Join(svc, ";")})
	}
	return out
}

// withCaptions is trak with kind boxes declaring the services found in
// the schemes its udta declares none in; trak itself when there are none
// to add. trak, the caller's, is left as it is.
func withCaptions(trak *mp4.TrakBox, found timeline.Captions) *mp4.TrakBox {
	declared := map[string]bool{}
	if trak.Udta != nil {
		for _, c := range trak.Udta.Children {
			if k, ok := c.(*mp4.KindBox); ok {
				declared[strings.TrimRight(k.SchemeURI, "\x00")] = true
			}
		}
	}
	var add []mp4.Box
	for _, k := range CaptionKinds(found) {
		if !declared[k.SchemeURI] {
			add = append(add, k)
		}
	}
	if len(add) == 0 {
		return trak
	}
	udta := &mp4.UdtaBox{}
	if trak.Udta != nil {
		for _, c := range trak.Udta.Children {
			udta.AddChild(c)
		}
	}
	for _, k := range add {
		udta.AddChild(k)
	}
	out := mp4.NewTrakBox()
	for _, c := range trak.Children {
		if c != mp4.Box(trak.Udta) {
			out.AddChild(c)
		}
	}
	out.AddChild(udta)
	return out
}

// Bounds of ScanCaptions: the samples and the SEI NAL units of one
// fragment it reads at most (a 2 s fragment at 60 frames per second has
// 120 samples, each with an SEI NAL unit or two).
const (
	maxScanSamples = 1024
	maxScanSEI     = 4096
)

// ScanCaptions finds the CEA-608 channels and CEA-708 services a video
// fragment carries in its SEI (ATSC A/53 cc_data in
// user_data_registered_itu_t_t35 messages, "GA94"): trak is the track's,
// H.264 (avc1, avc3) or HEVC (hvc1, hev1), head the fragment's moof and
// mdat header and payload its samples, as the ingest session stores them.
// CEA-608 data of field 1 (cc_type 0) is CC1, or CC2 when its control
// codes say data channel 2; field 2's (cc_type 1) CC3 or CC4; CEA-708
// services are the DTVCC service blocks' numbers. No language is known
// from the SEI. Other tracks, and a fragment that cannot be read, give
// "". It reads at most maxScanSamples samples and maxScanSEI SEI NAL
// units.
func ScanCaptions(trak *mp4.TrakBox, head, payload []byte) timeline.Captions {
	hevc, ok := seiCodec(trak)
	if !ok || len(head) < 8 {
		return ""
	}
	size := int(binary.BigEndian.Uint32(head))
	if size < 8 || size > len(head) {
		return ""
	}
	moof, err := DecodeMoof(head[:size])
	if err != nil || moof.Traf == nil || moof.Traf.Tfhd == nil {
		return ""
	}
	var sc ccScan
	samples, seis := 0, 0
	tfhd := moof.Traf.Tfhd
	for _, trun := range moof.Traf.Truns {
		off := int64(trun.DataOffset) - int64(len(head))
		for _, s := range trun.Samples {
			n := int64(s.Size)
			if !trun.HasSampleSize() {
				n = int64(tfhd.DefaultSampleSize)
			}
			if off < 0 || off+n > int64(len(payload)) || samples == maxScanSamples {
				return sc.captions()
			}
			samples++
			for nal := range nalUnits(payload[off : off+n]) {
				if !isSEI(nal, hevc) {
					continue
				}
				if seis++; seis > maxScanSEI {
					return sc.captions()
				}
				sc.sei(nal, hevc)
			}
			off += n
		}
	}
	return sc.captions()
}

// seiCodec tells whether trak's video is HEVC (or H.264); ok is false for
// any other track.
func seiCodec(trak *mp4.TrakBox) (hevc, ok bool) {
	if trak == nil || trak.Mdia == nil || trak.Mdia.Minf == nil || trak.Mdia.Minf.Stbl == nil || trak.Mdia.Minf.Stbl.Stsd == nil {
		return false, false
	}
	stsd := trak.Mdia.Minf.Stbl.Stsd
	switch {
	case stsd.AvcX != nil:
		return false, true
	case stsd.HvcX != nil:
		return true, true
	}
	return false, false
}

// nalUnits yields the NAL units of a sample of 4-byte length-prefixed NAL
// units (the only length mp4ff's avcC and hvcC decoders take), up to the
// first that overruns it.
func nalUnits(sample []byte) func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(sample) >= 4 {
			n := int(binary.BigEndian.Uint32(sample))
			if n <= 0 || n > len(sample)-4 {
				return
			}
			if !yield(sample[4 : 4+n]) {
				return
			}
			sample = sample[4+n:]
		}
	}
}

// isSEI reports whether nal is an SEI NAL unit: H.264 type 6, HEVC prefix
// or suffix SEI (39, 40).
func isSEI(nal []byte, hevc bool) bool {
	if hevc {
		t := nal[0] >> 1 & 0x3f
		return len(nal) > 2 && (t == 39 || t == 40)
	}
	return len(nal) > 1 && nal[0]&0x1f == 6
}

// ga94 starts the payload of a user_data_registered_itu_t_t35 SEI message
// that carries ATSC A/53 cc_data.
var ga94 = sei.CTA608ITUData().Encode()

// ccScan gathers what the cc_data of a fragment's SEI messages use.
type ccScan struct {
	field [2]struct {
		data     bool    // non-null caption data
		channels [2]bool // data channels 1 and 2 named by control codes
		xds      bool    // inside an XDS packet (field 2)
		text     bool    // in text mode (TR, RTD): not captions
	}
	services [64]bool // CEA-708 services with a service block
	packet   []byte   // the DTVCC packet being gathered
}

// sei reads the A/53 cc_data of one SEI NAL unit's messages.
func (sc *ccScan) sei(nal []byte, hevc bool) {
	hdr := 1
	if hevc {
		hdr = 2
	}
	msgs, err := sei.ExtractSEIData(bytes.NewReader(nal[hdr:]))
	if err != nil && !errors.Is(err, sei.ErrRbspTrailingBitsMissing) {
		return
	}
	for _, m := range msgs {
		if p := m.Payload(); m.Type() == sei.SEIUserDataRegisteredITUtT35Type && len(p) > len(ga94) && bytes.Equal(p[:len(ga94)], ga94) {
			sc.ccData(p[len(ga94):])
		}
	}
}

// ccData reads one cc_data() (ATSC A/53 Part 4 6.2.3, CTA-708 4.4):
// after a count and a reserved byte, cc_count triplets of cc_valid,
// cc_type and two bytes. cc_type 0 and 1 are CEA-608 byte pairs of
// fields 1 and 2; 2 starts a DTVCC (CEA-708) packet and 3 continues it.
func (sc *ccScan) ccData(cc []byte) {
	if len(cc) < 2 {
		return
	}
	count := int(cc[0] & 0x1f)
	cc = cc[2:]
	for i := 0; i < count && len(cc) >= 3; i++ {
		b, d1, d2 := cc[0], cc[1], cc[2]
		cc = cc[3:]
		valid, typ := b&0x04 != 0, b&0x03
		switch {
		case typ < 2:
			if valid {
				sc.cea608(int(typ), d1&0x7f, d2&0x7f) // without parity
			}
		case !valid:
			sc.packetEnd() // an invalid DTVCC pair ends the packet
		case typ == 2:
			sc.packetEnd()
			sc.packet = append(sc.packet[:0], d1, d2)
		case len(sc.packet) > 0:
			sc.packet = append(sc.packet, d1, d2)
		}
		if len(sc.packet) > 0 && len(sc.packet) >= dtvccSize(sc.packet[0]) {
			sc.packetEnd()
		}
	}
}

// dtvccSize is the size of a DTVCC packet whose header is h: its
// packet_size_code times two, 128 for 0 (CTA-708 5).
func dtvccSize(h byte) int {
	if n := int(h&0x3f) * 2; n > 0 {
		return n
	}
	return 128
}

// packetEnd reads the service blocks of the DTVCC packet gathered, as
// much of it as came (CTA-708 6.2): each a header of service number (3
// bits, 7 for an extended number in the next byte) and block size (5
// bits), then the block. Service 0 is padding: the packet's end.
func (sc *ccScan) packetEnd() {
	if len(sc.packet) == 0 {
		return
	}
	data := sc.packet[1:min(len(sc.packet), dtvccSize(sc.packet[0]))]
	sc.packet = sc.packet[:0]
	for len(data) > 0 {
		svc, size := int(data[0]>>5), int(data[0]&0x1f)
		data = data[1:]
		if svc == 7 {
			if len(data) == 0 {
				return
			}
			svc, data = int(data[0]&0x3f), data[1:]
		}
		if svc == 0 || size > len(data) {
			return
		}
		if size > 0 {
			sc.services[svc] = true
		}
		data = data[size:]
	}
}

// cea608 reads a CEA-608 byte pair of field f (0 or 1), parity bits
// stripped (CTA-608-E). A control code (first byte 0x10 to 0x1F) names
// its data channel (bit 3: channel 2); one that starts text mode (TR,
// RTD) says what follows is text, not captions, until a caption command.
// Field 2 also carries XDS packets (first byte 0x01 to 0x0E, up to 0x0F),
// which are not captions.
func (sc *ccScan) cea608(f int, a, b byte) {
	fd := &sc.field[f]
	switch {
	case a == 0 && b == 0: // padding
	case f == 1 && a >= 0x01 && a <= 0x0e:
		fd.xds = true
	case f == 1 && a == 0x0f:
		fd.xds = false
	case a >= 0x10 && a <= 0x1f:
		fd.xds = false
		if a&0xf6 == 0x14 && (b == 0x2a || b == 0x2b) { // TR, RTD
			fd.text = true
			return
		}
		if a&0xf6 == 0x14 && b >= 0x20 && b <= 0x2f {
			fd.text = false // a caption command: RCL, RU2-4, RDC, EOC, ...
		}
		if !fd.text {
			fd.channels[a>>3&1] = true
			fd.data = true
		}
	case !fd.xds && !fd.text:
		fd.data = true
	}
}

// captions is what the scan found.
func (sc *ccScan) captions() timeline.Captions {
	sc.packetEnd()
	var out []timeline.Caption
	for f, fd := range sc.field {
		first := 1 + 2*f // CC1 (field 1) or CC3 (field 2)
		switch {
		case fd.channels[0] || fd.channels[1]:
			for ch, used := range fd.channels {
				if used {
					out = append(out, timeline.Caption{InstreamID: "CC" + strconv.Itoa(first+ch)})
				}
			}
		case fd.data:
			out = append(out, timeline.Caption{InstreamID: "CC" + strconv.Itoa(first)})
		}
	}
	for n, used := range sc.services {
		if used && n > 0 {
			out = append(out, timeline.Caption{InstreamID: "SERVICE" + strconv.Itoa(n)})
		}
	}
	return makeCaptions(out)
}

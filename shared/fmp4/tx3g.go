package fmp4

import (
	"encoding/binary"
	"slices"
	"strings"
	"unicode/utf16"

	"github.com/Eyevinn/mp4ff/mp4"
)

// 3GPP timed text (sample entry tx3g, 3GPP TS 26.245, ISO/IEC 14496-17's
// format in MP4) is what ffmpeg writes for a subtitle stream in MP4 and
// in a Smooth push (-f ismv -c:s mov_text), the only text its ismv muxer
// takes. No manifest can offer it, but its samples are plain text: the
// ingest session turns the track into WebVTT (wvtt) as it comes.

// Tx3gToWebVTT turns trak, when it is a 3GPP timed text track (sample
// entry tx3g), into a WebVTT one in place: its sample entry becomes wvtt
// and its handler text. Its fragments' samples must then be turned too
// ((*Part).Tx3gToWebVTT). It reports whether trak was one.
func Tx3gToWebVTT(trak *mp4.TrakBox) bool {
	if trak == nil || trak.Mdia == nil || trak.Mdia.Hdlr == nil || trak.Mdia.Minf == nil || trak.Mdia.Minf.Stbl == nil {
		return false
	}
	stbl := trak.Mdia.Minf.Stbl
	if stbl.Stsd == nil || len(stbl.Stsd.Children) == 0 || stbl.Stsd.Children[0].Type() != "tx3g" {
		return false
	}
	stsd := mp4.NewStsdBox()
	wvtt := mp4.NewWvttBox()
	wvtt.AddChild(&mp4.VttCBox{Config: "WEBVTT"})
	stsd.AddChild(wvtt)
	if i := slices.IndexFunc(stbl.Children, func(b mp4.Box) bool { return b == mp4.Box(stbl.Stsd) }); i >= 0 {
		stbl.Children[i] = stsd
	}
	stbl.Stsd = stsd
	trak.Mdia.Hdlr.HandlerType = "text"
	return true
}

// Tx3gToWebVTT rewrites the part's samples, 3GPP timed text, as WebVTT
// in ISOBMFF (ISO/IEC 14496-30): a sample with text is a cue (vttc with
// its payl), an empty one vtte; the text's style and other modifier boxes
// are dropped. The part's sample sizes change with them; durations do
// not.
func (p *Part) Tx3gToWebVTT() {
	var data []byte
	for i, trun := range p.Moof.Traf.Truns {
		at := p.pos[i]
		p.pos[i] = int64(len(data))
		for j := range trun.Samples {
			s := &trun.Samples[j]
			sample := p.Data[at : at+int64(s.Size)]
			at += int64(s.Size)
			before := len(data)
			data = appendVTTSample(data, tx3gText(sample))
			s.Size = uint32(len(data) - before)
		}
		trun.Flags |= mp4.TrunSampleSizePresentFlag
	}
	p.Data = data
}

// tx3gText is the text of a 3GPP timed text sample: a 16-bit length, then
// that many bytes of UTF-8 (or UTF-16 after a byte order mark), then
// modifier boxes; escaped for a WebVTT cue (&, <, >).
func tx3gText(sample []byte) string {
	if len(sample) < 2 {
		return ""
	}
	n := min(int(binary.BigEndian.Uint16(sample)), len(sample)-2)
	b := sample[2 : 2+n]
	var text string
	if len(b) >= 2 && b[0] == 0xfe && b[1] == 0xff {
		u := make([]uint16, (len(b)-2)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(b[2+2*i:])
		}
		text = string(utf16.Decode(u))
	} else {
		text = strings.ToValidUTF8(string(b), "\uFFFD")
	}
	text = strings.ReplaceAll(strings.TrimRight(text, "\x00"), "\r\n", "\n")
	return vttEscape.Replace(text)
}

// vttEscape escapes what a WebVTT cue's text may not hold as it is.
var vttEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// appendVTTSample appends the WebVTT sample of a cue's text: vtte when
// there is none, else vttc holding payl.
func appendVTTSample(dst []byte, text string) []byte {
	if strings.TrimSpace(text) == "" {
		return append(dst, 0, 0, 0, 8, 'v', 't', 't', 'e')
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(16+len(text)))
	dst = append(dst, "vttc"...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(8+len(text)))
	dst = append(dst, "payl"...)
	return append(dst, text...)
}

package fmp4

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/timeline"
)

// ttmlNamespace is the TTML namespace an stpp sample entry's namespace
// list names when its samples are TTML documents (IMSC1 among them).
const ttmlNamespace = "http://www.w3.org/ns/ttml"

// describeText describes a text track (ISO/IEC 14496-30): WebVTT (wvtt,
// Codecs "wvtt"; Smooth cannot carry it, so no FourCC) or TTML (stpp,
// Codecs "stpp.ttml." and the profile its mime box names, im1t when it
// names none; FourCC TTML, as Smooth carries TTML text streams). Default
// is the track header's enabled flag, Forced the role forced-subtitle.
// Anything else is ErrUnsupportedCodec: 3GPP timed text (tx3g, what
// ffmpeg's ismv and mp4 muxers write for a subtitle stream) among it,
// which the ingest session turns into WebVTT first (Tx3gToWebVTT).
func describeText(t *timeline.Track, trak *mp4.TrakBox) error {
	stsd := trak.Mdia.Minf.Stbl.Stsd
	switch {
	case stsd.Wvtt != nil:
		t.Codecs = "wvtt"
	case stsd.Stpp != nil:
		codecs, err := stppCodecs(stsd.Stpp)
		if err != nil {
			return err
		}
		t.Codecs, t.FourCC = codecs, "TTML"
	default:
		return fmt.Errorf("%w: text sample entry %s (supported: %s)", ErrUnsupportedCodec, entryName(stsd), supportedText)
	}
	t.Default = trak.Tkhd != nil && trak.Tkhd.Flags&tkhdEnabled != 0
	t.Forced = t.Role == "forced-subtitle"
	return nil
}

// stppCodecs is the codec string of TTML in an stpp sample entry
// (ISO/IEC 14496-30, DASH-IF IOP 6.4.4): "stpp.ttml." and the first
// profile the entry's mime box names in its codecs parameter
// ("application/ttml+xml;codecs=im1t|etd1"), im1t (IMSC1 text) when it
// names none. An entry whose namespace list does not name TTML holds
// another XML, which no manifest can offer as subtitles.
func stppCodecs(e *mp4.StppBox) (string, error) {
	ns := strings.TrimRight(e.Namespace, "\x00")
	if ns != "" && !strings.Contains(ns, ttmlNamespace) {
		return "", fmt.Errorf("%w: text sample entry \"stpp\" with namespace %q, not TTML (%s)", ErrUnsupportedCodec, clip(ns, 64), ttmlNamespace)
	}
	profile := "im1t"
	for _, c := range e.Children {
		m, ok := c.(*mp4.MimeBox)
		if !ok {
			continue
		}
		if p := mimeProfile(m.ContentType); p != "" {
			profile = p
		}
	}
	return "stpp.ttml." + profile, nil
}

// mimeProfile is the first TTML profile code (four letters or digits,
// as im1t, im1i, etd1) in the codecs parameter of a MIME type, "" if
// none.
func mimeProfile(mime string) string {
	for _, param := range strings.Split(mime, ";") {
		name, value, ok := strings.Cut(strings.TrimSpace(param), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "codecs") {
			continue
		}
		value = strings.Trim(strings.TrimSpace(value), `"`)
		for _, code := range strings.FieldsFunc(value, func(r rune) bool { return r == '|' || r == '+' || r == ',' || r == ' ' }) {
			code = strings.TrimPrefix(code, "stpp.ttml.")
			if len(code) == 4 && strings.IndexFunc(code, func(r rune) bool { return !('a' <= r && r <= 'z' || '0' <= r && r <= '9') }) < 0 {
				return code
			}
		}
	}
	return ""
}

// maxLabel is the longest label kept, in bytes.
const maxLabel = 128

// Label is a track's name for a person from the labl boxes of its udta
// (ISO/IEC 14496-12 8.10.5, as DASH-IF ingest writes them): the group
// label, else the label in the track's language lang, else the first;
// control characters dropped, at most maxLabel bytes. "" when it has
// none.
func Label(trak *mp4.TrakBox, lang string) string {
	if trak == nil || trak.Udta == nil {
		return ""
	}
	var first, inLang string
	for _, l := range trak.Udta.Labls {
		v := cleanLabel(l.Label)
		switch {
		case v == "":
		case l.IsGroupLabel():
			return v
		case inLang == "" && lang != "" && strings.EqualFold(strings.TrimRight(l.Language, "\x00"), lang):
			inLang = v
		case first == "":
			first = v
		}
	}
	if inLang != "" {
		return inLang
	}
	return first
}

// cleanLabel is s without control characters or invalid UTF-8, its
// spaces trimmed, cut to maxLabel bytes at a character boundary.
func cleanLabel(s string) string {
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, "")))
	return clip(s, maxLabel)
}

// clip is s cut to at most n bytes at a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

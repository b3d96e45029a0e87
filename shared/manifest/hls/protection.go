package hls

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// The KEYFORMATs of the DRM systems a protected track is signalled for
// (RFC 8216bis 4.4.4.4; each system's own name for it, as hls.js, Shaka
// Player, ExoPlayer and Apple's players know them).
const (
	keyFormatClearKey  = "org.w3.clearkey"
	keyFormatWidevine  = "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"
	keyFormatPlayReady = "com.microsoft.playready"
	keyFormatFairPlay  = "com.apple.streamingkeydelivery"
)

// keyMethod is the METHOD of a Common Encryption scheme: SAMPLE-AES for
// cbcs (RFC 8216bis: the fMP4 segments are encrypted with 'cbcs'),
// SAMPLE-AES-CTR for cenc.
func keyMethod(scheme string) string {
	if scheme == string(cenc.CENC) {
		return "SAMPLE-AES-CTR"
	}
	return "SAMPLE-AES"
}

// keyAttributes are the attribute lists of the key tags (EXT-X-KEY in a
// media playlist, EXT-X-SESSION-KEY in the multivariant one) of
// protection p, one per DRM system of its pssh boxes that HLS knows, in
// the init segment's order:
//
//   - ClearKey: URI a data URI of the 16-byte default KID (what hls.js
//     takes as the key ID of an org.w3.clearkey key);
//   - Widevine: URI a data URI of the whole pssh box, KEYID the default
//     KID in hex (Shaka Packager's and hls.js's form);
//   - PlayReady: URI a data URI of the PlayReady Object (UTF-16, as
//     Microsoft's HLS signalling has it), which hls.js reads the KID from;
//   - FairPlay: URI the pssh's data, the skd:// URI of smoothcast's
//     convention, KEYFORMATVERSIONS 1; cbcs only (FairPlay has no cenc).
//
// A system it does not know is left out. None for a clear track (nil p).
func keyAttributes(p *timeline.Protection) []string {
	var out []string
	for _, k := range keyTags(p) {
		out = append(out, k.attrs)
	}
	return out
}

// keyTag is one key tag's attribute list and its KEYFORMAT.
type keyTag struct{ format, attrs string }

// keyTags are keyAttributes with their KEYFORMATs.
func keyTags(p *timeline.Protection) []keyTag {
	if p == nil {
		return nil
	}
	kid, err := cenc.ParseKID(p.KID)
	if err != nil {
		return nil
	}
	method := "METHOD=" + keyMethod(p.Scheme)
	var out []keyTag
	add := func(format, rest string) {
		out = append(out, keyTag{format, method + `,KEYFORMAT="` + format + `",KEYFORMATVERSIONS="1",URI="` + rest})
	}
	for _, s := range p.Systems {
		id, err := cenc.ParseKID(s.ID)
		if err != nil {
			continue
		}
		switch id {
		case cenc.ClearKey:
			add(keyFormatClearKey, `data:text/plain;base64,`+base64.StdEncoding.EncodeToString(kid[:])+`"`)
		case cenc.Widevine:
			add(keyFormatWidevine, `data:text/plain;base64,`+base64.StdEncoding.EncodeToString(s.PSSH)+`",KEYID=0x`+hex.EncodeToString(kid[:]))
		case cenc.PlayReady:
			if pro := s.Data(); len(pro) > 0 {
				add(keyFormatPlayReady, `data:text/plain;charset=UTF-16;base64,`+base64.StdEncoding.EncodeToString(pro)+`"`)
			}
		case cenc.FairPlay:
			if uri := s.Data(); p.Scheme == string(cenc.CBCS) && quotableURI(uri) {
				add(keyFormatFairPlay, string(uri)+`"`)
			}
		}
	}
	return out
}

// quotableURI reports whether b is a URI a quoted-string can hold: not
// empty, no double quote, no line break or other control (RFC 8216 4.2).
func quotableURI(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < 0x20 || c == '"' || c == 0x7f {
			return false
		}
	}
	return true
}

// writeInit writes the EXT-X-MAP of track tv's init segment of version
// v and the EXT-X-KEY tags of its protection (ProtectionOf(v)), where the
// segments of that version begin: at the start of the playlist, with
// prev nil, and after each change of version (a discontinuity), prev
// being the protection of the version before. A key tag applies until
// another of its KEYFORMAT replaces it (RFC 8216bis 4.4.4.4): when
// a KEYFORMAT of prev's has no tag in v's (v is clear, or signalled for
// fewer systems), #EXT-X-KEY:METHOD=NONE ends prev's keys first.
func writeInit(b *bytes.Buffer, tv *timeline.TrackView, v string, prev *timeline.Protection) {
	fmt.Fprintf(b, "#EXT-X-MAP:URI=%q\n", layout.InitRefOf(tv.ID, v))
	tags := keyTags(tv.ProtectionOf(v))
	for _, old := range keyTags(prev) {
		if !slices.ContainsFunc(tags, func(k keyTag) bool { return k.format == old.format }) {
			b.WriteString("#EXT-X-KEY:METHOD=NONE\n")
			break
		}
	}
	for _, k := range tags {
		b.WriteString("#EXT-X-KEY:" + k.attrs + "\n")
	}
}

// writeSessionKeys writes the multivariant playlist's EXT-X-SESSION-KEY
// tags: each key tag of the tracks it lists once, in their order, so that
// a client can start its DRM sessions before it loads a media playlist.
// A track whose protection changed has those of each version its window
// lists (sessionVersions).
func writeSessionKeys(b *bytes.Buffer, p *timeline.Presentation, tracks ...[]*timeline.TrackView) {
	seen := map[string]bool{}
	for _, list := range tracks {
		for _, tv := range list {
			for _, v := range sessionVersions(p, tv) {
				for _, a := range keyAttributes(tv.ProtectionOf(v)) {
					if !seen[a] {
						seen[a] = true
						b.WriteString("#EXT-X-SESSION-KEY:" + a + "\n")
					}
				}
			}
		}
	}
}

// sessionVersions are the init segment versions of track tv that its
// media playlist lists, in order: its first ("") alone for a track whose
// protection never changed, or whose window is empty.
func sessionVersions(p *timeline.Presentation, tv *timeline.TrackView) []string {
	if len(tv.Inits) == 0 {
		return []string{""}
	}
	tl := p.Windowed(tv)
	var vs []string
	for _, r := range tl.Runs {
		if !slices.Contains(vs, r.Init) {
			vs = append(vs, r.Init)
		}
	}
	if len(vs) == 0 {
		return []string{""}
	}
	return vs
}

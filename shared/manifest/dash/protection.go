package dash

import (
	"encoding/base64"

	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/manifest/xmlout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// The namespaces of ContentProtection's extensions: Common Encryption's
// (cenc:default_KID, cenc:pssh; ISO/IEC 23001-7 11.2) and PlayReady's
// (mspr:pro), declared on the MPD when a track is encrypted.
const (
	cencNamespace = "urn:mpeg:cenc:2013"
	msprNamespace = "urn:microsoft:playready"
)

// mp4Protection is the scheme of the ContentProtection that says which
// Common Encryption scheme (its value) and default KID a track has
// (ISO/IEC 23009-1 5.8.5.2, DASH-IF IOP 7.7.2).
const mp4Protection = "urn:mpeg:dash:mp4protection:2011"

// contentProtection is a ContentProtection element: the mp4protection
// one (Value the scheme, DefaultKID) or a DRM system's (urn:uuid: its ID,
// PSSH its whole pssh box, PRO PlayReady's PlayReady Object, both base64).
type contentProtection struct {
	SchemeIDURI string `xml:"schemeIdUri,attr"`
	Value       string `xml:"value,attr,omitempty"`
	DefaultKID  string `xml:"cenc:default_KID,attr,omitempty"`
	PSSH        string `xml:"cenc:pssh,omitempty"`
	PRO         string `xml:"mspr:pro,omitempty"`
}

// contentProtections are the ContentProtection elements of protection p
// (none for a clear track, nil p): the mp4protection one, then one per
// DRM system of its pssh boxes that DASH players know by UUID (FairPlay's,
// HLS's alone, is left out), in the init segment's order. PlayReady's
// also carries the PlayReady Object as mspr:pro, for players that read
// it there (DASH-IF IOP 7.7.4, Microsoft's PlayReady DASH guidance).
func contentProtections(p *timeline.Protection) []contentProtection {
	if p == nil {
		return nil
	}
	out := []contentProtection{{SchemeIDURI: mp4Protection, Value: p.Scheme, DefaultKID: p.KID}}
	for _, s := range p.Systems {
		id, err := cenc.ParseKID(s.ID)
		if err != nil || id == cenc.FairPlay {
			continue
		}
		cp := contentProtection{SchemeIDURI: "urn:uuid:" + id.UUID(), PSSH: base64.StdEncoding.EncodeToString(s.PSSH)}
		if id == cenc.PlayReady {
			cp.Value = "MSPR 2.0"
			if pro := s.Data(); len(pro) > 0 {
				cp.PRO = base64.StdEncoding.EncodeToString(pro)
			}
		}
		out = append(out, cp)
	}
	return out
}

// groupProtection is the protection of version v (Track.ProtectionOf)
// every track of a group shares, and whether they share one: then the
// AdaptationSet carries it, else each Representation its own.
func groupProtection(g timeline.Group, v string) (*timeline.Protection, bool) {
	p := g.Views[0].ProtectionOf(v)
	for _, tv := range g.Views[1:] {
		if !tv.ProtectionOf(v).Equal(p) {
			return nil, false
		}
	}
	return p, true
}

// namespaces sets the MPD's declarations of the namespaces its
// ContentProtection elements use.
func (m *mpd) namespaces() {
	for _, per := range m.Periods {
		for _, as := range per.Assets {
			cps := as.ContentProtection
			for _, r := range as.Representations {
				cps = append(cps, r.ContentProtection...)
			}
			for _, cp := range cps {
				m.XmlnsCenc = cencNamespace
				if cp.PRO != "" {
					m.XmlnsMspr = msprNamespace
				}
			}
		}
	}
}

// write writes the ContentProtection element at depth.
func (cp *contentProtection) write(w *xmlout.Writer, depth int) {
	w.Start(depth, "ContentProtection")
	w.Attr("schemeIdUri", cp.SchemeIDURI)
	w.AttrOmit("value", cp.Value)
	w.AttrOmit("cenc:default_KID", cp.DefaultKID)
	if cp.PSSH == "" && cp.PRO == "" {
		w.Empty("ContentProtection")
		return
	}
	w.Open()
	for _, e := range [...]struct{ name, text string }{{"cenc:pssh", cp.PSSH}, {"mspr:pro", cp.PRO}} {
		if e.text != "" {
			w.Start(depth+1, e.name)
			w.Open()
			w.Escape(e.text)
			w.Buf = append(append(append(w.Buf, "</"...), e.name...), '>')
		}
	}
	w.End(depth, "ContentProtection")
}

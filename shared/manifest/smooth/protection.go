package smooth

import (
	"encoding/base64"

	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/manifest/xmlout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// Protection is the Protection element (MS-SSTR 2.2.2.2): what a client
// needs to play the presentation's protected streams.
type Protection struct {
	Headers []ProtectionHeader `xml:"ProtectionHeader"`
}

// ProtectionHeader is a ProtectionHeader element: a DRM system's header
// (SystemID, a UUID) as base64 (Content).
type ProtectionHeader struct {
	SystemID string `xml:"SystemID,attr"`
	Content  string `xml:",chardata"`
}

// protection is the Protection element of the streams' tracks: the
// PlayReady Object of the first track that has a PlayReady pssh, as the
// one ProtectionHeader of SystemID PlayReady's. Smooth signals one
// protection for the whole presentation, and its clients (dash.js's Smooth
// support, ExoPlayer) read PlayReady's header only. nil when no track has
// one: a channel signalled for ClearKey or Widevine alone is encrypted all
// the same, and a Smooth client without its header cannot play it.
//
// A track whose protection changed (Track.Inits) counts with the
// protection of its newest fragment listed (newestVersion): the manifest
// has one Protection for all its fragments and no way to say where one
// starts, so a Smooth client cannot follow a change of protection: it
// sets up decryption from the Protection it read, and fragments of
// another protection are not what it expects.
func protection(p *timeline.Presentation, streams [][]*timeline.TrackView) *Protection {
	for _, views := range streams {
		for _, tv := range views {
			s, ok := tv.ProtectionOf(newestVersion(p, tv)).System(cenc.PlayReady.UUID())
			if !ok {
				continue
			}
			if pro := s.Data(); len(pro) > 0 {
				return &Protection{Headers: []ProtectionHeader{{SystemID: cenc.PlayReady.UUID(), Content: base64.StdEncoding.EncodeToString(pro)}}}
			}
		}
	}
	return nil
}

// newestVersion is the init segment version (timeline.Run.Init) of the
// newest fragment of track tv that p lists: "" (its first) for a track
// whose protection never changed.
func newestVersion(p *timeline.Presentation, tv *timeline.TrackView) string {
	if len(tv.Inits) == 0 {
		return ""
	}
	tl := p.Windowed(tv)
	if tl.Empty() {
		return ""
	}
	return tl.Runs[len(tl.Runs)-1].Init
}

// write writes the Protection element at depth.
func (p *Protection) write(w *xmlout.Writer, depth int) {
	w.Start(depth, "Protection")
	w.Open()
	for _, h := range p.Headers {
		w.Start(depth+1, "ProtectionHeader")
		w.Attr("SystemID", h.SystemID)
		w.Open()
		w.Escape(h.Content)
		w.Buf = append(w.Buf, "</ProtectionHeader>"...)
	}
	w.End(depth, "Protection")
}

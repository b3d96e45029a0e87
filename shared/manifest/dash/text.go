package dash

import (
	"strconv"
	"strings"

	"github.com/smoothcast/smoothcast/shared/manifest/xmlout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// The schemes of the Accessibility descriptors that signal CEA-608 and
// CEA-708 captions in a video's SEI (ANSI/SCTE 214-1 7.1.1, DASH-IF IOP
// 6.4.3).
const (
	cea608Scheme = "urn:scte:dash:cc:cea-608:2015"
	cea708Scheme = "urn:scte:dash:cc:cea-708:2015"
)

// textAdaptationSet makes as the AdaptationSet of text track tv (the
// first of its group): ISOBMFF text (application/mp4, its codecs wvtt
// or stpp.ttml.* on the Representations), its language, its label, and
// its Role in DASH's scheme: the track's (subtitle, caption,
// forced-subtitle, ...), subtitle when it has none; a default track is
// also main, the role DASH-IF IOP and DVB DASH give the track a player
// picks first. Its SegmentTimeline lists its fragments as they are,
// holes and all: a text track may have no fragment for minutes, and a
// client asks for none there.
func textAdaptationSet(as *adaptationSet, tv *timeline.TrackView) {
	as.ContentType, as.MimeType = "text", "application/mp4"
	if tv.Language != "" && tv.Language != "und" {
		as.Lang = tv.Language
	}
	as.Label = tv.Label
	role := tv.Role
	if role == "" || role == "main" {
		role = "subtitle"
	}
	as.Roles = as.Roles[:0]
	if tv.Default {
		as.Roles = append(as.Roles, descriptor{SchemeIDURI: timeline.RoleScheme, Value: "main"})
	}
	as.Roles = append(as.Roles, descriptor{SchemeIDURI: timeline.RoleScheme, Value: role})
}

// captionsAccessibility is the Accessibility descriptors of a video
// AdaptationSet whose tracks carry CEA-608 or CEA-708 captions (the
// first track's timeline.Captions that has some): SCTE 214-1's
// cea-608 scheme, its value the channels with their languages
// ("CC1=eng;CC3=fra", or "CC1;CC3" without them), and the cea-708 one,
// services as "1=lang:eng;2=lang:fra" (or "1;2"). None when no track has
// captions or its list does not parse.
func captionsAccessibility(views []*timeline.TrackView) []descriptor {
	var services []timeline.Caption
	for _, tv := range views {
		if tv.Captions == "" {
			continue
		}
		s, err := tv.Captions.Services()
		if err == nil {
			services = s
		}
		break
	}
	var cc608, cc708 []string
	for _, s := range services {
		if s.CEA608() {
			e := s.InstreamID
			if s.Language != "" {
				e += "=" + s.Language
			}
			cc608 = append(cc608, e)
			continue
		}
		e := strconv.Itoa(s.Number())
		if s.Language != "" {
			e += "=lang:" + s.Language
		}
		cc708 = append(cc708, e)
	}
	var out []descriptor
	if len(cc608) > 0 {
		out = append(out, descriptor{SchemeIDURI: cea608Scheme, Value: strings.Join(cc608, ";")})
	}
	if len(cc708) > 0 {
		out = append(out, descriptor{SchemeIDURI: cea708Scheme, Value: strings.Join(cc708, ";")})
	}
	return out
}

// writeLabel writes a Label element of text s at depth, on one line as
// encoding/xml writes an element of character data.
func writeLabel(w *xmlout.Writer, depth int, s string) {
	w.Start(depth, "Label")
	w.Open()
	w.Escape(s)
	w.Buf = append(w.Buf, "</Label>"...)
}

package fmp4

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/Eyevinn/mp4ff/mp4"

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

package timeline

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Captions is the list of CEA-608 and CEA-708 caption services a video
// track carries in its SEI (ANSI/SCTE 128, ATSC A/72): each an instream
// ID as HLS's INSTREAM-ID names it (CC1 to CC4 for CEA-608 channels,
// SERVICE1 to SERVICE63 for CEA-708 services), with its language after
// "=" when known, joined by ";": "CC1=eng;CC3=fra;SERVICE1=eng". It is a
// string so that a Track stays comparable.
type Captions string

// Caption is one caption service of a video track.
type Caption struct {
	// InstreamID is CC1 to CC4 (CEA-608) or SERVICE1 to SERVICE63
	// (CEA-708).
	InstreamID string
	// Language is ISO 639-2 or BCP 47, "" when not known.
	Language string
}

// CEA608 reports whether the service is a CEA-608 channel (CC1 to CC4).
func (c Caption) CEA608() bool { return strings.HasPrefix(c.InstreamID, "CC") }

// Number is the service's number: 1 to 4 for CC1 to CC4, 1 to 63 for
// SERVICE1 to SERVICE63.
func (c Caption) Number() int {
	n, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimPrefix(c.InstreamID, "CC"), "SERVICE"))
	return n
}

var (
	instreamID   = regexp.MustCompile(`^(CC[1-4]|SERVICE([1-9]|[1-5][0-9]|6[0-3]))$`)
	captionLang  = regexp.MustCompile(`^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$`)
	errNoService = errors.New("caption service")
)

// Services parses the list; an entry that is not a valid instream ID
// (with a valid language) is an error naming it.
func (c Captions) Services() ([]Caption, error) {
	if c == "" {
		return nil, nil
	}
	var out []Caption
	for _, e := range strings.Split(string(c), ";") {
		id, lang, _ := strings.Cut(e, "=")
		if !instreamID.MatchString(id) || lang != "" && !captionLang.MatchString(lang) {
			return nil, fmt.Errorf("%w %q: want CC1 to CC4 or SERVICE1 to SERVICE63, then =language", errNoService, e)
		}
		out = append(out, Caption{InstreamID: id, Language: lang})
	}
	return out, nil
}

// MakeCaptions writes services as a Captions list.
func MakeCaptions(services []Caption) Captions {
	parts := make([]string, len(services))
	for i, s := range services {
		parts[i] = s.InstreamID
		if s.Language != "" {
			parts[i] += "=" + s.Language
		}
	}
	return Captions(strings.Join(parts, ";"))
}

// The schemes of the udta kind boxes (and of DASH's Accessibility
// descriptors) that declare the CEA-608 and CEA-708 caption services a
// video carries (ANSI/SCTE 214-1 6.7.1; DASH-IF IOP 6.4.3). Their values
// list the services: CEA-608 "CC1=eng;CC3=fra" (or "CC1;CC3" without
// languages), CEA-708 "1=lang:eng;2=lang:fra" (or "1;2").
const (
	CEA608Scheme = "urn:scte:dash:cc:cea-608:2015"
	CEA708Scheme = "urn:scte:dash:cc:cea-708:2015"
)

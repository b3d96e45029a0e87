package srt

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	gosrt "github.com/datarhei/gosrt"

	"github.com/smoothcast/smoothcast/shared/layout"
)

// SecretKey is the stream ID key that carries the channel's ingest
// secret. The SRT Access Control guidelines reserve every single-letter
// key and name the ones they define: u (a user name, which selects a
// password: it is not one), r (the resource), h (the host), s (a session
// ID: "a one-shot identifier, invalidated after the first use", negotiated
// beforehand over another connection), t (the type) and m (the mode). None
// of them is a standing secret, and custom keys are to carry a
// "companyname_" prefix: hence smoothcast_secret.
const SecretKey = "smoothcast_secret"

// maxStreamID is the longest stream ID SRT carries (SRTO_STREAMID: 512
// characters).
const maxStreamID = 512

// StreamID is what a caller's stream ID asks of the relay.
type StreamID struct {
	// Channel is the channel to publish to: the r key, or the whole stream
	// ID when it does not follow the convention.
	Channel string
	// Secret is the channel's ingest secret (the smoothcast_secret key; ""
	// without it). It is never logged.
	Secret string
}

// streamIDError is a stream ID the relay refuses, with the rejection
// reason of the SRT Access Control guidelines that says why.
type streamIDError struct {
	reason gosrt.RejectionReason
	msg    string
}

func (e *streamIDError) Error() string { return "srt stream ID: " + e.msg }

// ErrStreamID is what every refusal of ParseStreamID wraps.
var ErrStreamID = errors.New("srt stream ID refused")

func (e *streamIDError) Unwrap() error { return ErrStreamID }

func refuse(reason gosrt.RejectionReason, format string, args ...any) error {
	return &streamIDError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// ParseStreamID reads a caller's stream ID: either the SRT Access Control
// convention, "#!::" then comma-separated key=value pairs,
//
//	#!::r={channel},m=publish[,smoothcast_secret={secret}]
//
// or, when it does not start with "#!", the channel name alone (which
// cannot carry a secret: letters, digits, - and _, as every channel name;
// anything else is refused without being echoed, lest it hold a secret).
// A stream ID that starts with "%23%21" ("#!" percent-encoded) is decoded
// first: ffmpeg before 6.0 passes the streamid of its URL on as it is
// written, so one written the way URLs want it arrives encoded. In the
// convention r is required; m, when given,
// must be publish (the relay takes streams, it serves none: request and
// bidirectional are refused with REJX_BAD_MODE; the guidelines let a
// listener that only takes publishes do without m); t, when given, must
// be stream (REJX_NOTSUP_MEDIA); u, h and s are tolerated and ignored,
// as are keys the relay does not know (the guidelines allow either); a key
// given twice, a pair without '=', the nested "#!:{" form or a stream ID
// over 512 bytes is a syntax error (REJX_BAD_REQUEST). Values are taken
// as they are: the convention has no escaping, so a secret used over SRT
// cannot hold a comma. Whether the channel name is one the relay takes
// is the relay's to say (relay.OpenLive).
func ParseStreamID(s string) (StreamID, error) {
	if len(s) > maxStreamID {
		return StreamID{}, refuse(gosrt.REJX_BAD_REQUEST, "%d bytes: %d at most", len(s), maxStreamID)
	}
	if s == "" {
		return StreamID{}, refuse(gosrt.REJX_BAD_REQUEST, "empty: set streamid=#!::r={channel},m=publish (or the channel name)")
	}
	if len(s) >= 6 && strings.EqualFold(s[:6], "%23%21") {
		d, err := url.PathUnescape(s)
		if err != nil {
			return StreamID{}, refuse(gosrt.REJX_BAD_REQUEST, "percent-encoded, badly: %v", err)
		}
		s = d
	}
	content, ok := strings.CutPrefix(s, "#!::")
	if !ok {
		if strings.HasPrefix(s, "#!") {
			return StreamID{}, refuse(gosrt.REJX_BAD_REQUEST, "only the \"#!::\" form of the access control convention is taken (key=value pairs separated by commas)")
		}
		if !layout.ValidName(s) {
			return StreamID{}, refuse(gosrt.REJX_BAD_REQUEST, "neither #!::r={channel},m=publish nor a channel name (letters, digits, - and _, 1 to %d of them)", layout.MaxNameLen)
		}
		return StreamID{Channel: s}, nil
	}
	var id StreamID
	seen := map[string]bool{}
	n := 0
	for pair := range strings.SplitSeq(content, ",") {
		n++
		key, value, ok := strings.Cut(pair, "=")
		if !ok || key == "" {
			// Not echoed: a mistyped pair may hold the secret.
			return StreamID{}, refuse(gosrt.REJX_BAD_REQUEST, "pair %d is no key=value pair", n)
		}
		if seen[key] {
			return StreamID{}, refuse(gosrt.REJX_BAD_REQUEST, "key %q given twice", clip(key))
		}
		seen[key] = true
		switch key {
		case "r":
			id.Channel = value
		case "m":
			if value != "publish" {
				return StreamID{}, refuse(gosrt.REJX_BAD_MODE, "mode m=%s: this relay only takes streams (m=publish); play from the CDN", clip(value))
			}
		case "t":
			if value != "stream" {
				return StreamID{}, refuse(gosrt.REJX_NOTSUP_MEDIA, "type t=%s: only t=stream (MPEG-TS) is taken", clip(value))
			}
		case SecretKey:
			id.Secret = value
		}
	}
	if id.Channel == "" {
		return StreamID{}, refuse(gosrt.REJX_BAD_REQUEST, "no channel: set r={channel}")
	}
	return id, nil
}

// clip shortens what a caller sent for an error message (the log), so
// that a stream ID cannot fill a log line.
func clip(s string) string {
	const most = 32
	if len(s) <= most {
		return s
	}
	cut := most
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut-- // not inside a character
	}
	return s[:cut] + "…"
}

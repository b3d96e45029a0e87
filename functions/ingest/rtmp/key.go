package rtmp

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/smoothcast/smoothcast/shared/layout"
)

// App is the one RTMP application the relay takes: encoders publish to
// rtmp://HOST:1935/live.
const App = "live"

// secretParam starts the part of a stream key that carries the channel's
// secret: {channel}?secret={secret}.
const secretParam = "secret="

// StreamKey is what an encoder's publish names: the server URL's
// application and the stream key, joined (rtmp://HOST:PORT/live/{key}).
//
// The stream key is
//
//	{channel}                         authentication off
//	{channel}?secret={secret}         authentication on
//	{channel}/{name}                  one of several encoders of a channel
//	{channel}/{name}?secret={secret}
//
// {channel} and {name} are letters, digits, - and _ (1 to 64 of them).
// The secret runs from "secret=" to the end of the key, as the operator
// configured it (not URL-encoded: a secret has no / ? # @ : or space).
// OBS puts rtmp://HOST:1935/live in Server and the key in Stream Key;
// ffmpeg takes the whole URL, rtmp://HOST:1935/live/{key}.
//
// Two connections with the same channel and name are one stream: while
// one publishes, the other is refused. Redundant encoders of a channel
// (the same media, the same timestamps) publish under names of their own
// (news/a, news/b): each is a stream of the channel, and the store keeps
// the first copy of every fragment (its writes are conditional), as for
// two pushes.
type StreamKey struct {
	Channel string
	// Name tells the encoders of one channel apart; "" for a channel's
	// only encoder.
	Name string
	// Secret is the credential the encoder presented ("" for none).
	Secret string
}

// String is the stream key without its secret, as the log shows it.
func (k StreamKey) String() string {
	s := k.Channel
	if k.Name != "" {
		s += "/" + k.Name
	}
	if k.Secret != "" {
		s += "?" + secretParam + hidden
	}
	return s
}

// Stream is the name of the stream within its channel, as /status shows
// it: the encoder's name, else "rtmp".
func (k StreamKey) Stream() string {
	if k.Name != "" {
		return k.Name
	}
	return "rtmp"
}

// errKey wraps every refusal of a publish URL.
var errKey = errors.New("stream key")

// keyHint is how to write a publish URL, for the encoder.
const keyHint = "Server rtmp://HOST:PORT/" + App + ", Stream Key {channel} or {channel}?secret={secret}"

// ParseStreamKey reads the publish URL an encoder named (gortmplib's
// ServerConn.URL: the connect command's tcUrl joined with the publish
// command's stream key). Its errors never quote the secret.
func ParseStreamKey(u *url.URL) (StreamKey, error) {
	var segs []string
	for s := range strings.SplitSeq(u.Path, "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	if len(segs) == 0 || !strings.EqualFold(segs[0], App) {
		app := ""
		if len(segs) > 0 {
			app = segs[0]
		}
		return StreamKey{}, fmt.Errorf("%w: application %q: this relay takes /%s (%s)", errKey, hideSecrets(app), App, keyHint)
	}
	segs = segs[1:]
	var k StreamKey
	switch len(segs) {
	case 0:
		return StreamKey{}, fmt.Errorf("%w: no channel (%s)", errKey, keyHint)
	case 1:
		k.Channel = segs[0]
	case 2:
		k.Channel, k.Name = segs[0], segs[1]
	default:
		return StreamKey{}, fmt.Errorf("%w: %d names after /%s, want {channel} or {channel}/{name} (%s)", errKey, len(segs), App, keyHint)
	}
	if !layout.ValidName(k.Channel) {
		return StreamKey{}, fmt.Errorf("%w: channel %q: letters, digits, - and _ only, 1 to %d of them", errKey, hideSecrets(k.Channel), layout.MaxNameLen)
	}
	if k.Name != "" && !layout.ValidName(k.Name) {
		return StreamKey{}, fmt.Errorf("%w: encoder name %q: letters, digits, - and _ only, 1 to %d of them", errKey, hideSecrets(k.Name), layout.MaxNameLen)
	}
	switch q := u.RawQuery; {
	case q == "" && !u.ForceQuery:
	case strings.HasPrefix(q, secretParam) && len(q) > len(secretParam):
		k.Secret = q[len(secretParam):]
	default:
		return StreamKey{}, fmt.Errorf("%w: after the ? the key takes secret={secret} and nothing else (%s)", errKey, keyHint)
	}
	return k, nil
}

// hidden stands for a secret in what the relay logs and shows.
const hidden = "(hidden)"

// secretInText is a secret as a publish URL carries it, in any text that
// quotes one (a library's error quoting the connect command, say).
var secretInText = regexp.MustCompile(`(?i)secret=[^\s]*`)

// hideSecrets is s with every secret= value in it hidden, up to the next
// space: what the log and /status show never carries a secret.
func hideSecrets(s string) string {
	return secretInText.ReplaceAllLiteralString(s, secretParam+hidden)
}

// hiddenError is an error whose text has its secrets hidden; errors.Is
// and errors.As still see what it wraps.
type hiddenError struct{ err error }

func (e *hiddenError) Error() string { return hideSecrets(e.err.Error()) }
func (e *hiddenError) Unwrap() error { return e.err }

// withoutSecrets wraps err so that its text shows no secret (nil stays
// nil).
func withoutSecrets(err error) error {
	if err == nil {
		return nil
	}
	return &hiddenError{err}
}

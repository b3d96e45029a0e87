package relay

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/smoothcast/smoothcast/shared/layout"
)

// Secrets are the ingest secrets: one for the whole deployment and, where
// set, one per channel. The zero value turns authentication off. With any
// secret set, a channel that has neither its own secret nor a default is
// refused, with the answers of a channel whose secret the encoder does
// not have (401 without credentials, 403 with any): a stranger learns
// nothing of which channels exist.
type Secrets struct {
	Default    string
	PerChannel map[string]string
}

// On reports whether any secret is set: then every push must authenticate.
func (s Secrets) On() bool { return s.Default != "" || len(s.PerChannel) > 0 }

// For returns the secret a push to channel must present: its own, else the
// default. ok is false when there is neither: with authentication on, such
// a channel is refused whatever the credentials.
func (s Secrets) For(channel string) (secret string, ok bool) {
	if v, found := s.PerChannel[channel]; found {
		return v, true
	}
	return s.Default, s.Default != ""
}

// Mode says in words which authentication is in force, for the relay's
// log at start.
func (s Secrets) Mode() string {
	switch {
	case !s.On():
		return "off: any channel is open"
	case len(s.PerChannel) == 0:
		return "one secret for every channel"
	case s.Default != "":
		return fmt.Sprintf("%d channel(s) with their own secret, the default secret for the others", len(s.PerChannel))
	default:
		return fmt.Sprintf("%d channel(s) with their own secret; every other channel is refused (no * default), answered as a wrong secret", len(s.PerChannel))
	}
}

// ParseSecrets reads secrets in the form an operator writes them (a file,
// or an SSM parameter's value): either the secret alone on one line, or
// lines of channel=secret, where the channel * is the default. Blank
// lines and lines starting with # are skipped. A text without any secret
// (empty, or only comments) is an error, not authentication turned off:
// to turn it off, configure no secret at all.
func ParseSecrets(text string) (Secrets, error) {
	var s Secrets
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		return Secrets{}, fmt.Errorf("ingest secrets: %w", err)
	}
	if len(lines) == 0 {
		return Secrets{}, errors.New("ingest secrets: no secret given (the text is empty or only comments); to run without authentication, configure no secret at all")
	}
	if len(lines) == 1 && !strings.Contains(lines[0], "=") {
		if err := validSecret(lines[0]); err != nil {
			return Secrets{}, fmt.Errorf("ingest secrets: %w", err)
		}
		return Secrets{Default: lines[0]}, nil
	}
	seen := map[string]bool{}
	for _, l := range lines {
		ch, secret, ok := strings.Cut(l, "=")
		ch, secret = strings.TrimSpace(ch), strings.TrimSpace(secret)
		if !ok || (ch != "*" && !layout.ValidName(ch)) {
			return Secrets{}, fmt.Errorf("ingest secrets: %q is neither a secret alone nor channel=secret", l)
		}
		if seen[ch] {
			return Secrets{}, fmt.Errorf("ingest secrets: channel %s is given twice", ch)
		}
		seen[ch] = true
		if err := validSecret(secret); err != nil {
			return Secrets{}, fmt.Errorf("ingest secrets: channel %s: %w", ch, err)
		}
		if ch == "*" {
			s.Default = secret
			continue
		}
		if s.PerChannel == nil {
			s.PerChannel = map[string]string{}
		}
		s.PerChannel[ch] = secret
	}
	return s, nil
}

func validSecret(s string) error {
	if len(s) < 16 {
		return errors.New("a secret must have at least 16 characters")
	}
	if strings.ContainsAny(s, "/?#@: ") {
		return errors.New("a secret must not contain / ? # @ : or spaces (it goes in URLs)")
	}
	return nil
}

// tokenPrefix starts an ingest path that carries the secret itself, for
// encoders that can send neither Basic nor Bearer credentials:
// /token/{secret}/live/{channel}.isml/Streams({stream}).
const tokenPrefix = "/token/"

// splitToken takes a token prefix off an ingest path.
func splitToken(path string) (token, rest string) {
	after, ok := strings.CutPrefix(path, tokenPrefix)
	if !ok {
		return "", path
	}
	token, rest, _ = strings.Cut(after, "/")
	return token, "/" + rest
}

// maxCredential is the longest credential authorize takes, in bytes: a
// secret goes in URLs, 16 characters at least and rarely more than 64;
// HTTP Basic adds a user name and base64. An Authorization header over
// it is refused with 431, a path token with 414, before anything is
// compared.
const maxCredential = 1024

// noSecret is what a push to a channel without a secret is compared
// with: a digest no credential has, so that such a channel is refused
// after the same work, with the same answer, as one whose secret is wrong.
var noSecret = func() [sha256.Size]byte {
	var b [sha256.Size]byte
	_, _ = rand.Read(b[:])
	return b
}()

// authorize checks the push's credentials against the channel's secret
// before anything of the body is read: nil when it may go on, else an
// *authError with the status and the reason. A push without credentials
// gets 401, one with the wrong ones 403, whether or not the channel has a
// secret of its own: the answers say nothing of which channels exist.
// Schemes are case-insensitive (Basic, Bearer); a credential longer than
// maxCredential is 431 (414 in the path).
func (rl *Relay) authorize(r *http.Request, channel, token string) error {
	if !rl.Cfg.Secrets.On() {
		return nil
	}
	if len(token) > maxCredential {
		return &authError{http.StatusRequestURITooLong, fmt.Sprintf("the ingest token in the path is over %d bytes", maxCredential)}
	}
	header := r.Header.Values("Authorization")
	if n := len(strings.Join(header, "")); n > maxCredential {
		return &authError{http.StatusRequestHeaderFieldsTooLarge, fmt.Sprintf("Authorization of %d bytes: credentials are %d bytes at most", n, maxCredential)}
	}
	got := token
	if got == "" {
		got = credential(r)
	}
	return rl.checkSecret(channel, got, got != "")
}

// checkSecret checks a credential against channel's secret (nil when
// authentication is off or it matches): none given is 401, a wrong one
// 403, whether or not the channel has a secret of its own.
func (rl *Relay) checkSecret(channel, got string, given bool) error {
	if !rl.Cfg.Secrets.On() {
		return nil
	}
	if !given {
		return &authError{http.StatusUnauthorized, "credentials required: HTTP Basic (any user name, the secret as password), a Bearer token, or /token/{secret}/live/..."}
	}
	if len(got) > maxCredential {
		return &authError{http.StatusRequestHeaderFieldsTooLarge, fmt.Sprintf("a credential of %d bytes: credentials are %d bytes at most", len(got), maxCredential)}
	}
	// Compare digests: constant time, and no length to learn. A channel
	// that has no secret (per-channel secrets and no * default) is
	// compared with one no credential matches, and refused alike.
	w := noSecret
	if want, ok := rl.Cfg.Secrets.For(channel); ok {
		w = sha256.Sum256([]byte(want))
	}
	g := sha256.Sum256([]byte(got))
	if subtle.ConstantTimeCompare(g[:], w[:]) != 1 {
		return &authError{http.StatusForbidden, "wrong ingest secret for channel " + channel}
	}
	return nil
}

// credential is the secret a request's Authorization header carries:
// the password of HTTP Basic, or a Bearer token; "" when none. Schemes
// are case-insensitive (RFC 9110 11.1).
func credential(r *http.Request) string {
	if _, pass, ok := r.BasicAuth(); ok {
		return pass
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(token)
	}
	return ""
}

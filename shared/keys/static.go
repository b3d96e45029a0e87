package keys

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/layout"
)

// maxKeyFileLine bounds a key file's line: a channel name, "=", a KID
// (at most a UUID) ":" and a key, with room for spaces and a comment.
const maxKeyFileLine = 4096

// ParseKeyFile reads a key file: one line per encrypted channel,
// "{channel}={KID hex}:{key hex}" (the KID as 32 hex digits or a UUID,
// the key as 32 hex digits), with "#" comments and blank lines. A
// channel named twice, a name that is no channel name, or a malformed
// key is an error naming the line number; an error never contains a
// key value (nor the line, which holds one).
func ParseKeyFile(r io.Reader) (map[string]cenc.Key, error) {
	keys := map[string]cenc.Key{}
	firstLine := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxKeyFileLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, key, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("key file line %d: want {channel}={KID hex}:{key hex}", n)
		}
		name = strings.TrimSpace(name)
		if !layout.ValidName(name) {
			// Not quoted: a line written wrong may hold a key before its "=".
			return nil, fmt.Errorf("key file line %d: the channel name is not one (1 to %d letters, digits, _ and -, not starting with -)", n, layout.MaxNameLen)
		}
		if first, dup := firstLine[name]; dup {
			return nil, fmt.Errorf("key file line %d: channel %s has a key already (line %d)", n, name, first)
		}
		k, err := cenc.ParseKey(key)
		if err != nil {
			// cenc.ParseKey's errors quote the KID (public) but a
			// malformed line may have the key where the KID should be:
			// say what is wrong without quoting anything.
			return nil, fmt.Errorf("key file line %d: channel %s: %s", n, name, keyProblem(key))
		}
		keys[name] = k
		firstLine[name] = n
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("key file line %d: longer than %d bytes", n+1, maxKeyFileLine)
		}
		return nil, fmt.Errorf("key file: %w", err)
	}
	return keys, nil
}

// keyProblem says what is wrong with a key written s without quoting s.
func keyProblem(s string) string {
	kid, _, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return "a key is written {KID hex}:{key hex}"
	}
	if _, err := cenc.ParseKID(strings.TrimSpace(kid)); err != nil {
		return "the KID is not 32 hex digits or a UUID"
	}
	return "the key is not 32 hex digits (AES-128)"
}

// Static is a Source of one key per channel, for the channels of a key
// file (or SSM parameter): each period is the channel's key with a
// ClearKey pssh (W3C common pssh naming the KID). Static keys do not
// rotate: every period n is the same.
type Static struct {
	keys   map[string]cenc.Period
	scheme cenc.Scheme
}

// NewStatic is the Source of keys (channel: key), encrypted with scheme.
func NewStatic(keys map[string]cenc.Key, scheme cenc.Scheme) *Static {
	s := &Static{keys: make(map[string]cenc.Period, len(keys)), scheme: scheme}
	for ch, k := range keys {
		s.keys[ch] = cenc.Period{Key: k, PSSH: [][]byte{cenc.ClearKeyPSSH(k.KID)}}
	}
	return s
}

// Plan is the scheme, without rotation, for a channel with a key.
func (s *Static) Plan(channel string) (Plan, bool) {
	if _, ok := s.keys[channel]; !ok {
		return Plan{}, false
	}
	return Plan{Scheme: s.scheme}, true
}

// Period is channel's key, whatever n; an error for a channel without one.
func (s *Static) Period(_ context.Context, channel string, _ uint64) (cenc.Period, error) {
	p, ok := s.keys[channel]
	if !ok {
		return cenc.Period{}, fmt.Errorf("channel %s: no key", channel)
	}
	// The caller gets its own slice of pssh boxes (the boxes are not
	// written to by anyone).
	p.PSSH = append([][]byte(nil), p.PSSH...)
	return p, nil
}

// SSMGetter reads an SSM parameter: aws-sdk-go-v2's *ssm.Client.
type SSMGetter interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, opts ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// LoadParameter reads the key file's text from the SSM parameter name (a
// SecureString, read decrypted) and parses it as ParseKeyFile does; its
// errors name the parameter and the line, never a key value.
func LoadParameter(ctx context.Context, c SSMGetter, name string) (map[string]cenc.Key, error) {
	out, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("keys: SSM parameter %s: %w", name, err)
	}
	if out == nil || out.Parameter == nil || out.Parameter.Value == nil {
		return nil, fmt.Errorf("keys: SSM parameter %s: no value", name)
	}
	keys, err := ParseKeyFile(strings.NewReader(*out.Parameter.Value))
	if err != nil {
		return nil, fmt.Errorf("keys: SSM parameter %s: %w", name, err)
	}
	return keys, nil
}

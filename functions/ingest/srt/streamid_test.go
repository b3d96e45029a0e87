package srt

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	gosrt "github.com/datarhei/gosrt"

	"github.com/smoothcast/smoothcast/shared/layout"
)

// A stream ID is read as the SRT Access Control guidelines write it, or
// as the bare channel name; what the relay refuses gets the guidelines'
// rejection reason.
func TestParseStreamIDFollowsTheAccessControlConvention(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want StreamID
		// refused, the reason; 0: read
		refused gosrt.RejectionReason
		says    string
	}{
		{name: "the bare channel name", in: "demo", want: StreamID{Channel: "demo"}},
		{name: "a bare name that is no channel name is refused, not echoed", in: "demo,smoothcast_secret=abcdefgh", refused: gosrt.REJX_BAD_REQUEST, says: "nor a channel name"},
		{name: "percent-encoded, as ffmpeg 5 passes a URL-encoded streamid on", in: "%23%21%3A%3Ar%3Ddemo%2Cm%3Dpublish", want: StreamID{Channel: "demo"}},
		{name: "percent-encoded in lower case", in: "%23%21%3a%3ar%3ddemo", want: StreamID{Channel: "demo"}},
		{name: "percent-encoded badly", in: "%23%21%3A%3Ar%3Ddemo%2", refused: gosrt.REJX_BAD_REQUEST, says: "percent-encoded"},
		{name: "r and m=publish", in: "#!::r=demo,m=publish", want: StreamID{Channel: "demo"}},
		{name: "m may be left out: the relay only takes publishes", in: "#!::r=demo", want: StreamID{Channel: "demo"}},
		{name: "keys in any order, the secret in smoothcast_secret", in: "#!::m=publish,smoothcast_secret=s3cr=t,r=news",
			want: StreamID{Channel: "news", Secret: "s3cr=t"}},
		{name: "t=stream is taken", in: "#!::r=demo,t=stream", want: StreamID{Channel: "demo"}},
		{name: "u, h, s and unknown keys are tolerated", in: "#!::u=obs,h=example.com,s=123,acme_x=1,r=demo", want: StreamID{Channel: "demo"}},
		{name: "an empty value is a value", in: "#!::r=demo,smoothcast_secret=", want: StreamID{Channel: "demo"}},
		{name: "empty", in: "", refused: gosrt.REJX_BAD_REQUEST, says: "empty"},
		{name: "no r", in: "#!::m=publish", refused: gosrt.REJX_BAD_REQUEST, says: "no channel"},
		{name: "an empty r", in: "#!::r=,m=publish", refused: gosrt.REJX_BAD_REQUEST, says: "no channel"},
		{name: "nothing after the prefix", in: "#!::", refused: gosrt.REJX_BAD_REQUEST, says: "pair 1 is no key=value pair"},
		{name: "a pair without =", in: "#!::r=demo,publish", refused: gosrt.REJX_BAD_REQUEST, says: "pair 2 is no key=value pair"},
		{name: "an empty key", in: "#!::r=demo,=x", refused: gosrt.REJX_BAD_REQUEST, says: "pair 2"},
		{name: "a trailing comma", in: "#!::r=demo,", refused: gosrt.REJX_BAD_REQUEST, says: "pair 2"},
		{name: "a key twice", in: "#!::r=a,r=b", refused: gosrt.REJX_BAD_REQUEST, says: `key "r" given twice`},
		{name: "the nested form", in: "#!:{r=demo}", refused: gosrt.REJX_BAD_REQUEST, says: `only the "#!::" form`},
		{name: "m=request: the relay serves no stream", in: "#!::r=demo,m=request", refused: gosrt.REJX_BAD_MODE, says: "m=request"},
		{name: "m=bidirectional", in: "#!::r=demo,m=bidirectional", refused: gosrt.REJX_BAD_MODE, says: "m=bidirectional"},
		{name: "t=file", in: "#!::r=demo,t=file", refused: gosrt.REJX_NOTSUP_MEDIA, says: "t=file"},
		{name: "over 512 bytes", in: "#!::r=" + strings.Repeat("a", 507), refused: gosrt.REJX_BAD_REQUEST, says: "513 bytes"},
		{name: "a long value is clipped in the message", in: "#!::r=demo,m=" + strings.Repeat("x", 100), refused: gosrt.REJX_BAD_MODE,
			says: "m=" + strings.Repeat("x", 32) + "…:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStreamID(tc.in)
			if tc.refused == 0 {
				if err != nil || got != tc.want {
					t.Fatalf("ParseStreamID(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
				}
				return
			}
			var sid *streamIDError
			if !errors.As(err, &sid) || !errors.Is(err, ErrStreamID) || sid.reason != tc.refused || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("ParseStreamID(%q) = %+v, %v; want a refusal %s saying %q", tc.in, got, err, reasonName(tc.refused), tc.says)
			}
		})
	}
}

// No stream ID a caller sends makes the parser fail otherwise than with a
// refusal, nor puts the secret in its error; what it reads is what the
// caller wrote.
func FuzzParseStreamID(f *testing.F) {
	for _, s := range []string{"demo", "#!::r=demo,m=publish", "#!::r=news,m=publish,smoothcast_secret=abc,u=x",
		"#!::r=a,r=b", "#!:{r=x}", "#!::", "#!::r=demo,t=file", "", "#!::m=request,r=x", "#!::,,,=", "%23%21%3A%3Ar%3Dx"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseStreamID(s)
		if err != nil {
			var sid *streamIDError
			if !errors.As(err, &sid) || sid.reason == 0 {
				t.Fatalf("ParseStreamID(%q): %v is no refusal with a reason", s, err)
			}
			if sec := secretIn(s); len(sec) >= 8 && strings.Contains(err.Error(), sec) {
				t.Fatalf("ParseStreamID(%q): the secret is in the error %q", s, err)
			}
			if !utf8.ValidString(err.Error()) && utf8.ValidString(s) {
				t.Fatalf("ParseStreamID(%q): the error %q is not UTF-8", s, err)
			}
			return
		}
		if id.Channel == "" || len(s) > maxStreamID {
			t.Fatalf("ParseStreamID(%q) = %+v: read with no channel, or over the limit", s, id)
		}
		if strings.HasPrefix(s, "%23%21") {
			return // decoded first
		}
		if !strings.HasPrefix(s, "#!") && (id.Channel != s || id.Secret != "" || !layout.ValidName(s)) {
			t.Fatalf("ParseStreamID(%q) = %+v: a bare name is the channel, whole", s, id)
		}
		if strings.HasPrefix(s, "#!::") && (!strings.Contains(s, "r="+id.Channel) || id.Secret != "" && !strings.Contains(s, SecretKey+"="+id.Secret)) {
			t.Fatalf("ParseStreamID(%q) = %+v: not what the caller wrote", s, id)
		}
	})
}

// secretIn is the value of smoothcast_secret in s, if any.
func secretIn(s string) string {
	_, after, ok := strings.Cut(s, SecretKey+"=")
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(after, ",")
	return v
}

package rtmp

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// A publish URL (the connect's tcUrl joined with the publish's stream
// key) names the application live, a channel, an encoder's name within
// it at most, and the channel's secret after ?secret=; anything else is
// refused with a reason that says what to type, and never quotes the
// secret.
func TestParseStreamKeyTakesWhatEncodersType(t *testing.T) {
	const secret = "s3cr&t=0123456789+%zz" // & = + and % are a secret's characters
	cases := []struct {
		name string
		url  string
		want StreamKey
		err  string // "" parses
	}{
		{name: "OBS without authentication", url: "rtmp://h:1935/live/news", want: StreamKey{Channel: "news"}},
		{name: "OBS with the secret in the key", url: "rtmp://h:1935/live/news?secret=" + secret, want: StreamKey{Channel: "news", Secret: secret}},
		{name: "an encoder's name for redundant encoders", url: "rtmp://h/live/news/backup-2?secret=" + secret, want: StreamKey{Channel: "news", Name: "backup-2", Secret: secret}},
		{name: "the application in any case", url: "rtmp://h/LIVE/news", want: StreamKey{Channel: "news"}},
		{name: "a Server URL ending in a slash", url: "rtmp://h/live//news", want: StreamKey{Channel: "news"}},
		{name: "another application", url: "rtmp://h/app/news", err: `application "app": this relay takes /live`},
		{name: "no channel", url: "rtmp://h/live", err: "no channel"},
		{name: "the secret in the Server field", url: "rtmp://h/live?secret=" + secret + "/news", err: "no channel"},
		{name: "three names", url: "rtmp://h/live/news/a/b", err: "3 names after /live"},
		{name: "a channel no key can carry", url: "rtmp://h/live/news.flv2", err: `channel "news.flv2": letters, digits, - and _ only`},
		{name: "an encoder name no key can carry", url: "rtmp://h/live/news/a.b", err: `encoder name "a.b"`},
		{name: "a query that is not the secret", url: "rtmp://h/live/news?token=" + secret, err: "after the ? the key takes secret={secret} and nothing else"},
		{name: "an empty secret", url: "rtmp://h/live/news?secret=", err: "after the ?"},
		{name: "a lone ?", url: "rtmp://h/live/news?", err: "after the ?"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseStreamKey(u)
			if tc.err != "" {
				if err == nil || !errors.Is(err, errKey) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseStreamKey = %+v, %v; want an error saying %q", got, err, tc.err)
				}
				if strings.Contains(err.Error(), "s3cr") {
					t.Errorf("the refusal quotes the secret: %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseStreamKey = %+v, %v; want %+v", got, err, tc.want)
			}
			if s := got.String(); strings.Contains(s, "s3cr") {
				t.Errorf("String() = %q shows the secret", s)
			}
		})
	}
}

// What the log and /status show of a text that quotes a publish URL has
// the secret hidden, wherever the library put it.
func TestSecretsAreHiddenInText(t *testing.T) {
	for _, in := range []string{
		`invalid connect command: &{tcUrl:rtmp://h/live?secret=abc&d=1 app:live}`,
		`parse "rtmp://h/live/news?SECRET=abc%zz": invalid URL escape`,
	} {
		got := hideSecrets(in)
		if strings.Contains(got, "abc") || !strings.Contains(got, "secret=(hidden)") {
			t.Errorf("hideSecrets(%q) = %q", in, got)
		}
		if err := withoutSecrets(errors.New(in)); strings.Contains(err.Error(), "abc") {
			t.Errorf("withoutSecrets: %v", err)
		}
	}
}

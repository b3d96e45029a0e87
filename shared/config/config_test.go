package config

import (
	"bytes"
	"flag"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool/logtest"
)

// env is an environment for a Set under test.
func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// relaySet declares settings shaped like the relay's.
func relaySet(vars map[string]string) (*Set, *time.Duration, *string, *string, *string) {
	s := New("relay", Prefix)
	s.LookupEnv = env(vars)
	s.SetOutput(&bytes.Buffer{})
	d := s.Duration("read-timeout", 30*time.Second, "drop a silent encoder after this long")
	param := s.String("secret-parameter", "", "SSM parameter")
	s.Rename("secret-parameter", "SMOOTHCAST_INGEST_SECRET_PARAMETER", "SMOOTHCAST_SECRET_PARAMETER")
	key := s.String("key", "", "a secret on the command line")
	s.Secret("key")
	secret := s.EnvSecret("SMOOTHCAST_INGEST_SECRET", "the secret itself")
	return s, d, param, key, secret
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name      string
		env       map[string]string
		args      []string
		timeout   time.Duration
		parameter string
		warning   string // "": none
		err       string // "": none; else what the error must say
	}{
		{"without a variable the default stands", nil, nil, 30 * time.Second, "", "", ""},
		{"a variable named after the flag sets it", map[string]string{"SMOOTHCAST_READ_TIMEOUT": "5s"}, nil, 5 * time.Second, "", "", ""},
		{"the command line wins over the variable", map[string]string{"SMOOTHCAST_READ_TIMEOUT": "5s"}, []string{"-read-timeout", "7s"}, 7 * time.Second, "", "", ""},
		{"a bad value is an error naming the variable", map[string]string{"SMOOTHCAST_READ_TIMEOUT": "soon"}, nil, 0, "", "", `SMOOTHCAST_READ_TIMEOUT="soon": want a Go duration such as 30s or 10m`},
		{"a bad command line is a usage error naming the flag", nil, []string{"-read-timeout", "x"}, 0, "", "", "usage: invalid value \"x\" for flag -read-timeout"},
		{"a renamed flag reads its own variable", map[string]string{"SMOOTHCAST_INGEST_SECRET_PARAMETER": "/a"}, nil, 30 * time.Second, "/a", "", ""},
		{"a deprecated name still works, with a warning", map[string]string{"SMOOTHCAST_SECRET_PARAMETER": "/b"}, nil, 30 * time.Second, "/b", "SMOOTHCAST_SECRET_PARAMETER is deprecated: set SMOOTHCAST_INGEST_SECRET_PARAMETER instead", ""},
		{"the current name wins over a deprecated one", map[string]string{"SMOOTHCAST_SECRET_PARAMETER": "/b", "SMOOTHCAST_INGEST_SECRET_PARAMETER": "/a"}, nil, 30 * time.Second, "/a", "SMOOTHCAST_SECRET_PARAMETER is deprecated and ignored", ""},
		{"the command line wins over a deprecated name, silently", map[string]string{"SMOOTHCAST_SECRET_PARAMETER": "/b"}, []string{"-secret-parameter", "/c"}, 30 * time.Second, "/c", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, d, param, _, _ := relaySet(tc.env)
			err := s.Parse(tc.args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one saying %s", err, tc.err)
				}
				return
			}
			if err != nil || *d != tc.timeout || *param != tc.parameter {
				t.Fatalf("read-timeout %v, secret-parameter %q, %v; want %v, %q", *d, *param, err, tc.timeout, tc.parameter)
			}
			if got := strings.Join(s.warnings, "\n"); tc.warning == "" && got != "" || !strings.Contains(got, tc.warning) {
				t.Errorf("warnings %q, want %q", got, tc.warning)
			}
		})
	}
}

// A secret's bad value never reaches the error.
func TestBadSecretIsMasked(t *testing.T) {
	s := New("push", Prefix)
	s.LookupEnv = env(map[string]string{"SMOOTHCAST_INGEST_SECRET": "hunter2"})
	s.Int("secret", 0, "a secret that must be a number")
	s.Rename("secret", "SMOOTHCAST_INGEST_SECRET")
	s.Secret("secret")
	err := s.Parse(nil)
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "SMOOTHCAST_INGEST_SECRET") {
		t.Errorf("error %v: want one naming SMOOTHCAST_INGEST_SECRET without its value", err)
	}
}

// A command's own prefix names its variables (smoothcast check -base is
// SMOOTHCAST_CHECK_BASE).
func TestCommandPrefix(t *testing.T) {
	s := New("check", "SMOOTHCAST_CHECK_")
	s.LookupEnv = env(map[string]string{"SMOOTHCAST_CHECK_BASE": "https://cdn.example", "SMOOTHCAST_BASE": "wrong"})
	base := s.String("base", "http://127.0.0.1:8081", "playback base URL")
	if err := s.Parse(nil); err != nil || *base != "https://cdn.example" || s.Variable("base") != "SMOOTHCAST_CHECK_BASE" {
		t.Errorf("-base %q (%s), %v", *base, s.Variable("base"), err)
	}
}

// The effective configuration is one line: every setting, secrets
// masked, which variables set what, and the caller's own facts; then one
// warning per deprecated variable in use.
func TestLogMasksSecrets(t *testing.T) {
	s, _, _, _, secret := relaySet(map[string]string{
		"SMOOTHCAST_READ_TIMEOUT": "5s", "SMOOTHCAST_SECRET_PARAMETER": "/p", "SMOOTHCAST_KEY": "hunter2", "SMOOTHCAST_INGEST_SECRET": "s3cret",
	})
	if err := s.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if *secret != "s3cret" {
		t.Fatalf("SMOOTHCAST_INGEST_SECRET read as %q", *secret)
	}
	rec := logtest.New()
	s.Log(slog.New(rec), "configuration", "listening", "127.0.0.1:8080")
	if len(rec.Records()) != 2 || rec.Records()[0].Level != slog.LevelInfo || rec.Records()[1].Level != slog.LevelWarn {
		t.Fatalf("%d log lines, want the configuration and one warning: %v", len(rec.Records()), rec.Records())
	}
	got := map[string]string{}
	rec.Records()[0].Attrs(func(a slog.Attr) bool {
		got[a.Key] = a.Value.String()
		return true
	})
	want := map[string]string{
		"read_timeout": "5s", "secret_parameter": "/p", "key": masked, "ingest_secret": masked, "listening": "127.0.0.1:8080",
		"from_env": "[SMOOTHCAST_INGEST_SECRET SMOOTHCAST_KEY SMOOTHCAST_READ_TIMEOUT SMOOTHCAST_SECRET_PARAMETER]",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("logged %s=%q, want %q", k, got[k], v)
		}
	}
	for k, v := range got {
		if strings.Contains(v, "hunter2") || strings.Contains(v, "s3cret") {
			t.Errorf("logged the secret: %s=%q", k, v)
		}
	}
	if !strings.Contains(rec.Records()[1].Message, "SMOOTHCAST_SECRET_PARAMETER is deprecated") {
		t.Errorf("warning %q", rec.Records()[1].Message)
	}
}

// -h lists each flag's variable and the variables that have no flag.
func TestUsageNamesTheVariables(t *testing.T) {
	s, _, _, _, _ := relaySet(nil)
	var out bytes.Buffer
	s.SetOutput(&out)
	if err := s.Parse([]string{"-h"}); err != flag.ErrHelp {
		t.Fatalf("-h: %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"($SMOOTHCAST_READ_TIMEOUT)", "($SMOOTHCAST_INGEST_SECRET_PARAMETER)", "Environment only:", "SMOOTHCAST_INGEST_SECRET\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out.String())
		}
	}
}

// Sizes are read with their binary units, and written back with the
// largest that divides them; anything else is refused, naming the variable.
func TestBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Bytes
		text string
	}{
		{"768MiB", 768 << 20, "768MiB"}, {"1GiB", 1 << 30, "1GiB"}, {"65536", 64 << 10, "64KiB"},
		{"100", 100, "100"}, {"3 KiB", 3 << 10, "3KiB"}, {"0", 0, "0"}, {"12B", 12, "12"},
	} {
		var b Bytes
		if err := b.Set(tc.in); err != nil || b != tc.want || b.String() != tc.text {
			t.Errorf("%q: %d %q %v, want %d %q", tc.in, b, b.String(), err, tc.want, tc.text)
		}
	}
	for _, bad := range []string{"", "1GB", "-1", "1.5GiB", "9999999999GiB", "MiB"} {
		var b Bytes
		if err := b.Set(bad); err == nil {
			t.Errorf("%q read as %d", bad, b)
		}
	}
	s := New("relay", Prefix)
	s.LookupEnv = env(map[string]string{"SMOOTHCAST_MEMORY_BUDGET": "lots"})
	var b Bytes
	s.BytesVar(&b, "memory-budget", 1<<30, "memory")
	if err := s.Parse(nil); err == nil || !strings.Contains(err.Error(), "SMOOTHCAST_MEMORY_BUDGET") || !strings.Contains(err.Error(), "768MiB") {
		t.Errorf("a bad size: %v", err)
	}
}

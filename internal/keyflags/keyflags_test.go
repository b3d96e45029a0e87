package keyflags

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/config"
	"github.com/smoothcast/smoothcast/shared/keys"
)

// The flags make the key source they describe, and refuse the
// combinations that cannot work with an error naming the flag.
func TestFlagsMakeTheirKeySource(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keys.txt")
	if err := os.WriteFile(keyFile, []byte("# premium events\npremium=00112233445566778899aabbccddeeff:0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badFile := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(badFile, []byte("premium=0011:0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noSSM := func(context.Context) (keys.SSMGetter, error) { return nil, errors.New("no SSM here") }
	for _, tc := range []struct {
		name    string
		args    []string
		from    string // in the description
		plan    string // channel whose plan is asked
		scheme  cenc.Scheme
		rotate  int
		err     string
		noPlan  string // a channel that must be clear
		nilSrc  bool
		withSSM bool
	}{
		{name: "nothing: every channel clear", nilSrc: true, from: "none"},
		{name: "a key file", args: []string{"-key-file", keyFile}, from: "key file (1 channels, cbcs)", plan: "premium", scheme: cenc.CBCS, noPlan: "demo"},
		{name: "a key file with cenc", args: []string{"-key-file", keyFile, "-encryption-scheme", "cenc"}, plan: "premium", scheme: cenc.CENC},
		{name: "a key file that is not one", args: []string{"-key-file", badFile}, err: "line 1"},
		{name: "a key file that is not there", args: []string{"-key-file", filepath.Join(dir, "none")}, err: "-key-file"},
		{name: "a bad scheme", args: []string{"-key-file", keyFile, "-encryption-scheme", "aes128"}, err: "-encryption-scheme"},
		{name: "static keys and a key server", args: []string{"-key-file", keyFile, "-speke-url", "https://keys.example.com/speke"}, err: "give one"},
		{name: "a key parameter without SSM", args: []string{"-key-parameter", "/smoothcast/keys"}, withSSM: true, err: "no SSM here"},
		{name: "rotation without a key server", args: []string{"-key-rotation-fragments", "10"}, err: "-key-rotation-fragments"},
		{name: "a key server", args: []string{"-speke-url", "https://keys.example.com/speke", "-speke-systems", "widevine,playready", "-key-rotation-fragments", "30", "-speke-channels", "premium,sport"},
			from: "SPEKE v2 key server https://keys.example.com/speke (widevine+playready, cbcs, rotation every 30 fragments)", plan: "premium", scheme: cenc.CBCS, rotate: 30, noPlan: "demo"},
		{name: "a key server for every channel", args: []string{"-speke-url", "https://keys.example.com/speke"}, plan: "anything", scheme: cenc.CBCS},
		{name: "an unknown DRM system", args: []string{"-speke-url", "https://keys.example.com/speke", "-speke-systems", "widevine,nagra"}, err: "-speke-systems"},
		{name: "ClearKey from a key server", args: []string{"-speke-url", "https://keys.example.com/speke", "-speke-systems", "clearkey"}, err: "ClearKey"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := config.New("test", config.Prefix)
			fs.LookupEnv = func(string) (string, bool) { return "", false }
			var o Options
			o.Define(fs, tc.withSSM)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			src, from, err := o.Source(context.Background(), slog.New(slog.DiscardHandler), noSSM)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one naming %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "0123456789abcdef") {
					t.Errorf("the error has a key's value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.from != "" && from != tc.from {
				t.Errorf("described as %q, want %q", from, tc.from)
			}
			if tc.nilSrc {
				if src != nil {
					t.Errorf("a key source without a flag: %v", src)
				}
				return
			}
			p, ok := src.Plan(tc.plan)
			if !ok || p.Scheme != tc.scheme || p.RotateEvery != tc.rotate {
				t.Errorf("plan of %s: %+v %v, want %s every %d", tc.plan, p, ok, tc.scheme, tc.rotate)
			}
			if tc.noPlan != "" {
				if _, ok := src.Plan(tc.noPlan); ok {
					t.Errorf("%s is encrypted", tc.noPlan)
				}
			}
		})
	}
}

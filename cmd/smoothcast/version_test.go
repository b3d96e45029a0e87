package main

import (
	"bytes"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionText(t *testing.T) {
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want []string
	}{
		{
			name: "release, clean",
			bi: &debug.BuildInfo{
				GoVersion: "go1.26.8",
				Main:      debug.Module{Path: "github.com/smoothcast/smoothcast", Version: "v1.2.3"},
				Settings: []debug.BuildSetting{
					{Key: "vcs.revision", Value: "0123456789abcdef"},
					{Key: "vcs.time", Value: "2026-11-25T12:00:00Z"},
					{Key: "vcs.modified", Value: "false"},
					{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"},
				},
			},
			ok: true,
			want: []string{"smoothcast v1.2.3\n", "module    github.com/smoothcast/smoothcast\n", "revision  0123456789abcdef\n",
				"time      2026-11-25T12:00:00Z\n", "dirty     no\n", "go        go1.26.8 linux/arm64\n"},
		},
		{
			name: "source tree, dirty",
			bi: &debug.BuildInfo{
				GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
				Settings: []debug.BuildSetting{{Key: "vcs.modified", Value: "true"}},
			},
			ok:   true,
			want: []string{"smoothcast (devel)\n", "revision  (unknown)\n", "dirty     yes (uncommitted changes)\n"},
		},
		{
			name: "no VCS information",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8"},
			ok:   true,
			want: []string{"smoothcast (unknown)\n", "dirty     unknown\n"},
		},
		{name: "no build information", ok: false, want: []string{"no build information"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := versionText(tc.bi, tc.ok)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("versionText lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

// TestVersion runs the command in this test binary, which has build
// information: at least the Go version that built it.
func TestVersion(t *testing.T) {
	var b bytes.Buffer
	if err := version(nil, &b); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "smoothcast ") || !strings.Contains(b.String(), "go        "+runtime.Version()+" ") {
		t.Errorf("version printed:\n%s", b.String())
	}
	if err := version([]string{"extra"}, &b); err != errUsage {
		t.Errorf("version extra: %v, want errUsage", err)
	}
}

// Package testtool helps tests find the external programs they drive
// (ffmpeg, ffprobe, Chromium, GStreamer): a missing tool skips the test on
// a developer machine and fails it in CI (CI=true), where the tool must
// have been installed.
package testtool

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Require returns the path of the named program, or ends the test.
func Require(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required in CI but not on PATH (.ci/run installs it): %v", name, err)
	}
	t.Skipf("%s not on PATH: install it (as root: scripts/install-deps.sh, which make test runs itself as root) to run this test", name)
	return ""
}

// RequireGStreamer returns the path of gst-launch-1.0 once gst-inspect-1.0
// finds every named element, or ends the test.
func RequireGStreamer(t testing.TB, elements ...string) string {
	t.Helper()
	launch := Require(t, "gst-launch-1.0")
	inspect := Require(t, "gst-inspect-1.0")
	var missing []string
	for _, e := range elements {
		if exec.Command(inspect, "--exists", e).Run() != nil {
			missing = append(missing, e)
		}
	}
	if len(missing) == 0 {
		return launch
	}
	msg := fmt.Sprintf("GStreamer elements %v are missing: install gstreamer1.0-plugins-base, -good, -bad and gstreamer1.0-libav (as root: scripts/install-deps.sh)", missing)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

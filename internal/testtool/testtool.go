// Package testtool helps tests find the external programs they drive
// (ffmpeg, ffprobe): a missing tool skips the test on a developer machine
// and fails it in CI (CI=true), where the tool must have been installed.
package testtool

import (
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
	t.Skipf("%s not on PATH: install it (apt-get install -y ffmpeg) to run this test", name)
	return ""
}

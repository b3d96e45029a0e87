package e2e

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool"
)

// The relay is killed (SIGKILL) and started again while ffmpeg uploads
// (-f hls -method PUT, with -ignore_io_errors as an encoder on a network
// output is run): the new relay restores the uploading renditions from
// the init segments its predecessor recorded, so the stream goes on
// without the encoder being restarted. What is lost is what was in flight
// when the relay died; the event, once ended, decodes from the first
// segment to the last.
func TestUploadsGoOnAfterTheRelayIsKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	st := startStack(t)
	rp := startRelay(t, buildRelay(t), st)
	const seconds = 20
	cmd := ffmpegUpload(context.Background(), ffmpeg, "http://"+rp.addr+"/live/uprestart.isml", "hls", seconds)
	// Before the output URL: go on when a PUT fails.
	cmd.Args = slices.Insert(cmd.Args, len(cmd.Args)-1, "-ignore_io_errors", "1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(9 * time.Second)
	rp.kill9()
	rp.restart()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ffmpeg -f hls -method PUT: %v\n%s", err, stderr.String())
	}
	base := st.EdgeURL + "/live/uprestart.isml/"
	waitForVOD(t, st, base)
	// About 9 s before the kill, 11 s after; a segment of each rendition
	// may have been in flight.
	frames := videoFrames(t, ffmpeg, base+"master.m3u8")
	t.Logf("decoded %d video frames of %d pushed", frames, seconds*25)
	if frames < (seconds-5)*25 {
		t.Errorf("decoded %d video frames, want at least %d: the uploads did not go on after the relay started again", frames, (seconds-5)*25)
	}
}

// videoFrames is how many frames of its first video stream ffmpeg decodes
// from url, with no error.
func videoFrames(t *testing.T, ffmpeg, url string) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(framecrc(t, ffmpeg, url, []string{"0:v:0"}), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			n++
		}
	}
	return n
}

package e2e

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
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
	besideAnother(t)
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
	// Killed once the relay has recorded the renditions, the channel is
	// live in the function's state and each rendition has three segments
	// (6 s) stored: what a relay started again needs to restore them.
	waitUntil(t, time.Minute, "three segments of each rendition stored and the renditions recorded", func() bool {
		return uploadsRecorded(t, st, "uprestart") && fewestFragments(t, st, "uprestart", 3) >= 3
	})
	rp.kill9()
	rp.restart()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ffmpeg -f hls -method PUT: %v\n%s", err, stderr.String())
	}
	base := st.EdgeURL + "/live/uprestart.isml/"
	waitForVOD(t, st, base)
	// At least 6 s before the kill, the rest after; a segment of each
	// rendition may have been in flight.
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

// waitUntil polls ok until it holds, or ends the test after d.
func waitUntil(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !ok(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%v without %s", d, what)
		}
	}
}

// uploadsRecorded reports whether the relay recorded channel's uploaded
// init segments and the function's state of channel exists.
func uploadsRecorded(t *testing.T, st *stack.Stack, channel string) bool {
	t.Helper()
	for _, key := range []string{layout.UploadsStateKey(channel), layout.ChannelStateKey(channel)} {
		if _, err := st.Store.Get(context.Background(), key); err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				t.Fatal(err)
			}
			return false
		}
	}
	return true
}

// fewestFragments is how many fragments the track of channel with the
// fewest has stored, of tracks (0 until there are that many tracks).
func fewestFragments(t *testing.T, st *stack.Stack, channel string, tracks int) int {
	t.Helper()
	perTrack := map[string]int{}
	err := st.Store.List(context.Background(), layout.LivePrefix+channel+".isml/", func(page []store.Listed) error {
		for _, o := range page {
			if obj, err := layout.Parse(o.Key); err == nil && obj.Kind == layout.KindFragment {
				perTrack[obj.Track.String()]++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(perTrack) < tracks {
		return 0
	}
	return slices.Min(slices.Collect(maps.Values(perTrack)))
}

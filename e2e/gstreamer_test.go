package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool"
)

// gstRun is how long each GStreamer pipeline plays the live stream: enough
// for 10 s of video after the demuxer's start-up.
const gstRun = 18 * time.Second

// GStreamer's adaptive demuxers (Debian's 1.22: mssdemux and dashdemux from
// plugins-bad, hlsdemux) pull a live ffmpeg push through the edge and
// decode at least 10 s of video in real time (sync=true), with no error
// from GStreamer. The pipelines are the ones a user would type; the test
// reads the video sink's per-buffer messages (gst-launch -v). Meanwhile
// every fragment any manifest lists is fetched the moment it is listed.
func TestGStreamerDemuxersPlayLive(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	launch := testtool.RequireGStreamer(t, "souphttpsrc", "mssdemux", "hlsdemux", "dashdemux",
		"decodebin", "avdec_h264", "qtdemux", "fakesink")
	st := startStackWith(t, "")

	pushErr := startLivePush(t, ffmpeg, st, "gst", 45)
	ctx := context.Background()

	// The three play at once (not as parallel subtests, which -parallel
	// would queue on a 2-core machine).
	base := st.EdgeURL + "/live/gst.isml/"
	refs := watchReferences(base)
	cases := []struct{ demux, manifest string }{
		{"mssdemux", "Manifest"},
		{"hlsdemux", "master.m3u8"},
		{"dashdemux", "manifest.mpd"},
	}
	results := make([]gstResult, len(cases))
	var wg sync.WaitGroup
	for i, tc := range cases {
		wg.Go(func() { results[i] = gstPlay(ctx, launch, base+tc.manifest, tc.demux) })
	}
	wg.Wait()
	refs.stop(t)
	for i, tc := range cases {
		got := results[i]
		t.Logf("%s: %d video buffers, pts %v to %v", tc.demux, got.buffers, got.first, got.last)
		if got.early != nil {
			t.Errorf("%s: gst-launch ended before %v: %v\n%s", tc.demux, gstRun, got.early, got.tail)
		}
		if span := got.last - got.first; got.buffers < 250 || span < 10*time.Second {
			t.Errorf("%s decoded %d video buffers spanning %v; want 10 s (250 at 25 fps)\n%s", tc.demux, got.buffers, span, got.tail)
		}
		if len(got.errors) > 0 {
			t.Errorf("%s: GStreamer errors:\n%s", tc.demux, strings.Join(got.errors, "\n"))
		}
	}
	if t.Failed() {
		t.Logf("ffmpeg: %s", pushErr.String())
	}
}

// gstResult is what a gst-launch run decoded.
type gstResult struct {
	buffers     int
	first, last time.Duration // video presentation times
	errors      []string      // ERROR messages and ERROR-level log lines
	early       error         // gst-launch's exit, if it ended before gstRun
	tail        string        // the end of the output, for failures
}

var gstPTS = regexp.MustCompile(`pts: (\d+):(\d\d):(\d\d)\.(\d{9})`)

// gstPlay runs demux on url for gstRun: video and audio each through
// decodebin into a synchronised fakesink, video at the lowest bitrate
// (connection-speed) so that gst-launch's one-shot linking never meets a
// representation switch.
func gstPlay(ctx context.Context, launch, url, demux string) gstResult {
	rctx, cancel := context.WithTimeout(ctx, gstRun)
	defer cancel()
	pipeline := fmt.Sprintf("souphttpsrc location=%s ! %s name=d connection-speed=500 "+
		"d. ! queue ! decodebin ! video/x-raw ! fakesink name=v sync=true silent=false "+
		"d. ! queue ! decodebin ! audio/x-raw ! fakesink sync=true", url, demux)
	cmd := exec.CommandContext(rctx, launch, append([]string{"-v"}, strings.Fields(pipeline)...)...)
	cmd.Env = append(os.Environ(), "GST_DEBUG=*:1", "GST_DEBUG_NO_COLOR=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var r gstResult
	if rctx.Err() == nil {
		r.early = fmt.Errorf("exit: %v", err)
	}
	r.first = -1
	for line := range strings.Lines(out.String()) {
		switch {
		case strings.Contains(line, "v: last-message = chain"):
			m := gstPTS.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			pts, _ := time.ParseDuration(m[1] + "h" + m[2] + "m" + m[3] + "s" + m[4] + "ns")
			if r.first < 0 {
				r.first = pts
			}
			r.last = max(r.last, pts)
			r.buffers++
		case strings.HasPrefix(line, "ERROR") || strings.Contains(line, " ERROR ") || strings.Contains(line, "CRITICAL"):
			r.errors = append(r.errors, strings.TrimSpace(line))
		}
	}
	if r.first < 0 {
		r.first = 0
	}
	s := out.String()
	r.tail = s[max(0, len(s)-3000):]
	return r
}

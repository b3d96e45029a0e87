package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/check"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/manifest/smooth"
)

// ffmpegTSUpload is ffmpeg's default HLS output, uploaded: MPEG-TS
// segments of muxed H.264 and AAC, each PUT under the channel with its
// media playlist. variants: two renditions, each its own video and audio
// (-var_stream_map "v:0,a:0 v:1,a:1") and a multivariant playlist; else
// one, as `ffmpeg ... -f hls -method PUT .../index.m3u8` sends it.
func ffmpegTSUpload(ctx context.Context, ffmpeg, channelURL string, seconds int, variants bool) *exec.Cmd {
	args := []string{"-hide_banner", "-loglevel", "error",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
		"-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-c:a", "aac", "-b:a", "96k", "-t", strconv.Itoa(seconds), "-method", "PUT",
		"-f", "hls", "-hls_time", "2", "-hls_list_size", "5", "-hls_flags", "delete_segments"}
	if !variants {
		args = append(args, "-b:v", "800k", channelURL+"/index.m3u8")
		return exec.CommandContext(ctx, ffmpeg, args...)
	}
	args = append(args, "-map", "0:v", "-map", "1:a", "-map", "0:v", "-map", "1:a",
		"-b:v:0", "800k", "-b:v:1", "300k", "-s:v:1", "320x180",
		"-var_stream_map", "v:0,a:0 v:1,a:1", "-master_pl_name", "master.m3u8", channelURL+"/stream_%v.m3u8")
	return exec.CommandContext(ctx, ffmpeg, args...)
}

// runTSUpload runs ffmpegTSUpload to its end.
func runTSUpload(t *testing.T, ffmpeg, channelURL string, seconds int, variants bool) {
	t.Helper()
	cmd := ffmpegTSUpload(context.Background(), ffmpeg, channelURL, seconds, variants)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffmpeg -f hls -method PUT: %v\n%s", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("ffmpeg reported errors uploading:\n%s", stderr.String())
	}
}

// checkArchive checks a channel whose encoder ended: every format turned
// VOD with the given discontinuities, smoothcast check finds nothing
// missing, every Smooth fragment is there, and ffmpeg decodes the whole
// archive through HLS and DASH; it returns the final Smooth manifest.
func checkArchive(t *testing.T, st *stack.Stack, ffmpeg, channel string, video, audio time.Duration, discontinuities int) *smooth.Manifest {
	t.Helper()
	base := st.EdgeURL + "/live/" + channel + ".isml/"
	m := waitForVOD(t, st, base)
	checkVODManifests(t, base, discontinuities)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := check.Run(ctx, nil, st.EdgeURL, channel, check.Options{})
	if err != nil || !rep.OK() {
		t.Fatalf("smoothcast check: %v %v", err, rep.Problems)
	}
	checkSmoothFragmentsExist(t, base, m)
	checkDecodeSpan(t, ffmpeg, base+"master.m3u8", video, audio, [][]string{{"0:v:0", "0:a:0"}})
	checkDecodeSpan(t, ffmpeg, base+"manifest.mpd", video, audio, [][]string{{"0:v:0"}, {"0:a:0"}})
	return m
}

// ffmpeg's default HLS output (MPEG-TS segments, video and audio muxed),
// uploaded with -method PUT, one rendition or -var_stream_map's two:
// the channel plays in Smooth, HLS and DASH, each variant's video and
// audio becoming tracks of their own, and ffmpeg decodes the whole
// archive once the encoder's playlists end it.
func TestFFmpegTSUploadPlaysInEveryFormat(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	for _, tc := range []struct {
		name     string
		variants bool
		videos   int // video quality levels
	}{
		{"muxed", false, 1},
		{"variants", true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := startStack(t)
			channel := "ts" + tc.name
			runTSUpload(t, ffmpeg, st.IngestURL+"/live/"+channel+".isml", pushSeconds, tc.variants)
			m := checkArchive(t, st, ffmpeg, channel, pushSeconds*time.Second, pushSeconds*time.Second, 0)
			for _, si := range m.Streams {
				if si.Type == "video" && len(si.Levels) != tc.videos {
					t.Errorf("%d video quality levels, want %d", len(si.Levels), tc.videos)
				}
				t.Logf("%s: %d quality levels", si.Type, len(si.Levels))
			}
		})
	}
}

package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"strconv"
	"testing"

	"github.com/smoothcast/smoothcast/internal/testtool"
)

// ffmpegUpload is DASH-IF Live Media Ingest interface 2 as ffmpeg sends it:
// the ladder of ffmpegPush (two x264 bitrates and AAC, in real time),
// packaged by ffmpeg's own dash or hls muxer, every segment, init segment
// and manifest PUT under the channel.
func ffmpegUpload(ctx context.Context, ffmpeg, channelURL, muxer string, seconds int) *exec.Cmd {
	args := []string{"-hide_banner", "-loglevel", "error",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
		"-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-map", "0:v", "-map", "0:v", "-map", "1:a",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-b:v:0", "800k", "-b:v:1", "300k", "-s:v:1", "320x180", "-c:a", "aac", "-b:a", "96k",
		"-t", strconv.Itoa(seconds), "-method", "PUT"}
	switch muxer {
	case "dash":
		args = append(args, "-f", "dash", "-seg_duration", "2", channelURL+"/manifest.mpd")
	case "hls":
		args = append(args, "-f", "hls", "-hls_time", "2", "-hls_segment_type", "fmp4", "-hls_list_size", "5",
			"-hls_flags", "delete_segments", "-var_stream_map", "v:0,agroup:a v:1,agroup:a a:0,agroup:a",
			"-master_pl_name", "master.m3u8", channelURL+"/stream_%v.m3u8")
	}
	return exec.CommandContext(ctx, ffmpeg, args...)
}

// An encoder that packages for itself and uploads (ffmpeg -f dash and -f
// hls with -method PUT) plays in every output format, as a push does:
// every Smooth fragment URL answers with a moof at its time, and ffmpeg
// decodes the HLS playlists and the DASH MPD to the end. The encoder's own
// manifests only tell the relay which init segment a segment belongs to
// and when the stream ends; its DELETEs (hls delete_segments) remove
// nothing.
func TestFFmpegUploadPlaysInEveryFormat(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	for _, muxer := range []string{"dash", "hls"} {
		t.Run(muxer, func(t *testing.T) {
			t.Parallel()
			st := startStack(t)
			channel := "up" + muxer
			cmd := ffmpegUpload(context.Background(), ffmpeg, st.IngestURL+"/live/"+channel+".isml", muxer, pushSeconds)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("ffmpeg -f %s -method PUT: %v\n%s", muxer, err, stderr.String())
			}
			base := st.EdgeURL + "/live/" + channel + ".isml/"
			waitForVOD(t, st, base)
			checkSmooth(t, base)
			checkHLSWithFFmpeg(t, ffmpeg, base+"master.m3u8")
			checkTimeShiftWithFFmpeg(t, ffmpeg, base)
		})
	}
}

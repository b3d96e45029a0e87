package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"strconv"
	"testing"

	"github.com/smoothcast/smoothcast/internal/testtool"
)

// ffmpegCMAFPush is DASH-IF Live Media Ingest interface 1 as ffmpeg sends
// it: one long chunked POST per track to Streams({track}), each a CMAF
// header (ftyp, moov of one track, with btrt) and then CMAF fragments
// (moof with tfdt, mdat), in real time. The same ladder as ffmpegPush: two
// x264 bitrates and AAC.
func ffmpegCMAFPush(ctx context.Context, ffmpeg, channelURL string, seconds int) *exec.Cmd {
	t := strconv.Itoa(seconds)
	cmaf := []string{"-f", "mp4", "-movflags", "cmaf+empty_moov+default_base_moof", "-method", "POST"}
	x264 := []string{"-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-movflags", "+frag_keyframe"}
	args := []string{"-hide_banner", "-loglevel", "error",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
		"-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"}
	args = append(args, "-map", "0:v")
	args = append(append(append(args, x264...), "-b:v", "800k", "-t", t), cmaf...)
	args = append(args, channelURL+"/Streams(video_800k)", "-map", "0:v")
	args = append(append(append(args, x264...), "-b:v", "300k", "-s", "320x180", "-t", t), cmaf...)
	args = append(args, channelURL+"/Streams(video_300k)", "-map", "1:a", "-c:a", "aac", "-b:a", "96k", "-frag_duration", "2000000", "-t", t)
	args = append(append(args, cmaf...), channelURL+"/Streams(audio)")
	return exec.CommandContext(ctx, ffmpeg, args...)
}

// A CMAF push, one POST per track (interface 1), plays in every output
// format: every Smooth fragment URL answers with a moof whose tfxd and
// tfdt are at its time, and ffmpeg decodes the HLS playlists and the DASH
// MPD to the end.
func TestFFmpegCMAFPushPlaysInEveryFormat(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	st := startStack(t)
	const channel = "cmaf"
	push := ffmpegCMAFPush(context.Background(), ffmpeg, st.IngestURL+"/live/"+channel+".isml", pushSeconds)
	var stderr bytes.Buffer
	push.Stderr = &stderr
	if err := push.Run(); err != nil {
		t.Fatalf("ffmpeg CMAF push: %v\n%s", err, stderr.String())
	}
	base := st.EdgeURL + "/live/" + channel + ".isml/"
	waitForVOD(t, st, base)
	checkSmooth(t, base)
	checkHLSWithFFmpeg(t, ffmpeg, base+"master.m3u8")
	checkTimeShiftWithFFmpeg(t, ffmpeg, base)
}

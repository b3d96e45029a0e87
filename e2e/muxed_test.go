package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/check"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
)

// Forms of muxed fMP4 (several tracks in one file, a traf per track in
// each moof) that ffmpeg sends.
const (
	// muxedHLS: -f hls -hls_segment_type fmp4 with no -var_stream_map:
	// one variant, every track in its init segment and its segments.
	muxedHLS = "hls"
	// muxedHLSVariants: -var_stream_map "v:0,a:0 v:1,a:1": a muxed
	// variant per video bitrate, each with the same audio.
	muxedHLSVariants = "hls variants"
	// muxedCMAF: -f mp4 -movflags empty_moov+default_base_moof+frag_keyframe
	// POSTed to Streams(muxed): a CMAF push of every track at once.
	muxedCMAF = "cmaf"
)

// ffmpegMuxed is the ladder of ffmpegPush (two x264 bitrates and AAC, in
// real time) sent muxed, in one of the forms above, to channelURL.
func ffmpegMuxed(ctx context.Context, ffmpeg, channelURL, form string, seconds int) *exec.Cmd {
	args := []string{"-hide_banner", "-loglevel", "error",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
		"-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-map", "0:v", "-map", "0:v", "-map", "1:a"}
	if form == muxedHLSVariants {
		args = append(args, "-map", "1:a")
	}
	args = append(args, "-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-b:v:0", "800k", "-b:v:1", "300k", "-s:v:1", "320x180", "-c:a", "aac", "-b:a", "96k",
		"-t", strconv.Itoa(seconds))
	switch form {
	case muxedHLS:
		args = append(args, "-method", "PUT", "-f", "hls", "-hls_segment_type", "fmp4", "-hls_time", "2", channelURL+"/index.m3u8")
	case muxedHLSVariants:
		args = append(args, "-method", "PUT", "-f", "hls", "-hls_segment_type", "fmp4", "-hls_time", "2",
			"-var_stream_map", "v:0,a:0 v:1,a:1", "-master_pl_name", "master.m3u8", channelURL+"/stream_%v.m3u8")
	case muxedCMAF:
		args = append(args, "-method", "POST", "-f", "mp4", "-movflags", "empty_moov+default_base_moof+frag_keyframe", channelURL+"/Streams(muxed)")
	}
	return exec.CommandContext(ctx, ffmpeg, args...)
}

// checkChannel is `smoothcast check` of channel: every object each format
// references is there and is what it says, and the formats agree.
func checkChannel(t *testing.T, st *stack.Stack, channel string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := check.Run(ctx, nil, st.EdgeURL, channel, check.Options{})
	if err != nil || !rep.OK() {
		t.Errorf("smoothcast check %s: %v %v", channel, err, rep.Problems)
	}
}

// Muxed fMP4 from ffmpeg (an HLS upload of one variant with every track,
// HLS variants of video and audio each, a CMAF push of every track in one
// POST) is split per track and plays in every output format: every
// Smooth fragment URL answers with a moof at its time, ffmpeg decodes the
// HLS playlists and the DASH MPD to the end, and smoothcast check finds
// nothing missing. The variants' audio, the same in both, is stored once.
func TestFFmpegMuxedFMP4PlaysInEveryFormat(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	for _, form := range []string{muxedHLS, muxedHLSVariants, muxedCMAF} {
		t.Run(form, func(t *testing.T) {
			t.Parallel()
			st := startStack(t)
			channel := "mux" + strings.ReplaceAll(form, " ", "")
			cmd := ffmpegMuxed(context.Background(), ffmpeg, st.IngestURL+"/live/"+channel+".isml", form, pushSeconds)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("ffmpeg (%s): %v\n%s", form, err, stderr.String())
			}
			base := st.EdgeURL + "/live/" + channel + ".isml/"
			waitForVOD(t, st, base)
			checkSmooth(t, base)
			checkHLSWithFFmpeg(t, ffmpeg, base+"master.m3u8")
			checkTimeShiftWithFFmpeg(t, ffmpeg, base)
			checkChannel(t, st, channel)
		})
	}
}

// A muxed encoder that stops mid-fragment and starts again from zero:
// a CMAF push whose connection is cut inside a box, and an HLS upload
// whose ffmpeg is killed inside a segment. Every fragment that arrived
// whole is stored, for every track, and nothing of the one cut; the
// channel goes on after one discontinuity, ends VOD, lists exactly what
// is stored, and decodes to the end.
func TestFFmpegMuxedEncoderReconnects(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	const again = 8 // seconds of the second session
	for _, form := range []string{muxedCMAF, muxedHLS} {
		t.Run(form, func(t *testing.T) {
			t.Parallel()
			// More than -max-drift of a first session: a restart from
			// zero is told from a reconnect that resends.
			st := startStackWith(t, "", func(o *stack.Options) { o.Relay.MaxDrift = 3 * time.Second })
			channel := "muxre" + form
			base := st.EdgeURL + "/live/" + channel + ".isml/"
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			switch form {
			case muxedCMAF:
				// About 7 s of the push (some 150 kB/s): a byte count, so
				// that the cut falls inside a box.
				const cutAt = 1_055_555
				proxy, prefix := cuttingProxy(t, strings.TrimPrefix(st.IngestURL, "http://"), cutAt)
				_ = ffmpegMuxed(ctx, ffmpeg, "http://"+proxy+"/live/"+channel+".isml", form, 30).Run() // fails: its connection is cut
				st.Settle(context.Background())
				whole := completeFragments(prefix())
				if whole < 3 {
					t.Fatalf("only %d whole moofs before the cut at byte %d", whole, cutAt)
				}
				if stored := len(storedFragments(t, st, channel)); stored != 3*whole {
					t.Errorf("%d fragments stored, want the %d tracks' parts of the %d moofs that arrived whole (none of the one cut)", stored, 3*whole, whole)
				}
			case muxedHLS:
				first, stop := context.WithCancel(ctx)
				cmd := ffmpegMuxed(first, ffmpeg, st.IngestURL+"/live/"+channel+".isml", form, 30)
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				// Three segments stored: ffmpeg is inside the fourth.
				waitUntil(t, 40*time.Second, "three segments stored", func() bool { return fewestFragments(t, st, channel, 3) >= 3 })
				stop() // SIGKILL
				_ = cmd.Wait()
				// ffmpeg had each segment before the cut answered, so
				// stored; the cut one is refused when its request breaks.
				// (Not Settle: the killed encoder's rendition stays open
				// until the next one replaces it, or for -idle.)
				st.S3.Drain()
				// What is stored is whole segments: every video fragment
				// 2 s (one GOP), none cut short.
				for key, info := range storedFragments(t, st, channel) {
					if obj, _ := layout.Parse(key); obj.Track.Name == "video" && info.Duration != 2*12800 {
						t.Errorf("%s lasts %d ticks, want a whole segment's 25600 (2 s at 12800)", key, info.Duration)
					}
				}
			}
			if m := getSmooth(t, base+"Manifest"); !m.Live() {
				t.Errorf("after the encoder stopped the channel is not live: IsLive=%q", m.IsLive)
			}
			video, audio := storedSpans(t, st, channel)
			if out, err := ffmpegMuxed(ctx, ffmpeg, st.IngestURL+"/live/"+channel+".isml", form, again).CombinedOutput(); err != nil {
				t.Fatalf("second session: %v\n%s", err, out)
			}
			checkContinuedOnce(t, st, channel)
			t.Logf("first session: %v of the 800k video, %v of audio stored; then %d s more", video, audio, again)
			checkDecodeSpan(t, ffmpeg, base+"master.m3u8", video+again*time.Second, audio+again*time.Second, [][]string{{"0:v:0", "0:a:0"}})
			checkChannel(t, st, channel)
		})
	}
}

// storedSpans is how long the stored fragments of channel's 800 kbit/s
// video and of its audio last, each in its init segment's timescale.
func storedSpans(t *testing.T, st *stack.Stack, channel string) (video, audio time.Duration) {
	t.Helper()
	timescales := map[layout.TrackID]uint32{}
	for key, info := range storedFragments(t, st, channel) {
		obj, _ := layout.Parse(key)
		if obj.Track.Name == "video" && obj.Track.Bitrate != 800_000 {
			continue
		}
		ts, ok := timescales[obj.Track]
		if !ok {
			init, err := st.Store.Get(context.Background(), layout.InitKey(channel, obj.Track))
			if err != nil {
				t.Fatal(err)
			}
			desc, err := fmp4.ParseInit(init.Body)
			if err != nil {
				t.Fatal(err)
			}
			ts = uint32(desc.Timescale)
			timescales[obj.Track] = ts
		}
		d := fmp4.Duration(int64(info.Duration), ts)
		if obj.Track.Name == "video" {
			video += d
		} else {
			audio += d
		}
	}
	return video, audio
}

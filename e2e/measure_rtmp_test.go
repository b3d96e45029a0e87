package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
)

// The RTMP path against the packager a user would otherwise pick: the same
// FLV (3 minutes of H.264 at 3 Mbit/s CBR, a key frame every 2 s, and AAC
// at 128 kbit/s) remuxed by ffmpeg into HLS fMP4 (-c copy -f hls
// -hls_segment_type fmp4) from the file, and with ffmpeg as the RTMP
// ingest point (-listen 1), against the relay binary taking it over RTMP
// into the local stack until its end markers are stored. The sender
// (ffmpeg -c copy -f flv, as fast as it goes) is not counted. User and
// system CPU seconds per media hour, median of three runs each.
func TestMeasureRTMPCPUAgainstFFmpeg(t *testing.T) {
	measuring(t)
	ffmpeg := testtool.Require(t, "ffmpeg")
	const seconds = 180
	flv := filepath.Join(t.TempDir(), "in.flv")
	enc := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-b:v", "3M", "-minrate", "3M", "-maxrate", "3M", "-bufsize", "1.5M", "-x264-params", "nal-hrd=cbr",
		"-c:a", "aac", "-b:a", "128k", "-t", strconv.Itoa(seconds), "-f", "flv", flv)
	if out, err := enc.CombinedOutput(); err != nil {
		t.Fatalf("make the FLV: %v\n%s", err, out)
	}
	info, _ := os.Stat(flv)
	mediaHours := float64(seconds) / 3600
	bin := buildRelay(t)

	cpu := func(cmd *exec.Cmd) float64 {
		return (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	}
	hls := func(out string) []string {
		return []string{"-c", "copy", "-f", "hls", "-hls_segment_type", "fmp4", "-hls_time", "2", "-hls_list_size", "0",
			"-hls_segment_filename", out + "/%d.m4s", out + "/index.m3u8"}
	}
	send := func(url string) *exec.Cmd {
		return exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-i", flv, "-c", "copy", "-f", "flv", url)
	}
	run := func(cmd *exec.Cmd) {
		t.Helper()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
		}
	}
	var fileCPU, listenCPU, relayCPU []float64
	for round := range 3 {
		// ffmpeg from the file to HLS fMP4 files.
		out := t.TempDir()
		remux := exec.Command(ffmpeg, append([]string{"-hide_banner", "-loglevel", "error", "-i", flv}, hls(out)...)...)
		run(remux)
		fileCPU = append(fileCPU, cpu(remux))
		if segs, _ := filepath.Glob(out + "/*.m4s"); len(segs) < seconds/2-1 {
			t.Fatalf("ffmpeg wrote %d segments", len(segs))
		}

		// ffmpeg as the RTMP ingest point, the FLV sent to it.
		out = t.TempDir()
		url := "rtmp://" + freeAddr(t) + "/live/remux"
		listen := exec.Command(ffmpeg, append([]string{"-hide_banner", "-loglevel", "error", "-listen", "1", "-i", url}, hls(out)...)...)
		var listenErr strings.Builder
		listen.Stdout, listen.Stderr = &listenErr, &listenErr
		if err := listen.Start(); err != nil {
			t.Fatal(err)
		}
		for sent := false; !sent; {
			sender := send(url)
			if b, err := sender.CombinedOutput(); err == nil {
				sent = true
			} else if !strings.Contains(string(b), "Connection refused") {
				t.Fatalf("send to ffmpeg: %v\n%s", err, b)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := listen.Wait(); err != nil {
			t.Fatalf("ffmpeg -listen: %v\n%s", err, listenErr.String())
		}
		listenCPU = append(listenCPU, cpu(listen))

		// The relay, over RTMP, into the local stack.
		st := startStack(t)
		rtmpAddr := freeAddr(t)
		rp := startRelay(t, bin, st, "-rtmp-addr", rtmpAddr)
		before := rp.cpuSeconds()
		channel := "rtmp" + strconv.Itoa(round)
		run(send("rtmp://" + rtmpAddr + "/live/" + channel))
		waitForEnds(t, st.Store, channel, 2)
		relayCPU = append(relayCPU, rp.cpuSeconds()-before)
		st.Settle(context.Background())
		if n := len(storedFragments(t, st, channel)); n < 2*(seconds/2-1) {
			t.Fatalf("the relay stored %d fragments", n)
		}
		rp.kill9()
		_ = st.Close(context.Background())
	}
	med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
	fc, lc, rc := med(fileCPU), med(listenCPU), med(relayCPU)
	report(t, "FLV of %.0f MB, %d s of media (3 Mbit/s H.264 + AAC), cpu-s (per media hour): ffmpeg -c copy from the file to HLS fMP4 files %.2f (%.1f); ffmpeg as the RTMP ingest point (-listen 1) to HLS fMP4 files %.2f (%.1f); relay process over RTMP, PUT to S3 over HTTP %.2f (%.1f) = %.0f %% of ffmpeg file to files, %.0f %% of ffmpeg as the RTMP ingest point",
		float64(info.Size())/1e6, seconds, fc, fc/mediaHours, lc, lc/mediaHours, rc, rc/mediaHours, 100*rc/fc, 100*rc/lc)
}

// waitForEnds waits until the store holds n end markers of channel: the
// relay has ended its stream.
func waitForEnds(t *testing.T, st *store.Store, channel string, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ends := 0
		err := st.List(context.Background(), layout.LivePrefix+channel+".isml/", func(page []store.Listed) error {
			for _, o := range page {
				if obj, err := layout.Parse(o.Key); err == nil && obj.Kind == layout.KindEnd {
					ends++
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if ends >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d end markers of %s after a minute, want %d", ends, channel, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

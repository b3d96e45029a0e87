package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool"
)

// The SRT path's packaging cost against ffmpeg doing the same remux: an
// MPEG-TS an encoder would send over SRT (a minute of 720p H.264 at
// 3 Mbit/s with a 2 s GOP, and AAC at 128 kbit/s) remuxed by ffmpeg into
// HLS fMP4 (-c copy -f hls -hls_segment_type fmp4) from the file, as fast
// as it goes; and, in real time, sent over SRT by ffmpeg -re to ffmpeg as
// the SRT ingest point (its input srt://...?mode=listener, its output the
// same HLS fMP4 files) and, at the same time, to the relay binary, which
// stores it in the local stack until both tracks' end markers are there.
// User and system CPU seconds per media hour, the median of three runs
// each: ffmpeg's, and the relay's own process (receiving SRT,
// demultiplexing, packaging, PUTting to the embedded S3 over HTTP). In
// real time a receiver's SRT costs it per second as much as per byte
// (gosrt, as libsrt, acknowledges every 10 ms): a stream sent faster
// than real time would hide that part.
func TestMeasureSRTCPUAgainstFFmpeg(t *testing.T) {
	measuring(t)
	ffmpeg := testtool.Require(t, "ffmpeg")
	const seconds = 60
	in := filepath.Join(t.TempDir(), "in.ts")
	gen := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-b:v", "3M", "-maxrate", "3M", "-bufsize", "6M", "-c:a", "aac", "-b:a", "128k", "-t", strconv.Itoa(seconds), "-f", "mpegts", in)
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("make the TS: %v\n%s", err, out)
	}
	info, _ := os.Stat(in)
	mediaHours := float64(seconds) / 3600
	bin := buildRelay(t)
	cpu := func(cmd *exec.Cmd) float64 {
		return (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	}
	hls := func(out string) []string {
		// ffmpeg 5.1 wants ADTS turned into MP4 audio by hand.
		return []string{"-c", "copy", "-bsf:a", "aac_adtstoasc", "-f", "hls", "-hls_segment_type", "fmp4", "-hls_time", "2", "-hls_list_size", "0",
			"-hls_segment_filename", out + "/%d.m4s", out + "/index.m3u8"}
	}
	segments := func(out string) int {
		m, _ := filepath.Glob(filepath.Join(out, "*.m4s"))
		return len(m)
	}

	var fileCPU, listenCPU, relayCPU []float64
	for r := range 3 {
		// ffmpeg from the file to HLS fMP4 files.
		out := t.TempDir()
		cmd := exec.Command(ffmpeg, append([]string{"-hide_banner", "-loglevel", "error", "-i", in}, hls(out)...)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, b)
		}
		fileCPU = append(fileCPU, cpu(cmd))
		if n := segments(out); n < seconds/2 {
			t.Fatalf("ffmpeg wrote %d segments", n)
		}

		// ffmpeg as the SRT ingest point and the relay, at once.
		listenOut, listenAddr := t.TempDir(), testtool.FreeUDPAddr(t)
		listener := exec.Command(ffmpeg, append([]string{"-hide_banner", "-loglevel", "error", "-i", "srt://" + listenAddr + "?mode=listener"}, hls(listenOut)...)...)
		var stderr strings.Builder
		listener.Stderr = &stderr
		if err := listener.Start(); err != nil {
			t.Fatal(err)
		}
		st := startStack(t)
		srtAddr := testtool.FreeUDPAddr(t)
		rp := startRelay(t, bin, st, "-srt-addr", srtAddr)
		before := rp.cpuSeconds()
		channel := "srtbench" + strconv.Itoa(r)
		var wg sync.WaitGroup
		wg.Go(func() { sendTS(t, ffmpeg, in, "srt://"+listenAddr+"?linger=2") })
		wg.Go(func() { sendTS(t, ffmpeg, in, srtURL("srt://"+srtAddr, channel, "", "")) })
		wg.Wait()
		if err := listener.Wait(); err != nil {
			t.Fatalf("ffmpeg as the SRT listener: %v\n%s", err, stderr.String())
		}
		listenCPU = append(listenCPU, cpu(listener))
		if n := segments(listenOut); n < seconds/2 {
			t.Fatalf("ffmpeg as the SRT listener wrote %d segments", n)
		}
		waitForEnds(t, st.Store, channel, 2)
		relayCPU = append(relayCPU, rp.cpuSeconds()-before)
		st.S3.Drain()
		if n := videoFragments(t, st, channel); n != seconds/2 {
			t.Errorf("the relay stored %d video fragments of %d s", n, seconds)
		}
		rp.kill9()
		_ = st.Close(context.Background())
	}
	med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
	fc, lc, rc := med(fileCPU), med(listenCPU), med(relayCPU)
	report(t, "MPEG-TS of %.0f MB, %d s of media (720p H.264 3 Mbit/s + AAC), cpu-s (per media hour): ffmpeg -c copy from the file to HLS fMP4 files %.2f (%.1f); in real time over SRT, ffmpeg as the ingest point (mode=listener) to HLS fMP4 files %.2f (%.1f), relay process, PUT to S3 over HTTP, %.2f (%.1f) = %.0f %% of ffmpeg as the SRT ingest point, %.0f %% of ffmpeg file to files",
		float64(info.Size())/1e6, seconds, fc, fc/mediaHours, lc, lc/mediaHours, rc, rc/mediaHours, 100*rc/lc, 100*rc/fc)
}

// sendTS sends the TS file over SRT to url with ffmpeg in real time,
// trying again while nothing listens there yet.
func sendTS(t *testing.T, ffmpeg, file, url string) {
	t.Helper()
	for range 50 {
		cmd := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-re", "-i", file, "-c", "copy", "-f", "mpegts", url)
		out, err := cmd.CombinedOutput()
		if err == nil {
			return
		}
		if !strings.Contains(string(out), "Connection setup failure") && !strings.Contains(string(out), "connection timed out") {
			t.Errorf("send the TS over SRT: %v\n%s", err, out)
			return
		}
		time.Sleep(100 * time.Millisecond) // the listener is not up yet
	}
	t.Errorf("no SRT listener at %s", url)
}

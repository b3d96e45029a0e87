package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/smoothcast/smoothcast/internal/stack"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// The measurements of BENCHMARKS.md that need whole processes: they run
// with make bench (SMOOTHCAST_MEASURE=1) and write their figures to
// SMOOTHCAST_MEASURE_OUT. They assert nothing about timing.

func measuring(t *testing.T) {
	t.Helper()
	if os.Getenv("SMOOTHCAST_MEASURE") != "1" {
		t.Skip("a measurement: make bench runs it (SMOOTHCAST_MEASURE=1)")
	}
}

// report logs a figure and appends it to SMOOTHCAST_MEASURE_OUT.
func report(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf("%s: %s", t.Name(), fmt.Sprintf(format, args...))
	t.Log(line)
	if out := os.Getenv("SMOOTHCAST_MEASURE_OUT"); out != "" {
		f, err := os.OpenFile(out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fmt.Fprintln(f, line)
	}
}

// ladder is the benchmarks' encoder: five H.264 renditions and AAC, 2 s
// fragments, with the live server manifest (as ffmpeg -f ismv sends).
func ladder(t *testing.T) *synth.Stream {
	t.Helper()
	s, err := synth.New(synth.Config{SMIL: true, Tracks: synth.Ladder()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// Fragment-to-manifest latency on the local stack: a live push in real
// time (the ladder, LATENCY_MINUTES, 10 by default); the time from the
// fragment object being stored (the relay done with it) to the first
// response of the edge whose media playlist lists it. Two pollers ask the
// edge for the 6 Mbit/s video and the audio playlist every 5 ms, so a
// figure may be up to 5 ms late.
func TestMeasureFragmentToManifestLatency(t *testing.T) {
	measuring(t)
	minutes := envInt("LATENCY_MINUTES", 10)
	var mu sync.Mutex
	stored := map[string]time.Time{}
	st := startStackWith(t, "", func(o *stack.Options) {
		o.EventTap = func(ev events.S3Event) {
			for _, r := range ev.Records {
				key, _ := url.QueryUnescape(r.S3.Object.Key)
				mu.Lock()
				stored[key] = r.EventTime
				mu.Unlock()
			}
		}
	})
	const channel = "latency"
	s := ladder(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pushed := make(chan error, 1)
	go func() {
		pushed <- synth.Push(ctx, nil, st.IngestURL+"/live/"+channel+".isml/Streams(enc)", s, synth.Range{Count: minutes * 30, Realtime: true})
	}()
	tracks := []layout.TrackID{{Name: "video", Bitrate: 6_000_000}, {Name: "audio", Bitrate: 128_000}}
	var latencies []time.Duration
	var wg sync.WaitGroup
	done := make(chan struct{})
	for _, tr := range tracks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := map[string]bool{}
			playlist := st.EdgeURL + "/" + layout.MediaPlaylistPath(channel, tr)
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				resp, err := http.Get(playlist)
				if err != nil {
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				now := time.Now()
				for line := range strings.Lines(string(body)) {
					_, rest, ok := strings.Cut(line, "Fragments(")
					if !ok || strings.HasPrefix(line, "#") {
						continue
					}
					inner, _, _ := strings.Cut(rest, ")")
					_, ts, _ := strings.Cut(inner, "=")
					start, err := strconv.ParseUint(ts, 10, 64)
					if err != nil {
						continue
					}
					key := layout.FragmentKey(channel, tr, start)
					if seen[key] {
						continue
					}
					seen[key] = true
					mu.Lock()
					at, ok := stored[key]
					if ok && len(seen) > 1 { // the first listing found the stream already going
						latencies = append(latencies, now.Sub(at))
					}
					mu.Unlock()
				}
			}
		}()
	}
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	close(done)
	wg.Wait()
	slices.Sort(latencies)
	if len(latencies) < minutes*30 {
		t.Fatalf("%d latencies for %d minutes of two tracks", len(latencies), minutes)
	}
	report(t, "%d min live push, %d fragments seen: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms",
		minutes, len(latencies), ms(percentile(latencies, 0.5)), ms(percentile(latencies, 0.9)), ms(percentile(latencies, 0.99)), ms(latencies[len(latencies)-1]))
	req := st.S3.Requests()
	fragments := float64(minutes * 30 * 6)
	report(t, "store writes per fragment: PUT %.2f (%d refused with 412), LIST %d (GETs here mostly serve the pollers' playlists, which CloudFront would absorb)",
		float64(req["PUT"])/fragments, req["PUT 412"], req["LIST"])
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// cpuSeconds is the process's user and system CPU time so far.
func cpuSeconds(t *testing.T) float64 {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// The packager a user would otherwise pick: the same Smooth push (the
// ladder, 3 minutes) remuxed by ffmpeg into HLS fMP4, one playlist per
// rendition, against the relay binary taking the push into the local
// stack (embedded S3 with notifications, manifest function) until the
// manifests are settled. CPU seconds per media hour, median of three runs
// each. The relay's figure is its own process; the rest (the embedded S3
// server, which AWS runs, the manifest function, and the client sending
// the file) is this test process's, reported apart.
func TestMeasureRemuxCPUAgainstFFmpeg(t *testing.T) {
	measuring(t)
	ffmpeg := testtool.Require(t, "ffmpeg")
	const fragments = 90 // 3 minutes
	file := filepath.Join(t.TempDir(), "push.ismv")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ladder(t).WriteTo(context.Background(), f, synth.Range{Count: fragments, End: true}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(file)
	mediaHours := float64(fragments*2) / 3600
	bin := buildRelay(t)

	var ffmpegCPU, relayCPU, restCPU []float64
	for run := range 3 {
		out := t.TempDir()
		cmd := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-i", file, "-map", "0", "-c", "copy",
			"-f", "hls", "-hls_segment_type", "fmp4", "-hls_time", "2", "-hls_list_size", "0",
			"-var_stream_map", "v:0 v:1 v:2 v:3 v:4 a:0", "-master_pl_name", "master.m3u8",
			"-hls_fmp4_init_filename", "init_%v.mp4", "-hls_segment_filename", filepath.Join(out, "%v_%d.m4s"),
			filepath.Join(out, "%v.m3u8"))
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, b)
		}
		ffmpegCPU = append(ffmpegCPU, (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds())
		segments, _ := filepath.Glob(filepath.Join(out, "*.m4s"))
		if len(segments) < 5*fragments {
			t.Fatalf("ffmpeg wrote %d segments", len(segments))
		}

		st := startStack(t)
		rp := startRelay(t, bin, st)
		relayBefore := rp.cpuSeconds()
		before := cpuSeconds(t)
		body, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(rp.url("remux"+strconv.Itoa(run), "enc"), "video/mp4", body)
		body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("push: %v %v", err, resp)
		}
		resp.Body.Close()
		st.Settle(context.Background())
		restCPU = append(restCPU, cpuSeconds(t)-before)
		relayCPU = append(relayCPU, rp.cpuSeconds()-relayBefore)
		if n := st.S3.Requests()["PUT"]; n < 2*6*fragments {
			t.Fatalf("the stack made %d PUTs for %d fragments of 6 tracks", n, fragments)
		}
		rp.kill9()
		_ = st.Close(context.Background())
	}
	med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
	fc, rc, oc := med(ffmpegCPU), med(relayCPU), med(restCPU)
	report(t, "push of %.0f MB, %d s of media: ffmpeg -c copy to HLS fMP4 %.2f cpu-s (%.1f per media hour); relay process %.2f cpu-s (%.1f per media hour, %.0f %% of ffmpeg); embedded S3 + manifest function + sender %.2f cpu-s",
		float64(info.Size())/1e6, fragments*2, fc, fc/mediaHours, rc, rc/mediaHours, 100*rc/fc, oc)
}

// Relay memory with 1, 10 and 100 live pushes at once: the relay binary
// against the local stack's store, each push one channel with a 2 Mbit/s
// video track and AAC in real time (a 2 s fragment of both is about
// 530 kB), for 20 s. Resident memory is sampled every 200 ms.
func TestMeasureRelayMemory(t *testing.T) {
	measuring(t)
	bin := buildRelay(t)
	st := startStack(t)
	for _, n := range []int{1, 10, 100} {
		rp := startRelay(t, bin, st)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			s, err := synth.New(synth.Config{SMIL: true, Tracks: []synth.Track{
				{Kind: timeline.Video, Bitrate: 2_000_000, Width: 960, Height: 540},
				{Kind: timeline.Audio, Bitrate: 128_000},
			}})
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- synth.Push(ctx, nil, rp.url(fmt.Sprintf("mem%d-%d", n, i), "enc"), s, synth.Range{Count: 10, Realtime: true})
			}()
		}
		var steady []int64
		for range 15 {
			time.Sleep(time.Second)
			if rss := rp.currentRSS(); rss > 0 {
				steady = append(steady, rss)
			}
		}
		wg.Wait()
		cancel()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("%d pushes: %v", n, err)
			}
		}
		rp.kill9()
		slices.Sort(steady)
		if len(steady) == 0 {
			t.Fatal("no memory samples")
		}
		report(t, "%d streams: resident %.1f MiB (median while pushing), peak %.1f MiB",
			n, float64(steady[len(steady)/2])/(1<<20), float64(rp.peakRSS())/(1<<20))
	}
}

// currentRSS is the relay's resident set now (VmRSS), 0 if unknown.
func (rp *relayProcess) currentRSS() int64 {
	pid := rp.pid()
	if pid == 0 {
		return 0
	}
	return procStatusBytes(pid, "VmRSS")
}

// pid is the running relay's process ID, 0 when it is not running.
func (rp *relayProcess) pid() int {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.cmd == nil {
		return 0
	}
	return rp.cmd.Process.Pid
}

// cpuSeconds is the relay's user and system CPU time so far, from
// /proc/{pid}/stat (in clock ticks of 1/100 s).
func (rp *relayProcess) cpuSeconds() float64 {
	pid := rp.pid()
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name (which may hold spaces) in ")".
	_, rest, _ := strings.Cut(string(b), ") ")
	fields := strings.Fields(rest)
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100
}

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/manifest/hls"
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

// report logs a figure and appends it to SMOOTHCAST_MEASURE_OUT (make
// bench, and make test, which prints what the suite reported).
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
				pl, err := hls.Parse(body)
				if err != nil {
					continue
				}
				for _, s := range pl.Segments {
					if s.Gap {
						continue // a hole: no fragment to measure
					}
					_, rest, ok := strings.Cut(s.URI, "Fragments(")
					if !ok {
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
// rendition, to local files and PUT to an HTTP origin (as the relay PUTs
// to S3; the origin drains the bodies in this process), against the relay
// binary taking the push into the local
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

	// ffmpeg's HLS muxer can PUT its output to an origin, as the relay
	// PUTs to S3: a server in this process takes the PUTs and drains them.
	var puts sync.Map
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		puts.Store(r.URL.Path, n)
	}))
	defer origin.Close()
	// remux runs ffmpeg on the push: from the file, or (listen) as the
	// ingest point, an HTTP server that takes the push as the relay does.
	remux := func(out string, listen bool, extra ...string) float64 {
		input := file
		if listen {
			input = "http://" + freeAddr(t) + "/live/remux.isml/Streams(enc)"
		}
		args := []string{"-hide_banner", "-loglevel", "warning"}
		if listen {
			args = append(args, "-listen", "1")
		}
		args = append(args, "-i", input, "-map", "0", "-c", "copy",
			"-f", "hls", "-hls_segment_type", "fmp4", "-hls_time", "2", "-hls_list_size", "0",
			"-var_stream_map", "v:0 v:1 v:2 v:3 v:4 a:0", "-master_pl_name", "master.m3u8",
			"-hls_fmp4_init_filename", "init_%v.mp4")
		args = append(append(args, extra...), "-hls_segment_filename", out+"/%v_%d.m4s", out+"/%v.m3u8")
		cmd := exec.Command(ffmpeg, args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if listen {
			if err := postWhenListening(input, file); err != nil {
				_ = cmd.Process.Kill()
				t.Fatalf("push to ffmpeg: %v", err)
			}
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, stderr.String())
		}
		if stderr.Len() > 0 {
			t.Logf("ffmpeg: %s", stderr.String())
		}
		return (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	}

	var ffmpegCPU, ffmpegPutCPU, relayCPU, restCPU []float64
	for run := range 3 {
		out := t.TempDir()
		ffmpegCPU = append(ffmpegCPU, remux(out, false))
		segments, _ := filepath.Glob(filepath.Join(out, "*.m4s"))
		if len(segments) < 5*fragments {
			t.Fatalf("ffmpeg wrote %d segments", len(segments))
		}
		ffmpegPutCPU = append(ffmpegPutCPU, remux(origin.URL+"/run"+strconv.Itoa(run), true, "-method", "PUT", "-http_persistent", "1"))
		stored := 0
		puts.Range(func(k, _ any) bool {
			if strings.HasPrefix(k.(string), "/run"+strconv.Itoa(run)+"/") && strings.HasSuffix(k.(string), ".m4s") {
				stored++
			}
			return true
		})
		if stored < 5*fragments {
			var keys []string
			puts.Range(func(k, _ any) bool { keys = append(keys, k.(string)); return true })
			t.Fatalf("ffmpeg PUT %d segments: %v", stored, keys)
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
	fc, fp, rc, oc := med(ffmpegCPU), med(ffmpegPutCPU), med(relayCPU), med(restCPU)
	report(t, "push of %.0f MB, %d s of media, cpu-s (per media hour): ffmpeg -c copy from the file to HLS fMP4 files %.2f (%.1f); ffmpeg as the ingest point (-listen 1, the push POSTed to it) to HLS fMP4 PUT over HTTP %.2f (%.1f); relay process, the push POSTed to it, PUT to S3 over HTTP %.2f (%.1f) = %.0f %% of ffmpeg file to files, %.0f %% of ffmpeg as the ingest point; embedded S3 + manifest function + sender %.2f",
		float64(info.Size())/1e6, fragments*2, fc, fc/mediaHours, fp, fp/mediaHours, rc, rc/mediaHours, 100*rc/fc, 100*rc/fp, oc)
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

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// postWhenListening POSTs the file to target once something listens
// there. It does not probe first (ffmpeg -listen 1 takes one connection),
// and it writes the request itself: ffmpeg answers before it has read the
// body, and net/http's client would stop sending then.
func postWhenListening(target, file string) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	var conn net.Conn
	for range 100 {
		if conn, err = net.Dial("tcp", u.Host); err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	body, err := os.Open(file)
	if err != nil {
		return err
	}
	defer body.Close()
	info, err := body.Stat()
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: video/mp4\r\nContent-Length: %d\r\n\r\n", u.RequestURI(), u.Host, info.Size()); err != nil {
		return err
	}
	_, err = io.Copy(conn, body)
	return err
}

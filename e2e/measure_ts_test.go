package e2e

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// The TS path's cost against the remux a user would otherwise run: one
// MPEG-TS file of 3 minutes (H.264 at 3 Mbit/s and AAC, 2 s GOPs: the
// synthetic encoder's, remuxed to TS by ffmpeg) packaged into HLS fMP4
// two ways, three times each, CPU seconds (user+sys) per media hour,
// medians:
//
//   - ffmpeg from the file to files: ffmpeg -i in.ts -c copy -f hls
//     -hls_segment_type fmp4 -hls_time 2;
//   - the relay binary taking the same file as an HLS upload with TS
//     segments (ffmpeg -i in.ts -c copy -f hls -method PUT, as fast as it
//     goes, on one persistent connection: that ffmpeg is the encoder,
//     its CPU is not counted) and
//     storing every fragment in the local stack's S3, until every
//     segment is stored.
//   - the relay's own work on the same upload, in this process, with a
//     store that keeps nothing and no network (the relay package's
//     BenchmarkTSUpload, on this file): telling files apart, ordering,
//     demultiplexing, packaging and the session's rewrite.
//
// The relay process's figure is its own process: HTTP in, demultiplexing,
// packaging, the session's rewrite and the S3 PUTs out; moving the bytes
// in and out over HTTP is most of it, which ffmpeg from a file to files
// does not do.
func TestMeasureTSUploadCPUAgainstFFmpeg(t *testing.T) {
	measuring(t)
	ffmpeg := testtool.Require(t, "ffmpeg")
	const fragments = 90 // 3 minutes
	dir := t.TempDir()
	push := filepath.Join(dir, "push.ismv")
	f, err := os.Create(push)
	if err != nil {
		t.Fatal(err)
	}
	s, err := synth.New(synth.Config{Tracks: []synth.Track{
		{Kind: timeline.Video, Bitrate: 3_000_000, Width: 1280, Height: 720},
		{Kind: timeline.Audio, Bitrate: 128_000},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteTo(context.Background(), f, synth.Range{Count: fragments, End: true}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "in.ts")
	if out, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-i", push, "-map", "0", "-c", "copy", "-f", "mpegts", in).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg to TS: %v\n%s", err, out)
	}
	info, _ := os.Stat(in)
	mediaHours := float64(fragments*2) / 3600
	bin := buildRelay(t)

	run := func(args ...string) float64 {
		cmd := exec.Command(ffmpeg, append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
		}
		return (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	}
	var ffmpegCPU, relayCPU, ownCPU []float64
	for r := range 3 {
		out := t.TempDir()
		ffmpegCPU = append(ffmpegCPU, run("-i", in, "-map", "0", "-c", "copy", "-bsf:a", "aac_adtstoasc",
			"-f", "hls", "-hls_segment_type", "fmp4", "-hls_time", "2", "-hls_list_size", "0",
			"-hls_segment_filename", out+"/%d.m4s", out+"/index.m3u8"))
		if segs, _ := filepath.Glob(out + "/*.m4s"); len(segs) < fragments {
			t.Fatalf("ffmpeg wrote %d segments", len(segs))
		}

		upload := t.TempDir()
		run("-i", in, "-map", "0", "-c", "copy", "-f", "hls", "-hls_time", "2", "-hls_list_size", "0",
			"-hls_segment_filename", upload+"/index%d.ts", upload+"/index.m3u8")
		playlist, err := os.ReadFile(upload + "/index.m3u8")
		if err != nil {
			t.Fatal(err)
		}
		segs, _ := filepath.Glob(upload + "/index*.ts")
		st := startStack(t)
		rp := startRelay(t, bin, st)
		channel := "tsbench" + strconv.Itoa(r)
		base := "http://" + rp.addr + "/live/" + channel + ".isml/"
		put := func(file string, body []byte) {
			if code, msg := testtool.Do(t, http.MethodPut, base+file, body, false); code != http.StatusOK {
				t.Fatalf("%s: %d %s", file, code, msg)
			}
		}
		before := rp.cpuSeconds()
		put("index.m3u8", bytes.ReplaceAll(playlist, []byte("#EXT-X-ENDLIST\n"), nil))
		for k := range segs {
			b, err := os.ReadFile(fmt.Sprintf("%s/index%d.ts", upload, k))
			if err != nil {
				t.Fatal(err)
			}
			put(fmt.Sprintf("index%d.ts", k), b)
		}
		put("index.m3u8", playlist)
		waitUntil(t, time.Minute, "every segment stored", func() bool { return fewestFragments(t, st, channel, 2) >= len(segs) })
		relayCPU = append(relayCPU, rp.cpuSeconds()-before)
		rp.kill9()
		_ = st.Close(context.Background())

		// The relay's own work: the same files into an in-process relay
		// whose store keeps nothing.
		rcfg := relay.DefaultConfig()
		rcfg.MaxStreams = 0
		rl := relay.New(nullStore{}, rcfg, slog.New(slog.DiscardHandler))
		h := rl.Handler()
		bodies := make([][]byte, len(segs))
		for k := range segs {
			if bodies[k], err = os.ReadFile(fmt.Sprintf("%s/index%d.ts", upload, k)); err != nil {
				t.Fatal(err)
			}
		}
		direct := func(file string, body []byte) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodPut, "/live/own.isml/"+file, bytes.NewReader(body)))
			if w.Code != http.StatusOK {
				t.Fatalf("%s: %d %s", file, w.Code, w.Body)
			}
		}
		before = cpuSeconds(t)
		direct("index.m3u8", bytes.ReplaceAll(playlist, []byte("#EXT-X-ENDLIST\n"), nil))
		for k, b := range bodies {
			direct(fmt.Sprintf("index%d.ts", k), b)
		}
		ownCPU = append(ownCPU, cpuSeconds(t)-before)
		rl.CloseUploads()
	}
	med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
	fc, rc, oc := med(ffmpegCPU), med(relayCPU), med(ownCPU)
	report(t, "TS file of %.0f MB, %d s of media, cpu-s (per media hour): ffmpeg -c copy from the file to HLS fMP4 files %.2f (%.1f); relay process, the file's HLS TS upload PUT to it, PUT to S3 over HTTP %.2f (%.1f) = %.0f %% of ffmpeg; the relay's own work (no network, a store that keeps nothing) %.3f (%.2f) = %.0f %% of ffmpeg; runs: ffmpeg %s, relay %s, own %s",
		float64(info.Size())/1e6, fragments*2, fc, fc/mediaHours, rc, rc/mediaHours, 100*rc/fc, oc, oc/mediaHours, 100*oc/fc, cpuRuns(ffmpegCPU), cpuRuns(relayCPU), cpuRuns(ownCPU))
}

// nullStore takes every write and keeps nothing.
type nullStore struct{}

func (nullStore) PutParts(context.Context, string, [][]byte, store.PutOptions) (string, error) {
	return `"etag"`, nil
}

func (nullStore) Get(context.Context, string) (store.Object, error) {
	return store.Object{}, store.ErrNotFound
}

func cpuRuns(v []float64) string {
	var s []string
	for _, x := range v {
		s = append(s, strconv.FormatFloat(x, 'f', 2, 64))
	}
	return strings.Join(s, " ")
}

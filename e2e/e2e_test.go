package e2e

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/manifest/smooth"
)

const pushSeconds = 12

func startStack(t *testing.T) *stack.Stack {
	t.Helper()
	return startStackWith(t, "")
}

// startStackWith starts a local stack whose edge serves the player page
// with the npm packages of players (empty: none).
func startStackWith(t *testing.T, players string, adjust ...func(*stack.Options)) *stack.Stack {
	t.Helper()
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	o := stack.Options{
		IngestAddr: "127.0.0.1:0", EdgeAddr: "127.0.0.1:0",
		Handler: handler.DefaultConfig(), Relay: relay.DefaultConfig(), Players: players, Log: log,
	}
	for _, f := range adjust {
		f(&o)
	}
	st, err := stack.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

// pushFFmpeg pushes a test pattern in two video bitrates and AAC with
// ffmpeg -re -f ismv, as a broadcaster would.
func pushFFmpeg(t *testing.T, ffmpeg, url string, isml bool) {
	t.Helper()
	cmd := ffmpegPush(context.Background(), ffmpeg, url, pushSeconds, isml)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffmpeg push: %v\n%s", err, stderr.String())
	}
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestFFmpegPushPlaysAsSmoothAndHLS(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	for _, tc := range []struct {
		name string
		isml bool
	}{
		{"with live server manifest (isml)", true},
		{"without live server manifest", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := startStack(t)
			channel := "e2e"
			pushFFmpeg(t, ffmpeg, st.IngestURL+"/live/"+channel+".isml/Streams(enc1)", tc.isml)
			st.Settle(context.Background())
			base := st.EdgeURL + "/live/" + channel + ".isml/"

			checkSmooth(t, base)
			checkHLSWithFFmpeg(t, ffmpeg, base+"master.m3u8")
			checkTimeShiftWithFFmpeg(t, ffmpeg, base)
			checkRequestCost(t, st, true)
		})
	}
}

// checkSmooth fetches every fragment URL the Smooth manifest lists and
// checks that it is a moof whose tfxd time is the one in the URL.
func checkSmooth(t *testing.T, base string) {
	t.Helper()
	checkSmoothLevels(t, base, 2)
}

// checkSmoothLevels is checkSmooth for a stream of videoLevels video
// bitrates.
func checkSmoothLevels(t *testing.T, base string, videoLevels int) {
	t.Helper()
	resp, body := get(t, base+"Manifest")
	if resp.StatusCode != 200 {
		t.Fatalf("Manifest: %d %s", resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=1") {
		t.Errorf("Manifest Cache-Control %q, want a short max-age", cc)
	}
	m, err := smooth.Parse(body)
	if err != nil {
		t.Fatalf("Manifest does not parse: %v\n%s", err, body)
	}
	if len(m.Streams) != 2 {
		t.Fatalf("Manifest: %d stream indexes, want 2:\n%s", len(m.Streams), body)
	}
	checked := 0
	for _, si := range m.Streams {
		wantLevels := map[string]int{"video": videoLevels, "audio": 1}[si.Type]
		if len(si.Levels) != wantLevels {
			t.Errorf("%s: %d quality levels, want %d", si.Type, len(si.Levels), wantLevels)
		}
		frags := fragments(t, &si)
		if len(frags) == 0 {
			t.Fatalf("%s: no fragments listed", si.Type)
		}
		times := starts(frags)
		next := frags[len(frags)-1].End()
		// ffmpeg -t 12 with 2 s GOPs: 6 fragments per track.
		ts := float64(m.Timescale(&si))
		if got := float64(next-times[0]) / ts; len(times) < pushSeconds/2-1 || got < pushSeconds-2.5 {
			t.Errorf("%s: %d fragments covering %.2f s, want about %d s", si.Type, len(times), got, pushSeconds)
		}
		for _, ql := range si.Levels {
			for _, tm := range times {
				u := si.FragmentURL(ql.Bitrate, tm)
				resp, frag := get(t, base+u)
				if resp.StatusCode != 200 {
					t.Errorf("%s: %d", u, resp.StatusCode)
					continue
				}
				if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
					t.Errorf("%s: Cache-Control %q, want immutable", u, cc)
				}
				info, err := fmp4.Inspect(frag)
				if err != nil {
					t.Errorf("%s: %v", u, err)
					continue
				}
				if info.Start != tm {
					t.Errorf("%s: tfxd and tfdt time %d, want %d", u, info.Start, tm)
				}
				checked++
			}
		}
	}
	t.Logf("Smooth: %d fragment URLs answered with the right moof", checked)
}

// checkHLSWithFFmpeg decodes the live HLS output from the first segment to
// the end: every video frame and all audio, no error.
func checkHLSWithFFmpeg(t *testing.T, ffmpeg, url string) {
	t.Helper()
	checkDecode(t, ffmpeg, url, [][]string{{"0:v:0", "0:a:0"}}, "-live_start_index", "0", "-m3u8_hold_counters", "2")
}

// checkTimeShiftWithFFmpeg decodes a closed range (start to now: VOD
// manifests) of the HLS and the DASH output to the end.
func checkTimeShiftWithFFmpeg(t *testing.T, ffmpeg, base string) {
	t.Helper()
	q := "?start=0&end=" + url.QueryEscape(time.Now().UTC().Format(time.RFC3339Nano))
	checkDecode(t, ffmpeg, base+"master.m3u8"+q, [][]string{{"0:v:0", "0:a:0"}})
	// ffmpeg 5.1's DASH demuxer drops the last video frame when it reads
	// both adaptation sets at once and the audio outlasts the video (the
	// same fragments decode whole through HLS); a player reads each
	// adaptation set on its own, and so does this check.
	checkDecode(t, ffmpeg, base+"manifest.mpd"+q, [][]string{{"0:v:0"}, {"0:a:0"}})
}

// checkDecode has ffmpeg decode the first video and audio streams of url to
// the end with no error (in one run per group of maps), and counts what it
// decoded.
func checkDecode(t *testing.T, ffmpeg, url string, runs [][]string, inputArgs ...string) {
	t.Helper()
	checkDecodeSeconds(t, ffmpeg, url, pushSeconds, runs, inputArgs...)
}

// checkDecodeSeconds is checkDecode for a stream of the given length.
func checkDecodeSeconds(t *testing.T, ffmpeg, url string, seconds int, runs [][]string, inputArgs ...string) {
	t.Helper()
	checkDecodeSpan(t, ffmpeg, url, time.Duration(seconds)*time.Second, time.Duration(seconds)*time.Second, runs, inputArgs...)
}

// checkDecodeSpan is checkDecode for a stream of the given lengths of
// video (25 fps) and audio.
func checkDecodeSpan(t *testing.T, ffmpeg, url string, video, audio time.Duration, runs [][]string, inputArgs ...string) {
	t.Helper()
	frames := map[string]int{}
	var audioTicks int64
	for _, maps := range runs {
		for _, line := range strings.Split(framecrc(t, ffmpeg, url, maps, inputArgs...), "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			f := strings.Split(line, ",")
			if len(f) < 4 {
				continue
			}
			kind := maps[atoi(strings.TrimSpace(f[0]))][2:3] // "v" or "a"
			frames[kind]++
			if kind == "a" {
				dur, _ := strconv.ParseInt(strings.TrimSpace(f[3]), 10, 64)
				audioTicks += dur
			}
		}
	}
	// framecrc time base for audio is 1/48000. Durations, not the span of
	// timestamps: a stream may have a gap between sessions.
	audioSeconds := float64(audioTicks) / 48000
	t.Logf("%s via ffmpeg: %d video frames, %d audio frames (%.3f s)", url, frames["v"], frames["a"], audioSeconds)
	if want := int(math.Round(video.Seconds() * 25)); frames["v"] != want {
		t.Errorf("decoded %d video frames, want %d (%v at 25 fps)", frames["v"], want, video)
	}
	if math.Abs(audioSeconds-audio.Seconds()) > 0.1 {
		t.Errorf("decoded %.3f s of audio, want %v", audioSeconds, audio)
	}
}

// besideAnother lets a test run beside one other such test, once the
// suite's other tests have ended (go test runs its parallel top-level
// tests last, -parallel at a time: GOMAXPROCS, 2 here). It is for tests
// whose time is an encoder's real time rather than the machine's, that
// judge media and manifests rather than timing, and that change no
// process-wide state (no t.Setenv): a pair of them costs the suite the
// longer one's time, not both.
func besideAnother(t *testing.T) { t.Parallel() }

// framecrc is what ffmpeg's framecrc muxer prints for the streams maps
// of url, decoded with no error.
func framecrc(t *testing.T, ffmpeg, url string, maps []string, inputArgs ...string) string {
	t.Helper()
	args := append([]string{"-hide_banner", "-v", "error"}, inputArgs...)
	args = append(args, "-i", url)
	for _, m := range maps {
		args = append(args, "-map", m)
	}
	// A reader that loops on a bad manifest must fail, not hang the suite.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Every decoded frame is counted: by default ffmpeg's output drops a
	// frame whose timestamp its discontinuity handling made collide with
	// the one before (a gap over its 10 s -dts_delta_threshold between
	// two sessions of one encoder lost one frame of 450).
	cmd := exec.CommandContext(ctx, ffmpeg, append(args, "-fps_mode", "passthrough", "-f", "framecrc", "-")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffmpeg read %s: %v\n%s", url, err, stderr.String())
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		t.Errorf("ffmpeg reported errors reading %s:\n%s", url, s)
	}
	return stdout.String()
}

// checkRequestCost counts the store's requests: per fragment one PUT of the
// fragment and at most one successful PUT of the track's state, plus a
// bounded number of writes per track (its init segment and its
// registration, and per connection its end marker and the state write it
// causes). Refused conditional PUTs (412) are billed too: when the
// push is paced like a live encoder, only the tracks' first events race
// (to register), at most tracks*(tracks-1)/2 lost races, and each track's
// last fragment with its end marker, at most one more per track. A burst (a
// synthetic push as fast as the relay takes it) makes events of one track
// overlap, and their refused PUTs are reported, not bounded.
func checkRequestCost(t *testing.T, st *stack.Stack, paced bool) {
	t.Helper()
	req := st.S3.Requests()
	const tracks, fragmentsPerTrack = 3, pushSeconds / 2
	fragments := tracks * fragmentsPerTrack
	puts, refused := req[http.MethodPut], req["PUT 412"]
	const perTrack = 4
	t.Logf("store requests for %d fragments: %v (PUT per fragment %.2f, %d refused)", fragments, req, float64(puts)/float64(fragments), refused)
	if ok, limit := puts-refused, 2*fragments+perTrack*tracks; ok > limit {
		t.Errorf("%d successful PUTs for %d fragments of %d tracks; want at most %d", ok, fragments, tracks, limit)
	}
	// Paced, the events that can meet on one state document are the
	// tracks' first ones (registering in the channel index) and, per track,
	// the last fragment's and the end marker's: the relay writes both at
	// the end of the push, one right after the other.
	if limit := tracks*(tracks-1)/2 + tracks; paced && refused > limit {
		t.Errorf("%d refused PUTs for a paced push of %d tracks; want at most %d", refused, tracks, limit)
	}
	if req["LIST"] > 0 {
		t.Errorf("listed the bucket %d times", req["LIST"])
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/manifest/smooth"
)

// playerResult is what players/drive.mjs reports for one format.
type playerResult struct {
	Format   string   `json:"format"`
	OK       bool     `json:"ok"`
	Start    float64  `json:"start"`
	End      float64  `json:"end"`
	Levels   []int    `json:"levels"`
	Rendered []int    `json:"rendered"`
	Errors   []string `json:"errors"`
	Failure  string   `json:"failure"`
	Latency  *float64 `json:"latency"`
	Console  []string `json:"console"`
	Failed   []string `json:"failed"`
	// What the driver saw when a format failed.
	At         float64     `json:"at"`
	Paused     bool        `json:"paused"`
	ReadyState int         `json:"readyState"`
	Buffered   [][]float64 `json:"buffered"`
	Requests   []string    `json:"requests"`
}

// requirePlayers returns the players/ folder with its npm packages
// installed, or ends the test (failing in CI).
func requirePlayers(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../players")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("players/node_modules is missing in CI (.ci/run runs make players): %v", err)
		}
		t.Skip("players/node_modules missing: run make players (npm ci in players/)")
	}
	return dir
}

// Real browser players play a live ffmpeg push in Debian's Chromium:
// hls.js plays master.m3u8, dash.js plays manifest.mpd, and dash.js's
// Smooth Streaming support plays the Smooth Manifest. Each plays at least
// 10 s of the live stream with currentTime advancing and no player error,
// and renders the lowest and then the highest video rendition when forced
// to. The live stream comes from ffmpeg every way an encoder gets in: a
// Smooth push (-f ismv, one POST for all tracks), a CMAF push (DASH-IF
// interface 1: one POST per track), uploads of its own DASH and HLS
// packaging (interface 2: fMP4 a track per file, MPEG-TS variants, muxed
// fMP4), and two renditions over RTMP and over SRT (a connection each).
//
// The ways share one stack, each on a channel of its own, and play
// playersAtOnce at a time, each in a browser of its own; the next group's
// encoders start when a group starts playing, so that their warm-ups
// (until the channel lists five fragments) overlap its play, and each
// way's encoder stops once it has played.
func TestBrowserPlayersPlayLive(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	node := testtool.Require(t, "node")
	chromium := testtool.Require(t, "chromium")
	players := requirePlayers(t)
	st := startStackWith(t, players, func(o *stack.Options) { o.RTMPAddr, o.SRT.Addr = "127.0.0.1:0", "127.0.0.1:0" })
	const seconds = 150 // each encoder's: enough for the last ways to play, twice
	channelURL := func(channel string) string { return st.IngestURL + "/live/" + channel + ".isml" }
	ways := []struct {
		name string
		push func(ctx context.Context, channel string) *exec.Cmd
	}{
		{"smooth push", func(ctx context.Context, ch string) *exec.Cmd {
			return ffmpegPush(ctx, ffmpeg, channelURL(ch)+"/Streams(enc1)", seconds, true)
		}},
		{"cmaf push", func(ctx context.Context, ch string) *exec.Cmd {
			return ffmpegCMAFPush(ctx, ffmpeg, channelURL(ch), seconds)
		}},
		{"dash upload", func(ctx context.Context, ch string) *exec.Cmd {
			return ffmpegUpload(ctx, ffmpeg, channelURL(ch), "dash", seconds)
		}},
		{"hls upload", func(ctx context.Context, ch string) *exec.Cmd {
			return ffmpegUpload(ctx, ffmpeg, channelURL(ch), "hls", seconds)
		}},
		{"hls ts upload", func(ctx context.Context, ch string) *exec.Cmd {
			return ffmpegTSUpload(ctx, ffmpeg, channelURL(ch), seconds, true)
		}},
		{"hls muxed upload", func(ctx context.Context, ch string) *exec.Cmd {
			return ffmpegMuxed(ctx, ffmpeg, channelURL(ch), muxedHLS, seconds)
		}},
		{"rtmp", func(ctx context.Context, ch string) *exec.Cmd {
			return ffmpegLadder(ctx, ffmpeg, "flv", st.RTMPURL+"/"+ch+"/hi", st.RTMPURL+"/"+ch+"/lo", seconds)
		}},
		{"srt", func(ctx context.Context, ch string) *exec.Cmd {
			return ffmpegLadder(ctx, ffmpeg, "mpegts", srtURL(st.SRTURL, ch, "", ""), srtURL(st.SRTURL, ch, "", ""), seconds)
		}},
	}
	type live struct {
		channel string
		stop    context.CancelFunc
	}
	lives := make([]live, len(ways))
	start := func(from int) { // the encoders of the group of ways from
		for i := from; i < min(from+playersAtOnce, len(ways)); i++ {
			ctx, cancel := context.WithCancel(context.Background())
			channel := "players-" + strings.ReplaceAll(ways[i].name, " ", "-")
			startEncoder(t, ways[i].push(ctx, channel), cancel)
			lives[i] = live{channel, cancel}
		}
	}
	start(0)
	for g := 0; g < len(ways); g += playersAtOnce {
		start(g + playersAtOnce) // warms up while this group plays
		var names []string
		for _, w := range ways[g:min(g+playersAtOnce, len(ways))] {
			names = append(names, w.name)
		}
		t.Run(strings.Join(names, ", "), func(t *testing.T) {
			for i := g; i < min(g+playersAtOnce, len(ways)); i++ {
				t.Run(ways[i].name, func(t *testing.T) {
					t.Parallel()
					l := lives[i]
					defer l.stop()
					waitForFragments(t, st.EdgeURL+"/live/"+l.channel+".isml/Manifest", 5, 60*time.Second)
					playInBrowsers(t, node, chromium, players, st, l.channel)
				})
			}
		})
	}
}

// playersAtOnce is how many ways TestBrowserPlayersPlayLive plays at a
// time, three pages and a browser each (as many as -parallel runs on 2
// cores), while as many more warm up: with all eight encoders at once, a
// race-enabled stack fell behind the SRT stream (UDP: no back-pressure),
// lost packets, and hls.js never started on the gap.
const playersAtOnce = 2

// playInBrowsers runs players/drive.mjs on the live channel and checks
// what each player did, in formats (all three when none is given). A
// player that fails gets one more page: dash.js 5.2's Smooth support
// sometimes stops requesting video after a forced switch at the live edge
// (every answer 200, no error), about once in ten runs on a loaded
// machine, and hls.js 1.7 once stayed at readyState 1 after a forced
// switch with two seconds buffered ahead (1 run in 5 of the hole test, a
// loaded machine). Both attempts are logged; a player that fails twice
// fails the test.
func playInBrowsers(t *testing.T, node, chromium, players string, st *stack.Stack, channel string, formats ...string) {
	t.Helper()
	playInBrowsersWith(t, node, chromium, players, st, channel, playOptions{}, formats...)
}

// playOptions change what playInBrowsersWith asks of each player.
type playOptions struct {
	seconds int      // of media time each plays (0: 10)
	params  []string // more name=value query parameters for each page
}

// playInBrowsersWith is playInBrowsers with the options o.
func playInBrowsersWith(t *testing.T, node, chromium, players string, st *stack.Stack, channel string, o playOptions, formats ...string) {
	t.Helper()
	if o.seconds == 0 {
		o.seconds = 10
	}
	if len(formats) == 0 {
		formats = []string{"hls", "dash", "smooth"}
	}
	failures := map[string]string{}
	for attempt := 1; attempt <= 2 && len(formats) > 0; attempt++ {
		results, stderr := runDriver(t, node, chromium, players, st, channel, o, formats)
		var again []string
		for _, f := range formats {
			r, ok := results[f]
			why := judgePlayer(r, ok, o.seconds)
			if why == "" {
				delete(failures, f)
				continue
			}
			failures[f] += fmt.Sprintf("\nattempt %d: %s", attempt, why)
			again = append(again, f)
		}
		if len(again) > 0 {
			t.Logf("attempt %d: %v failed; driver stderr:\n%s", attempt, again, stderr)
		}
		formats = again
	}
	for f, why := range failures {
		t.Errorf("%s failed twice:%s", f, why)
	}
}

// drive runs players/drive.mjs (Debian's Chromium, headless) with args,
// for at most timeout, and decodes each line it prints as a T: what one
// page's player did. A line that is not a T fails the test; a driver that
// fails without printing a line stops it, with its stderr. It returns
// the results and the driver's stderr.
func drive[T any](t *testing.T, node, chromium string, timeout time.Duration, args ...string) ([]T, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var out []T
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var r T
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Errorf("driver output %q: %v", sc.Text(), err)
			continue
		}
		out = append(out, r)
	}
	if runErr != nil && len(out) == 0 {
		t.Fatalf("driver: %v\n%s", runErr, stderr.String())
	}
	return out, stderr.String()
}

// runDriver plays formats in Chromium at once and returns each player's
// result, and the driver's stderr.
func runDriver(t *testing.T, node, chromium, players string, st *stack.Stack, channel string, o playOptions, formats []string) (map[string]playerResult, string) {
	t.Helper()
	args := append([]string{filepath.Join(players, "drive.mjs"), st.EdgeURL, channel, strconv.Itoa(o.seconds)}, o.params...)
	args = append(args, formats...)
	list, stderr := drive[playerResult](t, node, chromium, 3*time.Minute+time.Duration(o.seconds)*time.Second, args...)
	results := map[string]playerResult{}
	for _, r := range list {
		results[r.Format] = r
		t.Logf("%s: played %.1f s (from %.1f), renditions %v rendered in order %v, errors %v, failed requests %v", r.Format, r.End-r.Start, r.Start, r.Levels, r.Rendered, r.Errors, r.Failed)
	}
	return results, stderr
}

// judgePlayer says what is wrong with a player's result ("" if nothing):
// it played the given seconds of the live stream with no error and
// rendered every rendition it was forced to.
func judgePlayer(r playerResult, ok bool, seconds int) string {
	switch {
	case !ok:
		return "no result"
	case !r.OK:
		return fmt.Sprintf("%s; errors %v; console %v; failed requests %v\nat %.2f s (paused %v, readyState %d), buffered %v, last requests:\n%s",
			r.Failure, r.Errors, r.Console, r.Failed, r.At, r.Paused, r.ReadyState, r.Buffered, strings.Join(r.Requests, "\n"))
	case r.End-r.Start < float64(seconds):
		return fmt.Sprintf("currentTime advanced %.1f s, want %d", r.End-r.Start, seconds)
	}
	for _, l := range r.Levels {
		if !slices.Contains(r.Rendered, l) {
			return fmt.Sprintf("rendition %d never rendered (rendered %v)", l, r.Rendered)
		}
	}
	return ""
}

// ffmpegPush is the broadcaster's command: a test pattern in two video
// bitrates and AAC, in real time, for the given seconds; isml sends the
// live server manifest.
func ffmpegPush(ctx context.Context, ffmpeg, url string, seconds int, isml bool) *exec.Cmd {
	args := []string{"-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-map", "0:v", "-map", "0:v", "-map", "1:a",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-b:v:0", "800k", "-b:v:1", "300k", "-s:v:1", "320x180", "-c:a", "aac", "-b:a", "96k",
		"-t", strconv.Itoa(seconds)}
	if isml {
		args = append(args, "-movflags", "+isml+frag_keyframe")
	}
	return exec.CommandContext(ctx, ffmpeg, append(args, "-f", "ismv", url)...)
}

// ffmpegLadder is an encoder that sends a rendition per connection (as
// OBS or a hardware encoder set up for two outputs does): a test pattern
// at 800 and at 300 kbit/s, each with the same AAC, in real time, for the
// given seconds, in format (flv, mpegts) to hi and to lo.
func ffmpegLadder(ctx context.Context, ffmpeg, format, hi, lo string, seconds int) *exec.Cmd {
	args := []string{"-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
		"-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"}
	for _, out := range []struct{ url, rate, size string }{{hi, "800k", "640x360"}, {lo, "300k", "320x180"}} {
		args = append(args, "-map", "0:v", "-map", "1:a",
			"-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
			"-b:v", out.rate, "-s", out.size, "-c:a", "aac", "-b:a", "96k", "-t", strconv.Itoa(seconds), "-f", format, out.url)
	}
	return exec.CommandContext(ctx, ffmpeg, args...)
}

// startLivePush starts ffmpegPush (with +isml) of the given seconds to
// channel, stops it when the test ends, and returns once the Smooth
// manifest lists 3 video fragments. The returned buffer collects ffmpeg's
// errors.
func startLivePush(t *testing.T, ffmpeg string, st *stack.Stack, channel string, seconds int) *bytes.Buffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	return startLive(t, ffmpegPush(ctx, ffmpeg, st.IngestURL+"/live/"+channel+".isml/Streams(enc1)", seconds, true), cancel, st, channel)
}

// startLive starts the push command (cancel stops it), stops it when the
// test ends, and returns once the channel's Smooth manifest lists 5 video
// fragments. The returned buffer collects the push's errors.
func startLive(t *testing.T, push *exec.Cmd, cancel context.CancelFunc, st *stack.Stack, channel string) *bytes.Buffer {
	t.Helper()
	pushErr := startEncoder(t, push, cancel)
	waitForFragments(t, st.EdgeURL+"/live/"+channel+".isml/Manifest", 5, 40*time.Second)
	return pushErr
}

// startEncoder starts the push command (cancel stops it) and stops it
// when the test ends. The returned buffer collects the push's errors.
func startEncoder(t *testing.T, push *exec.Cmd, cancel context.CancelFunc) *bytes.Buffer {
	t.Helper()
	var pushErr bytes.Buffer
	push.Stderr = &pushErr
	if err := push.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = push.Wait() })
	return &pushErr
}

// waitForFragments polls a Smooth manifest until its video lists n
// fragments.
func waitForFragments(t *testing.T, manifest string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, body := get(t, manifest)
		if m, err := smooth.Parse(body); resp.StatusCode == 200 && err == nil {
			for _, si := range m.Streams {
				if frags, err := si.Fragments(); err == nil && si.Type == "video" && len(frags) >= n {
					return
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: fewer than %d video fragments after %v", manifest, n, timeout)
}

package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/manifest/hls"
	"github.com/smoothcast/smoothcast/shared/webvtt"
)

// subtitlesFixture is the subtitle file ffmpeg uploads: three cues, the
// second across a segment boundary (ffmpeg writes it in the segment where
// it starts only), a segment without any cue before the third.
const subtitlesFixture = "testdata/subtitles.srt"

// fixtureCues are subtitlesFixture's cues.
var fixtureCues = []webvtt.Cue{
	{Start: 1000 * time.Millisecond, End: 2500 * time.Millisecond, Text: "First subtitle"},
	{Start: 3000 * time.Millisecond, End: 5500 * time.Millisecond, Text: "Second subtitle\non two lines"},
	{Start: 8200 * time.Millisecond, End: 9000 * time.Millisecond, Text: "Third subtitle"},
}

// ffmpegSubtitlesUpload is ffmpeg's HLS upload of a test pattern with the
// fixture's subtitles: MPEG-TS A/V segments, WebVTT segments and their
// playlist, and a multivariant playlist whose EXT-X-MEDIA TYPE=SUBTITLES
// names it (-var_stream_map's sgroup), as `ffmpeg -i subs.srt ... -c:s
// webvtt -f hls -method PUT` sends them.
func ffmpegSubtitlesUpload(ctx context.Context, ffmpeg, channelURL string, seconds int) *exec.Cmd {
	return exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-loglevel", "error",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25",
		"-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-i", subtitlesFixture,
		"-map", "0:v", "-map", "1:a", "-map", "2:s",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-b:v", "300k",
		"-c:a", "aac", "-b:a", "64k", "-c:s", "webvtt", "-t", strconv.Itoa(seconds), "-method", "PUT",
		"-f", "hls", "-hls_time", "2", "-hls_list_size", "5", "-hls_flags", "delete_segments",
		"-var_stream_map", "v:0,a:0,s:0,sgroup:subs,language:eng", "-master_pl_name", "master.m3u8",
		channelURL+"/out_%v.m3u8")
}

// storedCues reads, through the edge, the WebVTT files the relay stored
// beside the wvtt fragments of channel's text tracks, and joins their
// cues (a cue cut at fragment boundaries is one again); it returns them,
// with the text tracks and the start of the channel's first video
// fragment, in seconds of media time.
func storedCues(t *testing.T, st *stack.Stack, channel string) (cues []webvtt.Cue, tracks []string, videoStart time.Duration) {
	t.Helper()
	var placed []webvtt.Cue
	videoStart = -1
	for _, k := range testtool.Keys(t, st.Store) {
		base, isVTT := strings.CutSuffix(k, ".vtt")
		obj, err := layout.Parse(base)
		if err != nil || obj.Channel != channel {
			continue
		}
		if obj.Kind == layout.KindFragment && obj.Track.Name == "video" && !isVTT {
			_, init := get(t, st.EdgeURL+"/"+layout.InitKey(channel, obj.Track))
			tr, err := fmp4.ParseInit(init)
			if err != nil {
				t.Fatal(err)
			}
			if at := webvtt.Duration(obj.Start, uint32(tr.Timescale)); videoStart < 0 || at < videoStart {
				videoStart = at
			}
		}
		if !isVTT {
			continue
		}
		if !slices.Contains(tracks, obj.Track.String()) {
			tracks = append(tracks, obj.Track.String())
		}
		resp, body := get(t, st.EdgeURL+"/"+k)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/vtt" {
			t.Fatalf("%s: %d %s", k, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		f, err := webvtt.Parse(body)
		if err != nil || f.Map == nil {
			t.Fatalf("%s: %v (map %v)\n%s", k, err, f, body)
		}
		// The file's cues, placed by its map (as a player does).
		shift := webvtt.Duration(f.Map.MPEGTS, 90000) - f.Map.Local
		for _, c := range f.Cues {
			c.Start, c.End = c.Start+shift, c.End+shift
			placed = append(placed, c)
		}
	}
	return joinCues(placed), tracks, videoStart
}

// ffmpeg uploads HLS (MPEG-TS A/V) with WebVTT subtitles from a
// subtitle file: the channel gets a text track (text_eng), a WebVTT file
// beside each of its fragments, served as text/vtt, whose cues, placed
// by their maps, are the fixture's, at its times after the video's
// start; the channel's HLS lists them as an English SUBTITLES rendition,
// from which ffmpeg reads the same cues, and hls.js in Chromium shows
// them at their times.
func TestFFmpegHLSUploadWithSubtitles(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	besideAnother(t)
	ffmpeg := testtool.Require(t, "ffmpeg")
	node := testtool.Require(t, "node")
	chromium := testtool.Require(t, "chromium")
	players := requirePlayers(t)
	st := startStackWith(t, players)
	const channel = "subtitles"
	// 10 s: the fixture's last cue ends at 9 s.
	cmd := ffmpegSubtitlesUpload(context.Background(), ffmpeg, st.IngestURL+"/live/"+channel+".isml", 10)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffmpeg -f hls -method PUT: %v\n%s", err, stderr.String())
	}
	base := st.EdgeURL + "/live/" + channel + ".isml/"
	began := time.Now()
	waitForVOD(t, st, base)
	t.Logf("VOD %v after the upload", time.Since(began).Round(time.Millisecond))

	cues, tracks, videoStart := storedCues(t, st, channel)
	if len(tracks) != 1 || !strings.HasPrefix(tracks[0], "text_eng@") {
		t.Fatalf("WebVTT files of tracks %v, want text_eng's", tracks)
	}
	if videoStart < 0 {
		t.Fatal("no video fragment stored")
	}
	t.Logf("video starts at %v; cues %+v", videoStart, cues)
	checkCues(t, "stored", cues, videoStart, 2*time.Millisecond)

	// ffmpeg 5.1 reads the subtitles from the channel's HLS output: its
	// HLS demuxer refuses a multivariant playlist's subtitle renditions
	// ("Can't support the subtitle"), so it reads the subtitle playlist
	// that EXT-X-MEDIA names, whose .vtt files it runs together.
	_, body := get(t, base+"master.m3u8")
	master, err := hls.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	var subs []hls.Rendition
	for _, r := range master.Renditions {
		if r.Type == "SUBTITLES" {
			subs = append(subs, r)
		}
	}
	if len(subs) != 1 || subs[0].Language != "eng" || !subs[0].Default {
		t.Fatalf("SUBTITLES renditions %+v, want the English one, default:\n%s", subs, body)
	}
	out, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-copyts", "-i", base+subs[0].URI, "-map", "0:s", "-f", "webvtt", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg reading %s: %v", subs[0].URI, err)
	}
	read, err := webvtt.Parse(out)
	if err != nil {
		t.Fatalf("ffmpeg's WebVTT: %v\n%s", err, out)
	}
	checkCues(t, "ffmpeg", joinCues(read.Cues), videoStart, 2*time.Millisecond)

	// hls.js in Chromium, playing the archive from its start, holds the
	// fixture's cues in its text track at their times: its media
	// element's time is the channel's media time less the video's start
	// (the first frame plays at 0), so a cue shows when the frame it
	// goes with does. A cue across a fragment boundary is two cues there
	// (one per WebVTT file), joined here.
	began = time.Now()
	results := runCuesDriver(t, node, chromium, players, st, channel, 9, []string{"start=0", "hls:eng"})
	if len(results) != 1 || !results[0].OK {
		t.Fatalf("hls.js: %+v", results)
	}
	var shown []webvtt.Cue
	for _, c := range results[0].Cues {
		shown = append(shown, webvtt.Cue{Start: time.Duration(c.Start * float64(time.Second)), End: time.Duration(c.End * float64(time.Second)), Text: c.Text})
	}
	t.Logf("hls.js played %.1f s to %.1f s in %v: %+v", results[0].Start, results[0].End, time.Since(began).Round(time.Millisecond), shown)
	checkCues(t, "hls.js", joinCues(shown), 0, 40*time.Millisecond)
}

// joinCues joins the cues a reader of the files split at their
// boundaries (the same text, one ending where the next starts).
func joinCues(cues []webvtt.Cue) []webvtt.Cue {
	var samples []webvtt.Sample
	for _, c := range cues {
		samples = append(samples, webvtt.Sample{Time: uint64(c.Start / time.Millisecond), Duration: uint64((c.End - c.Start) / time.Millisecond), Cues: []webvtt.Cue{{Text: c.Text}}})
	}
	slices.SortFunc(samples, func(a, b webvtt.Sample) int { return int(int64(a.Time) - int64(b.Time)) })
	return webvtt.Join(samples, 1000)
}

// checkCues checks cues against the fixture's, offset by start, within
// tolerance (2 ms for media times in ms beside a video start in 90 kHz;
// a frame for a player's).
func checkCues(t *testing.T, what string, cues []webvtt.Cue, start, tolerance time.Duration) {
	t.Helper()
	if len(cues) != len(fixtureCues) {
		t.Fatalf("%s: %d cues %+v, want %d", what, len(cues), cues, len(fixtureCues))
	}
	near := func(a, b time.Duration) bool { return (a - b).Abs() <= tolerance }
	for i, c := range cues {
		w := fixtureCues[i]
		if c.Text != w.Text || !near(c.Start, w.Start+start) || !near(c.End, w.End+start) {
			t.Errorf("%s: cue %d: %q %v-%v, want %q %v-%v", what, i, c.Text, c.Start, c.End, w.Text, w.Start+start, w.End+start)
		}
	}
}

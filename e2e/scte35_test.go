package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/check"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/manifest/hls"
	"github.com/smoothcast/smoothcast/shared/scte35"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// adMarker is an ad marker a test sends, and where it must come out: at
// media time at (from the channel's media time zero), carrying section.
type adMarker struct {
	at      time.Duration
	kind    scte35.Kind
	section []byte
}

// SCTE-35 ad markers come out of every way in at the same media times in
// HLS (EXT-X-DATERANGE, or CUE tags with ?markers=cue) and DASH (a Period
// EventStream, and emsg boxes in the fragments): a synthetic CMAF push
// carrying them as emsg boxes, and a Smooth sparse track on a POST of its
// own, played live by hls.js and dash.js in
// Chromium, which report them at their media times, and whose manifests
// carry them live, time-shifted and after the stream ended; and an HLS
// upload whose playlists carry CUE-OUT, CUE-IN and a DATERANGE (ffmpeg
// made its segments; the test uploads them with playlists of its own, as
// ffmpeg's hls muxer writes no such tags).
func TestSCTE35MarkersInEveryFormat(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	node := testtool.Require(t, "node")
	chromium := testtool.Require(t, "chromium")
	players := requirePlayers(t)
	st := startStackWith(t, players)
	t.Run("CMAF push with emsg, hls.js and dash.js", func(t *testing.T) {
		t.Parallel()
		markersOfAPush(t, st, node, chromium, players)
	})
	t.Run("HLS upload with CUE and DATERANGE tags", func(t *testing.T) {
		t.Parallel()
		markersOfAnUpload(t, st, ffmpeg)
	})
}

func markersOfAPush(t *testing.T, st *stack.Stack, node, chromium, players string) {
	const channel, fragments = "ads", 13 // 26 s of 2 s fragments, in real time
	marks := []synth.Marker{
		{Fragment: 5, At: 500 * time.Millisecond, ID: 101, Out: true, Duration: 10 * time.Second}, // 10.5 s, inside fragment 5
		{Fragment: 7, At: 3 * time.Second, ID: 102},                                               // 17 s, announced a fragment ahead
		{Fragment: 9, At: time.Second, ID: 103, V0: true},                                         // 19 s, as a version 0 emsg
	}
	cfg := synth.Config{CMAF: true, Markers: marks, Tracks: []synth.Track{
		{Kind: timeline.Video, Bitrate: 400_000, Width: 640, Height: 360},
		{Kind: timeline.Video, Bitrate: 150_000, Width: 320, Height: 180},
		{Kind: timeline.Audio, Bitrate: 64_000},
	}}
	// A Smooth encoder's sparse track, on a POST of its own, as Azure
	// Media Services took SCTE-35: a break at 22.5 s.
	sparse := []synth.Marker{{Fragment: 11, At: 500 * time.Millisecond, ID: 104, Out: true, Duration: 5 * time.Second}}
	var want []adMarker
	for _, m := range append(marks, sparse...) {
		kind := scte35.In
		if m.Out {
			kind = scte35.Out
		}
		want = append(want, adMarker{at: time.Duration(m.Fragment)*2*time.Second + m.At, kind: kind, section: m.Payload()})
	}
	pushes := pushSplit(t, st, channel, cfg, fragments, nil)
	base := st.EdgeURL + "/live/" + channel + ".isml/"
	waitForFragments(t, base+"Manifest", 3, 40*time.Second)
	epoch := availabilityStart(t, base)
	push, err := synth.SparseTrack(10_000_000, 20_000_000, "video", sparse).Push()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(fmt.Sprintf("%s/live/%s.isml/Streams(sparse)", st.IngestURL, channel), "application/octet-stream", bytes.NewReader(push))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the sparse track's POST: %s", resp.Status)
	}

	// The players, live: each reports every marker at its media time.
	// dash.js reports the MPD's events and the emsg boxes of the
	// fragments it loaded. (dash.js's Smooth support is left out: on this
	// push it stalls at its start position in about half the runs, with
	// or without emsg boxes in the fragments.)
	reports := driveEvents(t, node, chromium, players, st, channel, 14, "hls", "dash")
	// hls.js lists every DATERANGE of the playlists. A live player that
	// joins after a marker need not report it: dash.js, from where it
	// started; in band only those whose fragment it loaded (not the
	// sparse track's, which rides whatever video fragment came next).
	dash := reports["dash"]
	for i, m := range want {
		at := epoch.Add(m.at).UTC().Format("2006-01-02T15:04:05.000Z")
		payload := base64.StdEncoding.EncodeToString(m.section)
		if !reports["hls"].has(func(e playerEvent) bool { return e.StartDate == at && e.Payload == payload }) {
			t.Errorf("hls.js did not report the marker at %v (%s): %+v", m.at, at, reports["hls"].Events)
		}
		for _, scheme := range []string{scte35.XMLBinScheme, scte35.Scheme} {
			switch {
			case m.at.Seconds() < dash.Start:
				continue
			case scheme == scte35.Scheme && (i >= len(marks) || m.at.Seconds() > dash.End-2):
				continue
			}
			if !dash.has(func(e playerEvent) bool {
				return e.Scheme == scheme && math.Abs(e.PresentationTime-m.at.Seconds()) < 0.001 && e.Payload == payload
			}) {
				t.Errorf("dash.js did not report the %s marker at %v: %+v", scheme, m.at, dash.Events)
			}
		}
	}

	pushes.Wait()
	if errs := pushes.String(); errs != "" {
		t.Fatalf("pushes: %s", errs)
	}
	waitForVOD(t, st, base)
	// smoothcast check reads the fragments, emsg boxes first, as every
	// format lists them.
	if rep, err := check.Run(context.Background(), nil, st.EdgeURL, channel, check.Options{}); err != nil {
		t.Errorf("smoothcast check: %v", err)
	} else if !rep.OK() {
		t.Errorf("smoothcast check: %v", rep.Problems)
	}
	// The manifests of the ended stream, its whole archive, a range and
	// the CUE tags.
	checkMarkers(t, base, "", epoch, want)
	checkMarkers(t, base, "start=0", epoch, want)
	from, to := epoch.Add(9*time.Second), epoch.Add(18*time.Second)
	q := "start=" + url.QueryEscape(from.Format(time.RFC3339Nano)) + "&end=" + url.QueryEscape(to.Format(time.RFC3339Nano))
	checkMarkers(t, base, q, epoch, want[:2])
	_, b := get(t, base+"QualityLevels(400000)/video.m3u8?markers=cue")
	for _, w := range []string{"#EXT-X-CUE-OUT:10.000\n#EXTINF:2.000000,\nFragments(video=100000000)", "#EXT-X-CUE-IN\n#EXTINF:2.000000,\nFragments(video=160000000)"} {
		if !strings.Contains(string(b), w) {
			t.Errorf("?markers=cue: the playlist lacks %q:\n%s", w, b)
		}
	}
}

// firstVideoTime is the media time of the first video segment an MPD
// lists.
func firstVideoTime(t *testing.T, mpd []byte) time.Duration {
	t.Helper()
	m := regexp.MustCompile(`(?s)contentType="video".*?<SegmentTemplate timescale="([0-9]+)"[^>]*>\s*<SegmentTimeline>\s*<S t="([0-9]+)"`).FindSubmatch(mpd)
	if m == nil {
		t.Fatalf("no video SegmentTimeline in the MPD:\n%s", mpd)
	}
	ts, _ := strconv.ParseUint(string(m[1]), 10, 64)
	t0, _ := strconv.ParseUint(string(m[2]), 10, 64)
	return timeline.DurationOf(t0, ts)
}

// availabilityStart is the channel's epoch, as its live MPD says.
func availabilityStart(t *testing.T, base string) time.Time {
	t.Helper()
	_, b := get(t, base+"manifest.mpd")
	m := regexp.MustCompile(`availabilityStartTime="([^"]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("live MPD without availabilityStartTime:\n%s", b)
	}
	epoch, err := time.Parse(time.RFC3339Nano, string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return epoch
}

// checkMarkers checks that the manifests of base (with query q) carry
// exactly the markers want, each at its media time: in each media
// playlist an EXT-X-DATERANGE at the START-DATE epoch plus its time with
// its section, and in the MPD an Event at its time (from its Period's
// start) with its section in base64.
func checkMarkers(t *testing.T, base, q string, epoch time.Time, want []adMarker) {
	t.Helper()
	suffix := ""
	if q != "" {
		suffix = "?" + q
	}
	_, b := get(t, base+"master.m3u8"+suffix)
	master, err := hls.Parse(b)
	if err != nil {
		t.Fatalf("master.m3u8%s: %v", suffix, err)
	}
	for _, uri := range master.MediaURIs() {
		_, b := get(t, base+uri)
		got := dateRanges(t, b)
		if len(got) != len(want) {
			t.Errorf("%s: %d DATERANGE tags, want %d:\n%s", uri, len(got), len(want), b)
			continue
		}
		for i, m := range want {
			if w := epoch.Add(m.at); got[i].start.Sub(w).Abs() > time.Millisecond || got[i].kind != m.kind || !bytes.Equal(got[i].section, m.section) {
				t.Errorf("%s: DATERANGE %d at %v kind %d %x, want at %v kind %d %x", uri, i, got[i].start, got[i].kind, got[i].section, w, m.kind, m.section)
			}
		}
	}
	_, b = get(t, base+"manifest.mpd"+suffix)
	evs := mpdEvents(t, b)
	if len(evs) != len(want) {
		t.Errorf("manifest.mpd%s: %d Events, want %d:\n%s", suffix, len(evs), len(want), b)
		return
	}
	for i, m := range want {
		if math.Abs(evs[i].at-m.at.Seconds()) > 1e-3 || evs[i].binary != base64.StdEncoding.EncodeToString(m.section) {
			t.Errorf("manifest.mpd%s: Event %d at %.6f s (%s), want %.6f s (%x)", suffix, i, evs[i].at, evs[i].binary, m.at.Seconds(), m.section)
		}
	}
}

type dateRange struct {
	start   time.Time
	kind    scte35.Kind
	section []byte
}

// dateRanges are a media playlist's DATERANGE tags of SCTE-35 markers.
func dateRanges(t *testing.T, b []byte) []dateRange {
	t.Helper()
	var out []dateRange
	re := regexp.MustCompile(`START-DATE="([^"]+)".*SCTE35-(OUT|IN|CMD)=(0x[0-9A-F]+)`)
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "#EXT-X-DATERANGE:") {
			continue
		}
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("DATERANGE without START-DATE or SCTE35: %s", l)
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		sec, err2 := scte35.ParseHex(m[3])
		if err != nil || err2 != nil {
			t.Errorf("%s: %v %v", l, err, err2)
			continue
		}
		kind := map[string]scte35.Kind{"OUT": scte35.Out, "IN": scte35.In, "CMD": scte35.Cmd}[m[2]]
		out = append(out, dateRange{at, kind, sec})
	}
	return out
}

type mpdEvent struct {
	at     float64 // seconds from the media time zero
	binary string
}

// mpdEvents are the Events of an MPD's SCTE-35 EventStreams, each at its
// media time: the Period's start (from the availability start, or for a
// static MPD from its first segment, whose time the presentation time
// offset gives) plus its presentation time less the offset.
func mpdEvents(t *testing.T, b []byte) []mpdEvent {
	t.Helper()
	var out []mpdEvent
	stream := regexp.MustCompile(`(?s)<Period id="[^"]*" start="PT([0-9.]+)S">\s*<EventStream schemeIdUri="` + regexp.QuoteMeta(scte35.XMLBinScheme) + `" timescale="([0-9]+)"(?: presentationTimeOffset="([0-9]+)")?>(.*?)</EventStream>`)
	event := regexp.MustCompile(`(?s)<Event presentationTime="([0-9]+)"[^>]*>\s*<scte35:Signal[^>]*>\s*<scte35:Binary>([^<]*)</scte35:Binary>`)
	static := strings.Contains(string(b), `type="static"`)
	for _, s := range stream.FindAllStringSubmatch(string(b), -1) {
		start, _ := strconv.ParseFloat(s[1], 64)
		ts, _ := strconv.ParseFloat(s[2], 64)
		pto, _ := strconv.ParseFloat(s[3], 64)
		if static {
			start += pto / ts // the Period's start is its first segment's time
		}
		for _, e := range event.FindAllStringSubmatch(s[4], -1) {
			pt, _ := strconv.ParseFloat(e[1], 64)
			out = append(out, mpdEvent{at: start + (pt-pto)/ts, binary: e[2]})
		}
	}
	return out
}

// playerEvent is an ad marker a player reported (window.smoothcast.events).
type playerEvent struct {
	Scheme           string  `json:"scheme"`
	PresentationTime float64 `json:"presentationTime"`
	StartDate        string  `json:"startDate"`
	Payload          string  `json:"payload"`
}

// eventsResult is what drive.mjs --events prints for one format.
type eventsResult struct {
	Format  string        `json:"format"`
	OK      bool          `json:"ok"`
	Failure string        `json:"failure"`
	Start   float64       `json:"start"`
	End     float64       `json:"end"`
	Errors  []string      `json:"errors"`
	Events  []playerEvent `json:"events"`
}

func (r eventsResult) has(ok func(playerEvent) bool) bool {
	for _, e := range r.Events {
		if ok(e) {
			return true
		}
	}
	return false
}

// driveEvents plays channel live in each format for the given seconds
// (players/drive.mjs --events) and returns what each player reported.
func driveEvents(t *testing.T, node, chromium, players string, st *stack.Stack, channel string, seconds int, formats ...string) map[string]eventsResult {
	t.Helper()
	args := append([]string{filepath.Join(players, "drive.mjs"), "--events", st.EdgeURL, channel, strconv.Itoa(seconds)}, formats...)
	list, stderr := drive[eventsResult](t, node, chromium, 2*time.Minute, args...)
	out := map[string]eventsResult{}
	for _, r := range list {
		out[r.Format] = r
		t.Logf("%s: played %.1f s (from %.1f s), %d markers reported, errors %v", r.Format, r.End-r.Start, r.Start, len(r.Events), r.Errors)
		if !r.OK {
			t.Errorf("%s did not play: %s %v", r.Format, r.Failure, r.Errors)
		}
	}
	if len(out) != len(formats) {
		t.Fatalf("driver: %d results of %d\n%s", len(out), len(formats), stderr)
	}
	return out
}

func markersOfAnUpload(t *testing.T, st *stack.Stack, ffmpeg string) {
	const channel, segments = "adsup", 6
	dir := t.TempDir()
	cmd := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-b:v", "200k",
		"-c:a", "aac", "-b:a", "64k", "-t", strconv.Itoa(2*segments),
		"-f", "hls", "-hls_time", "2", "-hls_segment_type", "fmp4", "-hls_playlist_type", "vod",
		"-hls_segment_filename", filepath.Join(dir, "seg%d.m4s"), filepath.Join(dir, "out.m3u8"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg -f hls: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "out.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	made, err := hls.Parse(b)
	if err != nil || len(made.Segments) != segments || len(made.Maps) != 1 {
		t.Fatalf("ffmpeg's playlist (%v):\n%s", err, b)
	}
	// The encoder's clock for its program date-times, and the markers:
	// a break out at segment 2, a time_signal 0.5 s into segment 3, back
	// in at segment 4.
	pdt0 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	cmdSection := func() []byte {
		b, err := scte35.ParseBase64("/DA0AAAAAAAA///wBQb+cr0AUAAeAhxDVUVJSAAAjn/PAAGlmbAICAAAAAAsoKGKNAIAmsnRfg==")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}()
	var starts []time.Duration // each uploaded segment's start after the first
	var at time.Duration
	for _, s := range made.Segments {
		starts = append(starts, at)
		at += s.Duration
	}
	tags := map[int]string{
		2: "#EXT-X-CUE-OUT:30",
		3: fmt.Sprintf(`#EXT-X-DATERANGE:ID="sig-1",START-DATE="%s",SCTE35-CMD=%s`, pdt0.Add(starts[3]+500*time.Millisecond).Format("2006-01-02T15:04:05.000Z"), scte35.Hex(cmdSection)),
		4: "#EXT-X-CUE-IN",
	}
	playlist := func(n int) []byte {
		var p strings.Builder
		fmt.Fprintf(&p, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:%d\n#EXT-X-MAP:URI=%q\n", made.TargetDuration, made.Maps[0].URI)
		for k := range n {
			if k == 0 {
				fmt.Fprintf(&p, "#EXT-X-PROGRAM-DATE-TIME:%s\n", pdt0.Format("2006-01-02T15:04:05.000Z"))
			}
			if tag, ok := tags[k]; ok {
				p.WriteString(tag + "\n")
			}
			fmt.Fprintf(&p, "#EXTINF:%.6f,\n%s\n", made.Segments[k].Duration.Seconds(), made.Segments[k].URI)
		}
		if n == len(made.Segments) {
			p.WriteString("#EXT-X-ENDLIST\n")
		}
		return []byte(p.String())
	}
	chURL := st.IngestURL + "/live/" + channel + ".isml/"
	put := func(name string, body []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPut, chURL+name, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("PUT %s: %s", name, resp.Status)
		}
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// As an encoder uploads: the init segment, then each segment and the
	// playlist that lists it.
	put(made.Maps[0].URI, read(made.Maps[0].URI))
	for k, s := range made.Segments {
		put(s.URI, read(s.URI))
		put("out.m3u8", playlist(k+1))
	}
	base := st.EdgeURL + "/live/" + channel + ".isml/"
	waitForVOD(t, st, base)
	// Where the relay put the uploaded segments on the channel's
	// timeline: the first fragment of the video's playlist.
	_, b = get(t, base+"master.m3u8")
	master, err := hls.Parse(b)
	if err != nil || len(master.Variants) == 0 {
		t.Fatalf("master.m3u8 (%v):\n%s", err, b)
	}
	_, b = get(t, base+master.Variants[0].URI)
	video, err := hls.Parse(b)
	if err != nil || len(video.Segments) != segments {
		t.Fatalf("the upload's video playlist (%v), want %d segments:\n%s", err, segments, b)
	}
	// Media time zero: the video's first fragment starts at its time in
	// the MPD's SegmentTimeline, and at its program date-time.
	_, mpd := get(t, base+"manifest.mpd")
	first := firstVideoTime(t, mpd)
	epoch := video.Segments[0].ProgramDateTime.Add(-first)
	var outStarts []time.Duration // each output fragment's media time
	at = first
	for _, s := range video.Segments {
		outStarts = append(outStarts, at)
		at += s.Duration
	}
	want := []adMarker{
		{at: outStarts[2], kind: scte35.Out},
		{at: outStarts[3] + 500*time.Millisecond, kind: scte35.Cmd, section: cmdSection},
		{at: outStarts[4], kind: scte35.In},
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "#EXT-X-DATERANGE") {
			t.Logf("upload's video playlist: %s", l)
		}
	}
	// The CUE tags' sections are the relay's own splice_insert: taken
	// from the DATERANGEs, once their kind is checked.
	got := dateRanges(t, b)
	if len(got) != len(want) {
		t.Fatalf("the upload's video playlist has %d DATERANGE tags, want %d:\n%s", len(got), len(want), b)
	}
	for i := range want {
		if want[i].section == nil {
			want[i].section = got[i].section
			if info, err := scte35.Parse(got[i].section); err != nil || info.Kind != want[i].kind || info.Command != 5 {
				t.Errorf("CUE tag %d came out as %+v (%v), want a splice_insert of kind %d", i, info, err, want[i].kind)
			}
		}
	}
	checkMarkers(t, base, "", epoch, want)
}

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/smoothcast/smoothcast/internal/check"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/internal/testtool/tsedit"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/manifest/dash"
	"github.com/smoothcast/smoothcast/shared/manifest/smooth"
	"github.com/smoothcast/smoothcast/shared/packager"
	"github.com/smoothcast/smoothcast/shared/tsdemux"
)

// ffmpegTSUpload is ffmpeg's default HLS output, uploaded: MPEG-TS
// segments of muxed H.264 and AAC, each PUT under the channel with its
// media playlist. variants: two renditions, each its own video and audio
// (-var_stream_map "v:0,a:0 v:1,a:1") and a multivariant playlist; else
// one, as `ffmpeg ... -f hls -method PUT .../index.m3u8` sends it.
func ffmpegTSUpload(ctx context.Context, ffmpeg, channelURL string, seconds int, variants bool) *exec.Cmd {
	args := []string{"-hide_banner", "-loglevel", "error",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
		"-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-c:a", "aac", "-b:a", "96k", "-t", strconv.Itoa(seconds), "-method", "PUT",
		"-f", "hls", "-hls_time", "2", "-hls_list_size", "5", "-hls_flags", "delete_segments"}
	if !variants {
		args = append(args, "-b:v", "800k", channelURL+"/index.m3u8")
		return exec.CommandContext(ctx, ffmpeg, args...)
	}
	args = append(args, "-map", "0:v", "-map", "1:a", "-map", "0:v", "-map", "1:a",
		"-b:v:0", "800k", "-b:v:1", "300k", "-s:v:1", "320x180",
		"-var_stream_map", "v:0,a:0 v:1,a:1", "-master_pl_name", "master.m3u8", channelURL+"/stream_%v.m3u8")
	return exec.CommandContext(ctx, ffmpeg, args...)
}

// runTSUpload runs ffmpegTSUpload to its end.
func runTSUpload(t *testing.T, ffmpeg, channelURL string, seconds int, variants bool) {
	t.Helper()
	cmd := ffmpegTSUpload(context.Background(), ffmpeg, channelURL, seconds, variants)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffmpeg -f hls -method PUT: %v\n%s", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("ffmpeg reported errors uploading:\n%s", stderr.String())
	}
}

// checkArchive checks a channel whose encoder ended: every format turned
// VOD with the given discontinuities, smoothcast check finds nothing
// missing, every Smooth fragment is there, and ffmpeg decodes the whole
// archive through HLS and DASH; it returns the final Smooth manifest.
func checkArchive(t *testing.T, st *stack.Stack, ffmpeg, channel string, video, audio time.Duration, discontinuities int) *smooth.Manifest {
	t.Helper()
	base := st.EdgeURL + "/live/" + channel + ".isml/"
	m := waitForVOD(t, st, base)
	checkVODManifests(t, base, discontinuities)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := check.Run(ctx, nil, st.EdgeURL, channel, check.Options{})
	if err != nil || !rep.OK() {
		t.Fatalf("smoothcast check: %v %v", err, rep.Problems)
	}
	checkSmoothFragmentsExist(t, base, m)
	checkDecodeSpan(t, ffmpeg, base+"master.m3u8", video, audio, [][]string{{"0:v:0", "0:a:0"}})
	if discontinuities > 0 {
		// ffmpeg 5.1's DASH demuxer reads one Period: the MPD has one
		// per session.
		_, b := get(t, base+"manifest.mpd")
		if mpd, err := dash.Parse(b); err != nil || len(mpd.Periods) != discontinuities+1 {
			t.Errorf("the MPD does not parse into %d Periods (%v):\n%s", discontinuities+1, err, b)
		}
		return m
	}
	checkDecodeSpan(t, ffmpeg, base+"manifest.mpd", video, audio, [][]string{{"0:v:0"}, {"0:a:0"}})
	return m
}

// ffmpeg's default HLS output (MPEG-TS segments, video and audio muxed),
// uploaded with -method PUT, one rendition or -var_stream_map's two:
// the channel plays in Smooth, HLS and DASH, each variant's video and
// audio becoming tracks of their own, and ffmpeg decodes the whole
// archive once the encoder's playlists end it.
func TestFFmpegTSUploadPlaysInEveryFormat(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	for _, tc := range []struct {
		name     string
		variants bool
		videos   int // video quality levels
	}{
		{"muxed", false, 1},
		{"variants", true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := startStack(t)
			channel := "ts" + tc.name
			runTSUpload(t, ffmpeg, st.IngestURL+"/live/"+channel+".isml", pushSeconds, tc.variants)
			m := checkArchive(t, st, ffmpeg, channel, pushSeconds*time.Second, pushSeconds*time.Second, 0)
			for _, si := range m.Streams {
				if si.Type == "video" && len(si.Levels) != tc.videos {
					t.Errorf("%d video quality levels, want %d", len(si.Levels), tc.videos)
				}
				t.Logf("%s: %d quality levels", si.Type, len(si.Levels))
			}
		})
	}
}

// segmentCutter is a proxy to the relay that passes every upload on,
// but cuts the cut-th MPEG-TS segment's PUT (from 1) halfway: the relay
// gets half its body and then a broken connection, and ffmpeg an error;
// cut is closed then. whole counts the segments passed on whole that the
// relay took (200, or 202 for one held for its playlist).
type segmentCutter struct {
	relay string
	cutAt int

	mu    sync.Mutex
	n     int
	whole int
	cut   chan struct{}
}

func newSegmentCutter(t *testing.T, relayURL string, cutAt int) (*segmentCutter, string) {
	c := &segmentCutter{relay: relayURL, cutAt: cutAt, cut: make(chan struct{})}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return c, srv.URL
}

func (c *segmentCutter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	segment := r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, ".ts")
	n := 0
	if segment {
		c.mu.Lock()
		c.n++
		n = c.n
		c.mu.Unlock()
	}
	var in io.Reader = bytes.NewReader(body)
	if n == c.cutAt {
		// Half the segment, then the connection breaks: the client
		// sends it chunked and aborts.
		pr, pw := io.Pipe()
		go func() {
			_, _ = pw.Write(body[:len(body)/2])
			pw.CloseWithError(errors.New("connection cut mid-segment"))
		}()
		in = pr
		defer close(c.cut)
	}
	// Not the request's context: ffmpeg closes its connection once it has
	// sent a file, without waiting for the answer.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.Method, c.relay+r.URL.RequestURI(), in)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if segment && n != c.cutAt && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusAccepted) {
		c.mu.Lock()
		c.whole++
		c.mu.Unlock()
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// An uploading encoder's connection breaks in the middle of a segment and
// the encoder stops; a new one (ffmpeg started again, from timestamp
// zero and segment 0) takes over. Nothing of the cut segment is stored;
// every segment that arrived whole is. Started again soon, the new
// encoder's first segments are the ones the relay has (resends, dropped)
// and the channel goes on without a discontinuity; started again after
// more segments than the relay remembers, its rendition starts a new
// session with the same tracks, after one discontinuity. Either way the
// channel ends VOD, lists exactly what it stores, and decodes whole.
func TestFFmpegTSUploadReconnects(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	const again = 12 // seconds of the second encoder
	for _, tc := range []struct {
		name            string
		cutAt           int // the segment cut, from 1
		archive         time.Duration
		discontinuities int
	}{
		// Segments 0-2 stored, then the second encoder's 0-5: 12 s.
		{"reconnect", 4, again * time.Second, 0},
		// Segments 0-9 stored (20 s), then the second encoder's 12 s.
		{"restart", 11, 20*time.Second + again*time.Second, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := startStack(t)
			channel := "tsre" + tc.name
			cutter, proxy := newSegmentCutter(t, st.IngestURL, tc.cutAt)
			first := ffmpegTSUpload(context.Background(), ffmpeg, proxy+"/live/"+channel+".isml", 60, false)
			var ferr bytes.Buffer
			first.Stderr = &ferr
			defer func() {
				if t.Failed() {
					t.Logf("the first ffmpeg said: %s", ferr.String())
				}
			}()
			if err := first.Start(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-cutter.cut:
			case <-time.After(2 * time.Minute):
				t.Fatal("no segment cut")
			}
			_ = first.Process.Kill()
			_ = first.Wait()
			waitUntil(t, 30*time.Second, "the segments before the cut stored", func() bool { return fewestFragments(t, st, channel, 2) >= tc.cutAt-1 })
			cutter.mu.Lock()
			whole := cutter.whole
			cutter.mu.Unlock()
			if got := fewestFragments(t, st, channel, 2); got != whole || whole != tc.cutAt-1 {
				t.Fatalf("%d fragments per track stored, %d segments arrived whole: want the %d before the cut, none of it", got, whole, tc.cutAt-1)
			}
			runTSUpload(t, ffmpeg, st.IngestURL+"/live/"+channel+".isml", again, false)
			checkArchive(t, st, ffmpeg, channel, tc.archive, tc.archive, tc.discontinuities)
			f := chaosFigures(t, st, channel, 0)
			if f.missing != 0 || f.unlisted != 0 || f.corrupt != 0 || f.duplicates != 0 {
				t.Errorf("listed but missing %d, stored but unlisted %d, corrupt %d, duplicates %d; want none", f.missing, f.unlisted, f.corrupt, f.duplicates)
			}
		})
	}
}

// tsFiles makes, with ffmpeg, what a TS upload hostile test sends: 4 s of
// H.264 and AAC as ffmpeg's HLS segments of 1 s (index0.ts to index3.ts,
// key frames every second), and a segment cut from the same media where
// no key frame starts it, after index2.ts starts and before index3.ts.
func tsFiles(t *testing.T, ffmpeg string) (segs [][]byte, nokey []byte) {
	t.Helper()
	dir := t.TempDir()
	src := []string{"-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "4", "-c:v", "libx264", "-preset", "veryfast", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-b:v", "300k", "-c:a", "aac", "-b:a", "64k"}
	run := func(args ...string) {
		if out, err := exec.Command(ffmpeg, append(slices.Clone(src), args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, out)
		}
	}
	run("-f", "hls", "-hls_time", "1", "-hls_list_size", "0", "-hls_segment_filename", filepath.Join(dir, "index%d.ts"), filepath.Join(dir, "index.m3u8"))
	run("-f", "segment", "-segment_time", "0.7", "-break_non_keyframes", "1", "-segment_format", "mpegts", filepath.Join(dir, "cut%d.ts"))
	for k := range 4 {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("index%d.ts", k)))
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, b)
	}
	after, _, _ := tsdemux.Span(segs[2])
	before, _, _ := tsdemux.Span(segs[3])
	for k := 0; ; k++ {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("cut%d.ts", k)))
		if err != nil {
			t.Fatal("no segment of ffmpeg's segment muxer starts between two key frames")
		}
		if start, _, ok := tsdemux.Span(b); ok && start > after && start < before && !startsWithKeyFrame(t, b) {
			return segs, b
		}
	}
}

// startsWithKeyFrame reports whether a TS segment's video starts with an
// IDR picture.
func startsWithKeyFrame(t *testing.T, seg []byte) bool {
	t.Helper()
	var first [][]byte
	d := tsdemux.New(tsFirst{&first}, tsdemux.Options{})
	if err := d.Segment(context.Background(), seg); err != nil {
		t.Fatal(err)
	}
	return h264.IsRandomAccess(first)
}

type tsFirst struct{ first *[][]byte }

func (tsFirst) Tracks(context.Context, []packager.Track) error { return nil }
func (f tsFirst) Sample(_ context.Context, _ int, s packager.Sample) error {
	if *f.first == nil && len(s.NALUs) > 0 {
		*f.first = s.NALUs
	}
	return nil
}

// What a TS upload must not get in: garbage, segments cut short, a PES
// that never ends, a segment over the size limit, timestamps going
// backwards, a segment whose video does not start with a key frame. Each
// is refused with 400 (413 for the size) saying what is wrong, nothing of
// it is stored, and the rendition takes the next good segment: the
// channel ends with the good segments alone, whole, playing everywhere.
func TestTSUploadHostileInput(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	besideAnother(t)
	ffmpeg := testtool.Require(t, "ffmpeg")
	const maxBox = 12 << 20 // over tsdemux.DefaultMaxPES
	st := startStackWith(t, "", func(o *stack.Options) { o.Relay.MaxBox = maxBox })
	segs, nokey := tsFiles(t, ffmpeg)
	channel := "tshostile"
	put := func(file string, body []byte) (int, string) {
		return testtool.Do(t, http.MethodPut, st.IngestURL+"/live/"+channel+".isml/"+file, body, false)
	}
	var playlist strings.Builder
	playlist.WriteString("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n")
	for k := range 4 {
		fmt.Fprintf(&playlist, "#EXTINF:1.000000,\nindex%d.ts\n", k)
	}
	if code, msg := put("index.m3u8", []byte(playlist.String())); code != http.StatusOK {
		t.Fatalf("playlist: %d %s", code, msg)
	}

	random := make([]byte, 100*188)
	rng := rand.New(rand.NewPCG(17, 17))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	syncedRandom := slices.Clone(random)
	for i := 0; i < len(syncedRandom); i += 188 {
		syncedRandom[i] = 0x47
	}
	// A PES that never ends: the segment's tables and its first video
	// packet, then payload without a payload unit start, 9 MiB of it.
	endless, err := tsedit.EndlessPES(segs[2], 9<<20)
	if err != nil {
		t.Fatal(err)
	}
	backwards := slices.Clone(segs[2])
	var pes [][]byte
	for i := 0; i+188 <= len(backwards) && len(pes) < 2; i += 188 {
		p := backwards[i : i+188]
		if pid := uint16(p[1]&0x1f)<<8 | uint16(p[2]); pid == 0x100 && p[1]&0x40 != 0 {
			at := 4
			if p[3]&0x20 != 0 {
				at += 1 + int(p[4])
			}
			pes = append(pes, p[at:])
		}
	}
	copy(pes[1][9:19], pes[0][9:19]) // the second frame's PTS and DTS: the first's

	for _, step := range []struct {
		name, file string
		body       []byte
		code       int
		says       string
	}{
		{"a good segment", "index0.ts", segs[0], http.StatusOK, ""},
		{"the next", "index1.ts", segs[1], http.StatusOK, ""},
		{"no key frame at its start", "index9.ts", nokey, http.StatusBadRequest, "key frame"},
		{"garbage", "index2.ts", random, http.StatusBadRequest, "not an init segment, a media segment"},
		{"garbage in 188-byte packets", "index2.ts", syncedRandom, http.StatusBadRequest, "mpeg-ts"},
		{"a segment cut inside a packet", "index2.ts", segs[2][:len(segs[2])-77], http.StatusBadRequest, "not whole 188-byte packets"},
		{"a segment cut inside an audio PES", "index2.ts", cutInsideAudio(segs[2]), http.StatusBadRequest, "PES packet truncated"},
		{"a PES that never ends", "index2.ts", endless, http.StatusBadRequest, "PES packet too large"},
		{"a segment over the size limit", "index2.ts", bytes.Repeat(segs[2], maxBox/len(segs[2])+1), http.StatusRequestEntityTooLarge, "larger than"},
		{"timestamps going backwards", "index2.ts", backwards, http.StatusBadRequest, "timestamps go backwards"},
		{"the good one", "index2.ts", segs[2], http.StatusOK, ""},
		{"and the last", "index3.ts", segs[3], http.StatusOK, ""},
	} {
		code, msg := put(step.file, step.body)
		if code != step.code || !strings.Contains(msg, step.says) {
			t.Fatalf("%s: %d %q, want %d saying %q", step.name, code, msg, step.code, step.says)
		}
		if step.says != "" {
			t.Logf("%s: %d %s", step.name, code, strings.TrimSpace(msg))
		}
	}
	if code, msg := put("index.m3u8", []byte(playlist.String()+"#EXT-X-ENDLIST\n")); code != http.StatusOK {
		t.Fatalf("playlist: %d %s", code, msg)
	}
	checkArchive(t, st, ffmpeg, channel, 4*time.Second, 4*time.Second, 0)
	if n := fewestFragments(t, st, channel, 2); n != 4 {
		t.Errorf("%d fragments per track, want the 4 good segments' alone", n)
	}
}

// cutInsideAudio cuts a TS segment at a packet boundary inside one of its
// audio PES packets (PID 0x101), which say their length.
func cutInsideAudio(seg []byte) []byte {
	inPES := false
	for i := 0; i+188 <= len(seg); i += 188 {
		p := seg[i : i+188]
		if pid := uint16(p[1]&0x1f)<<8 | uint16(p[2]); pid != 0x101 {
			continue
		}
		if p[1]&0x40 != 0 {
			inPES = true
			continue
		}
		if inPES && i > len(seg)/2 {
			return seg[:i]
		}
	}
	panic("no audio PES over several packets")
}

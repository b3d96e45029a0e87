package packager

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/smoothcast/smoothcast/internal/testtool"
)

// probeFrame is what ffprobe says of one frame.
type probeFrame struct {
	MediaType string `json:"media_type"`
	PTS       string `json:"pts_time"`
}

// What the packager writes decodes with ffmpeg, whole: every frame of
// every track, at the times the source gave (less the frames dropped
// before the video starts).
func TestFFmpegDecodesWhatThePackagerWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ffmpeg")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	ffprobe := testtool.Require(t, "ffprobe")
	for _, tc := range []struct {
		fixture string
		opts    Options
	}{
		{"avc-aac.mp4", Options{}},
		{"avc-aac.mp4", Options{OnCut: true}},
		{"hevc.mp4", Options{}},
		{"av1.mp4", Options{}},
		{"ac3.mp4", Options{}},
		{"eac3.mp4", Options{}},
	} {
		name := tc.fixture
		if tc.opts.OnCut {
			name += " on cut"
		}
		t.Run(name, func(t *testing.T) {
			es := readFixture(t, tc.fixture)
			out := &boxes{}
			p, err := New(out, tracksOf(es), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			steps := interleave(es)
			for k, st := range steps {
				if tc.opts.OnCut && k > 0 && st.i == 0 && isKey(st.s) {
					// A segment per GOP.
					if err := p.Cut(ctx); err != nil {
						t.Fatal(err)
					}
				}
				if err := p.Write(ctx, st.i, st.s); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.End(ctx); err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(t.TempDir(), "out.mp4")
			if err := os.WriteFile(f, out.data, 0o644); err != nil {
				t.Fatal(err)
			}
			if b, err := exec.Command(ffmpeg, "-v", "error", "-i", f, "-f", "null", "-").CombinedOutput(); err != nil || len(b) > 0 {
				t.Fatalf("ffmpeg decoding: %v\n%s", err, b)
			}
			b, err := exec.Command(ffprobe, "-v", "error", "-show_frames", "-show_entries", "frame=media_type,pts_time", "-of", "json", f).Output()
			if err != nil {
				t.Fatal(err)
			}
			var probe struct{ Frames []probeFrame }
			if err := json.Unmarshal(b, &probe); err != nil {
				t.Fatal(err)
			}
			count := map[string]int{}
			got := map[string][]float64{}
			for _, fr := range probe.Frames {
				count[fr.MediaType]++
				pts, err := strconv.ParseFloat(fr.PTS, 64)
				if err != nil {
					t.Fatalf("%s frame without a time: %q", fr.MediaType, fr.PTS)
				}
				got[fr.MediaType] = append(got[fr.MediaType], pts)
			}
			st := p.Stats()
			if n, want := count["video"]+count["audio"], st.Samples-st.Dropped-st.OutOfOrder; n != want {
				t.Errorf("ffprobe finds %v frames, the packager wrote %d (%+v)", count, want, st)
			}
			// Each frame plays at the time its source gave it (the frames
			// dropped are the first ones).
			want := map[string][]float64{}
			for _, st := range steps {
				kind := "audio"
				if es[st.i].track.Codec.Video() {
					kind = "video"
				}
				want[kind] = append(want[kind], float64(st.s.PTS)/90000)
			}
			for kind, times := range got {
				slices.Sort(times)
				w := want[kind]
				slices.Sort(w)
				w = w[len(w)-len(times):]
				// ffmpeg's mov demuxer adds the largest negative composition
				// offset (its dts_shift) to every video pts of a fragmented
				// file without an edit list: compare video up to that.
				// TestBFramesHaveSignedCompositionOffsets checks the exact
				// times from the boxes.
				shift := 0.0
				if kind == "video" {
					shift = times[0] - w[0]
				}
				for k := range times {
					if math.Abs(times[k]-shift-w[k]) > 0.0011 {
						t.Fatalf("%s frame %d plays at %.4f s, its source said %.4f s", kind, k, times[k], w[k])
					}
				}
			}
			t.Logf("%v, %+v", count, st)
		})
	}
}

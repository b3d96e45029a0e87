package packager

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
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
	ffmpeg := testtool.Require(t, "ffmpeg")
	ffprobe := testtool.Require(t, "ffprobe")
	for _, tc := range []struct {
		fixture string
		opts    Options
	}{
		{"avc-aac.mp4", Options{}},
		{"avc-aac.mp4", Options{OnCut: true}},
		{"hevc.mp4", Options{}},
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
			for _, fr := range probe.Frames {
				count[fr.MediaType]++
				if _, err := strconv.ParseFloat(fr.PTS, 64); err != nil {
					t.Errorf("%s frame without a time: %q", fr.MediaType, fr.PTS)
				}
			}
			st := p.Stats()
			if got, want := count["video"]+count["audio"], st.Samples-st.Dropped-st.OutOfOrder; got != want {
				t.Errorf("ffprobe finds %v frames, the packager wrote %d (%+v)", count, want, st)
			}
			t.Logf("%v, %+v", count, st)
		})
	}
}

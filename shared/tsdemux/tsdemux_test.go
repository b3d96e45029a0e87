package tsdemux

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"github.com/smoothcast/smoothcast/shared/packager"
)

// collector is a Handler that keeps what it is given.
type collector struct {
	tracks  []packager.Track
	calls   int // Tracks calls
	samples [][]packager.Sample
	order   []int // the track of each sample, in order
}

func (c *collector) Tracks(_ context.Context, t []packager.Track) error {
	c.calls++
	c.tracks = t
	c.samples = make([][]packager.Sample, len(t))
	return nil
}

func (c *collector) Sample(_ context.Context, i int, s packager.Sample) error {
	if i < 0 || i >= len(c.samples) {
		return fmt.Errorf("sample of track %d of %d", i, len(c.samples))
	}
	c.samples[i] = append(c.samples[i], s)
	c.order = append(c.order, i)
	return nil
}

func (c *collector) counts() []int {
	var n []int
	for _, s := range c.samples {
		n = append(n, len(s))
	}
	return n
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hlsSegments are ffmpeg's HLS segments of 1.5 s whose timestamps cross
// 2^33 in the second.
func hlsSegments(t testing.TB) [][]byte {
	return [][]byte{fixture(t, "hls/wrap0.ts"), fixture(t, "hls/wrap1.ts"), fixture(t, "hls/wrap2.ts")}
}

func demuxSegments(t testing.TB, opts Options, segs ...[]byte) (*collector, error) {
	t.Helper()
	c := &collector{}
	d := New(c, opts)
	for _, s := range segs {
		if err := d.Segment(context.Background(), s); err != nil {
			return c, err
		}
	}
	return c, nil
}

func demuxStream(t testing.TB, opts Options, b []byte, chunk int) (*collector, error) {
	t.Helper()
	c := &collector{}
	d := New(c, opts)
	for len(b) > 0 {
		n := min(chunk, len(b))
		if err := d.Write(context.Background(), b[:n]); err != nil {
			return c, err
		}
		b = b[n:]
	}
	return c, d.End(context.Background())
}

// The sample counts are ffprobe's (-count_packets) for the fixtures.
func TestEveryStreamTheFixturesCarryBecomesATrack(t *testing.T) {
	for _, tc := range []struct {
		file   string
		codecs []packager.Codec
		langs  []string
		counts []int
		asc    []byte // AAC's AudioSpecificConfig, when the second track is AAC
	}{
		{"h264_aac.ts", []packager.Codec{packager.H264, packager.AAC}, []string{"", "eng"}, []int{10, 48}, []byte{0x11, 0x88}},
		{"hevc_ac3.ts", []packager.Codec{packager.HEVC, packager.AC3}, []string{"", "fra"}, []int{10, 32}, nil},
		{"h264_eac3_mp2.ts", []packager.Codec{packager.H264, packager.EAC3}, []string{"", ""}, []int{10, 32}, nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			c, err := demuxSegments(t, Options{}, fixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if c.calls != 1 {
				t.Fatalf("Tracks called %d times", c.calls)
			}
			var codecs []packager.Codec
			var langs []string
			for _, tr := range c.tracks {
				codecs = append(codecs, tr.Codec)
				langs = append(langs, tr.Language)
			}
			if !slices.Equal(codecs, tc.codecs) || !slices.Equal(langs, tc.langs) || !slices.Equal(c.counts(), tc.counts) {
				t.Fatalf("codecs %v languages %q counts %v, want %v %q %v", codecs, langs, c.counts(), tc.codecs, tc.langs, tc.counts)
			}
			if tc.asc != nil && !bytes.Equal(c.tracks[1].AudioConfig, tc.asc) {
				t.Errorf("AudioSpecificConfig %x, want %x (AAC LC, 48 kHz, mono)", c.tracks[1].AudioConfig, tc.asc)
			}
			video := c.samples[0]
			key := h264.IsRandomAccess(video[0].NALUs)
			if tc.codecs[0] == packager.HEVC {
				key = h265.IsRandomAccess(video[0].NALUs)
			}
			if !key {
				t.Error("the first video sample is not a key frame")
			}
			for _, s := range video {
				for _, n := range s.NALUs {
					if isAUD(tc.codecs[0], n) {
						t.Fatal("an access unit delimiter was kept")
					}
				}
			}
			for i, s := range c.samples[1] {
				if len(s.Frame) == 0 || s.NALUs != nil || s.PTS != s.DTS {
					t.Fatalf("audio sample %d: %d bytes, PTS %d DTS %d", i, len(s.Frame), s.PTS, s.DTS)
				}
				if i > 0 && s.PTS-c.samples[1][i-1].PTS != 1920 && s.PTS-c.samples[1][i-1].PTS != 2880 {
					t.Fatalf("audio sample %d is %d ticks after the one before: neither 1,024 nor 1,536 samples at 48 kHz", i, s.PTS-c.samples[1][i-1].PTS)
				}
			}
		})
	}
}

func sameSamples(t *testing.T, got, want *collector) {
	t.Helper()
	if len(got.samples) != len(want.samples) {
		t.Fatalf("%d tracks, want %d", len(got.samples), len(want.samples))
	}
	for i := range want.samples {
		if len(got.samples[i]) != len(want.samples[i]) {
			t.Fatalf("track %d: %d samples, want %d", i, len(got.samples[i]), len(want.samples[i]))
		}
		for j, w := range want.samples[i] {
			g := got.samples[i][j]
			if g.DTS != w.DTS || g.PTS != w.PTS || !bytes.Equal(g.Frame, w.Frame) || !slices.EqualFunc(g.NALUs, w.NALUs, bytes.Equal) {
				t.Fatalf("track %d sample %d differs: DTS %d/%d PTS %d/%d", i, j, g.DTS, w.DTS, g.PTS, w.PTS)
			}
		}
	}
}

func TestAStreamInAnyChunkingGivesWhatItsSegmentsGive(t *testing.T) {
	segs := hlsSegments(t)
	want, err := demuxSegments(t, Options{}, segs...)
	if err != nil {
		t.Fatal(err)
	}
	stream := bytes.Join(segs, nil)
	for _, chunk := range []int{1, 7, 187, 188, 1316, len(stream)} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			got, err := demuxStream(t, Options{}, stream, chunk)
			if err != nil {
				t.Fatal(err)
			}
			sameSamples(t, got, want)
		})
	}
}

func TestTimestampsThatCross2To33KeepIncreasing(t *testing.T) {
	c, err := demuxSegments(t, Options{}, hlsSegments(t)...)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.counts(), []int{15, 72}) {
		t.Fatalf("counts %v, want ffprobe's [15 72]", c.counts())
	}
	for i, ss := range c.samples {
		if first, last := ss[0].DTS, ss[len(ss)-1].DTS; first >= wrap || last <= wrap {
			t.Errorf("track %d: from %d to %d: does not cross 2^33 (%d)", i, first, last, wrap)
		}
		for j := 1; j < len(ss); j++ {
			if d := ss[j].DTS - ss[j-1].DTS; d <= 0 || d > 9000 {
				t.Fatalf("track %d sample %d: %d ticks after the one before", i, j, d)
			}
		}
	}
}

func TestOneSegmentAtATimeGivesTheTracksOnce(t *testing.T) {
	segs := hlsSegments(t)
	c := &collector{}
	d := New(c, Options{})
	for i, s := range segs {
		if err := d.Segment(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		if c.calls != 1 || len(d.Tracks()) != 2 {
			t.Fatalf("after segment %d: Tracks called %d times, %d tracks", i, c.calls, len(d.Tracks()))
		}
	}
	// Each segment starts with a key frame, and the samples of a segment
	// arrive before the next segment is given.
	whole, _ := demuxSegments(t, Options{}, bytes.Join(segs, nil))
	sameSamples(t, c, whole)
}

// Span tells segments' order from their PES headers alone: each of
// ffmpeg's segments ends (its last video frame's time and duration) where
// the next one starts, across 2^33 too.
func TestSpanEndsWhereTheNextSegmentStarts(t *testing.T) {
	segs := hlsSegments(t)
	c, err := demuxSegments(t, Options{}, segs[0])
	if err != nil {
		t.Fatal(err)
	}
	var prevEnd int64
	for i, s := range segs {
		start, end, ok := Span(s)
		if !ok || end <= start || end-start > 90000 {
			t.Fatalf("segment %d: Span %d to %d (%v)", i, start, end, ok)
		}
		if i == 0 && start != min(c.samples[0][0].DTS, c.samples[1][0].DTS) {
			t.Errorf("segment 0 starts at %d, want its first sample's DTS (%d, %d)", start, c.samples[0][0].DTS, c.samples[1][0].DTS)
		}
		if i > 0 && start != prevEnd&(wrap-1) {
			t.Errorf("segment %d starts at %d, the one before ends at %d", i, start, prevEnd&(wrap-1))
		}
		prevEnd = end
	}
	if _, _, ok := Span(bytes.Repeat([]byte{0x47, 0x40, 0, 0x10}, 200)); ok {
		t.Error("Span found a time in packets without PES")
	}
}

// A segment the caller refuses after all (the packager did) is forgotten:
// the same segment, or the one after it, follows the one before as if it
// never came. The first segment, which fixed the tracks, cannot be.
func TestAForgottenSegmentLeavesNoTrace(t *testing.T) {
	segs := hlsSegments(t)
	c := &collector{}
	d := New(c, Options{})
	ctx := context.Background()
	if err := d.Segment(ctx, segs[0]); err != nil || d.Forget() {
		t.Fatalf("first segment: %v; Forget must refuse it", err)
	}
	n := len(c.order)
	if err := d.Segment(ctx, segs[1]); err != nil {
		t.Fatal(err)
	}
	once := slices.Clone(c.order[n:])
	if err := d.Segment(ctx, segs[1]); !errors.Is(err, ErrBackwards) {
		t.Fatalf("the same segment again without Forget: %v, want %v", err, ErrBackwards)
	}
	if !d.Forget() {
		t.Fatal("Forget refused the second segment")
	}
	m := len(c.order)
	if err := d.Segment(ctx, segs[1]); err != nil {
		t.Fatalf("the forgotten segment again: %v", err)
	}
	if !slices.Equal(c.order[m:], once) {
		t.Errorf("the segment again gave %v, first %v", c.order[m:], once)
	}
	if err := d.Segment(ctx, segs[2]); err != nil {
		t.Fatal(err)
	}
}

// copier is a collector that copies what it keeps, as Options.Reuse asks.
type copier struct{ collector }

func (c *copier) Sample(ctx context.Context, i int, s packager.Sample) error {
	s.Frame = bytes.Clone(s.Frame)
	nalus := make([][]byte, len(s.NALUs))
	for k, n := range s.NALUs {
		nalus[k] = bytes.Clone(n)
	}
	s.NALUs = nalus
	return c.collector.Sample(ctx, i, s)
}

// With Reuse, a Handler that copies what it keeps gets the same samples,
// segment by segment and as a stream.
func TestReuseGivesTheSameSamples(t *testing.T) {
	segs := hlsSegments(t)
	want, err := demuxSegments(t, Options{}, segs...)
	if err != nil {
		t.Fatal(err)
	}
	c := &copier{}
	d := New(c, Options{Reuse: true})
	for _, s := range segs {
		if err := d.Segment(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	sameSamples(t, &c.collector, want)
	if d.reused == 0 {
		t.Error("no PES buffer was reused")
	}
	c = &copier{}
	d = New(c, Options{Reuse: true})
	stream := bytes.Join(segs, nil)
	for p := stream; len(p) > 0; p = p[min(1316, len(p)):] {
		if err := d.Write(context.Background(), p[:min(1316, len(p))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.End(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameSamples(t, &c.collector, want)
}

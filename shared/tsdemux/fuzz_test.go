package tsdemux

import (
	"context"
	"errors"
	"testing"

	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/packager"
)

// checker is a Handler that checks what any input may give: tracks once,
// then samples of those tracks whose timestamps increase.
type checker struct {
	t      *testing.T
	tracks []packager.Track
	last   []int64
	n      []int
}

func (c *checker) Tracks(_ context.Context, t []packager.Track) error {
	if c.tracks != nil {
		c.t.Fatal("Tracks called twice")
	}
	if len(t) == 0 {
		c.t.Fatal("no tracks")
	}
	c.tracks, c.last, c.n = t, make([]int64, len(t)), make([]int, len(t))
	return nil
}

func (c *checker) Sample(_ context.Context, i int, s packager.Sample) error {
	if i < 0 || i >= len(c.tracks) {
		c.t.Fatalf("sample of track %d of %d", i, len(c.tracks))
	}
	video := c.tracks[i].Codec == packager.H264 || c.tracks[i].Codec == packager.HEVC
	if video != (len(s.NALUs) > 0) || video == (len(s.Frame) > 0) || s.PTS < s.DTS {
		c.t.Fatalf("track %d (codec %d): sample with %d NAL units, %d bytes of frame, DTS %d PTS %d", i, c.tracks[i].Codec, len(s.NALUs), len(s.Frame), s.DTS, s.PTS)
	}
	if c.n[i] > 0 && s.DTS < c.last[i] {
		c.t.Fatalf("track %d: DTS %d after %d", i, s.DTS, c.last[i])
	}
	c.last[i] = s.DTS
	c.n[i]++
	return nil
}

// checkErr fails unless err is nil or a *ingest.ProtocolError, and the
// demuxer held no more than its bounds.
func checkErr(t *testing.T, d *Demuxer, err error) {
	var pe *ingest.ProtocolError
	if err != nil && !errors.As(err, &pe) {
		t.Fatalf("%v is not a *ingest.ProtocolError", err)
	}
	if d.buffered > 2*d.opts.MaxPES || d.heldBytes > d.opts.MaxProbe+d.opts.MaxPES {
		t.Fatalf("held %d bytes of PES and %d of samples", d.buffered, d.heldBytes)
	}
}

// seeds are the fixtures' first 40 packets (7.5 KB: the tables and the
// first frames of each stream; whole files slow the fuzzing engine down).
func seeds(f *testing.F) [][]byte {
	var s [][]byte
	for _, name := range []string{"h264_aac.ts", "hevc_ac3.ts", "h264_eac3_mp2.ts", "hls/wrap0.ts", "hls/wrap1.ts"} {
		b := fixture(f, name)
		s = append(s, b[:min(len(b), 40*PacketSize)])
	}
	return s
}

// FuzzSegment gives a demuxer its input as two segments, split at a
// packet boundary the input chooses (and Span the whole).
func FuzzSegment(f *testing.F) {
	for i, s := range seeds(f) {
		f.Add(s, uint16(i*7))
	}
	f.Fuzz(func(t *testing.T, b []byte, split uint16) {
		if start, end, ok := Span(b); ok && (end < start || end-start >= wrap) {
			t.Fatalf("Span %d to %d", start, end)
		}
		d := New(&checker{t: t}, Options{MaxPES: 64 << 10, MaxProbe: 64 << 10})
		at := min(int(split)*PacketSize, len(b))
		err := d.Segment(context.Background(), b[:at])
		if err == nil {
			err = d.Segment(context.Background(), b[at:])
		}
		checkErr(t, d, err)
	})
}

// FuzzStream gives a demuxer its input as a stream in chunks of a size
// the input chooses, strict or lossy.
func FuzzStream(f *testing.F) {
	for i, s := range seeds(f) {
		f.Add(s, uint16(1316), i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, b []byte, chunk uint16, lossy bool) {
		d := New(&checker{t: t}, Options{MaxPES: 64 << 10, MaxProbe: 64 << 10, Lossy: lossy})
		n := max(int(chunk), 1)
		var err error
		for p := b; len(p) > 0 && err == nil; p = p[min(n, len(p)):] {
			err = d.Write(context.Background(), p[:min(n, len(p))])
		}
		if err == nil {
			err = d.End(context.Background())
		}
		checkErr(t, d, err)
	})
}

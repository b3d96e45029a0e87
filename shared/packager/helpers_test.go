package packager

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"testing"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/mp4box"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// A session is a packager's sink (and so is relay.Live, over one).
var _ BoxSink = (*ingest.Session)(nil)

// elementary is one track of a fixture as a source hands it over.
type elementary struct {
	track   Track
	samples []Sample
}

// readFixture reads the tracks of a progressive MP4 in testdata (made
// with ffmpeg, see testdata/README) as elementary streams: parameter sets
// and AudioSpecificConfig out of band, times in 90 kHz ticks.
func readFixture(t testing.TB, name string) []elementary {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	f, err := mp4.DecodeFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var out []elementary
	for _, trak := range f.Moov.Traks {
		var e elementary
		stsd := trak.Mdia.Minf.Stbl.Stsd
		switch {
		case stsd.AvcX != nil:
			e.track = Track{Codec: H264, SPS: stsd.AvcX.AvcC.SPSnalus, PPS: stsd.AvcX.AvcC.PPSnalus}
		case stsd.HvcX != nil:
			rec := stsd.HvcX.HvcC.DecConfRec
			e.track = Track{Codec: HEVC, VPS: rec.GetNalusForType(hevc.NALU_VPS), SPS: rec.GetNalusForType(hevc.NALU_SPS), PPS: rec.GetNalusForType(hevc.NALU_PPS)}
		case stsd.Av01 != nil:
			var rec bytes.Buffer
			if err := stsd.Av01.Av1C.CodecConfRec.Encode(&rec); err != nil {
				t.Fatal(err)
			}
			e.track = Track{Codec: AV1, AV1Config: rec.Bytes()}
		case stsd.Mp4a != nil:
			e.track = Track{Codec: AAC, AudioConfig: stsd.Mp4a.Esds.DecConfigDescriptor.DecSpecificInfo.DecConfig}
		case stsd.AC3 != nil:
			e.track = Track{Codec: AC3}
		case stsd.EC3 != nil:
			e.track = Track{Codec: EAC3}
		default:
			t.Fatalf("%s: a track of another codec", name)
		}
		ts := trak.Mdia.Mdhd.Timescale
		for _, m := range testtool.TrackSamples(t, b, trak) {
			payload := m.Data
			s := Sample{DTS: rescale(int64(m.DecodeTime), ts, 90000, roundNearest)}
			s.PTS = rescale(int64(m.DecodeTime)+int64(m.CompositionTimeOffset), ts, 90000, roundNearest)
			if e.track.Codec == AV1 {
				// As Enhanced RTMP carries it: a temporal delimiter first.
				s.Frame = append([]byte{0x12, 0x00}, payload...)
			} else if e.track.Codec.Video() {
				nalus, err := avc.GetNalusFromSample(payload)
				if err != nil {
					t.Fatal(err)
				}
				s.NALUs = nalus
			} else {
				s.DTS, s.Frame = 0, payload
			}
			e.samples = append(e.samples, s)
		}
		out = append(out, e)
	}
	return out
}

// step is one Write of a source: a sample of track i.
type step struct {
	i int
	s Sample
}

// interleave orders the tracks' samples as a muxer would: by DTS (PTS for
// audio), video first on a tie.
func interleave(es []elementary) []step {
	var out []step
	for i, e := range es {
		for _, s := range e.samples {
			out = append(out, step{i, s})
		}
	}
	at := func(st step) int64 {
		if !es[st.i].track.Codec.Video() {
			return st.s.PTS
		}
		return st.s.DTS
	}
	slices.SortStableFunc(out, func(a, b step) int {
		if c := at(a) - at(b); c != 0 {
			return int(max(min(c, 1), -1))
		}
		return a.i - b.i
	})
	return out
}

func tracksOf(es []elementary) []Track {
	var out []Track
	for _, e := range es {
		out = append(out, e.track)
	}
	return out
}

// recordingSink keeps what a session stores.
type recordingSink struct {
	inits []ingest.TrackHeader
	frags []ingest.Fragment
}

func (r *recordingSink) Init(_ context.Context, h ingest.TrackHeader) error {
	h.Init = bytes.Clone(h.Init)
	r.inits = append(r.inits, h)
	return nil
}

func (r *recordingSink) Fragment(_ context.Context, f ingest.Fragment) error {
	f.Head, f.Payload = f.Bytes(), nil
	r.frags = append(r.frags, f)
	return nil
}

// byTrack returns the fragments stored of track_ID id.
func (r *recordingSink) byTrack(id uint32) []ingest.Fragment {
	var out []ingest.Fragment
	for _, f := range r.frags {
		if f.TrackID == id {
			out = append(out, f)
		}
	}
	return out
}

// rig is a packager writing to a real session over a recording sink, with
// the raw boxes the packager wrote kept too.
type rig struct {
	p       *Packager
	session *ingest.Session
	rec     *recordingSink
	boxes   []mp4box.Box // copies
}

func (r *rig) Box(ctx context.Context, b mp4box.Box) error {
	c := b
	c.Data = bytes.Clone(b.Data)
	r.boxes = append(r.boxes, c)
	return r.session.Box(ctx, b)
}

func newRig(t testing.TB, tracks []Track, opts Options) *rig {
	t.Helper()
	r := &rig{rec: &recordingSink{}}
	r.session = ingest.NewSession(r.rec, quiet, ingest.Options{})
	if opts.Log == nil {
		opts.Log = quiet
	}
	p, err := New(r, tracks, opts)
	if err != nil {
		t.Fatal(err)
	}
	r.p = p
	return r
}

// file is everything the packager wrote, as one fragmented MP4.
func (r *rig) file() []byte {
	var b []byte
	for _, box := range r.boxes {
		b = append(b, box.Data...)
	}
	return b
}

// feed writes steps, failing the test on an error.
func (r *rig) feed(t testing.TB, steps []step) {
	t.Helper()
	for _, st := range steps {
		if err := r.p.Write(context.Background(), st.i, st.s); err != nil {
			t.Fatalf("write of track %d at %d: %v", st.i, st.s.PTS, err)
		}
	}
}

// decodeMoof decodes the moof of a stored fragment.
func decodeMoof(t testing.TB, f ingest.Fragment) *mp4.MoofBox {
	t.Helper()
	for box, err := range mp4box.All(f.Head) {
		if err != nil {
			t.Fatal(err)
		}
		if box.Type == "moof" {
			b, err := mp4box.Decode(box)
			if err != nil {
				t.Fatal(err)
			}
			return b.(*mp4.MoofBox)
		}
	}
	t.Fatal("no moof")
	return nil
}

// boxes keeps the boxes a packager writes, without a session (which
// describes only the codecs the manifests do).
type boxes struct{ data []byte }

func (b *boxes) Box(_ context.Context, box mp4box.Box) error {
	b.data = append(b.data, box.Data...)
	return nil
}

// isKey reports whether an H.264 access unit holds an IDR picture.
func isKey(s Sample) bool {
	for _, n := range s.NALUs {
		if len(n) > 0 && n[0]&0x1f == 5 {
			return true
		}
	}
	return false
}

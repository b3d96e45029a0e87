package srt

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/packager"
	"github.com/smoothcast/smoothcast/shared/tsdemux"
)

// recorder is a liveSink that keeps the boxes it gets (copied: a box's
// data is the packager's) and the warnings.
type recorder struct {
	boxes []mp4box.Box
	warns []error
}

func (r *recorder) Box(_ context.Context, b mp4box.Box) error {
	b.Data = bytes.Clone(b.Data)
	r.boxes = append(r.boxes, b)
	return nil
}

func (r *recorder) Warn(err error) { r.warns = append(r.warns, err) }

// stopAfter is a tsdemux.Handler that stops the stream before its nth
// sample (the relay shutting down then: the backlog ends with
// errStopping), and passes everything before on.
type stopAfter struct {
	*pipeline
	n, seen int
}

func (s *stopAfter) Sample(ctx context.Context, i int, smp packager.Sample) error {
	if s.seen++; s.seen == s.n {
		return errStopping
	}
	return s.pipeline.Sample(ctx, i, smp)
}

// runPipeline feeds ts to a pipeline over rec as a connection would, the
// relay shutting down before sample stop (0: never): it returns how the
// stream ended, errStopping once what the packager held is flushed.
func runPipeline(ts []byte, stop int, rec *recorder) error {
	p := newPipeline(rec, 0, slog.New(slog.DiscardHandler))
	err := runHandler(&stopAfter{pipeline: p, n: stop}, p, ts)
	if errors.Is(err, errStopping) {
		if ferr := p.flush(context.Background()); ferr != nil {
			return ferr
		}
	}
	return err
}

// runPipelineOn feeds ts to p as a connection would.
func runPipelineOn(p *pipeline, ts []byte) error { return runHandler(p, p, ts) }

// runHandler demultiplexes ts for h, p's or one around it, then ends p.
func runHandler(h tsdemux.Handler, p *pipeline, ts []byte) error {
	d := tsdemux.New(h, tsdemux.Options{Lossy: true, Warn: p.lossy})
	if err := d.Read(context.Background(), bytes.NewReader(ts)); err != nil {
		return err
	}
	return p.end(context.Background())
}

// Whatever a caller sends, the glue between the demultiplexer, the
// packager and the relay ends the stream with an end, a stop at a
// boundary or a *ingest.ProtocolError, never otherwise; what it hands the
// relay is whole boxes in order (ftyp and moov first, each moof followed
// by its mdat); and a stop at a boundary has written the fragment in hand
// of every track.
func FuzzPipeline(f *testing.F) {
	// The first 2.5 s: a small input mutates faster, and holds two cuts.
	ts := upTo(f, fixture(f), 2.5)
	f.Add(ts, uint16(0))
	f.Add(ts, uint16(12))
	f.Add(ts[:len(ts)/2], uint16(0))
	f.Add(ts[:len(ts)/2+100], uint16(3))
	f.Add(append(bytes.Clone(ts[:40*188]), ts[60*188:]...), uint16(0))
	f.Add([]byte("not an mpeg transport stream at all"), uint16(0))
	f.Fuzz(func(t *testing.T, ts []byte, stop uint16) {
		rec := &recorder{}
		err := runPipeline(ts, int(stop), rec)
		var perr *ingest.ProtocolError
		if err != nil && !errors.Is(err, errStopping) && !errors.As(err, &perr) {
			t.Fatalf("ended with %v (%T): neither an end, a stop nor a protocol error", err, err)
		}
		checkBoxes(t, rec.boxes, errors.Is(err, errStopping))
	})
}

// checkBoxes checks that boxes are what a session takes: ftyp, moov, then
// moof+mdat pairs whose moof decodes, then, at an end, mfra (alone when
// the stream ended before its first fragment); and that a stop (a flush)
// comes after a whole fragment, if anything was written.
func checkBoxes(t *testing.T, boxes []mp4box.Box, stopped bool) {
	t.Helper()
	if len(boxes) == 0 || len(boxes) == 1 && boxes[0].Type == "mfra" && !stopped {
		// Nothing to store: the stream ended (or stopped) before its
		// first fragment.
		return
	}
	if len(boxes) < 2 || boxes[0].Type != "ftyp" || boxes[1].Type != "moov" {
		t.Fatalf("the stream starts with %v, want ftyp, moov", types(boxes[:min(2, len(boxes))]))
	}
	fragments := 0
	for i := 2; i < len(boxes); i++ {
		b := boxes[i]
		switch b.Type {
		case "moof":
			if i+1 >= len(boxes) || boxes[i+1].Type != "mdat" {
				t.Fatalf("box %d: a moof without its mdat", i)
			}
			if _, err := mp4.DecodeBox(0, bytes.NewReader(b.Data)); err != nil {
				t.Fatalf("box %d: moof: %v", i, err)
			}
			fragments++
			i++
		case "mfra":
			if i != len(boxes)-1 || stopped {
				t.Fatalf("box %d: an mfra, not at the end of an ended stream", i)
			}
		default:
			t.Fatalf("box %d: %s", i, b.Type)
		}
	}
	if stopped && (boxes[len(boxes)-1].Type != "mdat" || fragments == 0) {
		t.Fatalf("stopped after a %s, not a whole fragment", boxes[len(boxes)-1].Type)
	}
}

func types(boxes []mp4box.Box) []string {
	var out []string
	for _, b := range boxes {
		out = append(out, b.Type)
	}
	return out
}

// The fixture whole ends with an mfra; stopped at its 25th sample, what
// the packager held is written on both tracks, and no mfra.
func TestPipelineEndsAndStops(t *testing.T) {
	ts := fixture(t)
	rec := &recorder{}
	if err := runPipeline(ts, 0, rec); err != nil {
		t.Fatal(err)
	}
	checkBoxes(t, rec.boxes, false)
	if last := rec.boxes[len(rec.boxes)-1].Type; last != "mfra" {
		t.Errorf("the ended stream's last box is %s, want mfra", last)
	}
	rec = &recorder{}
	if err := runPipeline(ts, 25, rec); !errors.Is(err, errStopping) {
		t.Fatalf("stopped with %v, want errStopping", err)
	}
	checkBoxes(t, rec.boxes, true)
	tracks := map[uint32]int{}
	for _, b := range rec.boxes {
		if b.Type == "moof" {
			d, _ := mp4.DecodeBox(0, bytes.NewReader(b.Data))
			tracks[d.(*mp4.MoofBox).Traf.Tfhd.TrackID]++
		}
	}
	if len(tracks) != 2 {
		t.Errorf("fragments per track %v, want both tracks'", tracks)
	}
}

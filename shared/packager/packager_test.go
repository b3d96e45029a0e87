package packager

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

var ctx = context.Background()

// checkFragments checks what the session stored of one track: contiguous
// fragments (each starts where the one before ended), the first sample of
// each a sync sample, the others' flags right for their kind, and returns
// them.
func checkFragments(t *testing.T, r *rig, kind timeline.Kind) []ingest.Fragment {
	t.Helper()
	var out []ingest.Fragment
	for _, f := range r.rec.frags {
		if f.Kind == kind {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s fragment stored", kind)
	}
	for i, f := range out {
		if _, err := fmp4.Inspect(f.Head); err != nil {
			t.Fatalf("%s fragment %d: %v", kind, i, err)
		}
		if i > 0 && f.Start != out[i-1].Start+out[i-1].Duration {
			t.Errorf("%s fragment %d starts at %d, the one before ends at %d", kind, i, f.Start, out[i-1].Start+out[i-1].Duration)
		}
		moof := decodeMoof(t, f)
		trun := moof.Traf.Trun
		trun.AddSampleDefaultValues(moof.Traf.Tfhd, nil)
		for k, s := range trun.Samples {
			sync := mp4.IsSyncSampleFlags(s.Flags) && !mp4.DecodeSampleFlags(s.Flags).SampleIsNonSync
			if k == 0 && !sync {
				t.Errorf("%s fragment %d starts with a non-sync sample (flags %08x)", kind, i, s.Flags)
			}
			if kind == timeline.Audio && !sync {
				t.Errorf("audio sample %d of fragment %d is not a sync sample", k, i)
			}
			if s.CompositionTimeOffset < 0 && trun.Version != 1 {
				t.Errorf("%s fragment %d: negative composition offset in a trun of version %d", kind, i, trun.Version)
			}
		}
	}
	return out
}

func TestLiveFragmentsEndAtKeyFramesAndAudioLinesUp(t *testing.T) {
	es := readFixture(t, "avc-aac.mp4")
	r := newRig(t, tracksOf(es), Options{})
	r.feed(t, interleave(es))
	if err := r.p.End(ctx); err != nil {
		t.Fatal(err)
	}
	if !r.session.Stats().Ended {
		t.Error("the session did not see the end of the stream")
	}
	video := checkFragments(t, r, timeline.Video)
	audio := checkFragments(t, r, timeline.Audio)
	// Video: a fragment per GOP (1 s at 25 fps), from the first key
	// frame's presentation time (two B-frames: 80 ms), each 90000 ticks.
	if len(video) != 4 {
		t.Fatalf("%d video fragments, want 4 (one per GOP)", len(video))
	}
	for i, f := range video {
		if want := uint64(7200 + 90000*i); f.Start != want || f.Duration != 90000 {
			t.Errorf("video fragment %d at %d lasting %d, want %d lasting 90000", i, f.Start, f.Duration, want)
		}
	}
	// Audio (48 kHz, 1024 a frame): starts within a frame of the video,
	// its frames that end before it dropped, and each fragment ends at its
	// first frame at or after the video's cut.
	if len(audio) != 4 {
		t.Fatalf("%d audio fragments, want 4", len(audio))
	}
	for i, f := range audio {
		if f.Start%1024 != 0 || f.Duration%1024 != 0 {
			t.Errorf("audio fragment %d at %d lasting %d: not whole frames from the stream's start", i, f.Start, f.Duration)
		}
		videoAt := video[i].Start * 48000 / 90000
		if i == 0 && (f.Start > videoAt || f.Start+1024 <= videoAt) {
			t.Errorf("audio starts at %d, video at %d (48 kHz): not within a frame", f.Start, videoAt)
		}
		if i > 0 && (f.Start < videoAt || f.Start >= videoAt+1024) {
			t.Errorf("audio fragment %d starts at %d, video's at %d (48 kHz): not its first frame at or after it", i, f.Start, videoAt)
		}
	}
	st := r.p.Stats()
	if want := (Stats{Samples: len(es[0].samples) + len(es[1].samples), Fragments: 8, Dropped: 3}); st != want {
		t.Errorf("stats %+v, want %+v (the 3 audio frames that end before the video starts dropped)", st, want)
	}
}

func TestOnCutFragmentsAreTheSegments(t *testing.T) {
	es := readFixture(t, "avc-aac.mp4")
	r := newRig(t, tracksOf(es), Options{OnCut: true, MinFragment: 100 * time.Millisecond})
	steps := interleave(es)
	// Segments of 2 s, cut where the video's third key frame arrives.
	var cuts int
	for _, st := range steps {
		if st.i == 0 && st.s.DTS == 180000 {
			if err := r.p.Cut(ctx); err != nil {
				t.Fatal(err)
			}
			cuts++
		}
		r.feed(t, []step{st})
	}
	if err := r.p.Cut(ctx); err != nil {
		t.Fatal(err)
	}
	if r.p.Stats().Fragments != 4 {
		t.Fatalf("%d fragments after %d cuts and a last one, want 2 per track", r.p.Stats().Fragments, cuts)
	}
	if err := r.p.End(ctx); err != nil {
		t.Fatal(err)
	}
	video := checkFragments(t, r, timeline.Video)
	if len(video) != 2 || video[0].Duration != 180000 || video[1].Duration != 180000 {
		t.Errorf("%d video fragments, want two of 2 s (the last sample's duration estimated)", len(video))
	}
	checkFragments(t, r, timeline.Audio)
}

func TestOnCutRefusesASegmentWithoutAKeyFrameFirst(t *testing.T) {
	es := readFixture(t, "avc-aac.mp4")
	r := newRig(t, tracksOf(es), Options{OnCut: true})
	steps := interleave(es)
	// The first segment starts with the second frame.
	r.feed(t, steps[2:40])
	err := r.p.Cut(ctx)
	var perr *ingest.ProtocolError
	if !errors.As(err, &perr) || !errors.Is(err, ErrNoKeyFrame) {
		t.Fatalf("cut: %v, want a ProtocolError wrapping ErrNoKeyFrame", err)
	}
	if len(r.boxes) != 0 {
		t.Fatalf("%d boxes reached the sink from a refused segment", len(r.boxes))
	}
	// The next segment, starting with a key frame, goes through.
	var next []step
	for _, st := range steps {
		if st.i == 0 && st.s.DTS >= 90000 || st.i == 1 && st.s.PTS >= 90000 {
			next = append(next, st)
		}
	}
	r.feed(t, next)
	if err := r.p.End(ctx); err != nil {
		t.Fatal(err)
	}
	checkFragments(t, r, timeline.Video)
	checkFragments(t, r, timeline.Audio)
}

package packager

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/internal/testtool/logtest"
	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// avcAAC is the H.264+AAC fixture: 100 frames at 25 fps (DTS n x 3600,
// a key frame every 25, two B-frames), AAC at 48 kHz (PTS k x 1920).
func avcAAC(t *testing.T) []elementary { return readFixture(t, "avc-aac.mp4") }

// mapSteps returns steps changed by f (which returns false to leave one out).
func mapSteps(steps []step, f func(k int, st *step) bool) []step {
	var out []step
	for k, st := range steps {
		c := st
		c.s.NALUs = slices.Clone(st.s.NALUs)
		if f(k, &c) {
			out = append(out, c)
		}
	}
	return out
}

func protocolError(t *testing.T, err error, target error) {
	t.Helper()
	var perr *ingest.ProtocolError
	if !errors.As(err, &perr) {
		t.Fatalf("err = %v, want a *ingest.ProtocolError", err)
	}
	if target != nil && !errors.Is(err, target) {
		t.Fatalf("err = %v, want one wrapping %v", err, target)
	}
}

// run feeds steps to a rig and ends the stream, returning the first error.
func (r *rig) run(steps []step) error {
	for _, st := range steps {
		if err := r.p.Write(ctx, st.i, st.s); err != nil {
			return err
		}
	}
	return r.p.End(ctx)
}

func TestKeyFramesAreFoundFromNALUnitTypes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		codec Codec
		nalu  []byte
		want  int
	}{
		{"H.264 IDR is a key frame", H264, []byte{0x65}, nalKey},
		{"H.264 non-IDR slice is not", H264, []byte{0x41}, nalVCL},
		{"H.264 SPS", H264, []byte{0x67}, nalSPS},
		{"H.264 AUD", H264, []byte{0x09}, nalAUD},
		{"H.264 SEI is neither", H264, []byte{0x06}, nalOther},
		{"HEVC IDR_W_RADL is a key frame", HEVC, []byte{19 << 1, 1}, nalKey},
		{"HEVC CRA is a key frame (IRAP)", HEVC, []byte{21 << 1, 1}, nalKey},
		{"HEVC BLA_W_LP is a key frame (IRAP)", HEVC, []byte{16 << 1, 1}, nalKey},
		{"HEVC TRAIL_R is not", HEVC, []byte{1 << 1, 1}, nalVCL},
		{"HEVC RASL_N is not", HEVC, []byte{8 << 1, 1}, nalVCL},
		{"HEVC VPS", HEVC, []byte{32 << 1, 1}, nalVPS},
		{"HEVC AUD", HEVC, []byte{35 << 1, 1}, nalAUD},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &track{Track: Track{Codec: tc.codec}}
			if got, ok := tr.classify(tc.nalu); !ok || got != tc.want {
				t.Errorf("class %d (ok %v), want %d", got, ok, tc.want)
			}
		})
	}
	// In a stream: parameter sets before a non-IDR picture do not make it
	// a key frame, so no fragment starts there.
	es := avcAAC(t)
	sps, pps := es[0].track.SPS[0], es[0].track.PPS[0]
	steps := mapSteps(interleave(es), func(k int, st *step) bool {
		if st.i == 0 && st.s.DTS == 50*3600+3600 {
			st.s.NALUs = append([][]byte{sps, pps}, st.s.NALUs...)
		}
		return true
	})
	r := newRig(t, tracksOf(es), Options{MinFragment: 10 * time.Millisecond})
	if err := r.run(steps); err != nil {
		t.Fatal(err)
	}
	video := checkFragments(t, r, timeline.Video)
	if len(video) != 4 {
		t.Errorf("%d video fragments, want 4: one per IDR", len(video))
	}
}

// A fixture's key frames with their parameter sets in band, as MPEG-TS
// carries them, and an AUD before every access unit.
func inBand(es []elementary) []step {
	tr := es[0].track
	return mapSteps(interleave(es), func(_ int, st *step) bool {
		if st.i != 0 {
			return true
		}
		nalus := [][]byte{{0x09, 0xf0}}
		if isKey(st.s) {
			nalus = append(append(nalus, tr.SPS...), tr.PPS...)
		}
		st.s.NALUs = append(nalus, st.s.NALUs...)
		return true
	})
}

func TestParameterSets(t *testing.T) {
	small := readFixture(t, "avc-small.mp4")[0].track
	for _, tc := range []struct {
		name     string
		outBand  bool
		steps    func(es []elementary) []step
		err      error
		contains []string
	}{
		{name: "out of band: in-band copies and AUDs are stripped from the samples", outBand: true, steps: inBand},
		{name: "in band only: taken from the first key frame", steps: inBand},
		{name: "in band, differing from out of band: the stream's win", outBand: true, steps: func(es []elementary) []step {
			steps := inBand(es)
			es[0].track.SPS, es[0].track.PPS = small.SPS, small.PPS
			return steps
		}},
		{name: "none anywhere: refused", steps: func(es []elementary) []step { return interleave(es) }, err: ErrParameterSets, contains: []string{"none"}},
		{name: "a resolution change mid-stream is refused, saying so", outBand: true, steps: func(es []elementary) []step {
			return mapSteps(interleave(es), func(_ int, st *step) bool {
				if st.i == 0 && st.s.DTS == 50*3600 {
					st.s.NALUs = append([][]byte{small.SPS[0], small.PPS[0]}, st.s.NALUs...)
				}
				return true
			})
		}, err: ErrParameterSets, contains: []string{"64x64", "32x32", "new stream"}},
		{name: "a new PPS mid-stream is refused", outBand: true, steps: func(es []elementary) []step {
			return mapSteps(interleave(es), func(_ int, st *step) bool {
				if st.i == 0 && st.s.DTS == 50*3600 {
					st.s.NALUs = append([][]byte{append(slices.Clone(es[0].track.PPS[0]), 0x80)}, st.s.NALUs...)
				}
				return true
			})
		}, err: ErrParameterSets, contains: []string{"PPS other than"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := avcAAC(t)
			want := es[0].track
			steps := tc.steps(es)
			tracks := tracksOf(es)
			if !tc.outBand {
				tracks[0].SPS, tracks[0].PPS = nil, nil
			}
			r := newRig(t, tracks, Options{})
			err := r.run(steps)
			if tc.err != nil {
				protocolError(t, err, tc.err)
				for _, s := range tc.contains {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			f, err := mp4.DecodeFile(bytes.NewReader(r.file()))
			if err != nil {
				t.Fatal(err)
			}
			avcC := f.Init.Moov.Traks[0].Mdia.Minf.Stbl.Stsd.AvcX.AvcC
			if f.Init.Moov.Traks[0].Mdia.Minf.Stbl.Stsd.AvcX.Type() != "avc1" || !bytes.Equal(avcC.SPSnalus[0], want.SPS[0]) || !bytes.Equal(avcC.PPSnalus[0], want.PPS[0]) {
				t.Errorf("sample entry %s with SPS %x PPS %x, want avc1 with the stream's", f.Init.Moov.Traks[0].Mdia.Minf.Stbl.Stsd.AvcX.Type(), avcC.SPSnalus, avcC.PPSnalus)
			}
			// The samples are the fixture's, byte for byte: no parameter set,
			// no AUD.
			var got, orig int
			for _, fr := range r.rec.byTrack(1) {
				moof := decodeMoof(t, fr)
				orig += 0
				got += int(moof.Traf.Trun.SizeOfData())
			}
			for _, s := range es[0].samples {
				for _, n := range s.NALUs {
					orig += 4 + len(n)
				}
			}
			if got != orig {
				t.Errorf("video samples of %d bytes, the stream's without parameter sets and AUDs are %d", got, orig)
			}
		})
	}
}

func TestSamplesBeforeTheFirstKeyFrameAreDroppedAndLoggedOnce(t *testing.T) {
	es := avcAAC(t)
	logs := logtest.New()
	r := newRig(t, tracksOf(es), Options{Log: logs.Logger()})
	// The stream starts with the fifth frame: 20 frames before the key
	// frame at 1 s; the audio that ends before the video starts goes too.
	steps := mapSteps(interleave(es), func(_ int, st *step) bool { return st.i == 1 || st.s.DTS >= 5*3600 })
	if err := r.run(steps); err != nil {
		t.Fatal(err)
	}
	video := checkFragments(t, r, timeline.Video)
	audio := checkFragments(t, r, timeline.Audio)
	if video[0].Start != 90000+7200 {
		t.Errorf("video starts at %d, want the key frame's presentation time %d", video[0].Start, 90000+7200)
	}
	if a := audio[0].Start * 90000 / 48000; a > video[0].Start || a+1920 <= video[0].Start {
		t.Errorf("audio starts at %d (90 kHz), video at %d: not within a frame", a, video[0].Start)
	}
	// Audio frames ending at or before 1.08 s: 50 (the 51st, [1.0667,
	// 1.088), overlaps the video's start).
	if st := r.p.Stats(); st.Dropped != 20+50 {
		t.Errorf("dropped %d, want 20 video frames and 50 audio frames", st.Dropped)
	}
	n := 0
	for _, rec := range logs.Records() {
		if rec.Message == "dropping video before the first key frame" && rec.Level == slog.LevelWarn {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d warnings about the frames before the key frame, want 1", n)
	}
}

func TestAudioTiming(t *testing.T) {
	for _, tc := range []struct {
		name string
		// change alters the audio frames' PTS (in 90 kHz ticks), or drops a
		// frame (false).
		change    func(k int, pts *int64) bool
		resyncs   int
		fragments int
		// gap is where the audio's timeline breaks: the fragment at index
		// gap starts at a time other than where the one before ended (the
		// one before it, from the video's cut to the break, is short).
		gap  int
		disc bool
	}{
		{name: "jitter within half a frame keeps every frame's exact time", change: func(k int, pts *int64) bool {
			*pts += int64([]int{360, -360, 200, 0}[k%4]) // up to 4 ms either way (FLV's milliseconds: 0.5 ms)
			return true
		}, fragments: 4, gap: -1},
		{name: "a gap of more than half a frame resynchronises", change: func(k int, pts *int64) bool {
			return k < 100 || k >= 110
		}, resyncs: 1, fragments: 5, gap: 3},
		{name: "an overlap resynchronises, and the session sees the jump", change: func(k int, pts *int64) bool {
			if k >= 100 {
				*pts -= 9000
			}
			return true
		}, resyncs: 1, fragments: 5, gap: 3, disc: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := avcAAC(t)
			var k int
			steps := mapSteps(interleave(es), func(_ int, st *step) bool {
				if st.i != 1 {
					return true
				}
				k++
				return tc.change(k-1, &st.s.PTS)
			})
			r := newRig(t, tracksOf(es), Options{})
			if err := r.run(steps); err != nil {
				t.Fatal(err)
			}
			if got := r.p.Stats().Resyncs; got != tc.resyncs {
				t.Errorf("%d resyncs, want %d", got, tc.resyncs)
			}
			var audio []ingest.Fragment
			for _, f := range r.rec.frags {
				if f.Kind == timeline.Audio {
					audio = append(audio, f)
				}
			}
			if len(audio) != tc.fragments {
				t.Fatalf("%d audio fragments, want %d", len(audio), tc.fragments)
			}
			for i, f := range audio {
				moof := decodeMoof(t, f)
				for _, s := range moof.Traf.Trun.Samples {
					if s.Dur != 1024 {
						t.Fatalf("audio fragment %d: a sample of %d ticks, want 1024", i, s.Dur)
					}
				}
				if i == 0 {
					continue
				}
				end := audio[i-1].Start + audio[i-1].Duration
				if (f.Start != end) != (i == tc.gap) {
					t.Errorf("audio fragment %d starts at %d, the one before ends at %d", i, f.Start, end)
				}
				if f.Disc != (tc.disc && i == tc.gap) {
					t.Errorf("audio fragment %d: discontinuity %v", i, f.Disc)
				}
			}
		})
	}
}

// An audio frame lasts its samples: 1024 (AAC), 1536 (AC-3), an E-AC-3
// access unit its independent substream's blocks x 256.
func TestAudioFrameDurations(t *testing.T) {
	ac3 := readFixture(t, "ac3.mp4")[0].samples[0].Frame
	eac3 := readFixture(t, "eac3.mp4")[0].samples[0].Frame
	// An E-AC-3 syncframe of 3 blocks (numblkscod 2): 768 samples.
	three := slices.Clone(eac3)
	three[4] = three[4]&^0x30 | 2<<4
	for _, tc := range []struct {
		name  string
		codec Codec
		frame []byte
		want  uint32
		rate  uint32
	}{
		{"AAC", AAC, []byte{1, 2, 3}, 1024, 48000},
		{"AC-3", AC3, ac3, 1536, 48000},
		{"E-AC-3 of 6 blocks", EAC3, eac3, 1536, 48000},
		{"E-AC-3 of 3 blocks", EAC3, three, 768, 48000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := newTrack(0, Track{Codec: tc.codec, AudioConfig: []byte{0x11, 0x88}})
			if err != nil {
				t.Fatal(err)
			}
			got, err := tr.frame(tc.frame)
			if err != nil || got != tc.want || tr.timescale != tc.rate {
				t.Errorf("duration %d at %d Hz (err %v), want %d at %d Hz", got, tr.timescale, err, tc.want, tc.rate)
			}
		})
	}
	// The E-AC-3 fixture is 5.1: its dec3 says so.
	tr, _ := newTrack(0, Track{Codec: EAC3})
	if _, err := tr.frame(eac3); err != nil {
		t.Fatal(err)
	}
	if n, _ := tr.dec3.ChannelInfo(); n != 6 || tr.dec3.DataRate != 96 {
		t.Errorf("dec3 of %d channels at %d kbit/s, want 6 at 96", n, tr.dec3.DataRate)
	}
}

func TestAudioOnlyStreamsCutEveryTwoMinFragments(t *testing.T) {
	es := avcAAC(t)[1:]
	r := newRig(t, tracksOf(es), Options{MinFragment: 500 * time.Millisecond})
	if err := r.run(interleave(es)); err != nil {
		t.Fatal(err)
	}
	audio := checkFragments(t, r, timeline.Audio)
	for i, f := range audio[:len(audio)-1] {
		// The first frame at or after 1 s of the fragment's start: 47 frames.
		if f.Duration != 47*1024 {
			t.Errorf("audio fragment %d lasts %d, want 47 frames", i, f.Duration)
		}
	}
}

func TestKeyFramesTooFarApartEndTheStream(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps func([]step) []step
	}{
		{"GOPs longer than MaxGOP", func(s []step) []step { return s }},
		{"no key frame in MaxGOP from the start", func(s []step) []step {
			return mapSteps(s, func(_ int, st *step) bool { return st.i == 1 || !isKey(st.s) })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := avcAAC(t)
			r := newRig(t, tracksOf(es), Options{MaxGOP: 500 * time.Millisecond})
			err := r.run(tc.steps(interleave(es)))
			protocolError(t, err, ErrGOPTooLong)
			if !strings.Contains(err.Error(), "keyframe interval to 2 s") {
				t.Errorf("error %q does not tell the operator what to set", err)
			}
			// The stream is over: every later call says so.
			if err2 := r.p.Write(ctx, 1, es[1].samples[0]); err2 != err {
				t.Errorf("write after the error: %v", err2)
			}
		})
	}
}

func TestTimestampsThatDoNotFollow(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       Options
		change     func(st *step) []step
		err        error
		outOfOrder int
		disc       bool
	}{
		{name: "a repeated access unit is dropped", change: func(st *step) []step {
			if st.i == 0 && st.s.DTS == 30*3600 {
				return []step{*st, *st}
			}
			return []step{*st}
		}, outOfOrder: 1},
		{name: "an access unit going back is dropped with the rest of its GOP", change: func(st *step) []step {
			if st.i == 0 && st.s.DTS == 30*3600 {
				back := *st
				back.s.DTS, back.s.PTS = 10*3600, 10*3600+7200
				return []step{*st, back}
			}
			return []step{*st}
		}, outOfOrder: 1 + 19},
		{name: "a key frame after a jump back starts new fragments on every track: the session sees a discontinuity", change: func(st *step) []step {
			if st.i == 0 && st.s.DTS >= 50*3600 || st.i == 1 && st.s.PTS >= 50*3600 {
				st.s.DTS -= 90000
				st.s.PTS -= 90000
			}
			return []step{*st}
		}, disc: true},
		{name: "with OnCut, a segment whose clock goes back is refused", opts: Options{OnCut: true}, change: func(st *step) []step {
			if st.i == 0 && st.s.DTS == 30*3600 {
				back := *st
				back.s.DTS, back.s.PTS = 10*3600, 10*3600+7200
				return []step{*st, back}
			}
			return []step{*st}
		}, err: ErrTimestamps},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := avcAAC(t)
			var steps []step
			for _, st := range interleave(es) {
				steps = append(steps, tc.change(&st)...)
			}
			r := newRig(t, tracksOf(es), tc.opts)
			err := r.run(steps)
			if tc.err != nil {
				protocolError(t, err, tc.err)
				if len(r.boxes) != 0 {
					t.Errorf("%d boxes written of a refused segment", len(r.boxes))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := r.p.Stats().OutOfOrder; got != tc.outOfOrder {
				t.Errorf("%d dropped out of order, want %d", got, tc.outOfOrder)
			}
			disc := map[timeline.Kind]bool{}
			for _, f := range r.rec.frags {
				disc[f.Kind] = disc[f.Kind] || f.Disc
				checkStoredSamples(t, f)
			}
			if disc[timeline.Video] != tc.disc || disc[timeline.Audio] != tc.disc {
				t.Errorf("discontinuities %v, want %v on both tracks", disc, tc.disc)
			}
		})
	}
}

// checkStoredSamples checks a stored fragment's samples: each lasts, and
// the first is a sync sample.
func checkStoredSamples(t *testing.T, f ingest.Fragment) {
	t.Helper()
	moof := decodeMoof(t, f)
	trun := moof.Traf.Trun
	trun.AddSampleDefaultValues(moof.Traf.Tfhd, nil)
	for k, s := range trun.Samples {
		if s.Dur == 0 || s.Dur > 90000*60 {
			t.Errorf("%s fragment at %d: sample %d lasts %d ticks", f.Kind, f.Start, k, s.Dur)
		}
	}
	if !mp4.IsSyncSampleFlags(trun.Samples[0].Flags) {
		t.Errorf("%s fragment at %d starts with a non-sync sample", f.Kind, f.Start)
	}
}

func TestFragmentsAreBounded(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"in bytes", Options{MaxFragmentBytes: 2000}},
		{"in samples", Options{MaxFragmentSamples: 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := avcAAC(t)
			r := newRig(t, tracksOf(es), tc.opts)
			err := r.run(interleave(es))
			protocolError(t, err, mp4box.ErrTooLarge)
		})
	}
}

func TestEndWritesWhatIsHeldAndAStopPublishesNothingPartial(t *testing.T) {
	es := avcAAC(t)
	// 2.5 s of the stream: two whole GOPs and half of the third.
	part := mapSteps(interleave(es), func(_ int, st *step) bool {
		return st.i == 0 && st.s.DTS < 62*3600 || st.i == 1 && st.s.PTS < 62*3600
	})
	stopped := newRig(t, tracksOf(es), Options{})
	stopped.feed(t, part)
	if v := stopped.rec.byTrack(1); len(v) != 2 || v[1].Start+v[1].Duration != 2*90000+7200 {
		t.Errorf("a source that stops mid-GOP: %d video fragments stored, want the 2 whole GOPs", len(v))
	}
	for _, f := range stopped.rec.byTrack(2) {
		if f.Start > 2*48000 {
			t.Errorf("audio fragment at %d stored past the last whole GOP", f.Start)
		}
	}
	ended := newRig(t, tracksOf(es), Options{})
	if err := ended.run(part); err != nil {
		t.Fatal(err)
	}
	if v := ended.rec.byTrack(1); len(v) != 3 || !ended.session.Stats().Ended {
		t.Errorf("End: %d video fragments, ended %v; want 3 and the end", len(v), ended.session.Stats().Ended)
	}
	if err := ended.p.Write(ctx, 0, es[0].samples[0]); err == nil {
		t.Error("a write after End was taken")
	}
}

func TestBFramesHaveSignedCompositionOffsets(t *testing.T) {
	es := avcAAC(t)
	r := newRig(t, tracksOf(es), Options{})
	if err := r.run(interleave(es)); err != nil {
		t.Fatal(err)
	}
	negative := false
	var shown []int64 // presentation times, from the boxes
	for _, f := range r.rec.byTrack(1) {
		moof := decodeMoof(t, f)
		at := int64(moof.Traf.Tfdt.BaseMediaDecodeTime())
		for _, s := range moof.Traf.Trun.Samples {
			shown = append(shown, at+int64(s.CompositionTimeOffset))
			at += int64(s.Dur)
		}
		// The fragment starts at its key frame's presentation time.
		if s := moof.Traf.Trun.Samples[0]; s.CompositionTimeOffset != 0 {
			t.Errorf("fragment at %d: its key frame's composition offset is %d, want 0", f.Start, s.CompositionTimeOffset)
		}
		for _, s := range moof.Traf.Trun.Samples {
			if s.CompositionTimeOffset < 0 {
				negative = true
				if moof.Traf.Trun.Version != 1 {
					t.Errorf("a negative composition offset in a trun of version %d", moof.Traf.Trun.Version)
				}
			}
		}
	}
	if !negative {
		t.Error("no negative composition offset: the B-frames' should be")
	}
	// Every frame is shown at its source's PTS.
	var want []int64
	for _, s := range es[0].samples {
		want = append(want, s.PTS)
	}
	slices.Sort(shown)
	slices.Sort(want)
	if !slices.Equal(shown, want) {
		t.Errorf("frames shown at %v, their source's PTS are %v", shown, want)
	}
}

// Sources interleave tracks as their muxer did: audio a little ahead of
// the video or behind it. The fragments are the same either way.
func TestAudioLinesUpWhateverTheInterleaving(t *testing.T) {
	var ref []ingest.Fragment
	for _, lead := range []time.Duration{0, 700 * time.Millisecond, -700 * time.Millisecond, 3 * time.Second} {
		t.Run("audio ahead by "+lead.String(), func(t *testing.T) {
			es := avcAAC(t)
			var steps []step
			for i, e := range es {
				for _, s := range e.samples {
					steps = append(steps, step{i, s})
				}
			}
			at := func(st step) int64 {
				if st.i == 1 {
					return st.s.PTS - ticks(lead, 90000)
				}
				return st.s.DTS
			}
			slices.SortStableFunc(steps, func(a, b step) int { return int(max(min(at(a)-at(b), 1), -1)) })
			r := newRig(t, tracksOf(es), Options{})
			if err := r.run(steps); err != nil {
				t.Fatal(err)
			}
			if ref == nil {
				ref = r.rec.frags
				return
			}
			type span struct {
				kind       timeline.Kind
				start, dur uint64
			}
			var got, want []span
			for _, f := range r.rec.frags {
				got = append(got, span{f.Kind, f.Start, f.Duration})
			}
			for _, f := range ref {
				want = append(want, span{f.Kind, f.Start, f.Duration})
			}
			sortSpans := func(s []span) {
				slices.SortFunc(s, func(a, b span) int {
					return strings.Compare(string(a.kind), string(b.kind))*2 + int(max(min(int64(a.start)-int64(b.start), 1), -1))
				})
			}
			sortSpans(got)
			sortSpans(want)
			if !slices.Equal(got, want) {
				t.Errorf("fragments %v, want %v", got, want)
			}
		})
	}
}

// AV1 (Enhanced RTMP): key frames from their frame headers, temporal
// delimiters stripped, the sequence header out of band or from the first
// key frame, and a new one mid-stream refused.
func TestAV1(t *testing.T) {
	for _, tc := range []struct {
		name    string
		outBand bool
		change  func(k int, s *Sample)
		err     error
	}{
		{name: "configuration out of band", outBand: true},
		{name: "sequence header from the first key frame", outBand: false},
		{name: "a new sequence header mid-stream is refused", outBand: true, change: func(k int, s *Sample) {
			if k == 25 {
				// A sequence header other than the stream's.
				seq := []byte{0x0a, 0x0b, 0x00, 0x00, 0x00, 0x04, 0x47, 0xff, 0xbf, 0xbf, 0xe0, 0x20, 0x00}
				s.Frame = append(slices.Clone(seq), s.Frame...)
			}
		}, err: ErrParameterSets},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := readFixture(t, "av1.mp4")
			tracks := tracksOf(es)
			if !tc.outBand {
				tracks[0].AV1Config = nil
			}
			out := &boxes{}
			p, err := New(out, tracks, Options{})
			if err != nil {
				t.Fatal(err)
			}
			size := 0
			for k, s := range es[0].samples {
				if tc.change != nil {
					tc.change(k, &s)
				}
				if err = p.Write(ctx, 0, s); err != nil {
					break
				}
				size += len(s.Frame) - 2 // less the temporal delimiter
			}
			if err == nil {
				err = p.End(ctx)
			}
			if tc.err != nil {
				protocolError(t, err, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			f, err := mp4.DecodeFile(bytes.NewReader(out.data))
			if err != nil {
				t.Fatal(err)
			}
			if f.Init.Moov.Trak.Mdia.Minf.Stbl.Stsd.Av01 == nil {
				t.Fatal("no av01 sample entry")
			}
			if len(f.Segments) == 0 || len(f.Segments[0].Fragments) != 2 {
				t.Fatalf("fragments %v, want 2: one per key frame (a GOP of 1 s)", f.Segments)
			}
			got := 0
			for _, fr := range f.Segments[0].Fragments {
				trun := fr.Moof.Traf.Trun
				if trun.Samples[0].Flags != syncFlags || trun.Samples[1].Flags != nonSyncFlags {
					t.Errorf("fragment's samples flagged %08x, %08x: want sync then non-sync", trun.Samples[0].Flags, trun.Samples[1].Flags)
				}
				got += int(trun.SizeOfData())
			}
			if got != size {
				t.Errorf("samples of %d bytes, want the temporal units' %d without their delimiters", got, size)
			}
		})
	}
}

// Without OnCut, fragments start at key frames: a Cut makes the next key
// frame end them, however short the fragment (the fuzzer found a cut that
// started one mid-GOP).
func TestLiveCutWaitsForTheNextKeyFrame(t *testing.T) {
	es := avcAAC(t)
	r := newRig(t, tracksOf(es), Options{MinFragment: 5 * time.Second})
	for _, st := range interleave(es) {
		if st.i == 0 && st.s.DTS == 10*3600 {
			if err := r.p.Cut(ctx); err != nil {
				t.Fatal(err)
			}
		}
		r.feed(t, []step{st})
	}
	if err := r.p.End(ctx); err != nil {
		t.Fatal(err)
	}
	video := checkFragments(t, r, timeline.Video)
	if len(video) != 2 || video[0].Duration != 90000 {
		t.Errorf("%d video fragments, the first of %d ticks: want the first GOP alone, then the rest", len(video), video[0].Duration)
	}
}

// Flush writes everything held without ending the stream (a relay
// shutting down): the GOP at hand ends early, and the video goes on from
// its next key frame.
func TestFlushWritesWhatIsHeldAndGoesOn(t *testing.T) {
	es := avcAAC(t)
	r := newRig(t, tracksOf(es), Options{})
	for _, st := range interleave(es) {
		if st.i == 0 && st.s.DTS == 40*3600 {
			if err := r.p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if r.session.Stats().Ended {
				t.Fatal("Flush ended the stream")
			}
			if v := r.rec.byTrack(1); len(v) != 2 || v[1].Start+v[1].Duration != 40*3600+7200 {
				t.Fatalf("after Flush, %d video fragments stored: want 2, up to the frame before the flush", len(v))
			}
		}
		r.feed(t, []step{st})
	}
	if err := r.p.End(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range r.rec.frags {
		checkStoredSamples(t, f)
	}
	// The video resumes at its next key frame: a gap where the frames
	// dropped were.
	if v := r.rec.byTrack(1); len(v) != 4 || v[2].Start != 50*3600+7200 {
		t.Errorf("%d video fragments after the flush; want 4, the third from the key frame at 2 s", len(v))
	}
	if st := r.p.Stats(); st.Dropped != 3+10 {
		t.Errorf("dropped %d, want the 3 audio frames before the video and the 10 video frames between the flush and the next key frame", st.Dropped)
	}
}

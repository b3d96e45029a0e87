package ingest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// muxedTracks are the tracks of the muxed tests: two video bitrates and
// audio, as ffmpeg's HLS muxer puts a variant's tracks in one file.
var muxedTracks = []synth.Track{
	{Kind: timeline.Video, Bitrate: 100_000, Width: 64, Height: 32},
	{Kind: timeline.Video, Bitrate: 40_000, Width: 32, Height: 16},
	{Kind: timeline.Audio, Bitrate: 16_000},
}

// editMuxed returns body with its k-th moof passed through edit and
// written again, the data offsets of its default-base-is-moof trafs moved
// by what the moof's size changed.
func editMuxed(t *testing.T, body []byte, k int, edit func(m *mp4.MoofBox)) []byte {
	t.Helper()
	var out []byte
	i := 0
	for box, err := range mp4box.All(body) {
		if err != nil {
			t.Fatal(err)
		}
		if box.Type != "moof" || i != k {
			i += btoi(box.Type == "moof")
			out = append(out, box.Data...)
			continue
		}
		i++
		m, err := fmp4.DecodeMoofTracks(box.Data, 64)
		if err != nil {
			t.Fatal(err)
		}
		edit(m)
		delta := int32(int(m.Size()) - box.Size())
		for _, traf := range m.Trafs {
			for _, trun := range traf.Truns {
				if traf.Tfhd != nil && traf.Tfhd.DefaultBaseIfMoof() && trun.HasDataOffset() {
					trun.DataOffset += delta
				}
			}
		}
		var b bytes.Buffer
		if err := m.Encode(&b); err != nil {
			t.Fatal(err)
		}
		out = append(out, b.Bytes()...)
	}
	return out
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A muxed stream (every track in one moof per fragment, one mdat) stores
// exactly what the same stream sends as a moof per track: the same init
// segments, and the same fragments, byte for byte, with the same times,
// chains and bitrates (declared, or each track's measured from its own
// part, not from the muxed mdat), whether the stream is a Smooth push
// (tfxd) or CMAF (tfdt; the same tracks a moof each are then a Smooth
// push: a CMAF push carries one track, and the stored fragments of both
// carry tfdt and tfxd alike).
func TestMuxedStreamStoresWhatAMoofPerTrackStores(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  synth.Config
	}{
		{"Smooth, with the live server manifest", synth.Config{SMIL: true}},
		{"CMAF, bitrates declared", synth.Config{CMAF: true}},
		{"CMAF, bitrates measured", synth.Config{CMAF: true, NoBitrateBoxes: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Tracks = muxedTracks
			var sinks [2]*recordingSink
			for i, muxed := range []bool{false, true} {
				cfg := tc.cfg
				cfg.Muxed = muxed
				cfg.CMAF = cfg.CMAF && muxed
				body := pushOf(t, cfg, 4)
				sinks[i] = &recordingSink{}
				if _, err := run(NewSession(sinks[i], quiet, Options{}), bytes.NewReader(body)); err != nil {
					t.Fatalf("muxed %v: %v", muxed, err)
				}
			}
			sep, mux := sinks[0], sinks[1]
			if len(mux.inits) != 3 || len(mux.frags) != 12 {
				t.Fatalf("muxed: %d init segments and %d fragments, want 3 and 12", len(mux.inits), len(mux.frags))
			}
			for _, h := range mux.inits {
				i := slices.IndexFunc(sep.inits, func(o TrackHeader) bool { return o.TrackID == h.TrackID })
				if i < 0 || sep.inits[i].ID != h.ID || !bytes.Equal(sep.inits[i].Init, h.Init) {
					t.Errorf("track %d: muxed, %s; a moof per track, another name, bitrate or init segment", h.TrackID, h.ID)
				}
			}
			// Fragments come in another order (per moof, not per track's
			// moof): compare them by track and time.
			byKey := func(f Fragment) [2]uint64 { return [2]uint64{uint64(f.TrackID), f.Start} }
			want := map[[2]uint64]Fragment{}
			for _, f := range sep.frags {
				want[byKey(f)] = f
			}
			for _, f := range mux.frags {
				w, ok := want[byKey(f)]
				if !ok {
					t.Errorf("track %d at %d: no such fragment from a moof per track", f.TrackID, f.Start)
					continue
				}
				checkStoredFragment(t, f)
				if f.ID != w.ID || f.Duration != w.Duration || f.HasPrev != w.HasPrev || f.Prev != w.Prev || f.Disc != w.Disc || !bytes.Equal(f.Head, w.Head) {
					t.Errorf("track %d at %d: muxed, %s %d prev %v %d, %d bytes; a moof per track, %s %d prev %v %d, %d bytes",
						f.TrackID, f.Start, f.ID, f.Duration, f.HasPrev, f.Prev, len(f.Head), w.ID, w.Duration, w.HasPrev, w.Prev, len(w.Head))
				}
			}
		})
	}
}

// A muxed moof the session cannot take whole is refused whole: a
// *ProtocolError that names what is wrong, and nothing of it reaches the
// sink, not even its tracks that were right.
func TestMuxedMoofIsRefusedWhole(t *testing.T) {
	cfg := synth.Config{Tracks: muxedTracks, CMAF: true, Muxed: true}
	body := pushOf(t, cfg, 3)
	video, audio := func(m *mp4.MoofBox) *mp4.TrafBox { return m.Trafs[0] }, func(m *mp4.MoofBox) *mp4.TrafBox { return m.Trafs[2] }
	for _, tc := range []struct {
		name string
		k    int // the moof edited: the ones before it are stored
		edit func(m *mp4.MoofBox)
		want string
	}{
		{"a traf for a track the moov does not declare", 1, func(m *mp4.MoofBox) { audio(m).Tfhd.TrackID = 9 }, "names track 9, which the moov does not declare"},
		{"17 trafs", 1, func(m *mp4.MoofBox) {
			for id := uint32(4); id <= 17; id++ {
				traf := &mp4.TrafBox{}
				_ = traf.AddChild(mp4.CreateTfhd(id))
				_ = m.AddChild(traf)
			}
		}, "moof carries too many trafs: 17, limit 16"},
		{"two trafs of one track", 1, func(m *mp4.MoofBox) { audio(m).Tfhd.TrackID = 1 }, "two trafs of one track"},
		{"the audio's data overlaps the video's", 1, func(m *mp4.MoofBox) { audio(m).Trun.DataOffset = video(m).Trun.DataOffset + 4 }, "overlap"},
		{"the audio's data past the mdat", 1, func(m *mp4.MoofBox) { audio(m).Trun.DataOffset += 1 << 20 }, "outside the mdat"},
		{"the audio's timing no encoder sends", 1, func(m *mp4.MoofBox) { audio(m).Tfdt.SetBaseMediaDecodeTime(1 << 62) }, "media time ends"},
		{"the audio starting a year after the video, in the first moof", 0, func(m *mp4.MoofBox) {
			audio(m).Tfdt.SetBaseMediaDecodeTime(audio(m).Tfdt.BaseMediaDecodeTime() + uint64(year/time.Second)*10_000_000)
		}, "the tracks of a stream start within"},
		{"the audio going back before zero", 1, func(m *mp4.MoofBox) {
			audio(m).Tfdt.SetBaseMediaDecodeTime(1<<64 - 10_000_000)
		}, "before time zero"},
		{"no samples at all", 1, func(m *mp4.MoofBox) {
			for _, traf := range m.Trafs {
				traf.Trun.Samples = nil
			}
		}, "carries no samples"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &recordingSink{}
			_, err := run(NewSession(sink, quiet, Options{}), bytes.NewReader(editMuxed(t, body, tc.k, tc.edit)))
			var perr *ProtocolError
			if !errors.As(err, &perr) || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("err %v, want a ProtocolError saying %q", err, tc.want)
			}
			if len(sink.frags) != 3*tc.k {
				t.Errorf("%d fragments stored, want the %d of the moofs before the refused one", len(sink.frags), 3*tc.k)
			}
		})
	}
}

// A traf with no samples in a muxed moof (a track with nothing in this
// fragment) stores nothing for its track; the moof's other tracks are
// stored, and the track goes on at its next fragment.
func TestMuxedTrafWithoutSamplesIsSkipped(t *testing.T) {
	cfg := synth.Config{Tracks: muxedTracks, CMAF: true, Muxed: true}
	body := editMuxed(t, pushOf(t, cfg, 3), 1, func(m *mp4.MoofBox) { m.Trafs[2].Trun.Samples = nil })
	sink := &recordingSink{}
	if _, err := run(NewSession(sink, quiet, Options{}), bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	perTrack := map[uint32]int{}
	for _, f := range sink.frags {
		perTrack[f.TrackID]++
		checkStoredFragment(t, f)
	}
	if perTrack[1] != 3 || perTrack[2] != 3 || perTrack[3] != 2 {
		t.Errorf("fragments per track %v, want 3, 3 and 2 (the audio's empty traf skipped)", perTrack)
	}
}

// BenchmarkSessionMuxed measures a session's work for a ladder (five
// H.264 renditions and AAC, 2 s fragments) sent as a moof per track and
// muxed (one moof per fragment), its boxes in hand (as an upload's are:
// a push's box reader holds the muxed mdat, every track's media of a
// fragment, at once).
func BenchmarkSessionMuxed(b *testing.B) {
	for _, muxed := range []bool{false, true} {
		s, err := synth.New(synth.Config{Tracks: synth.Ladder(), Muxed: muxed})
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := s.WriteTo(context.Background(), &buf, synth.Range{Count: 5}); err != nil {
			b.Fatal(err)
		}
		body := buf.Bytes()
		name := map[bool]string{false: "a moof per track", true: "muxed"}[muxed]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				sess := NewSession(discardSink{}, quiet, Options{})
				for box, err := range mp4box.All(body) {
					if err != nil {
						b.Fatal(err)
					}
					if err := sess.Box(context.Background(), box); err != nil {
						b.Fatal(err)
					}
				}
				if sess.Stats().Fragments != 30 {
					b.Fatalf("%d fragments, want 30", sess.Stats().Fragments)
				}
			}
		})
	}
}

type discardSink struct{}

func (discardSink) Init(context.Context, TrackHeader) error  { return nil }
func (discardSink) Fragment(context.Context, Fragment) error { return nil }

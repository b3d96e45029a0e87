package fmp4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// muxedConfig is a small muxed stream: video and audio in one moof per
// fragment, timed by tfdt (CMAF).
var muxedConfig = synth.Config{
	Tracks:           []synth.Track{{Kind: timeline.Video, Bitrate: 16_000, Width: 32, Height: 16}, {Kind: timeline.Audio, Bitrate: 8000}},
	FragmentDuration: 500 * time.Millisecond, FrameRate: 10, CMAF: true, Muxed: true,
}

// fragmentOf is the first moof of fragment k of a stream of cfg (past
// the styp of CMAF) and its mdat payload.
func fragmentOf(t testing.TB, cfg synth.Config, k int) (moof, mdat []byte) {
	t.Helper()
	s, err := synth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Header(); err != nil {
		t.Fatal(err)
	}
	b, err := s.AppendFragment(nil, k)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CMAF {
		b = b[binary.BigEndian.Uint32(b):] // the styp
	}
	n := binary.BigEndian.Uint32(b)
	return b[:n], b[n+8 : n+binary.BigEndian.Uint32(b[n:])]
}

// muxedFragment is fragment k of a muxed stream of cfg: its moof and
// mdat payload as they came, and each track's samples as they lie in
// the mdat.
func muxedFragment(t testing.TB, cfg synth.Config, k int) (moof, mdat []byte, want map[uint32][]byte) {
	t.Helper()
	moof, mdat = fragmentOf(t, cfg, k)
	m, err := DecodeMoofTracks(moof, 16)
	if err != nil {
		t.Fatal(err)
	}
	want = map[uint32][]byte{}
	for _, traf := range m.Trafs {
		for _, trun := range traf.Truns {
			at := int(trun.DataOffset) - len(moof) - 8
			want[traf.Tfhd.TrackID] = append(want[traf.Tfhd.TrackID], mdat[at:at+int(trun.SizeOfData())]...)
		}
	}
	if len(want) != len(cfg.Tracks) || len(want[1])+len(want[2]) != len(mdat) {
		t.Fatalf("synthetic muxed fragment: tracks' samples %d+%d bytes, mdat %d", len(want[1]), len(want[2]), len(mdat))
	}
	return moof, mdat, want
}

// reencode encodes m once to learn its size, lets set place the data
// with it, and encodes it again.
func reencode(t testing.TB, m *mp4.MoofBox, set func(size int64)) []byte {
	t.Helper()
	size := int64(m.Size())
	set(size)
	b := encodeBox(t, m)
	if int64(len(b)) != size {
		t.Fatalf("moof size changed from %d to %d", size, len(b))
	}
	return b
}

// splitCase is a muxed moof as some encoder might lay it out.
type splitCase struct {
	name string
	// build returns the moof, its position in the stream and the mdat
	// payload, from the synthetic fragment's decoded moof m, its mdat and
	// the size of each track's samples (v: video, track 1; a: audio).
	build func(t testing.TB, m *mp4.MoofBox, mdat []byte, v, a int64) (moof []byte, pos uint64, payload []byte)
	// copied: the video's runs are not back to back in the mdat, so its
	// part holds a copy of them.
	copied bool
	// empty: the audio traf has no samples (and the mdat none of its).
	empty bool
	err   error
}

func setFlags(tfhd *mp4.TfhdBox, set, clear uint32) { tfhd.Flags = tfhd.Flags&^clear | set }

// splitTrun cuts traf's trun in two at sample n.
func splitTrun(traf *mp4.TrafBox, n int) {
	first := traf.Truns[0]
	second := *first
	second.Samples = slices.Clone(first.Samples[n:])
	first.Samples = first.Samples[:n]
	_ = traf.AddChild(&second)
}

var splitCases = []splitCase{
	{name: "data offsets from the moof (default-base-is-moof, as ffmpeg writes)", build: func(t testing.TB, m *mp4.MoofBox, mdat []byte, v, a int64) ([]byte, uint64, []byte) {
		return reencode(t, m, func(int64) {}), 0, mdat
	}},
	{name: "explicit base-data-offsets in the stream", build: func(t testing.TB, m *mp4.MoofBox, mdat []byte, v, a int64) ([]byte, uint64, []byte) {
		const pos = 5000
		for _, traf := range m.Trafs {
			setFlags(traf.Tfhd, mp4.TfhdBaseDataOffsetPresentFlag, mp4.TfhdDefaultBaseIsMoofFlag)
			traf.Trun.Flags &^= mp4.TrunDataOffsetPresentFlag // the data is at the base
		}
		return reencode(t, m, func(size int64) {
			m.Trafs[0].Tfhd.BaseDataOffset = uint64(pos + size + 8)     // the payload's first byte
			m.Trafs[1].Tfhd.BaseDataOffset = uint64(pos + size + 8 + v) // the audio's
		}), pos, mdat
	}},
	{name: "explicit base-data-offset with default-base-is-moof too: the offset counts", build: func(t testing.TB, m *mp4.MoofBox, mdat []byte, v, a int64) ([]byte, uint64, []byte) {
		const pos = 300
		setFlags(m.Trafs[1].Tfhd, mp4.TfhdBaseDataOffsetPresentFlag, 0)
		return reencode(t, m, func(size int64) {
			m.Trafs[0].Trun.DataOffset = int32(size + 8)
			m.Trafs[1].Tfhd.BaseDataOffset = pos
			m.Trafs[1].Trun.DataOffset = int32(size + 8 + v)
		}), pos, mdat
	}},
	{name: "no base flags: the second traf's data follows the first's", build: func(t testing.TB, m *mp4.MoofBox, mdat []byte, v, a int64) ([]byte, uint64, []byte) {
		for _, traf := range m.Trafs {
			setFlags(traf.Tfhd, 0, mp4.TfhdDefaultBaseIsMoofFlag)
		}
		m.Trafs[1].Trun.Flags &^= mp4.TrunDataOffsetPresentFlag
		return reencode(t, m, func(size int64) { m.Trafs[0].Trun.DataOffset = int32(size + 8) }), 0, mdat
	}},
	{name: "no base flags: a data offset counts from the end of the previous traf's data", build: func(t testing.TB, m *mp4.MoofBox, mdat []byte, v, a int64) ([]byte, uint64, []byte) {
		for _, traf := range m.Trafs {
			setFlags(traf.Tfhd, 0, mp4.TfhdDefaultBaseIsMoofFlag)
		}
		padded := append(append(slices.Clone(mdat[:v]), 0xee, 0xee, 0xee), mdat[v:]...)
		return reencode(t, m, func(size int64) {
			m.Trafs[0].Trun.DataOffset = int32(size + 8)
			m.Trafs[1].Trun.DataOffset = 3 // three bytes no run claims
		}), 0, padded
	}},
	{name: "no data offsets at all: the first run starts the mdat, the rest follow", build: func(t testing.TB, m *mp4.MoofBox, mdat []byte, v, a int64) ([]byte, uint64, []byte) {
		for _, traf := range m.Trafs {
			setFlags(traf.Tfhd, 0, mp4.TfhdDefaultBaseIsMoofFlag)
			traf.Trun.Flags &^= mp4.TrunDataOffsetPresentFlag
		}
		return reencode(t, m, func(int64) {}), 0, mdat
	}},
	{name: "trafs in another order than their data", build: func(t testing.TB, m *mp4.MoofBox, mdat []byte, v, a int64) ([]byte, uint64, []byte) {
		audio, video := m.Trafs[1], m.Trafs[0]
		m.Trafs = []*mp4.TrafBox{audio, video}
		m.Traf = audio
		m.Children = []mp4.Box{m.Mfhd, audio, video}
		return reencode(t, m, func(size int64) {
			video.Trun.DataOffset = int32(size + 8)
			audio.Trun.DataOffset = int32(size + 8 + v)
		}), 0, mdat
	}},
	{name: "a track's runs interleaved with another's: its part is a copy", copied: true, build: func(t testing.TB, m *mp4.MoofBox, mdat []byte, v, a int64) ([]byte, uint64, []byte) {
		video := m.Trafs[0]
		splitTrun(video, 4)
		v1 := int64(video.Truns[0].SizeOfData())
		// video's first run, the audio, video's second run
		payload := slices.Concat(mdat[:v1], mdat[v:], mdat[v1:v])
		return reencode(t, m, func(size int64) {
			video.Truns[0].DataOffset = int32(size + 8)
			m.Trafs[1].Trun.DataOffset = int32(size + 8 + v1)
			video.Truns[1].DataOffset = int32(size + 8 + v1 + a)
		}), 0, payload
	}},
	{name: "a traf with no samples", empty: true, build: func(t testing.TB, m *mp4.MoofBox, mdat []byte, v, a int64) ([]byte, uint64, []byte) {
		m.Trafs[1].Trun.Samples = nil
		return reencode(t, m, func(size int64) { m.Trafs[0].Trun.DataOffset = int32(size + 8) }), 0, mdat[:v]
	}},
	{name: "a traf with no trun", empty: true, build: func(t testing.TB, m *mp4.MoofBox, mdat []byte, v, a int64) ([]byte, uint64, []byte) {
		audio := m.Trafs[1]
		audio.Children = slices.DeleteFunc(audio.Children, func(b mp4.Box) bool { return b == mp4.Box(audio.Trun) })
		audio.Truns, audio.Trun = nil, nil
		return reencode(t, m, func(size int64) { m.Trafs[0].Trun.DataOffset = int32(size + 8) }), 0, mdat[:v]
	}},

	// Hostile layouts.
	{name: "two tracks' data overlap", err: ErrOverlappingData, build: func(t testing.TB, m *mp4.MoofBox, mdat []byte, v, a int64) ([]byte, uint64, []byte) {
		return reencode(t, m, func(int64) { m.Trafs[1].Trun.DataOffset -= 10 }), 0, mdat
	}},
	{name: "one track's runs overlap", err: ErrOverlappingData, build: func(t testing.TB, m *mp4.MoofBox, mdat []byte, v, a int64) ([]byte, uint64, []byte) {
		splitTrun(m.Trafs[0], 4)
		return reencode(t, m, func(size int64) {
			m.Trafs[0].Truns[0].DataOffset = int32(size + 8)
			m.Trafs[0].Truns[1].DataOffset = int32(size + 8) // where the first run is too
		}), 0, mdat
	}},
	{name: "data past the mdat", err: ErrBadDataOffset, build: func(t testing.TB, m *mp4.MoofBox, mdat []byte, v, a int64) ([]byte, uint64, []byte) {
		return reencode(t, m, func(int64) {}), 0, mdat[:len(mdat)-1]
	}},
	{name: "data in the moof", err: ErrBadDataOffset, build: func(t testing.TB, m *mp4.MoofBox, mdat []byte, v, a int64) ([]byte, uint64, []byte) {
		return reencode(t, m, func(int64) { m.Trafs[1].Trun.DataOffset = 8 }), 0, mdat
	}},
	{name: "a base-data-offset before the moof", err: ErrBadDataOffset, build: func(t testing.TB, m *mp4.MoofBox, mdat []byte, v, a int64) ([]byte, uint64, []byte) {
		setFlags(m.Trafs[1].Tfhd, mp4.TfhdBaseDataOffsetPresentFlag, mp4.TfhdDefaultBaseIsMoofFlag)
		return reencode(t, m, func(size int64) { m.Trafs[1].Tfhd.BaseDataOffset = 0 }), 4000, mdat
	}},
	{name: "a base-data-offset past any stream", err: ErrBadDataOffset, build: func(t testing.TB, m *mp4.MoofBox, mdat []byte, v, a int64) ([]byte, uint64, []byte) {
		setFlags(m.Trafs[1].Tfhd, mp4.TfhdBaseDataOffsetPresentFlag, mp4.TfhdDefaultBaseIsMoofFlag)
		return reencode(t, m, func(size int64) { m.Trafs[1].Tfhd.BaseDataOffset = 1<<64 - 1 }), 0, mdat
	}},
	{name: "a negative data offset", err: ErrBadDataOffset, build: func(t testing.TB, m *mp4.MoofBox, mdat []byte, v, a int64) ([]byte, uint64, []byte) {
		return reencode(t, m, func(int64) { m.Trafs[0].Trun.DataOffset = -1 << 31 }), 0, mdat
	}},
	{name: "17 trafs", err: ErrTooManyTrafs, build: func(t testing.TB, m *mp4.MoofBox, mdat []byte, v, a int64) ([]byte, uint64, []byte) {
		for id := uint32(3); id <= 17; id++ {
			traf := &mp4.TrafBox{}
			_ = traf.AddChild(mp4.CreateTfhd(id))
			_ = m.AddChild(traf)
		}
		return reencode(t, m, func(int64) {}), 0, mdat
	}},
	{name: "one track twice", err: ErrTrackTwice, build: func(t testing.TB, m *mp4.MoofBox, mdat []byte, v, a int64) ([]byte, uint64, []byte) {
		m.Trafs[1].Tfhd.TrackID = 1
		return reencode(t, m, func(int64) {}), 0, mdat
	}},
	{name: "a traf without tfhd", err: ErrNoTfhd, build: func(t testing.TB, m *mp4.MoofBox, mdat []byte, v, a int64) ([]byte, uint64, []byte) {
		audio := m.Trafs[1]
		audio.Children = slices.DeleteFunc(audio.Children, func(b mp4.Box) bool { return b == mp4.Box(audio.Tfhd) })
		return reencode(t, m, func(int64) {}), 0, mdat
	}},
}

// A muxed moof is cut into a part per traf, each with its own samples out
// of the mdat wherever the encoder put them (as ISO/IEC 14496-12 places
// them: base-data-offset, default-base-is-moof, or after the previous
// traf's data), as the slice of the mdat they came in when they lie
// together; each part rewrites into a fragment of its track alone. A
// layout no encoder sends is refused, naming what is wrong.
func TestSplitCutsAMuxedMoofPerTrack(t *testing.T) {
	moof0, mdat0, want := muxedFragment(t, muxedConfig, 0)
	v, a := int64(len(want[1])), int64(len(want[2]))
	for _, tc := range splitCases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := DecodeMoofTracks(moof0, 16)
			if err != nil {
				t.Fatal(err)
			}
			moof, pos, mdat := tc.build(t, m, slices.Clone(mdat0), v, a)
			m, err = DecodeMoofTracks(moof, 16)
			var parts []Part
			if err == nil {
				parts, err = Split(m, Input{Moof: moof, MoofPos: pos, MdatHeader: 8, Mdat: mdat}, nil)
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(parts) != 2 {
				t.Fatalf("%d parts, want 2", len(parts))
			}
			for _, p := range parts {
				wantData := want[p.TrackID]
				if tc.empty && p.TrackID == 2 {
					wantData = nil
				}
				if got := samplesOf(&p); !bytes.Equal(got, wantData) {
					t.Errorf("track %d: its runs hold %d bytes that are not its samples (%d bytes)", p.TrackID, len(got), len(wantData))
				}
				if len(p.Moof.Trafs) != 1 || p.Moof.Traf.Tfhd.TrackID != p.TrackID || p.Moof.Mfhd == nil {
					t.Errorf("track %d: its moof is not an mfhd and its traf alone", p.TrackID)
				}
				shared := len(p.Data) > 0 && inside(p.Data, mdat)
				if copied := tc.copied && p.TrackID == 1; shared == copied && len(p.Data) > 0 {
					t.Errorf("track %d: its data is a slice of the mdat: %v, want %v", p.TrackID, shared, !copied)
				}
				if p.Samples() == 0 {
					continue
				}
				head, payload, info, err := p.Rewrite(nil, TrackInput{})
				if err != nil {
					t.Fatalf("track %d: %v", p.TrackID, err)
				}
				got, err := Inspect(append(head, payload...))
				if err != nil || got.TrackID != p.TrackID || got.Samples != info.Samples || got.Duration != info.Duration {
					t.Errorf("track %d: stored fragment inspects as %+v, %v; rewritten %+v", p.TrackID, got, err, info)
				}
				if !bytes.Equal(payload, wantData) && !tc.copied {
					t.Errorf("track %d: stored mdat of %d bytes, want its %d bytes of samples", p.TrackID, len(payload), len(wantData))
				}
			}
		})
	}
}

// samplesOf is the bytes p's runs describe, in trun order.
func samplesOf(p *Part) []byte {
	var b []byte
	for i, trun := range p.Moof.Traf.Truns {
		b = append(b, p.Data[p.pos[i]:p.pos[i]+int64(trun.SizeOfData())]...)
	}
	return b
}

// inside reports whether b lies in the memory of s.
func inside(b, s []byte) bool {
	p, lo := uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	return p >= lo && p < lo+uintptr(len(s))
}

// The split of a moof that carries one traf is what the rewrite of a
// single track's fragment always was: the whole mdat, as it came.
func TestSplitOfOneTrafKeepsTheMdat(t *testing.T) {
	moof, payload := fragment(t, 0, []uint32{100, 100}, true, false, true)
	padded := append(slices.Clone(payload), 1, 2, 3)
	m, err := DecodeMoofTracks(moof, 16)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := Split(m, Input{Moof: moof, MdatHeader: 8, Mdat: padded}, nil)
	if err != nil || len(parts) != 1 || !bytes.Equal(parts[0].Data, padded) || parts[0].Moof != m {
		t.Fatalf("Split of one traf: %d parts, %v; want the moof and its whole mdat", len(parts), err)
	}
}

// FuzzSplit: Split refuses a moof and its mdat with an error, or cuts
// them into parts, one per traf, whose runs lie in their own data and
// never overlap in the mdat, and each of which rewrites into a fragment
// that Inspect accepts as its track's alone.
func FuzzSplit(f *testing.F) {
	moof, mdat, _ := muxedFragment(f, muxedConfig, 1)
	f.Add(moof, mdat, uint64(0))
	smooth := muxedConfig
	smooth.CMAF = false
	smooth.AudioOffset = -20 * time.Millisecond
	moof1, mdat1 := fragmentOf(f, smooth, 0)
	f.Add(moof1, mdat1, uint64(0))
	_, mdat0, want := muxedFragment(f, muxedConfig, 0)
	for _, tc := range splitCases {
		m, err := DecodeMoofTracks(moof, 16)
		if err != nil {
			f.Fatal(err)
		}
		mb, pos, p := tc.build(f, m, slices.Clone(mdat0), int64(len(want[1])), int64(len(want[2])))
		f.Add(mb, p, pos)
	}
	f.Fuzz(func(t *testing.T, moof, mdat []byte, pos uint64) {
		m, err := DecodeMoofTracks(moof, 16)
		if err != nil {
			return
		}
		parts, err := Split(m, Input{Moof: moof, MoofPos: pos, MdatHeader: 8, Mdat: mdat}, nil)
		if err != nil {
			return
		}
		if len(parts) != len(m.Trafs) {
			t.Fatalf("%d parts of %d trafs", len(parts), len(m.Trafs))
		}
		var spans [][2]uintptr
		for _, p := range parts {
			for i, trun := range p.Moof.Traf.Truns {
				size := int64(trun.SizeOfData())
				if p.pos[i] < 0 || p.pos[i]+size > int64(len(p.Data)) {
					t.Fatalf("track %d trun %d: %d+%d outside its %d bytes", p.TrackID, i, p.pos[i], size, len(p.Data))
				}
				if size > 0 && inside(p.Data, mdat) {
					lo := uintptr(unsafe.Pointer(unsafe.SliceData(p.Data))) + uintptr(p.pos[i])
					spans = append(spans, [2]uintptr{lo, lo + uintptr(size)})
				}
			}
		}
		slices.SortFunc(spans, func(a, b [2]uintptr) int { return int(a[0]) - int(b[0]) })
		for i := 1; i < len(spans); i++ {
			if spans[i][0] < spans[i-1][1] && len(parts) > 1 {
				t.Fatalf("two runs share bytes of the mdat")
			}
		}
		for _, p := range parts {
			if p.Samples() == 0 {
				continue
			}
			head, payload, info, err := p.Rewrite(nil, TrackInput{})
			if err != nil {
				continue
			}
			got, err := Inspect(append(head, payload...))
			if err != nil {
				t.Fatalf("track %d: the rewritten part does not inspect: %v", p.TrackID, err)
			}
			if got.TrackID != p.TrackID || got.Samples != info.Samples || got.Start != info.Start {
				t.Fatalf("Inspect %+v, Rewrite %+v", got, info)
			}
		}
	})
}

// BenchmarkSplit measures what splitting a muxed moof costs: the same
// media (2 s of 3.5 Mbit/s H.264 at 25 fps and 128 kbit/s AAC) rewritten
// from one muxed moof+mdat (split, then a fragment per track), from a
// moof+mdat per track (as a Smooth push sends them), and a single-track
// fragment of the same size in bytes.
func BenchmarkSplit(b *testing.B) {
	cfg := synth.Config{Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 3_500_000, Width: 1280, Height: 720}, {Kind: timeline.Audio, Bitrate: 128_000}}, CMAF: true, Muxed: true}
	moof, mdat, want := muxedFragment(b, cfg, 1)
	size := len(moof) + 8 + len(mdat)
	// The same tracks, a moof+mdat each (a Smooth push: a CMAF one
	// carries one track).
	var separate [][2][]byte
	for _, c := range cfg.Split() {
		c.Muxed, c.CMAF = false, false
		moof, mdat := fragmentOf(b, c, 1)
		separate = append(separate, [2][]byte{moof, mdat})
	}
	// One track of the muxed fragment's size.
	one := synth.Config{Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 3_500_000 + 128_000, Width: 1280, Height: 720}}, CMAF: true}
	singleMoof, singleMdat := fragmentOf(b, one, 1)
	single := len(singleMoof) + 8 + len(singleMdat)
	b.Logf("muxed fragment %d bytes (video %d, audio %d), single-track fragment %d bytes", size, len(want[1]), len(want[2]), single)

	var dst []byte
	b.Run("single track", func(b *testing.B) {
		b.SetBytes(int64(single))
		b.ReportAllocs()
		for b.Loop() {
			head, _, _, err := RewriteHead(dst, Input{Moof: singleMoof, MdatHeader: 8, Mdat: singleMdat})
			if err != nil {
				b.Fatal(err)
			}
			dst = head[:0]
		}
	})
	b.Run("two tracks, a moof each", func(b *testing.B) {
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			for _, f := range separate {
				head, _, _, err := RewriteHead(dst, Input{Moof: f[0], MdatHeader: 8, Mdat: f[1]})
				if err != nil {
					b.Fatal(err)
				}
				dst = head[:0]
			}
		}
	})
	b.Run("two tracks muxed: split", func(b *testing.B) {
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			m, err := DecodeMoofTracks(moof, 16)
			if err != nil {
				b.Fatal(err)
			}
			parts, err := Split(m, Input{Moof: moof, MdatHeader: 8, Mdat: mdat}, nil)
			if err != nil {
				b.Fatal(err)
			}
			for i := range parts {
				head, _, _, err := parts[i].Rewrite(dst, TrackInput{})
				if err != nil {
					b.Fatal(err)
				}
				dst = head[:0]
			}
		}
	})
}

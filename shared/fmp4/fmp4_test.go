package fmp4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

var ladder = []synth.Track{
	{Kind: timeline.Video, Bitrate: 800_000},
	{Kind: timeline.Video, Bitrate: 300_000, Width: 320, Height: 180},
	{Kind: timeline.Audio, Bitrate: 96_000},
}

// decodedMoov returns the moov of a synthetic stream.
func decodedMoov(t testing.TB, cfg synth.Config) (*synth.Stream, *mp4.MoovBox) {
	t.Helper()
	s, err := synth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := s.Header()
	if err != nil {
		t.Fatal(err)
	}
	f, err := mp4.DecodeFile(bytes.NewReader(hdr))
	if err != nil {
		t.Fatal(err)
	}
	return s, f.Moov
}

func TestDescribe(t *testing.T) {
	_, moov := decodedMoov(t, synth.Config{Tracks: ladder})
	for i, want := range []timeline.Track{
		{Kind: timeline.Video, FourCC: "H264", Codecs: "avc1.42c01e", Width: 640, Height: 360, Timescale: 10_000_000},
		{Kind: timeline.Video, FourCC: "H264", Codecs: "avc1.42c01e", Width: 320, Height: 180, Timescale: 10_000_000},
		{Kind: timeline.Audio, FourCC: "AACL", Codecs: "mp4a.40.2", SamplingRate: 48000, Channels: 2, BitsPerSample: 16,
			PacketSize: 4, AudioTag: 255, Timescale: 10_000_000, CodecPrivateData: "1190"},
	} {
		got, err := Describe(moov.Traks[i])
		if err != nil {
			t.Fatalf("track %d: %v", i+1, err)
		}
		if want.Kind == timeline.Video {
			// Annex B start codes before the SPS and the PPS.
			sps := moov.Traks[i].Mdia.Minf.Stbl.Stsd.AvcX.AvcC.SPSnalus[0]
			if !strings.HasPrefix(got.CodecPrivateData, "00000001"+strings.ToUpper(hexOf(sps))+"00000001") {
				t.Errorf("track %d: CodecPrivateData %s", i+1, got.CodecPrivateData)
			}
			want.CodecPrivateData = got.CodecPrivateData
		}
		want.Language = got.Language
		if !got.Equal(want) {
			t.Errorf("track %d:\n got %+v\nwant %+v", i+1, got, want)
		}
		if br := DeclaredBitrate(moov.Traks[i]); br != ladder[i].Bitrate {
			t.Errorf("track %d: declared bitrate %d, want %d", i+1, br, ladder[i].Bitrate)
		}
	}
	if _, err := Describe(&mp4.TrakBox{}); err == nil {
		t.Error("Describe of an empty trak: no error")
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(digits[c>>4])
		s.WriteByte(digits[c&15])
	}
	return s.String()
}

func TestInitSegmentHoldsOneTrack(t *testing.T) {
	_, moov := decodedMoov(t, synth.Config{Tracks: ladder})
	for _, id := range []uint32{1, 2, 3} {
		b, err := InitSegment(moov, id)
		if err != nil {
			t.Fatal(err)
		}
		f, err := mp4.DecodeFile(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if f.Ftyp == nil || f.Ftyp.MajorBrand() != "iso6" || len(f.Moov.Traks) != 1 || f.Moov.Trak.Tkhd.TrackID != id ||
			f.Moov.Mvex == nil || len(f.Moov.Mvex.Trexs) != 1 || f.Moov.Mvex.Trex.TrackID != id {
			t.Fatalf("init segment of track %d is not ftyp iso6 + a moov of that track and its trex", id)
		}
		got, err := ParseInit(b)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := Describe(moov.Traks[id-1])
		if !got.Equal(want) {
			t.Errorf("track %d: init segment describes as %+v, want %+v", id, got, want)
		}
	}
	if _, err := InitSegment(moov, 9); err == nil {
		t.Error("init segment of an unknown track: no error")
	}
}

// A per-track init segment's track is enabled and in the movie, whatever
// the encoder's multi-track moov said: ffmpeg's ismv muxer marks all but
// the first track of a kind disabled (0x2), and a player takes a disabled
// track for absent. In-preview (0x4) is kept; the encoder's moov is left
// as it is.
func TestInitSegmentTrackIsEnabled(t *testing.T) {
	for _, tc := range []struct {
		name        string
		flags, want uint32
	}{
		{"ffmpeg's disabled second rendition", 0x2, 0x3},
		{"nothing set", 0x0, 0x3},
		{"enabled and in movie", 0x3, 0x3},
		{"enabled, in movie and in preview", 0x7, 0x7},
		{"disabled, in preview", 0x6, 0x7},
	} {
		_, moov := decodedMoov(t, synth.Config{Tracks: ladder})
		moov.Traks[1].Tkhd.Flags = tc.flags
		b, err := InitSegment(moov, 2)
		if err != nil {
			t.Fatal(err)
		}
		f, err := mp4.DecodeFile(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Moov.Trak.Tkhd.Flags; got != tc.want {
			t.Errorf("%s: tkhd flags %#x, want %#x", tc.name, got, tc.want)
		}
		if moov.Traks[1].Tkhd.Flags != tc.flags {
			t.Errorf("%s: the encoder's moov changed to %#x", tc.name, moov.Traks[1].Tkhd.Flags)
		}
	}
}

// fragment builds a single-track moof+mdat with mp4ff: samples of the
// given durations and sizes (payload byte i%251), the first a sync sample
// when sync, starting at start (tfdt; tfxd too when smooth).
func fragment(t testing.TB, start int64, durs []uint32, sync bool, smooth, tfdt bool) (moof, payload []byte) {
	t.Helper()
	f, err := mp4.CreateFragment(7, 1)
	if err != nil {
		t.Fatal(err)
	}
	dt := uint64(start)
	for i, d := range durs {
		flags := mp4.NonSyncSampleFlags
		if sync {
			flags = mp4.SyncSampleFlags
		}
		data := bytes.Repeat([]byte{byte(i % 251)}, 10+i)
		f.AddFullSample(mp4.FullSample{Sample: mp4.Sample{Flags: flags, Dur: d, Size: uint32(len(data))}, DecodeTime: dt, Data: data})
		dt += uint64(d)
	}
	traf := f.Moof.Traf
	if !tfdt {
		traf.Children = traf.Children[:1:1]
		traf.Children = append(traf.Children, traf.Trun)
		traf.Tfdt = nil
	} else {
		traf.Tfdt.Version = 1
	}
	if smooth {
		x := mp4.NewTfxdBox(uint64(start), 0)
		x.Tfxd.Version = 1
		_ = traf.AddChild(x)
	}
	var b bytes.Buffer
	if err := f.Encode(&b); err != nil {
		t.Fatal(err)
	}
	n := binary.BigEndian.Uint32(b.Bytes())
	return b.Bytes()[:n], b.Bytes()[n+8:]
}

func TestRewrite(t *testing.T) {
	durs := []uint32{100, 100, 100}
	type result struct {
		start, dur uint64
		trimmed    int
		payload    []byte // want this mdat payload (nil: the input's)
		err        error
	}
	for _, tc := range []struct {
		name   string
		input  func() Input
		result result
	}{
		{"Smooth: tfxd only", func() Input {
			moof, p := fragment(t, 5000, durs, true, true, false)
			return Input{Moof: moof, MdatHeader: 8, Mdat: p}
		}, result{start: 5000, dur: 300}},
		{"CMAF: tfdt only", func() Input {
			moof, p := fragment(t, 5000, durs, true, false, true)
			return Input{Moof: moof, MdatHeader: 8, Mdat: p}
		}, result{start: 5000, dur: 300}},
		{"no timing: the running sum", func() Input {
			moof, p := fragment(t, 0, durs, true, false, false)
			return Input{Moof: moof, MdatHeader: 8, Mdat: p, FallbackStart: 777}
		}, result{start: 777, dur: 300}},
		{"64-bit mdat header", func() Input {
			moof, p := fragment(t, 0, durs, true, true, false)
			m, _ := DecodeMoof(moof)
			m.Traf.Trun.DataOffset += 8
			return Input{Moof: encodeBox(t, m), MdatHeader: 16, Mdat: p}
		}, result{start: 0, dur: 300}},
		{"absolute base-data-offset", func() Input {
			moof, p := fragment(t, 0, durs, true, true, false)
			m, _ := DecodeMoof(moof)
			const at = 1 << 20 // the moof's offset in the push
			tfhd := m.Traf.Tfhd
			tfhd.Flags = tfhd.Flags&^mp4.TfhdDefaultBaseIsMoofFlag | mp4.TfhdBaseDataOffsetPresentFlag
			tfhd.BaseDataOffset = at
			b := encodeBox(t, m) // 8 bytes longer with the offset
			m.Traf.Trun.DataOffset = int32(len(b) + 8)
			return Input{Moof: encodeBox(t, m), MoofPos: at, MdatHeader: 8, Mdat: p}
		}, result{start: 0, dur: 300}},
		{"audio before zero: leading samples dropped", func() Input {
			moof, p := fragment(t, -150, durs, true, true, false)
			return Input{Moof: moof, MdatHeader: 8, Mdat: p}
		}, result{start: 50, dur: 100, trimmed: 2, payload: bytes.Repeat([]byte{2}, 12)}},
		{"video before zero", func() Input {
			moof, p := fragment(t, -150, durs, false, true, false)
			return Input{Moof: moof, MdatHeader: 8, Mdat: p}
		}, result{err: ErrNegativeStart}},
		{"video before zero by less than its key frame: the key frame is not dropped", func() Input {
			moof, p := fragment(t, -50, durs, true, true, false)
			m, _ := DecodeMoof(moof)
			for i := 1; i < len(m.Traf.Trun.Samples); i++ {
				m.Traf.Trun.Samples[i].Flags = mp4.NonSyncSampleFlags
			}
			return Input{Moof: encodeBox(t, m), MdatHeader: 8, Mdat: p}
		}, result{err: ErrNegativeStart}},
		{"every sample before zero", func() Input {
			moof, p := fragment(t, -300, durs, true, true, false)
			return Input{Moof: moof, MdatHeader: 8, Mdat: p}
		}, result{err: ErrNegativeStart}},
		{"data beyond the mdat", func() Input {
			moof, p := fragment(t, 0, durs, true, true, false)
			return Input{Moof: moof, MdatHeader: 8, Mdat: p[:len(p)-1]}
		}, result{err: ErrBadDataOffset}},
		{"data before the mdat", func() Input {
			moof, p := fragment(t, 0, durs, true, true, false)
			m, _ := DecodeMoof(moof)
			m.Traf.Trun.DataOffset -= 9
			return Input{Moof: encodeBox(t, m), MdatHeader: 8, Mdat: p}
		}, result{err: ErrBadDataOffset}},
		{"two tracks in one moof", func() Input {
			moof, p := fragment(t, 0, durs, true, true, false)
			m, _ := DecodeMoof(moof)
			traf2 := *m.Traf
			_ = m.AddChild(&traf2)
			return Input{Moof: encodeBox(t, m), MdatHeader: 8, Mdat: p}
		}, result{err: ErrMultiTrack}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.input()
			out, info, err := Rewrite(make([]byte, 3), in)
			if tc.result.err != nil {
				if !errors.Is(err, tc.result.err) {
					t.Fatalf("err %v, want %v", err, tc.result.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if info.Start != tc.result.start || info.Duration != tc.result.dur || info.Trimmed != tc.result.trimmed {
				t.Errorf("info %+v, want start %d, duration %d, trimmed %d", info, tc.result.start, tc.result.dur, tc.result.trimmed)
			}
			got, err := Inspect(out)
			if err != nil {
				t.Fatalf("stored fragment: %v", err)
			}
			if got.Start != info.Start || got.Duration != info.Duration || got.Samples != info.Samples {
				t.Errorf("Inspect %+v, Rewrite %+v", got, info)
			}
			want := tc.result.payload
			if want == nil {
				want = in.Mdat
			}
			moofSize := binary.BigEndian.Uint32(out)
			if !bytes.Equal(out[moofSize+8:], want) {
				t.Errorf("mdat payload changed: %d bytes, want %d", len(out)-int(moofSize)-8, len(want))
			}
			m, _ := DecodeMoof(out[:moofSize])
			x := tfxdOf(m.Traf)
			if x == nil || x.Tfxd.Version != 1 || x.Tfxd.FragmentAbsoluteDuration != info.Duration || m.Traf.Tfdt.Version != 1 {
				t.Errorf("tfxd %+v, tfdt version %d: want version 1 boxes with the duration", x, m.Traf.Tfdt.Version)
			}
			var tfrfs []*mp4.TfrfData
			for _, c := range m.Traf.Children {
				if u, ok := c.(*mp4.UUIDBox); ok && u.Tfrf != nil {
					tfrfs = append(tfrfs, u.Tfrf)
				}
			}
			if len(tfrfs) != 1 || tfrfs[0].FragmentCount != 1 || tfrfs[0].FragmentAbsoluteTimes[0] != info.Start+info.Duration {
				t.Errorf("tfrf %+v: want one, announcing the next fragment at %d", tfrfs, info.Start+info.Duration)
			}
		})
	}
}

// Fragments that lean on the trex defaults get them copied into tfhd: a
// Smooth client never sees the moov.
func TestRewriteMakesFragmentsSelfContained(t *testing.T) {
	f, _ := mp4.CreateFragment(1, 1)
	for i := range 4 {
		f.AddFullSample(mp4.FullSample{Sample: mp4.Sample{Flags: mp4.SyncSampleFlags, Dur: 1024, Size: 6}, DecodeTime: uint64(i * 1024), Data: make([]byte, 6)})
	}
	f.EncOptimize = mp4.OptimizeTrun // durations, sizes and flags move to tfhd...
	var b bytes.Buffer
	if err := f.Encode(&b); err != nil {
		t.Fatal(err)
	}
	n := binary.BigEndian.Uint32(b.Bytes())
	m, _ := DecodeMoof(b.Bytes()[:n])
	tfhd := m.Traf.Tfhd
	trex := &mp4.TrexBox{TrackID: 1, DefaultSampleDuration: tfhd.DefaultSampleDuration, DefaultSampleSize: tfhd.DefaultSampleSize, DefaultSampleFlags: tfhd.DefaultSampleFlags}
	tfhd.Flags &^= mp4.TfhdDefaultSampleDurationPresentFlag | mp4.TfhdDefaultSampleSizePresentFlag | mp4.TfhdDefaultSampleFlagsPresentFlag
	moof := encodeBox(t, m) // ...and then to trex only
	m.Traf.Trun.DataOffset = int32(len(moof) + 8)
	moof = encodeBox(t, m)
	out, info, err := Rewrite(nil, Input{Moof: moof, MdatHeader: 8, Mdat: b.Bytes()[n+8:], Trex: trex})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Inspect(out) // without the trex
	if err != nil || got.Duration != 4096 || info.Duration != 4096 {
		t.Fatalf("Inspect without trex: %+v, %v; want 4096 ticks", got, err)
	}
}

func encodeBox(t testing.TB, b mp4.Box) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := b.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzRewrite: Rewrite refuses a moof+mdat with an error, or returns a
// fragment that Inspect accepts and that describes itself as Rewrite said.
func FuzzRewrite(f *testing.F) {
	s, err := synth.New(synth.Config{Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 20_000, Width: 32, Height: 16}, {Kind: timeline.Audio, Bitrate: 8000}},
		FragmentDuration: 200 * time.Millisecond, FrameRate: 10, AudioOffset: -20 * time.Millisecond})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := s.Header(); err != nil {
		f.Fatal(err)
	}
	b, err := s.AppendFragment(nil, 0)
	if err != nil {
		f.Fatal(err)
	}
	for len(b) > 8 { // each moof and mdat of the first fragment
		moof := binary.BigEndian.Uint32(b)
		mdat := binary.BigEndian.Uint32(b[moof:])
		f.Add(b[:moof], b[moof+8:moof+mdat], uint64(0))
		b = b[moof+mdat:]
	}
	f.Fuzz(func(t *testing.T, moof, mdat []byte, pos uint64) {
		out, info, err := Rewrite(nil, Input{Moof: moof, MoofPos: pos, MdatHeader: 8, Mdat: mdat})
		if err != nil {
			return
		}
		got, err := Inspect(out)
		if err != nil {
			t.Fatalf("Rewrite's output does not inspect: %v", err)
		}
		if got.Start != info.Start || got.Samples != info.Samples || got.TrackID != info.TrackID {
			t.Fatalf("Inspect %+v, Rewrite %+v", got, info)
		}
	})
}

// A track's language is mdhd's ISO 639-2 code unless a CMAF elng box gives
// a BCP 47 tag.
func TestDescribeLanguage(t *testing.T) {
	for _, tc := range []struct {
		name, mdhd, elng, want string
	}{
		{"mdhd only", "swe", "", "swe"},
		{"elng wins", "eng", "en-GB", "en-GB"},
		{"undetermined", "und", "", "und"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, moov := decodedMoov(t, synth.Config{Tracks: ladder[2:]})
			trak := moov.Traks[0]
			trak.Mdia.Mdhd.SetLanguage(tc.mdhd)
			if tc.elng != "" {
				trak.Mdia.AddChild(&mp4.ElngBox{Language: tc.elng})
			}
			got, err := Describe(trak)
			if err != nil || got.Language != tc.want {
				t.Fatalf("language %q, %v; want %q", got.Language, err, tc.want)
			}
		})
	}
}

// A track's role comes from a CMAF kind box in its udta, in DASH's role
// scheme; any other scheme, or a value no manifest could carry, is no role.
func TestDescribeRole(t *testing.T) {
	for _, tc := range []struct {
		name  string
		kinds []*mp4.KindBox
		want  string
	}{
		{"none", nil, ""},
		{"dub", []*mp4.KindBox{{SchemeURI: timeline.RoleScheme, Value: "dub"}}, "dub"},
		{"upper case, NUL-padded", []*mp4.KindBox{{SchemeURI: timeline.RoleScheme + "\x00", Value: "Commentary\x00"}}, "commentary"},
		{"another scheme first", []*mp4.KindBox{{SchemeURI: "urn:example:kind", Value: "x"}, {SchemeURI: timeline.RoleScheme, Value: "description"}}, "description"},
		{"another scheme only", []*mp4.KindBox{{SchemeURI: "urn:example:kind", Value: "main"}}, ""},
		{"not a role value", []*mp4.KindBox{{SchemeURI: timeline.RoleScheme, Value: `"><x y="`}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, moov := decodedMoov(t, synth.Config{Tracks: ladder[2:]})
			trak := moov.Traks[0]
			if len(tc.kinds) > 0 {
				udta := &mp4.UdtaBox{}
				for _, k := range tc.kinds {
					udta.AddChild(k)
				}
				trak.AddChild(udta)
			}
			got, err := Describe(trak)
			if err != nil || got.Role != tc.want {
				t.Fatalf("role %q, %v; want %q", got.Role, err, tc.want)
			}
		})
	}
}

package fmp4

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/timeline"
)

// fixtureTrak is the first track of an MP4 file under testdata (or the
// packager's, ../packager/testdata), decoded as the ingest session decodes
// a moov.
func fixtureTrak(t testing.TB, path string) *mp4.TrakBox {
	t.Helper()
	moov := fixtureMoov(t, path)
	if len(moov.Traks) == 0 {
		t.Fatalf("%s: no track", path)
	}
	return moov.Traks[0]
}

// fixtureMoov is the moov of an MP4 file, decoded from its bytes alone.
func fixtureMoov(t testing.TB, path string) *mp4.MoovBox {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := mp4.DecodeFile(bytes.NewReader(b))
	if err != nil || f.Moov == nil {
		t.Fatalf("%s: %v", path, err)
	}
	var buf bytes.Buffer
	if err := f.Moov.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	box, err := mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("%s: moov: %v", path, err)
	}
	return box.(*mp4.MoovBox)
}

// The Smooth CodecPrivateData of E-AC-3 and AC-3: the extension of
// WAVEFORMATEXTENSIBLE (wSamplesPerBlock 1536, dwChannelMask, the
// SubFormat GUID), then the dec3 or dac3 payload.
const (
	ddPlus = "AF87FBA7022DFB42A4D405CD93843BDD"
	dd     = "2C806DE046DBCF11B4D100805F6CBBEA"
)

// Describe reads every sample entry the output formats can describe, from
// real files: ffmpeg's (testdata/README.md) and the packager's fixtures,
// and the same entries changed where a field matters.
func TestDescribeCodecs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		file   string
		change func(t *testing.T, trak *mp4.TrakBox) // nil: the file's entry as it is
		want   timeline.Track
		cpd    string // the CodecPrivateData's start (video) or all of it (audio)
	}{
		{
			name: "hvc1: codec string from hvcC, parameter sets in Annex B",
			file: "testdata/hevc-hvc1.mp4",
			want: timeline.Track{Kind: timeline.Video, FourCC: "HVC1", Codecs: "hvc1.1.6.L30.90", Width: 64, Height: 64},
			cpd:  "0000000140010C01",
		},
		{
			name: "hev1 keeps its sample entry in the codec string and the FourCC",
			file: "testdata/hevc-hev1.mp4",
			want: timeline.Track{Kind: timeline.Video, FourCC: "HEV1", Codecs: "hev1.1.6.L30.90", Width: 64, Height: 64},
			cpd:  "0000000140010C01",
		},
		{
			name: "HEVC Main 10 with the PQ transfer function is HDR",
			file: "testdata/hevc-main10-pq.mp4",
			want: timeline.Track{Kind: timeline.Video, FourCC: "HVC1", Codecs: "hvc1.2.4.L30.90", Width: 64, Height: 64, VideoRange: "PQ"},
			cpd:  "0000000140010C01FFFF0220",
		},
		{
			name: "HEVC as the packager writes it (mp4ff's SetHEVCDescriptor)",
			file: "../packager/testdata/hevc.mp4",
			change: func(t *testing.T, trak *mp4.TrakBox) {
				rec := trak.Mdia.Minf.Stbl.Stsd.HvcX.HvcC.DecConfRec
				trak.Mdia.Minf.Stbl.Stsd = mp4.NewStsdBox()
				if err := trak.SetHEVCDescriptor("hvc1", rec.GetNalusForType(hevc.NALU_VPS), rec.GetNalusForType(hevc.NALU_SPS),
					rec.GetNalusForType(hevc.NALU_PPS), nil, true); err != nil {
					t.Fatal(err)
				}
			},
			want: timeline.Track{Kind: timeline.Video, FourCC: "HVC1", Codecs: "hvc1.1.6.L30.90", Width: 64, Height: 64},
			cpd:  "0000000140010C01",
		},
		{
			name: "the size comes from the SPS when the sample entry has none",
			file: "testdata/hevc-hvc1.mp4",
			change: func(t *testing.T, trak *mp4.TrakBox) {
				trak.Mdia.Minf.Stbl.Stsd.HvcX.Width, trak.Mdia.Minf.Stbl.Stsd.HvcX.Height = 0, 0
			},
			want: timeline.Track{Kind: timeline.Video, FourCC: "HVC1", Codecs: "hvc1.1.6.L30.90", Width: 64, Height: 64},
			cpd:  "0000000140010C01",
		},
		{
			name: "hev1 with its parameter sets in band only: no Smooth FourCC",
			file: "testdata/hevc-hev1.mp4",
			change: func(t *testing.T, trak *mp4.TrakBox) {
				trak.Mdia.Minf.Stbl.Stsd.HvcX.HvcC.NaluArrays = nil
			},
			want: timeline.Track{Kind: timeline.Video, Codecs: "hev1.1.6.L30.90", Width: 64, Height: 64},
		},
		{
			name: "AV1: codec string with its colour fields, no Smooth FourCC",
			file: "../packager/testdata/av1.mp4",
			want: timeline.Track{Kind: timeline.Video, Codecs: "av01.1.00M.08.0.000.01.13.00.1", Width: 64, Height: 64},
			cpd:  "81200000",
		},
		{
			name: "AV1 without a sequence header in av1C: the short codec string",
			file: "../packager/testdata/av1.mp4",
			change: func(t *testing.T, trak *mp4.TrakBox) {
				trak.Mdia.Minf.Stbl.Stsd.Av01.Av1C.ConfigOBUs = nil
			},
			want: timeline.Track{Kind: timeline.Video, Codecs: "av01.1.00M.08", Width: 64, Height: 64},
			cpd:  "81200000",
		},
		{
			name: "AC-3 5.1",
			file: "testdata/ac3-5.1.mp4",
			want: timeline.Track{Kind: timeline.Audio, FourCC: "AC-3", Codecs: "ac-3", SamplingRate: 48000, Channels: 6, ChannelMap: 0xF801,
				BitsPerSample: 16, PacketSize: 1536, AudioTag: 65534},
			cpd: "0006" + "3F000000" + dd + "103DC0",
		},
		{
			name: "AC-3 stereo (the packager's fixture)",
			file: "../packager/testdata/ac3.mp4",
			want: timeline.Track{Kind: timeline.Audio, FourCC: "AC-3", Codecs: "ac-3", SamplingRate: 48000, Channels: 2, ChannelMap: 0xA000,
				BitsPerSample: 16, PacketSize: 256, AudioTag: 65534},
			cpd: "0006" + "03000000" + dd + "101080",
		},
		{
			name: "AC-3 mono is the centre speaker",
			file: "testdata/ac3-mono.mp4",
			want: timeline.Track{Kind: timeline.Audio, FourCC: "AC-3", Codecs: "ac-3", SamplingRate: 48000, Channels: 1, ChannelMap: 0x4000,
				BitsPerSample: 16, PacketSize: 384, AudioTag: 65534},
			cpd: "0006" + "04000000" + dd + "1008C0",
		},
		{
			name: "AC-3 at 44.1 kHz: a syncframe's bytes at its rate",
			file: "testdata/ac3-44k.mp4",
			want: timeline.Track{Kind: timeline.Audio, FourCC: "AC-3", Codecs: "ac-3", SamplingRate: 44100, Channels: 2, ChannelMap: 0xA000,
				BitsPerSample: 16, PacketSize: 835, AudioTag: 65534},
			cpd: "0006" + "03000000" + dd + "501140",
		},
		{
			name: "E-AC-3 stereo",
			file: "testdata/eac3-stereo.mp4",
			want: timeline.Track{Kind: timeline.Audio, FourCC: "EC-3", Codecs: "ec-3", SamplingRate: 48000, Channels: 2, ChannelMap: 0xA000,
				BitsPerSample: 16, PacketSize: 384, AudioTag: 65534},
			cpd: "0006" + "03000000" + ddPlus + "0300200400",
		},
		{
			// As in the manifests IIS and Azure Media Services wrote for
			// 5.1 Dolby Digital Plus: 00063F000000AF87...3BDD0700200F00
			// at 224 kbit/s.
			name: "E-AC-3 5.1",
			file: "testdata/eac3-5.1.mp4",
			want: timeline.Track{Kind: timeline.Audio, FourCC: "EC-3", Codecs: "ec-3", SamplingRate: 48000, Channels: 6, ChannelMap: 0xF801,
				BitsPerSample: 16, PacketSize: 1024, AudioTag: 65534},
			cpd: "0006" + "3F000000" + ddPlus + "0800200F00",
		},
		{
			name: "E-AC-3 5.1 with Dolby Atmos (joint object coding)",
			file: "../packager/testdata/eac3.mp4",
			change: func(t *testing.T, trak *mp4.TrakBox) {
				trak.Mdia.Minf.Stbl.Stsd.EC3.Dec3.JOCComplexity = 16
			},
			want: timeline.Track{Kind: timeline.Audio, FourCC: "EC-3", Codecs: "ec-3", SamplingRate: 48000, Channels: 6, ChannelMap: 0xF801,
				JOC: 16, BitsPerSample: 16, PacketSize: 384, AudioTag: 65534},
			cpd: "0006" + "3F000000" + ddPlus + "0300200F00" + "0110",
		},
		{
			name: "E-AC-3 7.1: a dependent substream adds the back surrounds",
			file: "testdata/eac3-5.1.mp4",
			change: func(t *testing.T, trak *mp4.TrakBox) {
				sub := &trak.Mdia.Minf.Stbl.Stsd.EC3.Dec3.EC3Subs[0]
				sub.NumDepSub, sub.ChanLoc = 1, 1<<1 // Lrs/Rrs
			},
			want: timeline.Track{Kind: timeline.Audio, FourCC: "EC-3", Codecs: "ec-3", SamplingRate: 48000, Channels: 8, ChannelMap: 0xFA01,
				BitsPerSample: 16, PacketSize: 1024, AudioTag: 65534},
			cpd: "0006" + "3F060000" + ddPlus + "0800200F0202",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trak := fixtureTrak(t, tc.file)
			if tc.change != nil {
				tc.change(t, trak)
			}
			got, err := Describe(trak)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.want.Kind == timeline.Audio && got.CodecPrivateData != tc.cpd:
				t.Errorf("CodecPrivateData %s, want %s", got.CodecPrivateData, tc.cpd)
			case tc.want.Kind == timeline.Video && !strings.HasPrefix(got.CodecPrivateData, tc.cpd):
				t.Errorf("CodecPrivateData %s, want it to start %s", got.CodecPrivateData, tc.cpd)
			case tc.want.FourCC == "HVC1" || tc.want.FourCC == "HEV1":
				for _, nalu := range []string{"0000000140", "0000000142", "0000000144"} { // VPS, SPS, PPS
					if !strings.Contains(got.CodecPrivateData, nalu) {
						t.Errorf("CodecPrivateData %s lacks %s", got.CodecPrivateData, nalu)
					}
				}
			}
			want := tc.want
			want.CodecPrivateData, want.Timescale, want.Language = got.CodecPrivateData, got.Timescale, got.Language
			if !got.Equal(want) {
				t.Errorf("\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// The bitrate a Dolby track declares is its dac3's or dec3's.
func TestDeclaredBitrateOfDolbyAudio(t *testing.T) {
	for file, want := range map[string]int{
		"testdata/ac3-5.1.mp4":     384000,
		"testdata/eac3-stereo.mp4": 96000,
		"testdata/eac3-5.1.mp4":    256000,
	} {
		if got := DeclaredBitrate(fixtureTrak(t, file)); got != want {
			t.Errorf("%s: declared bitrate %d, want %d", file, got, want)
		}
	}
}

// What the manifests cannot describe is refused with ErrUnsupportedCodec,
// naming the sample entry; a known entry that is broken is refused saying
// what is wrong with it.
func TestDescribeRefuses(t *testing.T) {
	entry := func(box mp4.Box) func(t *testing.T, trak *mp4.TrakBox) {
		return func(t *testing.T, trak *mp4.TrakBox) {
			trak.Mdia.Minf.Stbl.Stsd = mp4.NewStsdBox()
			if box != nil {
				trak.Mdia.Minf.Stbl.Stsd.AddChild(box)
			}
		}
	}
	for _, tc := range []struct {
		name        string
		file        string
		change      func(t *testing.T, trak *mp4.TrakBox)
		unsupported bool
		message     string
	}{
		{"VP9 video", "testdata/hevc-hvc1.mp4", entry(mp4.CreateVisualSampleEntryBox("vp09", 64, 64, nil)), true, `video sample entry "vp09"`},
		{"Opus audio", "testdata/eac3-stereo.mp4", entry(mp4.CreateAudioSampleEntryBox("Opus", 2, 16, 48000, nil)), true, `audio sample entry "Opus"`},
		{"an empty stsd", "testdata/eac3-stereo.mp4", entry(nil), true, "audio sample entry none"},
		{"Dolby Vision", "testdata/hevc-hvc1.mp4", func(t *testing.T, trak *mp4.TrakBox) {
			v := trak.Mdia.Minf.Stbl.Stsd.HvcX
			dv := mp4.CreateVisualSampleEntryBox("dvh1", 64, 64, v.HvcC)
			entry(dv)(t, trak)
		}, true, `"dvh1" (Dolby Vision`},
		{"hvc1 without parameter sets", "testdata/hevc-hvc1.mp4", func(t *testing.T, trak *mp4.TrakBox) {
			trak.Mdia.Minf.Stbl.Stsd.HvcX.HvcC.NaluArrays = nil
		}, false, "hvcC lacks a VPS, SPS or PPS"},
		{"hvc1 without hvcC", "testdata/hevc-hvc1.mp4", entry(mp4.CreateVisualSampleEntryBox("hvc1", 64, 64, nil)), true, "without an hvcC"},
		{"av01 without av1C", "testdata/hevc-hvc1.mp4", entry(mp4.CreateVisualSampleEntryBox("av01", 64, 64, nil)), true, "without an av1C"},
		{"ac-3 without dac3", "testdata/ac3-5.1.mp4", entry(mp4.CreateAudioSampleEntryBox("ac-3", 2, 16, 48000, nil)), true, "without a dac3"},
		{"ec-3 without dec3", "testdata/eac3-stereo.mp4", entry(mp4.CreateAudioSampleEntryBox("ec-3", 2, 16, 48000, nil)), true, "without a dec3"},
		{"AC-3 bit rate code past the table", "testdata/ac3-5.1.mp4", func(t *testing.T, trak *mp4.TrakBox) {
			trak.Mdia.Minf.Stbl.Stsd.AC3.Dac3.BitRateCode = 19
		}, false, "bit rate code 19 out of range"},
		{"AC-3 reserved sample rate code", "testdata/ac3-5.1.mp4", func(t *testing.T, trak *mp4.TrakBox) {
			trak.Mdia.Minf.Stbl.Stsd.AC3.Dac3.FSCod = 3
		}, false, "sample rate code 3"},
		{"E-AC-3 at a reduced rate with no rate in its sample entry", "testdata/eac3-stereo.mp4", func(t *testing.T, trak *mp4.TrakBox) {
			trak.Mdia.Minf.Stbl.Stsd.EC3.Dec3.EC3Subs[0].FSCod = 3
			trak.Mdia.Minf.Stbl.Stsd.EC3.SampleRate = 0
		}, false, "no sample rate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trak := fixtureTrak(t, tc.file)
			tc.change(t, trak)
			_, err := Describe(trak)
			if err == nil {
				t.Fatal("described, want an error")
			}
			if errors.Is(err, ErrUnsupportedCodec) != tc.unsupported || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q (unsupported codec: %v), want one saying %q (unsupported codec: %v)",
					err, errors.Is(err, ErrUnsupportedCodec), tc.message, tc.unsupported)
			}
		})
	}
}

// An E-AC-3 stream at a reduced sample rate (fscod 3: 16 to 24 kHz) gets
// its rate from the sample entry.
func TestDescribeEAC3ReducedRate(t *testing.T) {
	trak := fixtureTrak(t, "testdata/eac3-stereo.mp4")
	trak.Mdia.Minf.Stbl.Stsd.EC3.Dec3.EC3Subs[0].FSCod = 3
	trak.Mdia.Minf.Stbl.Stsd.EC3.SampleRate = 24000
	got, err := Describe(trak)
	if err != nil || got.SamplingRate != 24000 || got.PacketSize != 768 {
		t.Errorf("rate %d, packet size %d, %v; want 24000 and 768 (a syncframe at 96 kbit/s)", got.SamplingRate, got.PacketSize, err)
	}
}

// FuzzDescribe decodes arbitrary moov boxes, seeded with every fixture's
// and text tracks', and describes their tracks: Describe never panics, and what it describes
// is whole (a codec string, a timescale, a size or a rate and channels, a
// CodecPrivateData in hex).
func FuzzDescribe(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.mp4")
	more, _ := filepath.Glob("../packager/testdata/*.mp4")
	for _, file := range append(files, more...) {
		var b bytes.Buffer
		if err := fixtureMoov(f, file).Encode(&b); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	for _, entry := range []string{"wvtt", "stpp"} { // text tracks, with a kind and a labl box
		var b bytes.Buffer
		init := textInit(f, entry, "en-GB", tkhdEnabled, &mp4.KindBox{SchemeURI: timeline.RoleScheme, Value: "caption"},
			&mp4.LablBox{Language: "en", Label: "English"}, &mp4.KindBox{SchemeURI: timeline.CEA608Scheme, Value: "CC1=eng"})
		if err := init.Moov.Encode(&b); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		box, err := mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(data))
		if err != nil {
			return
		}
		moov, ok := box.(*mp4.MoovBox)
		if !ok {
			return
		}
		for _, trak := range moov.Traks {
			got, err := Describe(trak)
			if err != nil {
				continue
			}
			whole := got.Codecs != "" && got.Timescale > 0 && strings.Trim(got.CodecPrivateData, "0123456789ABCDEF") == ""
			switch got.Kind {
			case timeline.Video:
				whole = whole && got.Width > 0 && got.Height > 0
			case timeline.Audio:
				whole = whole && got.SamplingRate > 0 && (got.Channels > 0 || got.FourCC == "AACL" || got.FourCC == "AACH")
			}
			if !whole {
				t.Errorf("described %+v", got)
			}
		}
	})
}

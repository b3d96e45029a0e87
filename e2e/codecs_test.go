package e2e

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/internal/check"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/manifest/smooth"
)

// codecSeconds is how long each codec upload lasts: four 2 s segments.
const codecSeconds = 8

// The video encoders of the codec uploads: HEVC (libx265, hvc1) and AV1
// (SVT-AV1), both with 2 s GOPs.
var (
	hevcEncoder = []string{"-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "keyint=50:min-keyint=50:scenecut=0:log-level=error", "-tag:v", "hvc1"}
	av1Encoder  = []string{"-c:v", "libsvtav1", "-preset", "12", "-g", "50", "-svtav1-params", "scd=0"}
)

// ffmpegUploadCodec is an HLS upload of fMP4 segments (ffmpeg -f hls
// -hls_segment_type fmp4 -method PUT) of video from the given encoder and
// the given audio, in real time: one variant per track, or muxed, one
// variant whose segments hold both tracks.
func ffmpegUploadCodec(ctx context.Context, ffmpeg, channelURL string, video []string, audio string, channels int, muxed bool) *exec.Cmd {
	args := []string{"-hide_banner", "-loglevel", "error",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25",
		"-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-map", "0:v", "-map", "1:a"}
	args = append(append(args, video...), "-b:v", "300k",
		"-c:a", audio, "-ac", strconv.Itoa(channels), "-b:a", "192k",
		"-t", strconv.Itoa(codecSeconds), "-method", "PUT",
		"-f", "hls", "-hls_time", "2", "-hls_segment_type", "fmp4", "-hls_list_size", "5")
	if muxed {
		args = append(args, channelURL+"/index.m3u8")
	} else {
		args = append(args, "-var_stream_map", "v:0,agroup:a a:0,agroup:a", "-master_pl_name", "master.m3u8", channelURL+"/stream_%v.m3u8")
	}
	return exec.CommandContext(ctx, ffmpeg, args...)
}

// uploadCodec runs ffmpegUploadCodec to channel on a stack of its own and
// returns the channel's playback base URL and its final Smooth manifest,
// having checked with smoothcast check that every object each format lists
// is there and that the formats agree; want is how many tracks each
// format lists.
func uploadCodec(t *testing.T, ffmpeg, channel string, video []string, audio string, channels int, muxed bool, want map[check.Format]int) (string, *smooth.Manifest) {
	t.Helper()
	st := startStack(t)
	cmd := ffmpegUploadCodec(context.Background(), ffmpeg, st.IngestURL+"/live/"+channel+".isml", video, audio, channels, muxed)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffmpeg -f hls -method PUT: %v\n%s", err, stderr.String())
	}
	base := st.EdgeURL + "/live/" + channel + ".isml/"
	m := waitForVOD(t, st, base)
	rep, err := check.Run(context.Background(), nil, st.EdgeURL, channel, check.Options{})
	if err != nil || !rep.OK() {
		t.Errorf("smoothcast check: %v %v", err, rep.Problems)
	}
	listed := map[check.Format]int{}
	for _, tr := range rep.Tracks {
		if tr.Listed == 0 || tr.Missing > 0 || tr.Bad > 0 {
			t.Errorf("smoothcast check: %+v", tr)
		}
		listed[tr.Format]++
	}
	if !maps.Equal(listed, want) {
		t.Errorf("smoothcast check: tracks per format %v, want %v (notes: %q)", listed, want, rep.Notes)
	}
	return base, m
}

// manifestsSay fails t for every string the manifest at url lacks.
func manifestsSay(t *testing.T, url string, wants ...string) {
	t.Helper()
	_, b := get(t, url)
	for _, want := range wants {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s:\n%s", url, want, b)
		}
	}
}

// requireEncoders ends the test unless ffmpeg has every named encoder:
// skipped on a developer machine, failed in CI.
func requireEncoders(t *testing.T, ffmpeg string, names ...string) {
	t.Helper()
	out, err := exec.Command(ffmpeg, "-hide_banner", "-encoders").Output()
	if err != nil {
		t.Fatalf("ffmpeg -encoders: %v", err)
	}
	for _, name := range names {
		if !strings.Contains(string(out), " "+name+" ") {
			if os.Getenv("CI") == "true" {
				t.Fatalf("ffmpeg lacks the %s encoder, which CI needs", name)
			}
			t.Skipf("ffmpeg lacks the %s encoder", name)
		}
	}
}

// An encoder that uploads HEVC with E-AC-3 5.1 (a variant per track), or
// with AC-3 stereo (one muxed variant), gets through, and the channel
// plays in every format: smoothcast check finds
// every object each manifest lists, ffmpeg decodes the whole archive in
// HLS and in DASH, and the manifests describe the codecs as their players
// expect (CODECS, CHANNELS; codecs, Dolby's AudioChannelConfiguration;
// the FourCCs, AudioTag and CodecPrivateData IIS wrote). No Smooth player
// at hand plays HEVC or Dolby (GStreamer 1.22's mssdemux knows H264 and
// AACL only, ffmpeg has no Smooth demuxer), so the test plays Smooth as
// its clients do: a decoder configuration built from the manifest's
// CodecPrivateData alone, the fragments its URL template names, their
// tfhd given that configuration's track: ffmpeg decodes that to the end.
func TestFFmpegUploadsHEVCAndDolbyAudio(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	requireEncoders(t, ffmpeg, "libx265", "eac3", "ac3")
	for _, tc := range []struct {
		name, audio string
		channels    int
		muxed       bool
		fourCC      string // Smooth's
		chanmap     string // DASH's Dolby channel configuration
		guid        string // WAVEFORMATEXTENSIBLE's SubFormat in CodecPrivateData
	}{
		{"E-AC-3 5.1", "eac3", 6, false, "EC-3", "F801", "AF87FBA7022DFB42A4D405CD93843BDD"},
		{"AC-3 stereo, muxed", "ac3", 2, true, "AC-3", "A000", "2C806DE046DBCF11B4D100805F6CBBEA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base, m := uploadCodec(t, ffmpeg, "hevc"+tc.audio, hevcEncoder, tc.audio, tc.channels, tc.muxed,
				map[check.Format]int{check.Smooth: 2, check.HLS: 2, check.DASH: 2})
			codec := strings.ToLower(tc.fourCC)
			manifestsSay(t, base+"master.m3u8", `CODECS="hvc1.1.6.L60.90,`+codec+`"`, `CHANNELS="`+strconv.Itoa(tc.channels)+`"`)
			manifestsSay(t, base+"manifest.mpd", `codecs="hvc1.1.6.L60.90"`, `codecs="`+codec+`"`,
				`<AudioChannelConfiguration schemeIdUri="tag:dolby.com,2014:dash:audio_channel_configuration:2011" value="`+tc.chanmap+`">`)
			checkDecodeSeconds(t, ffmpeg, base+"master.m3u8", codecSeconds, [][]string{{"0:v:0", "0:a:0"}})
			checkDecodeSeconds(t, ffmpeg, base+"manifest.mpd", codecSeconds, [][]string{{"0:v:0"}, {"0:a:0"}})

			for _, si := range m.Streams {
				if len(si.Levels) != 1 {
					t.Fatalf("%s: %d quality levels, want 1", si.Name, len(si.Levels))
				}
				ql := si.Levels[0]
				switch si.Type {
				case "video":
					if ql.FourCC != "HVC1" || !strings.HasPrefix(ql.CodecPrivateData, "0000000140") || ql.MaxWidth != 320 || ql.MaxHeight != 180 {
						t.Errorf("video: %+v, want HVC1 320x180 with its VPS first", ql)
					}
				case "audio":
					if ql.FourCC != tc.fourCC || ql.AudioTag != 65534 || ql.Channels != tc.channels || ql.SamplingRate != 48000 ||
						ql.BitsPerSample != 16 || ql.PacketSize != 768 || len(ql.CodecPrivateData) < 44 || ql.CodecPrivateData[12:44] != tc.guid {
						t.Errorf("audio: %+v, want %s as IIS wrote it (WAVE_FORMAT_EXTENSIBLE, %d channels, 768 bytes a syncframe, SubFormat %s)",
							ql, tc.fourCC, tc.channels, tc.guid)
					}
				}
			}
			if len(m.Streams) != 2 {
				t.Fatalf("Smooth manifest: %d stream indexes, want 2", len(m.Streams))
			}
			file := playSmooth(t, base, m)
			checkDecodeSeconds(t, ffmpeg, file, codecSeconds, [][]string{{"0:v:0", "0:a:0"}})
		})
	}
}

// An encoder that uploads AV1 gets through too: HLS and DASH describe it
// (av01 codec string) and ffmpeg decodes the whole archive from them;
// the Smooth manifest, since no Smooth client knows a FourCC for AV1,
// lists the audio alone, and smoothcast check says so in a note, not a
// problem.
func TestFFmpegUploadsAV1(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	requireEncoders(t, ffmpeg, "libsvtav1")
	base, m := uploadCodec(t, ffmpeg, "av1", av1Encoder, "aac", 2, false, map[check.Format]int{check.Smooth: 1, check.HLS: 2, check.DASH: 2})
	manifestsSay(t, base+"master.m3u8", `CODECS="av01.0.00M.08.0.110.02.02.02.0,mp4a.40.2"`)
	manifestsSay(t, base+"manifest.mpd", `codecs="av01.0.00M.08.0.110.02.02.02.0"`)
	checkDecodeSeconds(t, ffmpeg, base+"master.m3u8", codecSeconds, [][]string{{"0:v:0", "0:a:0"}})
	checkDecodeSeconds(t, ffmpeg, base+"manifest.mpd", codecSeconds, [][]string{{"0:v:0"}, {"0:a:0"}})
	if len(m.Streams) != 1 || m.Streams[0].Type != "audio" || m.Streams[0].Levels[0].FourCC != "AACL" {
		t.Errorf("Smooth manifest: %+v, want the AAC audio alone", m.Streams)
	}
}

// playSmooth does what a Smooth client does with a manifest of one HEVC
// and one AC-3 or E-AC-3 quality level: it builds their decoder
// configuration from the manifest alone (the parameter sets of HVC1's
// CodecPrivateData; the dac3 or dec3 payload after the 22 bytes of
// WAVEFORMATEXTENSIBLE of AC-3's and EC-3's), fetches every fragment the
// manifest lists and points each one's tfhd at its track. It returns the
// file of the init segment and the fragments in time order.
func playSmooth(t *testing.T, base string, m *smooth.Manifest) string {
	t.Helper()
	init := mp4.CreateEmptyInit()
	type fragment struct {
		at   float64 // seconds
		data []byte
	}
	var frags []fragment
	for _, si := range m.Streams {
		ql := si.Levels[0]
		cpd, err := hex.DecodeString(ql.CodecPrivateData)
		if err != nil {
			t.Fatalf("%s: CodecPrivateData: %v", si.Name, err)
		}
		ts := m.Timescale(&si)
		trak := init.AddEmptyTrack(uint32(ts), si.Type, "und")
		switch si.Type {
		case "video":
			// (mp4ff's hevc.GetParameterSetsFromByteStream drops the
			// last NAL unit of a byte stream: the PPS here.)
			ps := map[hevc.NaluType][][]byte{}
			for _, nalu := range avc.ExtractNalusFromByteStream(cpd) {
				if len(nalu) > 0 {
					ps[hevc.GetNaluType(nalu[0])] = append(ps[hevc.GetNaluType(nalu[0])], nalu)
				}
			}
			vps, sps, pps := ps[hevc.NALU_VPS], ps[hevc.NALU_SPS], ps[hevc.NALU_PPS]
			if err := trak.SetHEVCDescriptor("hvc1", vps, sps, pps, nil, true); err != nil {
				t.Fatalf("video: an hvcC from CodecPrivateData: %v", err)
			}
		case "audio":
			if len(cpd) < 22 || binary.LittleEndian.Uint16(cpd) != 1536 {
				t.Fatalf("audio: CodecPrivateData %X is no WAVEFORMATEXTENSIBLE extension of 1536 samples a block", cpd)
			}
			typ := map[string]string{"EC-3": "dec3", "AC-3": "dac3"}[ql.FourCC]
			payload := cpd[22:]
			box, err := mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(append(binary.BigEndian.AppendUint32(nil, uint32(8+len(payload))), append([]byte(typ), payload...)...)))
			if err != nil {
				t.Fatalf("audio: the %s after WAVEFORMATEXTENSIBLE: %v", typ, err)
			}
			trak.Mdia.Minf.Stbl.Stsd.AddChild(mp4.CreateAudioSampleEntryBox(strings.ToLower(ql.FourCC), uint16(ql.Channels), 16, uint16(ql.SamplingRate), box))
		}
		starts := fragmentStarts(t, &si)
		for _, tm := range starts {
			u := si.FragmentURL(ql.Bitrate, tm)
			resp, b := get(t, base+u)
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %d", u, resp.StatusCode)
			}
			i := bytes.Index(b, []byte("tfhd"))
			if i < 0 || len(b) < i+12 {
				t.Fatalf("%s: no tfhd", u)
			}
			binary.BigEndian.PutUint32(b[i+8:], trak.Tkhd.TrackID)
			frags = append(frags, fragment{float64(tm) / float64(ts), b})
		}
	}
	slices.SortStableFunc(frags, func(a, b fragment) int { return cmp.Compare(a.at, b.at) })
	var out bytes.Buffer
	if err := init.Encode(&out); err != nil {
		t.Fatal(err)
	}
	for _, f := range frags {
		out.Write(f.data)
	}
	file := filepath.Join(t.TempDir(), "smooth.mp4")
	if err := os.WriteFile(file, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

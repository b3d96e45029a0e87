package rtmp

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// fixtureSamples reads the one track of a progressive MP4 of the
// packager's fixtures as an encoder hands it over: its sample entry and
// its samples, timed from offset.
func fixtureSamples(t *testing.T, name string, offset time.Duration) (*mp4.StsdBox, []sample) {
	t.Helper()
	b, err := os.ReadFile("../../../shared/packager/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	f, err := mp4.DecodeFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	trak := f.Moov.Trak
	stsd := trak.Mdia.Minf.Stbl.Stsd
	ts := time.Duration(trak.Mdia.Mdhd.Timescale)
	var out []sample
	// The edit list's shift: ffmpeg's first HEVC DTS is negative.
	var shift int64
	if trak.Edts != nil && len(trak.Edts.Elst) > 0 && len(trak.Edts.Elst[0].Entries) > 0 {
		shift = -trak.Edts.Elst[0].Entries[0].MediaTime
	}
	for _, m := range testtool.TrackSamples(t, b, trak) {
		dts := shift + int64(m.DecodeTime)
		s := sample{video: stsd.HvcX != nil || stsd.Av01 != nil, dts: offset + time.Duration(dts)*time.Second/ts}
		s.pts = offset + time.Duration(dts+int64(m.CompositionTimeOffset))*time.Second/ts
		if stsd.HvcX != nil {
			if s.au, err = avc.GetNalusFromSample(m.Data); err != nil {
				t.Fatal(err)
			}
		} else {
			s.frame = m.Data
		}
		out = append(out, s)
	}
	return stsd, out
}

// Enhanced RTMP (OBS 30 and later, ffmpeg 6.1 and later) carries HEVC,
// AV1 and AC-3 as FourCC tracks: the relay hands them to the packager as
// it does H.264 and AAC, fragments at their key frames, and ends them.
func TestEnhancedRTMPCodecs(t *testing.T) {
	for _, tc := range []struct {
		name, video string
		gop         int // pictures
		tracks      string
	}{
		{"HEVC and AC-3", "hevc.mp4", 25, "[HEVC AC-3]"},
		{"AV1 and AC-3", "av1.mp4", 25, "[AV1 AC-3]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, relay.DefaultConfig(), Config{})
			vstsd, video := fixtureSamples(t, tc.video, time.Second)
			_, audio := fixtureSamples(t, "ac3.mp4", time.Second)
			var vt *gortmplib.Track
			if rec := vstsd.HvcX; rec != nil {
				first := func(n [][]byte) []byte { return n[0] }
				r := rec.HvcC.DecConfRec
				vt = &gortmplib.Track{Codec: &codecs.H265{VPS: first(r.GetNalusForType(hevc.NALU_VPS)), SPS: first(r.GetNalusForType(hevc.NALU_SPS)), PPS: first(r.GetNalusForType(hevc.NALU_PPS))}}
			} else {
				vt = &gortmplib.Track{Codec: &codecs.AV1{}}
			}
			at := &gortmplib.Track{Codec: &codecs.AC3{SampleRate: 48000, ChannelCount: 2}}
			e, err := connect(t, h.url("enhanced"))
			if err != nil {
				t.Fatal(err)
			}
			e.w = &gortmplib.Writer{Conn: e.c, Tracks: []*gortmplib.Track{vt, at}}
			if err := e.w.Initialize(); err != nil {
				t.Fatal(err)
			}
			all := append(video, audio...)
			slices.SortStableFunc(all, func(a, b sample) int { return int(a.dts - b.dts) })
			for _, s := range all {
				switch {
				case !s.video:
					err = e.w.WriteAC3(at, s.pts, s.frame)
				case vstsd.HvcX != nil:
					err = e.w.WriteH265(vt, s.pts, s.dts, s.au)
				default:
					var tu av1.Bitstream
					if err = tu.Unmarshal(s.frame); err == nil {
						err = e.w.WriteAV1(vt, s.pts, tu)
					}
				}
				if err != nil {
					break
				}
			}
			if err == nil {
				err = e.end()
			}
			e.waitClosed(t)
			h.waitIdle(t)
			lines := strings.Join(h.rec.Lines(), "\n")
			if !strings.Contains(lines, "tracks="+tc.tracks) {
				t.Errorf("the relay did not take tracks %s:\n%s", tc.tracks, lines)
			}
			got := h.st.channel(t, "enhanced")
			if err != nil {
				t.Fatal(err)
			}
			if v, a := got.count(timeline.Video), got.count(timeline.Audio); v < 2 || a < 2 {
				t.Errorf("stored %d video and %d AC-3 fragments: %v\n%s", v, a, got.fragments, lines)
			}
			for id, frags := range got.fragments {
				if strings.HasPrefix(id, "video") {
					for _, f := range frags[:len(frags)-1] {
						// One GOP each; the HEVC fixture's GOPs are open (a
						// CRA and two leading pictures shown before it but
						// decoded after it, in the next fragment).
						if f.Samples < tc.gop-2 || f.Samples > tc.gop+2 {
							t.Errorf("%s at %d: %d pictures, want a GOP of %d (%+v)", id, f.Start, f.Samples, tc.gop, frags)
						}
					}
				}
			}
			checkEnds(t, got, 2, true)
		})
	}
}

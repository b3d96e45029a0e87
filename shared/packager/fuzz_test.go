package packager

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/mp4box"
)

// fuzzOps turns fuzz input into a stream: its first byte chooses the
// options and tracks (bit 0 OnCut, bit 1 parameter sets out of band, bit
// 2 an E-AC-3 track instead of AAC, bit 3 small bounds, bit 4 AV1
// instead of H.264: the NAL unit is then a temporal unit), then each
// operation is an opcode byte and its operands:
//
//	0-3 video: NAL unit type, DTS step and PTS offset (int16 x 30 ticks),
//	    length (uint16); opcode 1 puts the parameter sets in band, 2 an AUD
//	    first
//	4-5 audio: PTS step (int16 x 30 ticks), length (5: a real frame's
//	    header first)
//	6   Cut
//	7   End (its operand even) or Flush (odd)
func fuzzOps(f []byte, sps, pps, asc, eac3, av1C []byte) (tracks []Track, opts Options, ops []func(p *Packager) error) {
	if len(f) == 0 {
		return nil, opts, nil
	}
	mode := f[0]
	f = f[1:]
	opts.OnCut = mode&1 != 0
	video := Track{Codec: H264}
	if mode&2 != 0 {
		video.SPS, video.PPS = [][]byte{sps}, [][]byte{pps}
	}
	audio := Track{Codec: AAC, AudioConfig: asc}
	if mode&4 != 0 {
		audio = Track{Codec: EAC3}
	}
	if mode&8 != 0 {
		opts.MaxFragmentBytes, opts.MaxFragmentSamples = 4000, 20
	}
	if mode&16 != 0 {
		video = Track{Codec: AV1}
		if mode&2 != 0 {
			video.AV1Config = av1C
		}
	}
	tracks = []Track{video, audio}
	next := func(n int) []byte {
		if len(f) < n {
			f = append(f, make([]byte, n-len(f))...)
		}
		b := f[:n]
		f = f[n:]
		return b
	}
	var dts, pts int64
	for len(f) > 0 && len(ops) < 2000 {
		op := next(1)[0] % 8
		switch {
		case op <= 3:
			b := next(7)
			typ := b[0]
			dts += int64(int16(binary.BigEndian.Uint16(b[1:3]))) * 30
			off := int64(int16(binary.BigEndian.Uint16(b[3:5]))) * 30
			nalu := append([]byte{typ}, next(int(binary.BigEndian.Uint16(b[5:7])))...)
			var nalus [][]byte
			if op == 2 {
				nalus = append(nalus, []byte{0x09, 0xf0})
			}
			if op == 1 {
				nalus = append(nalus, sps, pps)
			}
			s := Sample{DTS: dts, PTS: dts + off, NALUs: append(nalus, nalu)}
			if video.Codec == AV1 {
				s.NALUs = nil
				if op == 1 {
					s.Frame = append(s.Frame, av1C[4:]...) // its sequence header OBU
				}
				s.Frame = append(s.Frame, nalu...)
			}
			ops = append(ops, func(p *Packager) error { return p.Write(ctx, 0, s) })
		case op <= 5:
			b := next(3)
			pts += int64(int16(binary.BigEndian.Uint16(b[0:2]))) * 30
			frame := next(int(b[2]))
			if op == 5 && mode&4 != 0 {
				frame = append(append([]byte{}, eac3[:min(len(eac3), 16)]...), frame...)
			}
			s := Sample{PTS: pts, Frame: frame}
			ops = append(ops, func(p *Packager) error { return p.Write(ctx, 1, s) })
		case op == 6:
			ops = append(ops, func(p *Packager) error { return p.Cut(ctx) })
		case next(1)[0]%2 == 0:
			ops = append(ops, func(p *Packager) error { return p.End(ctx) })
		default:
			ops = append(ops, func(p *Packager) error { return p.Flush(ctx) })
		}
	}
	return tracks, opts, ops
}

// FuzzPackager feeds arbitrary NAL units, frames, timestamps and cuts to
// a packager over a real session: it may refuse them, but only with a
// *ingest.ProtocolError (or, after End, errEnded); it never panics; and
// every moof+mdat it writes is well formed: the trun's samples fill the
// mdat, each lasts, a fragment starts with a sync sample, and the session
// stores it as it is (fmp4.Inspect).
func FuzzPackager(f *testing.F) {
	es := readFixture(f, "avc-aac.mp4")
	sps, pps, asc := es[0].track.SPS[0], es[0].track.PPS[0], es[1].track.AudioConfig
	eac3 := readFixture(f, "eac3.mp4")[0].samples[0].Frame
	av := readFixture(f, "av1.mp4")[0]
	key := []byte{0x65, 0x88, 0x84, 0x00, 0x10}
	// Seeds: a GOP of video and some audio, live and on cut.
	seed := func(mode byte) []byte {
		b := []byte{mode}
		for i := range 60 {
			typ := byte(0x41)
			if i%25 == 0 {
				typ = key[0]
			}
			b = append(b, 1, typ, 0x00, 0x78, 0x00, 0xf0, 0, 4, 1, 2, 3, 4) // DTS += 3600, PTS +7200
			b = append(b, 5, 0x00, 0x40, 8, 1, 2, 3, 4, 5, 6, 7, 8)         // PTS += 1920
			if i == 30 {
				b = append(b, 6)
			}
			if i == 40 {
				b = append(b, 7, 1) // Flush
			}
		}
		return append(b, 7)
	}
	for _, mode := range []byte{0, 1, 2, 3, 4, 6, 8} {
		f.Add(seed(mode))
	}
	// AV1: the fixture's first temporal units.
	b := []byte{16 + 2}
	for k, s := range av.samples[:30] {
		b = append(b, 0, s.Frame[0], 0x00, 0x78, 0x00, 0x00)
		b = binary.BigEndian.AppendUint16(b, uint16(len(s.Frame)-1))
		b = append(b, s.Frame[1:]...)
		if k == 20 {
			b = append(b, 6)
		}
	}
	f.Add(append(b, 7))
	f.Add([]byte{2, 0, 0x65, 0x80, 0x00, 0x00, 0x00, 0, 0, 0, 0x41, 0x00, 0x00, 0x00, 0x00, 0, 0, 7})
	f.Fuzz(func(t *testing.T, in []byte) {
		tracks, opts, ops := fuzzOps(in, sps, pps, asc, eac3, av.track.AV1Config)
		if tracks == nil {
			return
		}
		r := &rig{rec: &recordingSink{}}
		r.session = ingest.NewSession(r.rec, quiet, ingest.Options{})
		opts.Log = quiet
		p, err := New(r, tracks, opts)
		if err != nil {
			t.Fatal(err)
		}
		ended := false
		for _, op := range ops {
			err := op(p)
			var perr *ingest.ProtocolError
			switch {
			case err == nil:
			case errors.As(err, &perr):
			case ended && errors.Is(err, errEnded):
			default:
				t.Fatalf("error that is not a ProtocolError: %v", err)
			}
			ended = ended || p.ended
		}
		checkBoxes(t, r.boxes)
		for _, fr := range r.rec.frags {
			if _, err := fmp4.Inspect(fr.Bytes()); err != nil {
				t.Fatalf("stored fragment: %v", err)
			}
		}
	})
}

// checkBoxes checks the moof+mdat pairs a packager wrote.
func checkBoxes(t *testing.T, boxes []mp4box.Box) {
	t.Helper()
	for i, b := range boxes {
		if b.Type != "moof" {
			continue
		}
		moof, err := fmp4.DecodeMoof(b.Data)
		if err != nil {
			t.Fatalf("moof %d: %v", i, err)
		}
		if i+1 >= len(boxes) || boxes[i+1].Type != "mdat" {
			t.Fatalf("moof %d without its mdat", i)
		}
		trun := moof.Traf.Trun
		trun.AddSampleDefaultValues(moof.Traf.Tfhd, nil)
		if int(trun.SizeOfData()) != len(boxes[i+1].Payload()) || int(trun.DataOffset) != len(b.Data)+8 {
			t.Fatalf("moof %d: trun of %d bytes at %d, mdat of %d", i, trun.SizeOfData(), trun.DataOffset, len(boxes[i+1].Payload()))
		}
		for k, s := range trun.Samples {
			if s.Dur == 0 {
				t.Fatalf("moof %d: sample %d lasts 0", i, k)
			}
			if k == 0 && s.Flags != syncFlags {
				t.Fatalf("moof %d starts with a non-sync sample", i)
			}
		}
	}
}

package cenc_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// sliceHeavy is s, a synthetic H.264 fragment, with each sample's filler
// NAL units turned into slice data: the same sizes (the head stands),
// but the bytes are a picture's, as an encoder's are, so that encryption
// covers them (filler NAL units stay clear). The added slice data is
// random: it is encrypted, never decoded.
func sliceHeavy(t testing.TB, s stored) stored {
	t.Helper()
	box, err := mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(s.head[:len(s.head)-8]))
	if err != nil {
		t.Fatal(err)
	}
	traf := box.(*mp4.MoofBox).Traf
	traf.Trun.AddSampleDefaultValues(traf.Tfhd, nil)
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]byte, 0, len(s.payload))
	pos := 0
	for _, smp := range traf.Trun.Samples {
		sample := s.payload[pos : pos+int(smp.Size)]
		pos += int(smp.Size)
		var kept [][]byte
		filler := 0
		for at := 0; at < len(sample); {
			n := int(binary.BigEndian.Uint32(sample[at:]))
			nalu := sample[at+4 : at+4+n]
			at += 4 + n
			if nalu[0]&0x1f == 12 {
				filler += 4 + n
				continue
			}
			kept = append(kept, nalu)
		}
		for i, nalu := range kept {
			if i == len(kept)-1 { // the slice
				tail := make([]byte, filler)
				for j := range tail {
					tail[j] = byte(r.Uint32())
				}
				nalu = append(bytes.Clone(nalu), tail...)
			}
			out = binary.BigEndian.AppendUint32(out, uint32(len(nalu)))
			out = append(out, nalu...)
		}
	}
	if len(out) != len(s.payload) {
		t.Fatalf("rewrote %d bytes of media into %d", len(s.payload), len(out))
	}
	s.payload = out
	return s
}

// BenchmarkFragment encrypts a 2 s fragment of 1080p H.264 at 4 Mbit/s
// (1 MB, 50 pictures) and one of AAC at 128 kbit/s, in cbcs and cenc,
// against copying the same clear bytes (what storing it clear costs).
func BenchmarkFragment(b *testing.B) {
	k1, _ := keys(b)
	video := sliceHeavy(b, synthStored(b, synth.Track{Kind: timeline.Video, Bitrate: 4_000_000, Width: 1920, Height: 1080}, 1))
	aac := synthStored(b, synth.Track{Kind: timeline.Audio, Bitrate: 128_000}, 1)
	for _, tc := range []struct {
		name string
		s    stored
	}{{"avc-1080p", video}, {"aac", aac}} {
		size := int64(len(tc.s.head) + len(tc.s.payload))
		b.Run(tc.name+"/clear", func(b *testing.B) {
			b.SetBytes(size)
			var buf []byte
			for b.Loop() {
				buf = append(append(buf[:0], tc.s.head...), tc.s.payload...)
			}
		})
		for _, scheme := range []cenc.Scheme{cenc.CBCS, cenc.CENC} {
			b.Run(tc.name+"/"+string(scheme), func(b *testing.B) {
				tr, err := cenc.NewTrack(tc.s.init, scheme)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(size)
				for b.Loop() {
					if _, _, err := tr.Fragment(tc.s.head, tc.s.payload, period(k1), k1.KID); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

package synth

import (
	"bytes"

	"github.com/Eyevinn/mp4ff/bits"
)

// aacSilentFrame returns one raw AAC-LC stereo frame (1024 samples) of
// silence, padded with fill elements to exactly size bytes when size is
// larger than the 6 bytes silence takes. Decoders skip fill elements, so
// the frame stays valid at any size; that lets an audio track carry the
// bitrate it claims.
func aacSilentFrame(size int) []byte {
	var b bytes.Buffer
	w := bits.NewWriter(&b)
	// Channel pair element, tag 0, common window: a long window with no
	// scale factor bands, so no spectral data at all.
	w.Write(0b001, 3)
	w.Write(0, 4)
	w.Write(1, 1)
	w.Write(0, 1+2+1) // ics_reserved_bit, window_sequence, window_shape
	w.Write(0, 6)     // max_sfb
	w.Write(0, 1)     // predictor_data_present
	w.Write(0, 2)     // ms_mask_present
	for range 2 {
		w.Write(140, 8) // global_gain
		w.Write(0, 3)   // pulse, tns, gain control: absent
	}
	const used = 46 // the bits above and ID_END
	// Fill elements: ID_FIL (110), a 4-bit count (15: an escape byte adds
	// to it), then count bytes of EXT_FILL payload.
	fill := func(n int) {
		w.Write(0b110, 3)
		if n >= 15 {
			w.Write(15, 4)
			w.Write(uint(n-14), 8)
		} else {
			w.Write(uint(n), 4)
		}
		for range n {
			w.Write(0, 8) // extension_type EXT_FILL, then fill bits
		}
	}
	left := size*8 - used
	for left >= 15+8*15 {
		n := min(269, (left-15)/8)
		fill(n)
		left -= 15 + 8*n
	}
	for left >= 7 {
		n := min(14, (left-7)/8)
		fill(n)
		left -= 7 + 8*n
	}
	w.Write(0b111, 3) // ID_END
	w.Flush()
	return b.Bytes()
}

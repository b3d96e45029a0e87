package synth

import (
	"bytes"
	"fmt"

	"github.com/Eyevinn/mp4ff/bits"
)

// avcGray produces a decodable H.264 Constrained Baseline stream of flat
// mid-gray pictures: each IDR picture codes every macroblock as Intra 16x16
// DC prediction with no residual (one byte per macroblock), each P picture
// skips every macroblock. Filler NAL units bring samples to a target size,
// so that a track has the bitrate it claims while staying decodable.
type avcGray struct {
	width, height int
	fps           int
	mbs           int // macroblocks per picture
	sps, pps      []byte
}

const log2MaxFrameNum = 8

func newAVCGray(width, height, fps int) (*avcGray, error) {
	if width < 16 || height < 16 || width%2 != 0 || height%2 != 0 || width > 4096 || height > 2304 {
		return nil, fmt.Errorf("video size %dx%d: want even sizes from 16x16 to 4096x2304", width, height)
	}
	g := &avcGray{width: width, height: height, fps: fps}
	mbw, mbh := (width+15)/16, (height+15)/16
	g.mbs = mbw * mbh
	level := 30 // 720x576 at 25 fps
	switch {
	case g.mbs > 3600:
		level = 40 // up to 2048x1024 at 30 fps
	case g.mbs > 1620:
		level = 31 // up to 1280x720 at 30 fps
	}
	if g.mbs > 8192 || g.mbs*fps > 245760 {
		level = 51
	}

	var b bytes.Buffer
	b.WriteByte(0x67) // nal_ref_idc 3, SPS
	w := bits.NewEBSPWriter(&b)
	w.Write(66, 8)   // profile_idc: Baseline
	w.Write(0xc0, 8) // constraint_set0 and set1: Constrained Baseline
	w.Write(uint(level), 8)
	w.WriteExpGolomb(0)                   // seq_parameter_set_id
	w.WriteExpGolomb(log2MaxFrameNum - 4) // log2_max_frame_num_minus4
	w.WriteExpGolomb(2)                   // pic_order_cnt_type: output order is decode order
	w.WriteExpGolomb(1)                   // max_num_ref_frames
	w.Write(0, 1)                         // gaps_in_frame_num_value_allowed_flag
	w.WriteExpGolomb(uint(mbw - 1))
	w.WriteExpGolomb(uint(mbh - 1))
	w.Write(1, 1) // frame_mbs_only_flag
	w.Write(1, 1) // direct_8x8_inference_flag
	cropR, cropB := (mbw*16-width)/2, (mbh*16-height)/2
	if cropR > 0 || cropB > 0 {
		w.Write(1, 1)
		w.WriteExpGolomb(0)
		w.WriteExpGolomb(uint(cropR))
		w.WriteExpGolomb(0)
		w.WriteExpGolomb(uint(cropB))
	} else {
		w.Write(0, 1)
	}
	w.Write(1, 1) // vui_parameters_present_flag
	w.Write(0, 4) // aspect_ratio, overscan, video_signal_type, chroma_loc
	w.Write(1, 1) // timing_info_present_flag
	w.Write(1, 32)
	w.Write(uint(2*fps), 32)
	w.Write(1, 1) // fixed_frame_rate_flag
	w.Write(0, 3) // nal_hrd, vcl_hrd, pic_struct_present
	w.Write(1, 1) // bitstream_restriction_flag
	w.Write(1, 1) // motion_vectors_over_pic_boundaries_flag
	w.WriteExpGolomb(0)
	w.WriteExpGolomb(0)
	w.WriteExpGolomb(16)
	w.WriteExpGolomb(16)
	w.WriteExpGolomb(0) // max_num_reorder_frames: no reordering
	w.WriteExpGolomb(1) // max_dec_frame_buffering
	w.WriteRbspTrailingBits()
	g.sps = bytes.Clone(b.Bytes())

	b.Reset()
	b.WriteByte(0x68) // nal_ref_idc 3, PPS
	w = bits.NewEBSPWriter(&b)
	w.WriteExpGolomb(0) // pic_parameter_set_id
	w.WriteExpGolomb(0) // seq_parameter_set_id
	w.Write(0, 1)       // entropy_coding_mode_flag: CAVLC
	w.Write(0, 1)       // bottom_field_pic_order_in_frame_present_flag
	w.WriteExpGolomb(0) // num_slice_groups_minus1
	w.WriteExpGolomb(0) // num_ref_idx_l0_default_active_minus1
	w.WriteExpGolomb(0) // num_ref_idx_l1_default_active_minus1
	w.Write(0, 1)       // weighted_pred_flag
	w.Write(0, 2)       // weighted_bipred_idc
	w.WriteExpGolomb(0) // pic_init_qp_minus26 (se 0)
	w.WriteExpGolomb(0) // pic_init_qs_minus26 (se 0)
	w.WriteExpGolomb(0) // chroma_qp_index_offset (se 0)
	w.Write(1, 1)       // deblocking_filter_control_present_flag
	w.Write(0, 1)       // constrained_intra_pred_flag
	w.Write(0, 1)       // redundant_pic_cnt_present_flag
	w.WriteRbspTrailingBits()
	g.pps = bytes.Clone(b.Bytes())
	return g, nil
}

// appendNALU appends a NAL unit with a 4-byte length prefix (the avc1
// sample format).
func appendNALU(dst, nalu []byte) []byte {
	n := len(nalu)
	dst = append(dst, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	return append(dst, nalu...)
}

// picture appends the length-prefixed slice NAL unit of picture i of a GOP
// (0 is the IDR picture) to dst. idrID alternates between neighbouring IDR
// pictures, as the standard asks.
func (g *avcGray) picture(dst []byte, i int, idrID uint) []byte {
	var b bytes.Buffer
	w := bits.NewEBSPWriter(&b)
	if i == 0 {
		b.WriteByte(0x65)   // nal_ref_idc 3, IDR slice
		w.WriteExpGolomb(0) // first_mb_in_slice
		w.WriteExpGolomb(7) // slice_type: I, all slices
		w.WriteExpGolomb(0) // pic_parameter_set_id
		w.Write(0, log2MaxFrameNum)
		w.WriteExpGolomb(idrID)
		w.Write(0, 2)       // no_output_of_prior_pics_flag, long_term_reference_flag
		w.WriteExpGolomb(0) // slice_qp_delta (se 0)
		w.WriteExpGolomb(1) // disable_deblocking_filter_idc
		for range g.mbs {
			// mb_type I_16x16_2_0_0 (DC, no coded blocks) ue(3), chroma DC
			// ue(0), mb_qp_delta se(0), Intra16x16DCLevel coeff_token with
			// no coefficients: 00100 1 1 1.
			w.Write(0x27, 8)
		}
	} else {
		b.WriteByte(0x41) // nal_ref_idc 2, non-IDR slice
		w.WriteExpGolomb(0)
		w.WriteExpGolomb(5) // slice_type: P, all slices
		w.WriteExpGolomb(0)
		w.Write(uint(i)%(1<<log2MaxFrameNum), log2MaxFrameNum)
		w.Write(0, 1)       // num_ref_idx_active_override_flag
		w.Write(0, 1)       // ref_pic_list_modification_flag_l0
		w.Write(0, 1)       // adaptive_ref_pic_marking_mode_flag
		w.WriteExpGolomb(0) // slice_qp_delta
		w.WriteExpGolomb(1) // disable_deblocking_filter_idc
		w.WriteExpGolomb(uint(g.mbs))
	}
	w.WriteRbspTrailingBits()
	return appendNALU(dst, b.Bytes())
}

// appendFiller appends a filler-data NAL unit that takes n bytes in the
// sample, length prefix included (n >= 6), or nothing when n is smaller.
func appendFiller(dst []byte, n int) []byte {
	if n < 6 {
		return dst
	}
	body := n - 4 // NAL header, 0xff bytes, trailing 0x80
	dst = append(dst, byte(body>>24), byte(body>>16), byte(body>>8), byte(body), 0x0c)
	for range body - 2 {
		dst = append(dst, 0xff)
	}
	return append(dst, 0x80)
}

package fmp4

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"

	"github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/Eyevinn/mp4ff/sei"

	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// captionsFixture is testdata/captions.mp4 (made by testdata/gencc: an
// encoder's H.264 with CEA-608 CC1 and CC3 and CEA-708 services 1 and 2
// in its SEI, as a fragmented MP4 push): its track, and its first
// fragment as the ingest session stores one, moof and mdat header (head)
// then the samples (payload).
func captionsFixture(t testing.TB) (trak *mp4.TrakBox, head, payload []byte) {
	t.Helper()
	b, err := os.ReadFile("testdata/captions.mp4")
	if err != nil {
		t.Fatal(err)
	}
	var moofAt int
	for box, err := range mp4box.All(b) {
		if err != nil {
			t.Fatal(err)
		}
		switch box.Type {
		case "moov":
			m, err := mp4box.Decode(box)
			if err != nil {
				t.Fatal(err)
			}
			trak = m.(*mp4.MoovBox).Trak
		case "moof":
			moofAt = int(box.Pos)
		case "mdat":
			at := int(box.Pos) + box.HeaderSize
			return trak, b[moofAt:at], b[at : int(box.Pos)+box.Size()]
		}
	}
	t.Fatal("testdata/captions.mp4 has no fragment")
	return nil, nil, nil
}

// The captions an encoder writes in H.264 SEI are found in its first
// fragment: CEA-608 CC1 and CC3, CEA-708 services 1 and 2.
func TestScanCaptionsOfAnEncoder(t *testing.T) {
	trak, head, payload := captionsFixture(t)
	if got := ScanCaptions(trak, head, payload); got != "CC1;CC3;SERVICE1;SERVICE2" {
		t.Errorf("captions %q, want CC1;CC3;SERVICE1;SERVICE2", got)
	}
}

// cc is a cc_data() of triplets (cc_valid and cc_type in the first byte's
// low bits, as 0xfc | valid<<2 | type).
func cc(triplets ...[3]byte) []byte {
	out := []byte{0x40 | byte(len(triplets)), 0xff}
	for _, t := range triplets {
		out = append(out, t[:]...)
	}
	return out
}

// f1, f2, dtvcc and dtvccMore are valid triplets: CEA-608 pairs of
// field 1 and 2 (parity left as given), the start of a DTVCC packet and
// its continuation.
func f1(a, b byte) [3]byte        { return [3]byte{0xfc, a, b} }
func f2(a, b byte) [3]byte        { return [3]byte{0xfd, a, b} }
func dtvcc(a, b byte) [3]byte     { return [3]byte{0xfe, a, b} }
func dtvccMore(a, b byte) [3]byte { return [3]byte{0xff, a, b} }

// Which channels and services cc_data uses: the data channel its
// control codes name (CC2, CC4), the first of the field without one;
// never padding, XDS or text mode; CEA-708 service blocks, extended
// service numbers among them, whole or cut by the next packet.
func TestCaptionServicesFromCCData(t *testing.T) {
	for _, tc := range []struct {
		name string
		data [][]byte // cc_data of successive SEI messages
		want timeline.Captions
	}{
		{"nothing", nil, ""},
		{"padding", [][]byte{cc(f1(0x80, 0x80), f2(0x80, 0x80))}, ""},
		{"field 1 text, no control code", [][]byte{cc(f1('H', 'I'))}, "CC1"},
		{"field 2 text, no control code", [][]byte{cc(f2('H', 'I'))}, "CC3"},
		{"data channel 2 of field 1", [][]byte{cc(f1(0x1c, 0x20)), cc(f1('H', 'I'))}, "CC2"},
		{"both channels of both fields", [][]byte{cc(f1(0x94, 0x20), f1(0x1c, 0x25), f2(0x15, 0x2c), f2(0x9d, 0x20))}, "CC1;CC2;CC3;CC4"},
		{"a preamble names its channel", [][]byte{cc(f2(0x19, 0x40))}, "CC4"},
		{"XDS alone in field 2", [][]byte{cc(f2(0x01, 0x03), f2('A', 'B'), f2(0x0f, 0x12))}, ""},
		{"XDS then captions", [][]byte{cc(f2(0x01, 0x03), f2('A', 'B'), f2(0x0f, 0x12), f2(0x15, 0x20))}, "CC3"},
		{"text mode is not captions", [][]byte{cc(f1(0x14, 0x2a), f1('T', 'X'))}, ""},
		{"text mode, then captions", [][]byte{cc(f1(0x14, 0x2a), f1('T', 'X'), f1(0x14, 0x20), f1('H', 'I'))}, "CC1"},
		{"invalid pairs count for nothing", [][]byte{cc([3]byte{0xf8, 0x14, 0x20})}, ""},
		{"CEA-708 services 1 and 2", [][]byte{cc(dtvcc(0x03, 0x21), dtvccMore('A', 0x41), dtvccMore('B', 0))}, "SERVICE1;SERVICE2"},
		{"an extended service number", [][]byte{cc(dtvcc(0x02, 0xe1), dtvccMore(10, 'x'))}, "SERVICE10"},
		{"a packet over two SEI messages", [][]byte{cc(dtvcc(0x03, 0x61)), cc(dtvccMore('A', 0), dtvccMore(0, 0))}, "SERVICE3"},
		{"a packet cut by the next", [][]byte{cc(dtvcc(0x04, 0x41), dtvccMore('A', 0x22), dtvcc(0x42, 0x21), dtvccMore('B', 0))}, "SERVICE1;SERVICE2"},
		{"a block longer than its packet", [][]byte{cc(dtvcc(0x02, 0x25), dtvccMore('A', 'B'))}, ""},
		{"null service blocks", [][]byte{cc(dtvcc(0x02, 0x00), dtvccMore(0, 0))}, ""},
		{"608 and 708", [][]byte{cc(f1(0x14, 0x20), dtvcc(0x02, 0x21), dtvccMore('A', 0))}, "CC1;SERVICE1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sc ccScan
			for _, d := range tc.data {
				sc.ccData(d)
			}
			if got := sc.captions(); got != tc.want {
				t.Errorf("captions %q, want %q", got, tc.want)
			}
		})
	}
}

// seiFragment is a stored fragment of one sample of 4-byte
// length-prefixed NAL units, split as the session stores it.
func seiFragment(t testing.TB, nalus ...[]byte) (head, payload []byte) {
	t.Helper()
	var sample []byte
	for _, n := range nalus {
		sample = binary.BigEndian.AppendUint32(sample, uint32(len(n)))
		sample = append(sample, n...)
	}
	frag, err := mp4.CreateFragment(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	frag.AddFullSample(mp4.FullSample{Sample: mp4.Sample{Flags: mp4.SyncSampleFlags, Dur: 1000, Size: uint32(len(sample))}, Data: sample})
	var b bytes.Buffer
	if err := frag.Encode(&b); err != nil {
		t.Fatal(err)
	}
	moof := int(binary.BigEndian.Uint32(b.Bytes()))
	return b.Bytes()[:moof+8], b.Bytes()[moof+8:]
}

// HEVC's prefix SEI carries captions as H.264's SEI does; other SEI, and
// other NAL units, carry none; audio is not scanned.
func TestScanCaptionsHEVC(t *testing.T) {
	trak := fixtureTrak(t, "testdata/hevc-hvc1.mp4")
	captions, err := hevc.CreateSEINalu([]sei.SEIMessage{sei.CreateCTA608SEIMessage(cc(f1(0x94, 0x20), dtvcc(0x02, 0x41), dtvccMore('A', 0)))})
	if err != nil {
		t.Fatal(err)
	}
	other, err := hevc.CreateSEINalu([]sei.SEIMessage{sei.NewSEIData(5, bytes.Repeat([]byte{7}, 20))})
	if err != nil {
		t.Fatal(err)
	}
	slice := []byte{0x26, 0x01, 0xaf, 0x00} // IDR_W_RADL
	for _, tc := range []struct {
		name  string
		trak  *mp4.TrakBox
		nalus [][]byte
		want  timeline.Captions
	}{
		{"captions", trak, [][]byte{other, captions, slice}, "CC1;SERVICE2"},
		{"no captions", trak, [][]byte{other, slice}, ""},
		{"audio", fixtureTrak(t, "testdata/eac3-stereo.mp4"), [][]byte{captions}, ""},
		{"a NAL unit longer than its sample", trak, [][]byte{captions, slice[:2]}, "CC1;SERVICE2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head, payload := seiFragment(t, tc.nalus...)
			if tc.name == "a NAL unit longer than its sample" {
				binary.BigEndian.PutUint32(payload[len(payload)-6:], 1000)
			}
			if got := ScanCaptions(tc.trak, head, payload); got != tc.want {
				t.Errorf("captions %q, want %q", got, tc.want)
			}
		})
	}
}

// FuzzScanCaptions scans arbitrary cc_data in the SEI of the caption
// fixture's first sample, and arbitrary fragments of its track: the scan
// never panics, and what it finds is a valid list of services.
func FuzzScanCaptions(f *testing.F) {
	trak, head, payload := captionsFixture(f)
	f.Add(head, payload)
	f.Add(cc(f1(0x94, 0x20), f2(0x19, 0x40), dtvcc(0x03, 0xe1), dtvccMore(10, 'x'), dtvccMore(0x21, 'A')), []byte(nil))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		got := ScanCaptions(trak, a, b)
		var sc ccScan
		sc.ccData(a)
		sc.sei(append([]byte{6}, b...), false)
		for _, c := range []timeline.Captions{got, sc.captions()} {
			if _, err := c.Services(); err != nil {
				t.Errorf("captions %q: %v", c, err)
			}
		}
	})
}

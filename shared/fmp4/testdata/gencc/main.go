// Command gencc makes captions.mp4, the fixture of fmp4's caption scan:
// H.264 video whose SEI carries CEA-608 (CC1 in field 1, CC3 in field 2)
// and CEA-708 (services 1 and 2) captions, as an encoder writes them.
// ffmpeg 5.1 has no caption encoder, but its H.264 decoder reads A/53
// captions from SEI and libx264 writes them again (-a53cc): so this
// inserts cc_data into the SEI of a plain libx264 stream with mp4ff, and
// has ffmpeg decode that and encode it anew as a fragmented MP4 push
// (what an encoder with captions sends). Run from the repository root:
//
//	go run ./shared/fmp4/testdata/gencc
package main

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/Eyevinn/mp4ff/sei"
)

const out = "shared/fmp4/testdata/captions.mp4"

func main() {
	dir, err := os.MkdirTemp("", "gencc")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	plain, withCC := filepath.Join(dir, "plain.mp4"), filepath.Join(dir, "cc.h264")
	run("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=10", "-t", "2",
		"-c:v", "libx264", "-g", "10", "-bf", "0", "-a53cc", "0", plain)
	b, err := os.ReadFile(plain)
	if err != nil {
		log.Fatal(err)
	}
	f, err := mp4.DecodeFile(bytes.NewReader(b))
	if err != nil {
		log.Fatal(err)
	}
	trak := f.Moov.Trak
	avcC := trak.Mdia.Minf.Stbl.Stsd.AvcX.AvcC
	var es bytes.Buffer
	start := []byte{0, 0, 0, 1}
	n := int(trak.Mdia.Minf.Stbl.Stsz.SampleNumber)
	for i := 1; i <= n; i++ {
		offset, size, err := sampleRange(trak, i)
		if err != nil {
			log.Fatal(err)
		}
		sample := b[offset : offset+size]
		seiNALU, err := avc.CreateSEINalu([]sei.SEIMessage{sei.CreateCTA608SEIMessage(ccData(i - 1))})
		if err != nil {
			log.Fatal(err)
		}
		for _, ps := range append(avcC.SPSnalus, avcC.PPSnalus...) {
			es.Write(start)
			es.Write(ps)
		}
		es.Write(start)
		es.Write(seiNALU)
		for _, nalu := range avc.ExtractNalusFromByteStream(toAnnexB(sample)) {
			es.Write(start)
			es.Write(nalu)
		}
	}
	if err := os.WriteFile(withCC, es.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	run("ffmpeg", "-v", "error", "-y", "-r", "10", "-i", withCC, "-c:v", "libx264", "-g", "10", "-bf", "0", "-b:v", "50k",
		"-a53cc", "1", "-f", "mp4", "-movflags", "empty_moov+default_base_moof+frag_keyframe", out)
	fmt.Println("wrote", out)
}

// ccData is frame k's cc_data: a CEA-608 byte pair in each field (CC1 in
// field 1, CC3 in field 2: a pop-on caption, "HI", again and again) and a
// DTVCC packet with a block for services 1 and 2.
func ccData(k int) []byte {
	f1 := [][2]byte{{0x14, 0x20}, {0x14, 0x20}, {'H', 'I'}, {0x14, 0x2f}, {0x14, 0x2f}} // RCL RCL HI EOC EOC
	f2 := [][2]byte{{0x15, 0x20}, {0x15, 0x20}, {'H', 'O'}, {0x15, 0x2f}, {0x15, 0x2f}}
	p1, p2 := f1[k%len(f1)], f2[k%len(f2)]
	seq := byte(k % 4)
	// Packet of 6 bytes (size code 3): header, service 1's block (header,
	// one byte), service 2's block (header, one byte), padding.
	pkt := []byte{seq<<6 | 3, 1<<5 | 1, 'A', 2<<5 | 1, 'B', 0}
	cc := []byte{0x40 | 5, 0xff} // process_cc_data_flag, cc_count 5; em_data
	cc = append(cc, 0xfc, parity(p1[0]), parity(p1[1]))
	cc = append(cc, 0xfd, parity(p2[0]), parity(p2[1]))
	cc = append(cc, 0xfe, pkt[0], pkt[1], 0xff, pkt[2], pkt[3], 0xff, pkt[4], pkt[5]) // cc_type 2 starts the packet, 3 goes on
	return append(cc, 0xff)                                                           // marker_bits
}

// parity sets b's odd parity bit (CEA-608 bytes carry one).
func parity(b byte) byte {
	ones := 0
	for v := b; v != 0; v >>= 1 {
		ones += int(v & 1)
	}
	if ones%2 == 0 {
		return b | 0x80
	}
	return b
}

// sampleRange is where sample i (from 1) of a progressive track lies.
func sampleRange(trak *mp4.TrakBox, i int) (int, int, error) {
	stbl := trak.Mdia.Minf.Stbl
	chunk, first, err := stbl.Stsc.ChunkNrFromSampleNr(i)
	if err != nil {
		return 0, 0, err
	}
	var offset uint64
	if stbl.Stco != nil {
		offset = uint64(stbl.Stco.ChunkOffset[chunk-1])
	} else {
		offset = stbl.Co64.ChunkOffset[chunk-1]
	}
	for j := first; j < i; j++ {
		offset += uint64(stbl.Stsz.GetSampleSize(j))
	}
	return int(offset), int(stbl.Stsz.GetSampleSize(i)), nil
}

// toAnnexB turns a sample of 4-byte length-prefixed NAL units into a byte
// stream.
func toAnnexB(sample []byte) []byte {
	var out []byte
	for len(sample) >= 4 {
		n := int(sample[0])<<24 | int(sample[1])<<16 | int(sample[2])<<8 | int(sample[3])
		out = append(append(out, 0, 0, 0, 1), sample[4:4+n]...)
		sample = sample[4+n:]
	}
	return out
}

func run(name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		log.Fatalf("%s: %v", name, err)
	}
}

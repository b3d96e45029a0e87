package testtool

import (
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"
)

// TrackSamples returns the samples of trak, a track of the progressive
// MP4 file (its bytes), in decode order: each with its data, its decode
// time from the track's first (zero; the edit list is the caller's), its
// duration and its composition offset. It ends the test if the sample
// tables do not parse or point outside file.
func TrackSamples(t testing.TB, file []byte, trak *mp4.TrakBox) []mp4.FullSample {
	t.Helper()
	n := trak.GetNrSamples()
	meta, err := trak.GetSampleData(1, n)
	if err != nil {
		t.Fatal(err)
	}
	ranges, err := trak.GetRangesForSampleInterval(1, n)
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	for _, r := range ranges {
		if r.Offset+r.Size > uint64(len(file)) {
			t.Fatalf("a chunk of %d bytes at %d is past the file's end (%d bytes)", r.Size, r.Offset, len(file))
		}
		data = append(data, file[r.Offset:r.Offset+r.Size]...)
	}
	out := make([]mp4.FullSample, 0, len(meta))
	var dts uint64
	for _, m := range meta {
		if uint64(m.Size) > uint64(len(data)) {
			t.Fatalf("sample %d of %d bytes is past the track's data", len(out)+1, m.Size)
		}
		out = append(out, mp4.FullSample{Sample: m, DecodeTime: dts, Data: data[:m.Size]})
		data = data[m.Size:]
		dts += uint64(m.Dur)
	}
	return out
}

package webvtt

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

func TestSamples(t *testing.T) {
	a := Cue{ID: "a", Start: ms(1000), End: ms(3000), Text: "A"}
	b := Cue{Start: ms(2000), End: ms(4000), Settings: "line:0", Text: "B"}
	tests := []struct {
		name     string
		cues     []Cue
		from, to uint64
		want     []Sample
	}{
		{"no cue is one empty sample", nil, 0, 2000, []Sample{{Time: 0, Duration: 2000}}},
		{"a sample per interval between cue boundaries, empty where no cue is", []Cue{a, b}, 0, 5000, []Sample{
			{0, 1000, nil}, {1000, 1000, []Cue{a}}, {2000, 1000, []Cue{a, b}}, {3000, 1000, []Cue{b}}, {4000, 1000, nil}}},
		{"cues that cross the range's edges are cut at them", []Cue{a, b}, 1500, 2500, []Sample{
			{1500, 500, []Cue{a}}, {2000, 500, []Cue{a, b}}}},
		{"a cue outside the range is left out", []Cue{a}, 3000, 4000, []Sample{{3000, 1000, nil}}},
		{"a cue of no duration is left out", []Cue{{Start: ms(1000), End: ms(1000), Text: "x"}}, 0, 2000, []Sample{{0, 2000, nil}}},
		{"an empty range has no sample", []Cue{a}, 2000, 2000, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Samples(tt.cues, tt.from, tt.to, 1000)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestSamplesJoinBack(t *testing.T) {
	cues := []Cue{
		{ID: "a", Start: ms(1000), End: ms(3000), Text: "A"},
		{Start: ms(2000), End: ms(4000), Settings: "line:0", Text: "B\nsecond line"},
		{Start: ms(6000), End: ms(6500), Text: "C"},
	}
	// Two fragments, the cut through both A and B: each holds its part.
	var samples []Sample
	for _, r := range [][2]uint64{{0, 2500}, {2500, 7000}} {
		frag, err := Fragment(1, 1, Samples(cues, r[0], r[1], 1000))
		if err != nil {
			t.Fatal(err)
		}
		got, err := FragmentSamples(frag, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		samples = append(samples, got...)
	}
	if got := Join(samples, 1000); !reflect.DeepEqual(got, cues) {
		t.Errorf("got %+v\nwant %+v", got, cues)
	}
}

func TestSampleEncodeDecode(t *testing.T) {
	for _, s := range []Sample{
		{Cues: nil},
		{Cues: []Cue{{Text: "plain"}}},
		{Cues: []Cue{{ID: "id", Settings: "align:end", Text: "two\nlines"}, {Text: "other"}}},
	} {
		b := s.Encode()
		if len(s.Cues) == 0 && string(b[4:8]) != "vtte" {
			t.Errorf("an empty sample is %q, want vtte", b[4:8])
		}
		got, err := DecodeSample(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, s.Cues) {
			t.Errorf("got %+v, want %+v", got, s.Cues)
		}
	}
}

func TestDecodeSampleRefusesBrokenBoxes(t *testing.T) {
	good := Sample{Cues: []Cue{{Text: "x"}}}.Encode()
	for name, b := range map[string][]byte{
		"a short header":      good[:5],
		"a size past the end": append([]byte{0, 0, 1, 0}, good[4:]...),
		"a size under 8":      {0, 0, 0, 4, 'v', 't', 't', 'c'},
	} {
		if _, err := DecodeSample(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestFragmentSamplesRefusesSamplesOutsideTheMdat(t *testing.T) {
	frag, err := Fragment(1, 1, []Sample{{Time: 0, Duration: 1000, Cues: []Cue{{Text: "x"}}}})
	if err != nil {
		t.Fatal(err)
	}
	// The mdat cut short by one byte (its size too).
	cut := append([]byte(nil), frag[:len(frag)-1]...)
	mdat := bytes.LastIndex(cut, []byte("mdat")) - 4
	cut[mdat+3]--
	if _, err := FragmentSamples(cut, 1, nil); err == nil {
		t.Error("decoded a sample past its mdat")
	}
}

func TestForHLS(t *testing.T) {
	// A fragment at 2^33 ticks of 90 kHz plus 10 s (in 1 kHz): MPEGTS
	// wraps, LOCAL is the fragment's start, the cue times media times.
	start := uint64(1<<33)/90 + 10000
	cues := []Cue{{Start: ms(int64(start) + 500), End: ms(int64(start) + 1500), Text: "x"}}
	f := ForHLS(cues, start, 1000)
	wantTS := (start * 90) % (1 << 33)
	if f.Map == nil || f.Map.MPEGTS != wantTS || f.Map.Local != ms(int64(start)) {
		t.Fatalf("map %+v, want MPEGTS %d LOCAL %v", f.Map, wantTS, ms(int64(start)))
	}
	if !reflect.DeepEqual(f.Cues, cues) {
		t.Errorf("cues %+v, want %+v", f.Cues, cues)
	}
	f.Cues[0].Text = "changed"
	if cues[0].Text != "x" {
		t.Error("ForHLS shares its caller's cues")
	}
}

func TestTicksAndDuration(t *testing.T) {
	if got := Ticks(ms(1500), 90000); got != 135000 {
		t.Errorf("Ticks = %d", got)
	}
	if got := Ticks(time.Duration(1<<63-1), 1<<32-1); got != 1<<64-1 {
		t.Errorf("Ticks does not saturate: %d", got)
	}
	if got := Duration(135000, 90000); got != ms(1500) {
		t.Errorf("Duration = %v", got)
	}
	if got := Duration(1<<63, 1); got != 1<<63-1 {
		t.Errorf("Duration does not saturate: %v", got)
	}
}

func TestInit(t *testing.T) {
	b, err := Init(Track{ID: 3, Timescale: 1000, Language: "en-GB", Label: "English", Role: "forced-subtitle", Default: true})
	if err != nil {
		t.Fatal(err)
	}
	f, err := mp4.DecodeFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	trak := f.Init.Moov.Trak
	if trak.Tkhd.TrackID != 3 || trak.Tkhd.Flags&1 == 0 || f.Init.Moov.Mvex.Trex.TrackID != 3 {
		t.Errorf("tkhd %d flags %#x, trex %d", trak.Tkhd.TrackID, trak.Tkhd.Flags, f.Init.Moov.Mvex.Trex.TrackID)
	}
	if trak.Mdia.Hdlr.HandlerType != "text" || trak.Mdia.Mdhd.Timescale != 1000 || trak.Mdia.Mdhd.GetLanguage() != "und" || trak.Mdia.Elng == nil || trak.Mdia.Elng.Language != "en-GB" {
		t.Errorf("hdlr %s, timescale %d, mdhd %s, elng %+v", trak.Mdia.Hdlr.HandlerType, trak.Mdia.Mdhd.Timescale, trak.Mdia.Mdhd.GetLanguage(), trak.Mdia.Elng)
	}
	if typ := trak.Mdia.Minf.Stbl.Stsd.Children[0].Type(); typ != "wvtt" {
		t.Errorf("sample entry %s", typ)
	}
	var kind, labl bool
	for _, c := range trak.Children {
		if u, ok := c.(*mp4.UdtaBox); ok {
			for _, c := range u.Children {
				switch x := c.(type) {
				case *mp4.KindBox:
					kind = x.SchemeURI == RoleScheme && x.Value == "forced-subtitle"
				case *mp4.LablBox:
					labl = x.Label == "English"
				}
			}
		}
	}
	if !kind || !labl {
		t.Errorf("kind %v, labl %v", kind, labl)
	}
	b, _ = Init(Track{Language: "fra"})
	f, _ = mp4.DecodeFile(bytes.NewReader(b))
	if trak := f.Init.Moov.Trak; trak.Mdia.Mdhd.GetLanguage() != "fra" || trak.Tkhd.Flags&1 != 0 {
		t.Errorf("mdhd %s, tkhd flags %#x: a three-letter language in mdhd, a track not default not enabled", trak.Mdia.Mdhd.GetLanguage(), trak.Tkhd.Flags)
	}
}

// FuzzFragmentSamples: a fragment of any bytes is read or refused, never
// a panic, and the cues of what it reads join and write as a file that
// parses.
func FuzzFragmentSamples(f *testing.F) {
	cues := []Cue{{ID: "a", Start: ms(100), End: ms(900), Settings: "line:0", Text: "x\ny"}}
	frag, err := Fragment(1, 1, Samples(cues, 0, 1000, 1000))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(frag)
	f.Add(Sample{Cues: cues}.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		samples, err := FragmentSamples(b, 1, nil)
		if err != nil {
			return
		}
		file := ForHLS(Join(samples, 1000), 0, 1000)
		if _, err := Parse(file.Bytes()); err != nil {
			t.Fatalf("%v\n%q", err, file.Bytes())
		}
	})
}

package cenc_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// stored is a track's clear init segment and one of its fragments as the
// relay stores it (fmp4.RewriteHead): head (moof, mdat header), payload.
type stored struct {
	init, head, payload []byte
	entry               string // the clear sample entry's type
}

func (s stored) fragment() []byte { return join(s.head, s.payload) }

func join(b ...[]byte) []byte { return bytes.Join(b, nil) }

// storeFragment is fragment b (a moof and its mdat, possibly after an
// styp) of track trackID of moov, as the relay stores it.
func storeFragment(t testing.TB, moov *mp4.MoovBox, trackID uint32, b []byte) stored {
	t.Helper()
	for _, trak := range moov.Traks {
		emptyTables(trak)
	}
	init, err := fmp4.InitSegment(moov, trackID)
	if err != nil {
		t.Fatal(err)
	}
	f, err := mp4.DecodeFile(bytes.NewReader(init))
	if err != nil {
		t.Fatal(err)
	}
	in := fmp4.Input{Trex: f.Moov.Mvex.Trex}
	for box, err := range mp4box.All(b) {
		if err != nil {
			t.Fatal(err)
		}
		switch box.Type {
		case "moof":
			in.Moof = box.Data
		case "mdat":
			in.MdatHeader, in.Mdat = box.HeaderSize, box.Payload()
		}
	}
	head, payload, _, err := fmp4.RewriteHead(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	return stored{init: init, head: head, payload: payload, entry: f.Moov.Trak.Mdia.Minf.Stbl.Stsd.Children[0].Type()}
}

// emptyTables leaves trak's sample tables (of a progressive file) empty,
// as in an encoder's fragmented MP4, its sample entry kept.
func emptyTables(trak *mp4.TrakBox) {
	minf := trak.Mdia.Minf
	stbl := mp4.NewStblBox()
	stbl.AddChild(minf.Stbl.Stsd)
	stbl.AddChild(&mp4.SttsBox{})
	stbl.AddChild(&mp4.StscBox{})
	stbl.AddChild(&mp4.StszBox{})
	stbl.AddChild(&mp4.StcoBox{})
	for i, c := range minf.Children {
		if c == mp4.Box(minf.Stbl) {
			minf.Children[i] = stbl
		}
	}
	minf.Stbl = stbl
	trak.Edts = nil
	for i, c := range trak.Children {
		if c.Type() == "edts" {
			trak.Children = append(trak.Children[:i], trak.Children[i+1:]...)
			break
		}
	}
}

// synthStored is fragment k of a synthetic track (synth: H.264 or AAC)
// of 2 s fragments.
func synthStored(t testing.TB, tr synth.Track, k int) stored {
	t.Helper()
	return synthStoredOf(t, synth.Config{Tracks: []synth.Track{tr}}, k)
}

// synthStoredOf is fragment k of the first track of cfg.
func synthStoredOf(t testing.TB, cfg synth.Config, k int) stored {
	t.Helper()
	cfg.CMAF = true
	s, err := synth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := s.Header()
	if err != nil {
		t.Fatal(err)
	}
	moov := decodeMoov(t, hdr)
	frag, err := s.AppendFragment(nil, k)
	if err != nil {
		t.Fatal(err)
	}
	return storeFragment(t, moov, moov.Trak.Tkhd.TrackID, frag)
}

func decodeMoov(t testing.TB, b []byte) *mp4.MoovBox {
	t.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(b))
	if err != nil || f.Moov == nil {
		t.Fatalf("decode moov: %v", err)
	}
	return f.Moov
}

// fileStored is the first group of pictures (the samples up to the second
// sync sample; all of an audio track's, at most 50) of the track of
// handler (vide or soun) of a progressive MP4 file, as one stored
// fragment.
func fileStored(t testing.TB, path, handler string) stored {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	moov := decodeMoov(t, b)
	for _, trak := range moov.Traks {
		if trak.Mdia.Hdlr.HandlerType != handler {
			continue
		}
		samples := testtool.TrackSamples(t, b, trak)
		frag, err := mp4.CreateFragment(1, trak.Tkhd.TrackID)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range samples {
			if i == 50 || i > 0 && handler == "vide" && s.IsSync() {
				break
			}
			frag.AddFullSample(s)
		}
		var w bytes.Buffer
		if err := frag.Encode(&w); err != nil {
			t.Fatal(err)
		}
		return storeFragment(t, moov, trak.Tkhd.TrackID, w.Bytes())
	}
	t.Fatalf("%s has no %s track", path, handler)
	return stored{}
}

// tracks are the encryptable tracks the tests run on: the product's
// synthetic H.264 and AAC, ffmpeg's H.264 High (B-frames, CABAC), HEVC
// (hvc1 and hev1), AV1, AC-3 and E-AC-3.
func tracks(t testing.TB) map[string]stored {
	t.Helper()
	return map[string]stored{
		"avc synth": synthStored(t, synth.Track{Kind: timeline.Video, Bitrate: 1_000_000}, 3),
		"aac synth": synthStored(t, synth.Track{Kind: timeline.Audio, Bitrate: 128_000}, 3),
		"avc high":  fileStored(t, "../packager/testdata/avc-aac.mp4", "vide"),
		"aac":       fileStored(t, "../packager/testdata/avc-aac.mp4", "soun"),
		"hevc hvc1": fileStored(t, "../packager/testdata/hevc.mp4", "vide"),
		"hevc hev1": fileStored(t, "../fmp4/testdata/hevc-hev1.mp4", "vide"),
		"av1":       fileStored(t, "../packager/testdata/av1.mp4", "vide"),
		"ac-3":      fileStored(t, "../packager/testdata/ac3.mp4", "soun"),
		"e-ac-3":    fileStored(t, "../packager/testdata/eac3.mp4", "soun"),
	}
}

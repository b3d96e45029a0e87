package fmp4_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/fmp4/fmp4test"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// clearInit is the init segment fmp4.InitSegment stores for the first
// track of an MP4 file, its sample tables emptied.
func clearInit(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := mp4.DecodeFile(bytes.NewReader(b))
	if err != nil || f.Moov == nil {
		t.Fatalf("%s: %v", path, err)
	}
	// An encoder's moov lists no samples: fragments carry them.
	stts := f.Moov.Traks[0].Mdia.Minf.Stbl.Stts
	stts.SampleCount, stts.SampleTimeDelta = nil, nil
	init, err := fmp4.InitSegment(f.Moov, f.Moov.Traks[0].Tkhd.TrackID)
	if err != nil {
		t.Fatal(err)
	}
	return init
}

// synthStream is a synthetic stream of cfg, its moov and the init
// segment of each of its tracks.
func synthStream(t testing.TB, cfg synth.Config) (*synth.Stream, *mp4.MoovBox, [][]byte) {
	t.Helper()
	s, err := synth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := s.Header()
	if err != nil {
		t.Fatal(err)
	}
	f, err := mp4.DecodeFile(bytes.NewReader(hdr))
	if err != nil {
		t.Fatal(err)
	}
	var inits [][]byte
	for _, trak := range f.Moov.Traks {
		init, err := fmp4.InitSegment(f.Moov, trak.Tkhd.TrackID)
		if err != nil {
			t.Fatal(err)
		}
		inits = append(inits, init)
	}
	return s, f.Moov, inits
}

// synthInits are the init segments of a synthetic stream's tracks: H.264
// and AAC.
func synthInits(t testing.TB) [][]byte {
	t.Helper()
	_, _, inits := synthStream(t, synth.Config{Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 500_000}, {Kind: timeline.Audio, Bitrate: 96_000}}})
	return inits
}

func mustKID(t testing.TB, s string) cenc.KID {
	t.Helper()
	k, err := cenc.ParseKID(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// An encrypted track describes as the clear one it was made from (codec
// string, sizes, CodecPrivateData, declared bitrate), plus its
// protection: the scheme, the default KID and, from the moov, each DRM
// system's whole pssh box in order; for every codec the relay encrypts and
// both schemes.
func TestEncryptedInitDescribesAsTheClearTrackPlusItsProtection(t *testing.T) {
	kid := mustKID(t, "0123456789abcdef0123456789abcdef")
	other := mustKID(t, "fedcba9876543210fedcba9876543210")
	clearKey := cenc.ClearKeyPSSH(kid)
	widevine := cenc.PSSH(cenc.Widevine, nil, []byte{0x12, 0x10, 0x01, 0x23})
	playReady := cenc.PSSH(cenc.PlayReady, []cenc.KID{kid}, []byte("pro"))
	otherTrack := cenc.ClearKeyPSSH(other) // another key's: left out
	inits := map[string][]byte{}
	synthInit := synthInits(t)
	inits["avc1 (synth)"], inits["mp4a (synth)"] = synthInit[0], synthInit[1]
	for name, file := range map[string]string{
		"hvc1": "testdata/hevc-hvc1.mp4", "hev1": "testdata/hevc-hev1.mp4", "hvc1 PQ": "testdata/hevc-main10-pq.mp4",
		"av01": "../packager/testdata/av1.mp4", "ac-3": "testdata/ac3-5.1.mp4", "ec-3": "testdata/eac3-5.1.mp4",
		"ec-3 JOC": "../packager/testdata/eac3.mp4", "avc1 (ffmpeg)": "../packager/testdata/avc-small.mp4",
	} {
		inits[name] = clearInit(t, file)
	}
	for name, init := range inits {
		for _, scheme := range []cenc.Scheme{cenc.CBCS, cenc.CENC} {
			t.Run(name+" "+string(scheme), func(t *testing.T) {
				want, err := fmp4.ParseInit(init)
				if err != nil {
					t.Fatal(err)
				}
				if want.Protection != nil {
					t.Fatalf("clear init described as protected: %+v", want.Protection)
				}
				enc, _, err := fmp4test.Protect(init, scheme, kid, clearKey, widevine, otherTrack, playReady)
				if err != nil {
					t.Fatal(err)
				}
				got, err := fmp4.ParseInit(enc)
				if err != nil {
					t.Fatalf("ParseInit of the encrypted init: %v", err)
				}
				want.Protection = &timeline.Protection{Scheme: string(scheme), KID: "01234567-89ab-cdef-0123-456789abcdef", Systems: []timeline.ProtectionSystem{
					{ID: "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b", PSSH: clearKey},
					{ID: "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed", PSSH: widevine},
					{ID: "9a04f079-9840-4286-ab92-e65be0885f95", PSSH: playReady},
				}}
				if !got.Equal(want) {
					t.Errorf("\n got %+v %+v\nwant %+v %+v", got, got.Protection, want, want.Protection)
				}
				if !strings.Contains(string(enc), "enc") || !bytes.Contains(enc, []byte("sinf")) {
					t.Fatal("the init is not protected")
				}
				cm, _ := mp4.DecodeFile(bytes.NewReader(init))
				em, _ := mp4.DecodeFile(bytes.NewReader(enc))
				if c, e := fmp4.DeclaredBitrate(cm.Moov.Trak), fmp4.DeclaredBitrate(em.Moov.Trak); c != e {
					t.Errorf("declared bitrate %d, clear %d", e, c)
				}
			})
		}
	}
}

// An encrypted sample entry the manifests cannot signal is refused, with
// what is wrong: a scheme CMAF does not allow, a sinf without its
// original format or its tenc, a tenc that protects nothing.
func TestEncryptedInitThatCannotBeSignalledIsRefused(t *testing.T) {
	kid := mustKID(t, "0123456789abcdef0123456789abcdef")
	for _, tc := range []struct {
		name   string
		change func(sinf *mp4.SinfBox)
		want   string
	}{
		{"cens scheme", func(s *mp4.SinfBox) { s.Schm.SchemeType = "cens" }, `scheme "cens"`},
		{"no frma", func(s *mp4.SinfBox) { s.Frma = nil }, "original format"},
		{"no tenc", func(s *mp4.SinfBox) { s.Schi.Tenc = nil }, "without schm or tenc"},
		{"not protected", func(s *mp4.SinfBox) { s.Schi.Tenc.DefaultIsProtected = 0 }, "no protection"},
		{"unknown format", func(s *mp4.SinfBox) { s.Frma.DataFormat = "vp09" }, `format "vp09"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, _, err := fmp4test.Protect(synthInits(t)[0], cenc.CBCS, kid)
			if err != nil {
				t.Fatal(err)
			}
			f, err := mp4.DecodeFile(bytes.NewReader(enc))
			if err != nil {
				t.Fatal(err)
			}
			tc.change(f.Moov.Trak.Mdia.Minf.Stbl.Stsd.Encv.Sinf)
			if _, err := fmp4.Describe(f.Moov.Trak); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Describe: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// FuzzParseInitProtected decodes arbitrary init segments, seeded with
// encrypted ones of both schemes with pssh boxes: ParseInit never
// panics, and a protection it describes is whole (a scheme the manifests
// signal, a default KID, each system's ID and a pssh box of that system).
func FuzzParseInitProtected(f *testing.F) {
	kid := cenc.KID{1, 2, 3}
	for i, init := range synthInits(f) {
		scheme := []cenc.Scheme{cenc.CBCS, cenc.CENC}[i%2]
		enc, _, err := fmp4test.Protect(init, scheme, kid, cenc.ClearKeyPSSH(kid), cenc.PSSH(cenc.PlayReady, nil, []byte("pro")))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := fmp4.ParseInit(b)
		if err != nil || got.Protection == nil {
			return
		}
		p := got.Protection
		if _, err := cenc.ParseKID(p.KID); err != nil || p.Scheme != "cbcs" && p.Scheme != "cenc" {
			t.Errorf("protection %+v", p)
		}
		for _, s := range p.Systems {
			id, err := cenc.ParseKID(s.ID)
			if err != nil || len(s.PSSH) < 32 || string(s.PSSH[4:8]) != "pssh" || !bytes.Equal(s.PSSH[12:28], id[:]) {
				t.Errorf("system %s: pssh %x", s.ID, s.PSSH)
			}
		}
	})
}

// storedVideoFragment is fragment k of a synthetic video track at fps
// frames per second in fragments of dur, as the relay stores it, and the
// track's init segment.
func storedVideoFragment(t testing.TB, fps int, dur time.Duration, k int) (init, frag []byte) {
	t.Helper()
	s, moov, inits := synthStream(t, synth.Config{Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 4_000_000}}, FrameRate: fps, FragmentDuration: dur})
	b, err := s.AppendFragment(nil, k)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.BigEndian.Uint32(b)
	head, payload, _, err := fmp4.RewriteHead(nil, fmp4.Input{Moof: b[:n], MdatHeader: 8, Mdat: b[n+8 : n+binary.BigEndian.Uint32(b[n:])], Trex: moov.Mvex.Trex})
	if err != nil {
		t.Fatal(err)
	}
	return inits[0], append(head, payload...)
}

// Encryption grows a stored fragment's moof by its sample auxiliary
// information (per sample: its IV, 8 bytes in cenc and none in cbcs, and
// 2 + 6 bytes per subsample, and a byte of saiz) and, in a fragment of a
// rotated key, a seig sample group and the period's pssh boxes: for a 2 s
// fragment of 60 fps video, a few kilobytes, far within what the
// manifest function reads at first (64 KiB) and MaxMoof; StoredHead and
// Inspect read it as they read the clear one.
func TestEncryptionGrowsTheMoofBySampleInfo(t *testing.T) {
	init, clear := storedVideoFragment(t, 60, 2*time.Second, 1)
	_, _, clearMoof, err := fmp4.StoredHead(clear)
	if err != nil {
		t.Fatal(err)
	}
	kid := mustKID(t, "0123456789abcdef0123456789abcdef")
	rotated := cenc.Key{KID: mustKID(t, "fedcba9876543210fedcba9876543210")}
	pro := cenc.PSSH(cenc.PlayReady, []cenc.KID{rotated.KID}, bytes.Repeat([]byte{'x'}, 1500)) // a PlayReady Object's size
	for _, scheme := range []cenc.Scheme{cenc.CBCS, cenc.CENC} {
		for _, rotate := range []bool{false, true} {
			_, p, err := fmp4test.Protect(init, scheme, kid)
			if err != nil {
				t.Fatal(err)
			}
			key, pssh := cenc.Key{KID: kid}, [][]byte(nil)
			if rotate {
				key, pssh = rotated, [][]byte{cenc.ClearKeyPSSH(rotated.KID), pro}
			}
			enc, err := p.Fragment(clear, key, pssh...)
			if err != nil {
				t.Fatal(err)
			}
			_, _, moof, err := fmp4.StoredHead(enc)
			if err != nil {
				t.Fatal(err)
			}
			info, err := fmp4.Inspect(enc)
			if err != nil || info.Samples != 120 {
				t.Fatalf("Inspect: %+v, %v", info, err)
			}
			perSample, ivSize := int64(2+1), byte(0) // subsample count, saiz entry
			if scheme == cenc.CENC {
				perSample, ivSize = perSample+8, 8
			}
			subsamples := subsampleCount(t, enc, ivSize)
			bound := int64(info.Samples)*perSample + int64(subsamples)*6 + 256 // senc, saiz, saio headers
			if rotate {
				bound += int64(len(pssh[0])+len(pssh[1])) + 128 // sgpd, sbgp
			}
			growth := moof - clearMoof
			t.Logf("%s, rotated %v: moof %d → %d bytes (+%d; %d samples, %d subsamples)", scheme, rotate, clearMoof, moof, growth, info.Samples, subsamples)
			if growth <= 0 || growth > bound || moof > 64<<10 {
				t.Errorf("%s, rotated %v: moof grew by %d bytes to %d, want at most %d", scheme, rotate, growth, moof, bound)
			}
		}
	}
}

// subsampleCount is how many subsamples the senc of a stored fragment
// lists, its per-sample IVs ivSize bytes long.
func subsampleCount(t testing.TB, frag []byte, ivSize byte) int {
	t.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(frag))
	if err != nil || len(f.Segments) == 0 {
		t.Fatal(err)
	}
	traf := f.Segments[0].Fragments[0].Moof.Traf
	if traf.Senc == nil {
		t.Fatal("no senc")
	}
	// A seig sample group gives mp4ff the IV size: it has parsed the
	// senc already.
	if err := traf.ParseReadSenc(ivSize, 0); err != nil && !strings.Contains(err.Error(), "already parsed") {
		t.Fatal(err)
	}
	n := 0
	for _, s := range traf.Senc.SubSamples {
		n += len(s)
	}
	return n
}

// What shared/cenc's encryptor (the relay's) writes reads as mp4ff's
// does: its init segments describe as the clear tracks plus their
// protection, with the period's pssh boxes; its fragments, a rotated
// key's among them (seig sample group, pssh in the moof), pass
// StoredHead and Inspect with the clear fragment's timing.
func TestTheRelaysEncryptionDescribesAndReads(t *testing.T) {
	_, _, inits := synthStream(t, synth.Config{Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 500_000}, {Kind: timeline.Audio, Bitrate: 96_000}}})
	videoInit, frag := storedVideoFragment(t, 60, 2*time.Second, 1)
	key, err := cenc.ParseKey("0123456789abcdef0123456789abcdef:00112233445566778899aabbccddeeff")
	if err != nil {
		t.Fatal(err)
	}
	next := key
	next.KID[0] = 0xfe
	period := func(k cenc.Key) cenc.Period {
		return cenc.Period{Key: k, PSSH: [][]byte{cenc.ClearKeyPSSH(k.KID), cenc.PSSH(cenc.PlayReady, []cenc.KID{k.KID}, []byte("pro"))}}
	}
	clearInfo, err := fmp4.Inspect(frag)
	if err != nil {
		t.Fatal(err)
	}
	_, moofAt, need, err := fmp4.StoredHead(frag)
	if err != nil {
		t.Fatal(err)
	}
	for _, scheme := range []cenc.Scheme{cenc.CBCS, cenc.CENC} {
		for i, init := range append(inits, videoInit) {
			tr, err := cenc.NewTrack(init, scheme)
			if err != nil {
				t.Fatal(err)
			}
			enc, err := tr.Init(period(key))
			if err != nil {
				t.Fatal(err)
			}
			want, err := fmp4.ParseInit(init)
			if err != nil {
				t.Fatal(err)
			}
			got, err := fmp4.ParseInit(enc)
			if err != nil {
				t.Fatalf("%s init %d: %v", scheme, i, err)
			}
			want.Protection = &timeline.Protection{Scheme: string(scheme), KID: key.KID.UUID(), Systems: []timeline.ProtectionSystem{
				{ID: cenc.ClearKey.UUID(), PSSH: period(key).PSSH[0]}, {ID: cenc.PlayReady.UUID(), PSSH: period(key).PSSH[1]}}}
			if !got.Equal(want) {
				t.Errorf("%s init %d:\n got %+v %+v\nwant %+v %+v", scheme, i, got, got.Protection, want, want.Protection)
			}
			if i < len(inits) {
				continue
			}
			for _, k := range []cenc.Key{key, next} {
				head, payload, err := tr.Fragment(frag[:need+8], frag[need+8:], period(k), key.KID)
				if err != nil {
					t.Fatal(err)
				}
				stored := append(bytes.Clone(head), payload...)
				info, err := fmp4.Inspect(stored)
				if err != nil || info != clearInfo {
					t.Errorf("%s, key %s: Inspect %+v, %v; the clear fragment's %+v", scheme, k.KID, info, err, clearInfo)
				}
				_, at, n, err := fmp4.StoredHead(stored)
				if err != nil || at != moofAt || n <= need || n > 64<<10 {
					t.Errorf("%s, key %s: StoredHead moof at %d, %d bytes (%v); clear %d bytes", scheme, k.KID, at, n, err, need)
				}
				if rotated := bytes.Contains(stored[at:n], []byte("sgpd")) && bytes.Contains(stored[at:n], []byte("pssh")); rotated != (k != key) {
					t.Errorf("%s, key %s: seig and pssh in the moof %v", scheme, k.KID, rotated)
				}
			}
		}
	}
}

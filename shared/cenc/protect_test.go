package cenc_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

func mustKey(t testing.TB, s string) cenc.Key {
	t.Helper()
	k, err := cenc.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The keys of two periods: the init's (1) and a rotated one (2).
func keys(t testing.TB) (k1, k2 cenc.Key) {
	return mustKey(t, "0123456789abcdef0123456789abcdef:00112233445566778899aabbccddeeff"),
		mustKey(t, "fedcba9876543210fedcba9876543210:ffeeddccbbaa99887766554433221100")
}

// period is k's period with a ClearKey and a Widevine pssh.
func period(k cenc.Key) cenc.Period {
	return cenc.Period{Key: k, PSSH: [][]byte{
		cenc.ClearKeyPSSH(k.KID),
		cenc.PSSH(cenc.Widevine, []cenc.KID{k.KID}, []byte("widevine header")),
	}}
}

// periodOf is the init's period, or the rotated one.
func periodOf(t testing.TB, rotated bool) cenc.Period {
	k1, k2 := keys(t)
	if rotated {
		return period(k2)
	}
	return period(k1)
}

// protected is a Track of s in scheme, and its init segment for the
// period of the first key.
func protected(t testing.TB, s stored, scheme cenc.Scheme) (*cenc.Track, []byte) {
	t.Helper()
	tr, err := cenc.NewTrack(s.init, scheme)
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := keys(t)
	init, err := tr.Init(period(k1))
	if err != nil {
		t.Fatal(err)
	}
	return tr, init
}

// wantConstantIV and wantFirstIV are the contract's derived IVs, written
// here again from the contract's words.
func wantConstantIV(k cenc.Key) []byte {
	m := hmac.New(sha256.New, k.Value[:])
	m.Write(append([]byte("smoothcast cbcs iv"), k.KID[:]...))
	return m.Sum(nil)[:16]
}

func wantFirstIV(k cenc.Key, trackID uint32, bmdt uint64) []byte {
	m := hmac.New(sha256.New, k.Value[:])
	b := append([]byte("smoothcast cenc iv"), binary.BigEndian.AppendUint32(nil, trackID)...)
	m.Write(binary.BigEndian.AppendUint64(b, bmdt))
	return m.Sum(nil)[:8]
}

func emsgBox(t testing.TB) []byte {
	t.Helper()
	e := &mp4.EmsgBox{SchemeIDURI: "urn:scte:scte35:2013:bin", TimeScale: 1000, EventDuration: 1000, ID: 7, MessageData: []byte{0xfc, 0x30, 0x11}}
	sw := bits.NewFixedSliceWriter(int(e.Size()))
	if err := e.EncodeSW(sw); err != nil {
		t.Fatal(err)
	}
	return sw.Bytes()
}

func audio(entry string) bool {
	return entry == "mp4a" || entry == "ac-3" || entry == "ec-3" || entry == "Opus"
}

// Every encryptable track, in both schemes, with the init's key and a
// rotated one, with and without an emsg in front: the stored bytes are
// not the clear ones, the caller's head and payload are left as they
// were, the emsg is kept in front, and Decrypt gives back the clear
// fragment byte for byte.
func TestEncryptedFragmentDecryptsToTheClearOne(t *testing.T) {
	k1, k2 := keys(t)
	ks := map[cenc.KID]cenc.Key{k1.KID: k1, k2.KID: k2}
	em := emsgBox(t)
	for name, s := range tracks(t) {
		for _, scheme := range []cenc.Scheme{cenc.CBCS, cenc.CENC} {
			for _, rotated := range []bool{false, true} {
				for _, emsg := range [][]byte{nil, em} {
					t.Run(fmt.Sprintf("%s/%s/rotated=%v/emsg=%v", name, scheme, rotated, emsg != nil), func(t *testing.T) {
						tr, init := protected(t, s, scheme)
						p := periodOf(t, rotated)
						head := join(emsg, s.head)
						payload := bytes.Clone(s.payload)
						keepHead, keepPayload := bytes.Clone(head), bytes.Clone(payload)
						nh, np, err := tr.Fragment(head, payload, p, k1.KID)
						if err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(head, keepHead) || !bytes.Equal(payload, keepPayload) {
							t.Fatal("Fragment wrote into the caller's head or payload")
						}
						if !bytes.HasPrefix(nh, emsg) || len(emsg) > 0 && nh[len(emsg)+4] != 'm' {
							t.Error("the emsg box is not kept in front of the moof")
						}
						if bytes.Equal(np, payload) || len(np) != len(payload) {
							t.Error("the encrypted payload is the clear one, or not its size")
						}
						clear, err := cenc.Decrypt(init, join(nh, np), ks)
						if err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(clear, join(head, payload)) {
							t.Errorf("decrypted fragment (%d bytes) is not the clear one (%d bytes)", len(clear), len(head)+len(payload))
						}
					})
				}
			}
		}
	}
}

// The protected init segment says what the contract says: encv/enca
// whose frma is the clear entry, schm of the scheme, tenc with the
// period's KID (cbcs: version 1, the 1:9 pattern for video, none for
// audio, the derived constant IV; cenc: version 0, 8-byte per-sample
// IVs), the period's pssh boxes in the moov; InitProtection reads it
// back, and a clear init as clear.
func TestProtectedInitSignalsTheScheme(t *testing.T) {
	k1, _ := keys(t)
	for name, s := range tracks(t) {
		for _, scheme := range []cenc.Scheme{cenc.CBCS, cenc.CENC} {
			t.Run(name+"/"+string(scheme), func(t *testing.T) {
				_, init := protected(t, s, scheme)
				moov := decodeMoov(t, init)
				var sinf *mp4.SinfBox
				switch e := moov.Trak.Mdia.Minf.Stbl.Stsd.Children[0].(type) {
				case *mp4.VisualSampleEntryBox:
					if e.Type() != "encv" || audio(s.entry) {
						t.Fatalf("sample entry %s for %s", e.Type(), s.entry)
					}
					sinf = e.Sinf
				case *mp4.AudioSampleEntryBox:
					if e.Type() != "enca" || !audio(s.entry) {
						t.Fatalf("sample entry %s for %s", e.Type(), s.entry)
					}
					sinf = e.Sinf
				default:
					t.Fatalf("sample entry %s", e.Type())
				}
				if sinf.Frma.DataFormat != s.entry {
					t.Errorf("frma %s, want %s", sinf.Frma.DataFormat, s.entry)
				}
				if sinf.Schm.SchemeType != string(scheme) || sinf.Schm.SchemeVersion != 0x10000 {
					t.Errorf("schm %s version %#x", sinf.Schm.SchemeType, sinf.Schm.SchemeVersion)
				}
				tenc := sinf.Schi.Tenc
				if !bytes.Equal(tenc.DefaultKID, k1.KID[:]) || tenc.DefaultIsProtected != 1 {
					t.Errorf("tenc KID %x protected %d", tenc.DefaultKID, tenc.DefaultIsProtected)
				}
				type want struct {
					version, crypt, skip, ivSize byte
					iv                           []byte
				}
				got := want{tenc.Version, tenc.DefaultCryptByteBlock, tenc.DefaultSkipByteBlock, tenc.DefaultPerSampleIVSize, tenc.DefaultConstantIV}
				w := want{version: 0, ivSize: 8}
				if scheme == cenc.CBCS {
					w = want{version: 1, crypt: 1, skip: 9, iv: wantConstantIV(k1)}
					if audio(s.entry) {
						w.crypt, w.skip = 0, 0
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(w) {
					t.Errorf("tenc %+v, want %+v", got, w)
				}
				var pssh [][]byte
				for _, p := range moov.Psshs {
					pssh = append(pssh, encode(t, p))
				}
				if !slices.EqualFunc(pssh, period(k1).PSSH, bytes.Equal) {
					t.Errorf("moov's pssh boxes are not the period's")
				}
				gs, gk, ok, err := cenc.InitProtection(init)
				if err != nil || !ok || gs != scheme || gk != k1.KID {
					t.Errorf("InitProtection: %s %s %v %v", gs, gk, ok, err)
				}
				if _, _, ok, err := cenc.InitProtection(s.init); ok || err != nil {
					t.Errorf("InitProtection of the clear init: %v %v", ok, err)
				}
			})
		}
	}
}

func encode(t testing.TB, b mp4.Box) []byte {
	t.Helper()
	sw := bits.NewFixedSliceWriter(int(b.Size()))
	if err := b.EncodeSW(sw); err != nil {
		t.Fatal(err)
	}
	return sw.Bytes()
}

// The encrypted fragment's boxes say what the contract says: senc of
// every sample (video: subsamples covering each sample, its NAL unit
// headers clear; cenc: the derived IVs counting up from the fragment's
// first), saiz sizes that match senc's entries and a saio pointing at
// the first; cbcs audio (whole samples, a constant IV) none of the three;
// the trun's data offset the mdat's data; and for a rotated key an sgpd
// of one seig entry, an sbgp of every sample, the period's pssh boxes in
// the moof (none of these for the init's key).
func TestEncryptedFragmentBoxes(t *testing.T) {
	k1, _ := keys(t)
	for name, s := range tracks(t) {
		for _, scheme := range []cenc.Scheme{cenc.CBCS, cenc.CENC} {
			for _, rotated := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/rotated=%v", name, scheme, rotated), func(t *testing.T) {
					tr, _ := protected(t, s, scheme)
					p := periodOf(t, rotated)
					nh, np, err := tr.Fragment(s.head, s.payload, p, k1.KID)
					if err != nil {
						t.Fatal(err)
					}
					checkBoxes(t, s, scheme, p, rotated, nh, np)
				})
			}
		}
	}
}

func checkBoxes(t *testing.T, s stored, scheme cenc.Scheme, p cenc.Period, rotated bool, nh, np []byte) {
	moofBytes := nh[:len(nh)-8]
	box, err := mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(moofBytes))
	if err != nil {
		t.Fatal(err)
	}
	moof := box.(*mp4.MoofBox)
	traf, trun := moof.Traf, moof.Traf.Trun
	n := int(trun.SampleCount())
	if int(trun.DataOffset) != len(nh) {
		t.Errorf("trun data offset %d, the mdat's data is at %d", trun.DataOffset, len(nh))
	}
	trun.AddSampleDefaultValues(traf.Tfhd, nil)
	isAudio := audio(s.entry)
	ivSize := byte(0)
	if scheme == cenc.CENC {
		ivSize = 8
	}
	if scheme == cenc.CBCS && isAudio {
		if traf.Senc != nil || traf.Saiz != nil || traf.Saio != nil {
			t.Error("cbcs audio with senc, saiz or saio")
		}
	} else {
		if traf.Senc == nil || traf.Saiz == nil || traf.Saio == nil {
			t.Fatal("no senc, saiz or saio")
		}
		// ParseReadSenc checks that saio points at senc's first entry.
		if err := traf.ParseReadSenc(ivSize, 0); err != nil {
			t.Fatal(err)
		}
		senc := traf.Senc
		if int(senc.SampleCount) != n {
			t.Errorf("senc of %d samples, trun of %d", senc.SampleCount, n)
		}
		if traf.Saiz.SampleCount != uint32(n) || len(traf.Saio.Offset) != 1 {
			t.Errorf("saiz of %d samples, saio of %d offsets", traf.Saiz.SampleCount, len(traf.Saio.Offset))
		}
		first := senc.StartPos + 16
		if uint64(traf.Saio.Offset[0]) != first {
			t.Errorf("saio offset %d, senc's first entry at %d", traf.Saio.Offset[0], first)
		}
		pos := 0
		for i := range n {
			size := int(ivSize)
			if scheme == cenc.CENC {
				want := binary.BigEndian.AppendUint64(nil, binary.BigEndian.Uint64(wantFirstIV(p.Key, traf.Tfhd.TrackID, traf.Tfdt.BaseMediaDecodeTime()))+uint64(i))
				if !bytes.Equal(senc.IVs[i], want) {
					t.Errorf("sample %d: IV %x, want %x", i, senc.IVs[i], want)
				}
			} else if len(senc.IVs) != 0 {
				t.Error("cbcs senc with per-sample IVs")
			}
			sample := trun.Samples[i].Size
			if isAudio {
				if len(senc.SubSamples) != 0 {
					t.Error("audio with subsamples")
				}
			} else {
				sum := uint32(0)
				for _, ss := range senc.SubSamples[i] {
					sum += uint32(ss.BytesOfClearData) + ss.BytesOfProtectedData
				}
				if sum != sample {
					t.Errorf("sample %d: subsamples cover %d of its %d bytes", i, sum, sample)
				}
				size += 2 + 6*len(senc.SubSamples[i])
				checkNALHeaders(t, s.entry, s.payload[pos:pos+int(sample)], np[pos:pos+int(sample)])
			}
			if got := traf.Saiz.DefaultSampleInfoSize; got == 0 && int(traf.Saiz.SampleInfo[i]) != size || got != 0 && int(got) != size {
				t.Errorf("sample %d: saiz says %d/%v, senc has %d", i, got, traf.Saiz.SampleInfo, size)
			}
			pos += int(sample)
		}
	}
	sgpd, sbgp := traf.Sgpd, traf.Sbgp
	var pssh [][]byte
	for _, b := range moof.Psshs {
		pssh = append(pssh, encode(t, b))
	}
	if !rotated {
		if sgpd != nil || sbgp != nil || len(pssh) != 0 {
			t.Error("a fragment of the init's key carries sgpd, sbgp or pssh")
		}
		return
	}
	if sgpd == nil || sbgp == nil || sgpd.GroupingType != "seig" || sbgp.GroupingType != "seig" {
		t.Fatal("no seig sgpd and sbgp")
	}
	if !slices.Equal(sbgp.SampleCounts, []uint32{uint32(n)}) || !slices.Equal(sbgp.GroupDescriptionIndices, []uint32{0x10001}) {
		t.Errorf("sbgp %v %v", sbgp.SampleCounts, sbgp.GroupDescriptionIndices)
	}
	seig := sgpd.SampleGroupEntries[0].(*mp4.SeigSampleGroupEntry)
	w := mp4.SeigSampleGroupEntry{IsProtected: 1, PerSampleIVSize: ivSize, KID: p.Key.KID[:]}
	if scheme == cenc.CBCS {
		w.ConstantIV = wantConstantIV(p.Key)
		if !isAudio {
			w.CryptByteBlock, w.SkipByteBlock = 1, 9
		}
	}
	if fmt.Sprint(*seig) != fmt.Sprint(w) || len(sgpd.SampleGroupEntries) != 1 {
		t.Errorf("seig %+v, want %+v", *seig, w)
	}
	if !slices.EqualFunc(pssh, p.PSSH, bytes.Equal) {
		t.Error("the moof's pssh boxes are not the period's")
	}
}

// checkNALHeaders checks that each NAL unit's length field and header
// (AVC: 1 byte, HEVC: 2) are clear in enc, the encrypted sample.
func checkNALHeaders(t *testing.T, entry string, clear, enc []byte) {
	hdr := map[string]int{"avc1": 1, "avc3": 1, "hvc1": 2, "hev1": 2}[entry]
	if hdr == 0 {
		return
	}
	for pos := 0; pos+4 <= len(clear); {
		n := int(binary.BigEndian.Uint32(clear[pos:]))
		if !bytes.Equal(clear[pos:pos+4+hdr], enc[pos:pos+4+hdr]) {
			t.Errorf("NAL unit at %d: length or header encrypted", pos)
		}
		pos += 4 + n
	}
}

// The encryption is a function of its inputs: two Tracks give the same
// init and fragment bytes for the same inputs; another key, or (cenc)
// another fragment time, gives other bytes.
func TestEncryptionIsDeterministic(t *testing.T) {
	k1, k2 := keys(t)
	s := synthStored(t, synth.Track{Kind: timeline.Video, Bitrate: 1_000_000}, 2)
	later := synthStored(t, synth.Track{Kind: timeline.Video, Bitrate: 1_000_000}, 4)
	for _, scheme := range []cenc.Scheme{cenc.CBCS, cenc.CENC} {
		t.Run(string(scheme), func(t *testing.T) {
			run := func(s stored, p cenc.Period) (init, frag []byte) {
				tr, err := cenc.NewTrack(s.init, scheme)
				if err != nil {
					t.Fatal(err)
				}
				if init, err = tr.Init(p); err != nil {
					t.Fatal(err)
				}
				h, b, err := tr.Fragment(s.head, s.payload, p, k1.KID)
				if err != nil {
					t.Fatal(err)
				}
				return init, join(h, b)
			}
			i1, f1 := run(s, period(k1))
			i2, f2 := run(s, period(k1))
			if !bytes.Equal(i1, i2) || !bytes.Equal(f1, f2) {
				t.Error("the same inputs gave different bytes")
			}
			i3, f3 := run(s, period(k2))
			if bytes.Equal(i1, i3) || bytes.Equal(f1, f3) {
				t.Error("another key gave the same bytes")
			}
			if scheme == cenc.CENC {
				_, f4 := run(later, period(k1))
				a, _ := cenc.Decrypt(i1, f1, map[cenc.KID]cenc.Key{k1.KID: k1})
				b, _ := cenc.Decrypt(i1, f4, map[cenc.KID]cenc.Key{k1.KID: k1})
				if ivs(t, f1) == ivs(t, f4) || a == nil || b == nil {
					t.Error("fragments at other times have the same IVs")
				}
			}
		})
	}
}

func ivs(t *testing.T, frag []byte) string {
	box, err := mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(frag))
	if err != nil {
		t.Fatal(err)
	}
	traf := box.(*mp4.MoofBox).Traf
	if err := traf.ParseReadSenc(8, 0); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(traf.Senc.IVs)
}

// A Track reuses one buffer for the payloads it returns.
func TestTrackReusesItsPayloadBuffer(t *testing.T) {
	k1, _ := keys(t)
	s := synthStored(t, synth.Track{Kind: timeline.Audio, Bitrate: 128_000}, 1)
	tr, err := cenc.NewTrack(s.init, cenc.CBCS)
	if err != nil {
		t.Fatal(err)
	}
	_, a, err := tr.Fragment(s.head, s.payload, period(k1), k1.KID)
	if err != nil {
		t.Fatal(err)
	}
	_, b, err := tr.Fragment(s.head, s.payload, period(k1), k1.KID)
	if err != nil {
		t.Fatal(err)
	}
	if &a[0] != &b[0] {
		t.Error("the second payload is in a new buffer")
	}
}

// Text and data tracks are not encrypted: NewTrack says ErrNotEncryptable.
func TestTextAndDataTracksAreNotEncryptable(t *testing.T) {
	for _, entry := range []string{"wvtt", "stpp", "tx3g", "evte"} {
		t.Run(entry, func(t *testing.T) {
			init := mp4.CreateEmptyInit()
			handler := map[string]string{"wvtt": "wvtt", "stpp": "subtitle", "tx3g": "text", "evte": "meta"}[entry]
			trak := init.AddEmptyTrack(1000, handler, "und")
			var err error
			switch entry {
			case "wvtt":
				err = trak.SetWvttDescriptor("")
			case "stpp":
				err = trak.SetStppDescriptor("", "", "")
			case "tx3g":
				trak.Mdia.Hdlr.HandlerType = "sbtl"
				trak.Mdia.Minf.Stbl.Stsd.AddChild(&mp4.UnknownBox{}) // replaced below
				trak.Mdia.Minf.Stbl.Stsd.Children = []mp4.Box{tx3gEntry(t)}
			case "evte":
				trak.Mdia.Minf.Stbl.Stsd.AddChild(&mp4.EvteBox{DataReferenceIndex: 1})
			}
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := init.Encode(&b); err != nil {
				t.Fatal(err)
			}
			for _, scheme := range []cenc.Scheme{cenc.CBCS, cenc.CENC} {
				if _, err := cenc.NewTrack(b.Bytes(), scheme); !errors.Is(err, cenc.ErrNotEncryptable) {
					t.Errorf("%s: %v, want ErrNotEncryptable", scheme, err)
				}
			}
		})
	}
}

// tx3gEntry is a 3GPP timed text sample entry, as ffmpeg writes one.
func tx3gEntry(t testing.TB) mp4.Box {
	t.Helper()
	payload := make([]byte, 38) // reserved, data_reference_index, display flags, justification, colour, box, style
	binary.BigEndian.PutUint16(payload[6:], 1)
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(payload)))
	b = append(append(b, "tx3g"...), payload...)
	box, err := mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return box
}

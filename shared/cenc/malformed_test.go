package cenc_test

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// setUint32 is b with the 4 bytes at i set to v (a copy).
func setUint32(b []byte, i int, v uint32) []byte {
	b = bytes.Clone(b)
	binary.BigEndian.PutUint32(b[i:], v)
	return b
}

// A malformed head, payload or init segment is an error, never a panic,
// and never encrypted bytes.
func TestMalformedInputIsAnError(t *testing.T) {
	k1, _ := keys(t)
	s := synthStored(t, synth.Track{Kind: timeline.Video, Bitrate: 500_000}, 1)
	moofSize := int(binary.BigEndian.Uint32(s.head))
	trunAt := bytes.Index(s.head, []byte("trun")) - 4
	two := bytes.Clone(s.head[:moofSize])
	trafAt := bytes.Index(two, []byte("traf")) - 4
	traf := two[trafAt : trafAt+int(binary.BigEndian.Uint32(two[trafAt:]))]
	two = setUint32(append(two, traf...), 0, uint32(moofSize+len(traf)))
	heads := []struct {
		name          string
		head, payload []byte
	}{
		{"empty head", nil, s.payload},
		{"head cut in the moof", s.head[:moofSize/2], s.payload},
		{"head without the mdat header", s.head[:moofSize], s.payload},
		{"a box other than emsg before the moof", join([]byte("\x00\x00\x00\x08free"), s.head), s.payload},
		{"moof size field 0", setUint32(s.head, 0, 0), s.payload},
		{"moof size past the head", setUint32(s.head, 0, uint32(len(s.head)+100)), s.payload},
		{"mdat size not the payload's", s.head, s.payload[:len(s.payload)-1]},
		{"bytes after the mdat header", join(s.head, []byte{0}), s.payload},
		{"trun larger than its box", setUint32(s.head, trunAt, 1<<20), s.payload},
		{"trun data offset past the mdat", setUint32(s.head, trunAt+16, uint32(len(s.head)+len(s.payload))), s.payload},
		{"moof of two trafs", join(two, s.head[moofSize:]), s.payload},
		{"not a moof", join([]byte("\x00\x00\x00\x10mdat"), make([]byte, 8)), s.payload},
	}
	for _, scheme := range []cenc.Scheme{cenc.CBCS, cenc.CENC} {
		tr, err := cenc.NewTrack(s.init, scheme)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range heads {
			t.Run(string(scheme)+"/"+tc.name, func(t *testing.T) {
				h, p, err := tr.Fragment(tc.head, tc.payload, period(k1), k1.KID)
				if err == nil {
					t.Fatalf("encrypted (%d+%d bytes), want an error", len(h), len(p))
				}
				t.Log(err)
			})
		}
		t.Run(string(scheme)+"/an encrypted fragment again", func(t *testing.T) {
			h, p, err := tr.Fragment(s.head, s.payload, period(k1), k1.KID)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := tr.Fragment(h, bytes.Clone(p), period(k1), k1.KID); err == nil {
				t.Error("encrypted an encrypted fragment")
			}
		})
		t.Run(string(scheme)+"/a pssh that is no box", func(t *testing.T) {
			p := period(k1)
			p.PSSH = append(p.PSSH, []byte("pssh"))
			if _, err := tr.Init(p); err == nil {
				t.Error("init segment made with a broken pssh")
			}
		})
	}
	a := synthStored(t, synth.Track{Kind: timeline.Audio, Bitrate: 64_000}, 1)
	moov := bytes.Index(s.init, []byte("moov")) - 4
	inits := []struct {
		name string
		init []byte
	}{
		{"empty", nil},
		{"ftyp alone", s.init[:moov]},
		{"cut in the moov", s.init[:moov+(len(s.init)-moov)/2]},
		{"two moovs", join(s.init, s.init[moov:])},
		{"without mvex", bytes.Replace(s.init, []byte("mvex"), []byte("free"), 1)},
		{"a fragment after the moov", join(s.init, s.head, s.payload)},
		{"garbage", bytes.Repeat([]byte{0xff}, 64)},
	}
	for _, tc := range inits {
		t.Run("init/"+tc.name, func(t *testing.T) {
			if _, err := cenc.NewTrack(tc.init, cenc.CBCS); err == nil {
				t.Error("NewTrack took it")
			}
			if _, _, _, err := cenc.InitProtection(tc.init); err == nil {
				t.Error("InitProtection took it")
			}
			if _, err := cenc.Decrypt(tc.init, a.fragment(), nil); err == nil {
				t.Error("Decrypt took it")
			}
		})
	}
	if _, err := cenc.NewTrack(s.init, "cens"); err == nil {
		t.Error("NewTrack took scheme cens")
	}
}

// Decrypt needs the fragment's key, and a protected init segment.
func TestDecryptNeedsTheKey(t *testing.T) {
	k1, k2 := keys(t)
	s := synthStored(t, synth.Track{Kind: timeline.Audio, Bitrate: 64_000}, 1)
	tr, init := protected(t, s, cenc.CENC)
	h, p, err := tr.Fragment(s.head, s.payload, period(k2), k1.KID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cenc.Decrypt(init, join(h, p), map[cenc.KID]cenc.Key{k1.KID: k1}); err == nil {
		t.Error("a rotated fragment decrypted without its key")
	}
	if _, err := cenc.Decrypt(s.init, join(h, p), map[cenc.KID]cenc.Key{k2.KID: k2}); err == nil {
		t.Error("decrypted with a clear init segment")
	}
}

// FuzzFragment encrypts arbitrary heads and payloads of a real track:
// never a panic, and what is encrypted decrypts to its payload.
func FuzzFragment(f *testing.F) {
	// Short fragments of small samples: the fuzzing engine's coverage
	// counters make each run slow in proportion to the media.
	short := func(k timeline.Kind) stored {
		return synthStoredOf(f, synth.Config{Tracks: []synth.Track{{Kind: k, Bitrate: 8_000}}, FragmentDuration: 200 * time.Millisecond}, 1)
	}
	s, a := short(timeline.Video), short(timeline.Audio)
	em := emsgBox(f)
	f.Add(s.head, s.payload, false, false)
	f.Add(join(em, s.head), s.payload, true, true)
	f.Add(a.head, a.payload, false, true)
	k1, k2 := keys(f)
	inits := map[bool]stored{false: s, true: a}
	f.Fuzz(func(t *testing.T, head, payload []byte, cbcs, rotated bool) {
		scheme := cenc.CENC
		if cbcs {
			scheme = cenc.CBCS
		}
		for _, st := range inits {
			tr, init := protected(t, st, scheme)
			h, b, err := tr.Fragment(head, payload, periodOf(t, rotated), k1.KID)
			if err != nil {
				continue
			}
			clear, err := cenc.Decrypt(init, join(h, b), map[cenc.KID]cenc.Key{k1.KID: k1, k2.KID: k2})
			if err != nil {
				t.Fatalf("encrypted, but does not decrypt: %v", err)
			}
			if !bytes.HasSuffix(clear, payload) {
				t.Fatal("decrypted payload is not the clear one")
			}
		}
	})
}

// FuzzInitProtection reads arbitrary init segments: never a panic; one
// that NewTrack takes protects into one InitProtection reads back.
func FuzzInitProtection(f *testing.F) {
	k1, _ := keys(f)
	for _, s := range []stored{
		synthStored(f, synth.Track{Kind: timeline.Video, Bitrate: 200_000}, 0),
		synthStored(f, synth.Track{Kind: timeline.Audio, Bitrate: 64_000}, 0),
	} {
		f.Add(s.init)
		tr, err := cenc.NewTrack(s.init, cenc.CBCS)
		if err != nil {
			f.Fatal(err)
		}
		init, err := tr.Init(period(k1))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(init)
	}
	f.Fuzz(func(t *testing.T, init []byte) {
		_, _, _, _ = cenc.InitProtection(init)
		tr, err := cenc.NewTrack(init, cenc.CENC)
		if err != nil {
			return
		}
		prot, err := tr.Init(period(k1))
		if err != nil {
			return
		}
		scheme, kid, ok, err := cenc.InitProtection(prot)
		if err != nil || !ok || scheme != cenc.CENC || kid != k1.KID {
			t.Fatalf("protected init reads back as %s %s %v %v", scheme, kid, ok, err)
		}
	})
}

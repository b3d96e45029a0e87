package manifesttest

import (
	"encoding/base64"
	"encoding/binary"
	"slices"
	"time"
	"unicode/utf16"

	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// The key IDs of the encrypted fixtures.
var (
	KID      = cenc.KID{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
	OtherKID = cenc.KID{0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10}
)

// FairPlayURI is the key URI of the fixtures' FairPlay pssh.
const FairPlayURI = "skd://keys.example/0123456789abcdef"

// Protection is the protection of a track encrypted with scheme and key
// kid, signalled for ClearKey, Widevine, PlayReady and FairPlay (each
// system's pssh as a key server's answer makes it: a Widevine header, a
// PlayReady Object, smoothcast's FairPlay convention).
func Protection(scheme cenc.Scheme, kid cenc.KID) *timeline.Protection {
	widevine := append([]byte{0x12, 0x10}, kid[:]...) // WidevinePsshData: key_ids
	systems := []struct {
		id   cenc.SystemID
		data []byte
	}{
		{cenc.ClearKey, nil},
		{cenc.Widevine, widevine},
		{cenc.PlayReady, PlayReadyObject(kid)},
		{cenc.FairPlay, []byte(FairPlayURI)},
	}
	p := &timeline.Protection{Scheme: string(scheme), KID: kid.UUID()}
	for _, s := range systems {
		p.Systems = append(p.Systems, timeline.ProtectionSystem{ID: s.id.UUID(), PSSH: cenc.PSSH(s.id, []cenc.KID{kid}, s.data)})
	}
	return p
}

// PlayReadyObject is a PlayReady Object of one record, a version 4.3
// PlayReady header naming kid (its form matters, not its content).
func PlayReadyObject(kid cenc.KID) []byte {
	guid := []byte{kid[3], kid[2], kid[1], kid[0], kid[5], kid[4], kid[7], kid[6]}
	guid = append(guid, kid[8:]...)
	xml := `<WRMHEADER xmlns="http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader" version="4.3.0.0"><DATA><PROTECTINFO><KIDS><KID ALGID="AESCBC" VALUE="` +
		base64.StdEncoding.EncodeToString(guid) + `"></KID></KIDS></PROTECTINFO></DATA></WRMHEADER>`
	var rec []byte
	for _, u := range utf16.Encode([]rune(xml)) {
		rec = binary.LittleEndian.AppendUint16(rec, u)
	}
	out := binary.LittleEndian.AppendUint32(nil, uint32(10+len(rec)))
	out = binary.LittleEndian.AppendUint16(out, 1) // one record
	out = binary.LittleEndian.AppendUint16(out, 1) // a PlayReady header
	out = binary.LittleEndian.AppendUint16(out, uint16(len(rec)))
	return append(out, rec...)
}

// Encrypted is Presentation(false) with its video and audio encrypted
// with scheme under one key (KID), as the relay encrypts a channel.
func Encrypted(scheme cenc.Scheme) *timeline.Presentation {
	p := Presentation(false)
	for i := range p.Tracks {
		p.Tracks[i].Protection = Protection(scheme, KID)
	}
	return p
}

// EncryptedPerTrack is Encrypted(cenc.CENC) with the 300k video rendition
// under another key (OtherKID) and signalled for ClearKey alone: its
// group's tracks share no protection.
func EncryptedPerTrack() *timeline.Presentation {
	p := Encrypted(cenc.CENC)
	p.Tracks[1].Protection = &timeline.Protection{Scheme: "cenc", KID: OtherKID.UUID(),
		Systems: []timeline.ProtectionSystem{{ID: cenc.ClearKey.UUID(), PSSH: cenc.ClearKeyPSSH(OtherKID)}}}
	return p
}

// ChangeVersion is the init segment version of ProtectionChange's
// encrypted middle: cbcs (its scheme names it, layout.InitKeyOf).
var ChangeVersion = string(cenc.CBCS)

// ProtectionChange is a channel whose protection changes twice: its
// tracks (Presentation's two video renditions and AAC audio, without the
// gap) begin clear (their first init segment, version ""), go cbcs under
// one key (KID, no rotation; version ChangeVersion, each track's Inits)
// for their fourth to sixth fragments and are clear again from the
// seventh (their first init's protection: version ""), each session's
// first fragment marked Disc, as the relay stores them. The states are
// built by TrackState.Apply from the arrivals.
func ProtectionChange() *timeline.Presentation {
	p := Presentation(false)
	versions := []string{"", "", "", ChangeVersion, ChangeVersion, ChangeVersion, "", "", ""}
	for i := range p.Tracks {
		tv := &p.Tracks[i]
		durs := videoDurations
		if tv.Kind == timeline.Audio {
			durs = audioDurations
		}
		tv.Inits = map[string]*timeline.Protection{ChangeVersion: Protection(cenc.CBCS, KID)}
		tv.State = VersionedState(slices.Concat(durs, durs)[:len(versions)], versions, tv.ID.Bitrate)
	}
	return p
}

// VersionedState is the track state TrackState.Apply makes of contiguous
// fragments of the given durations (10 MHz ticks) from 0, one encoder
// connection per run of equal versions (versions[i] the Init of fragment
// i, the first of each connection after the first marked Disc), in order.
func VersionedState(durs []uint64, versions []string, bitrate int) timeline.TrackState {
	var s timeline.TrackState
	var t uint64
	rules := timeline.Rules{GapTimeout: time.Minute}
	for i, d := range durs {
		a := timeline.Arrival{Fragment: timeline.Fragment{Start: t, Duration: d}, Size: int64(bitrate) * int64(d) / 8e7, Samples: int(d / 400000), Init: versions[i]}
		if i > 0 && versions[i] == versions[i-1] {
			a.HasPrev, a.Prev = true, t-durs[i-1]
		}
		a.Disc = i > 0 && !a.HasPrev
		if _, _, err := s.Apply(a, Epoch, rules); err != nil {
			panic(err)
		}
		t += d
	}
	return s
}

// ProtectionChangeEncryptedFirst is ProtectionChange the other way: its
// tracks' first init is cbcs under KID, they go clear (layout.ClearInit)
// for the fourth to sixth fragments, then cenc under OtherKID signalled
// for ClearKey alone (version "cenc").
func ProtectionChangeEncryptedFirst() *timeline.Presentation {
	p := ProtectionChange()
	cencV := string(cenc.CENC)
	versions := []string{"", "", "", layout.ClearInit, layout.ClearInit, layout.ClearInit, cencV, cencV, cencV}
	for i := range p.Tracks {
		tv := &p.Tracks[i]
		tv.Protection = Protection(cenc.CBCS, KID)
		tv.Inits = map[string]*timeline.Protection{layout.ClearInit: nil, cencV: {Scheme: "cenc", KID: OtherKID.UUID(),
			Systems: []timeline.ProtectionSystem{{ID: cenc.ClearKey.UUID(), PSSH: cenc.ClearKeyPSSH(OtherKID)}}}}
		var durs []uint64
		for e := range tv.State.Timeline.All() {
			durs = append(durs, e.Duration)
		}
		tv.State = VersionedState(durs, versions, tv.ID.Bitrate)
	}
	return p
}

// Package cenc is smoothcast's Common Encryption (ISO/IEC 23001-7): the
// schemes, key IDs, content keys and DRM system IDs the relay encrypts
// with and the manifests signal, and (protect.go) the protection of a
// track's init segment and the encryption of its fragments, over mp4ff's
// encryption support. A content key's value is never printed: Key's
// String and LogValue show its KID only.
package cenc

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// Scheme is a Common Encryption protection scheme (the schm box's type).
type Scheme string

// The schemes smoothcast encrypts with: cbcs (AES-CBC with a 1:9 pattern
// for video, whole blocks for audio, a constant IV: one copy for HLS and
// DASH, FairPlay, Widevine and PlayReady alike) and cenc (AES-CTR, for
// DASH players that know no cbcs).
const (
	CBCS Scheme = "cbcs"
	CENC Scheme = "cenc"
)

// ParseScheme reads a scheme's name ("cbcs" or "cenc").
func ParseScheme(s string) (Scheme, error) {
	switch Scheme(s) {
	case CBCS, CENC:
		return Scheme(s), nil
	}
	return "", fmt.Errorf("encryption scheme %q: want cbcs or cenc", s)
}

// KID is a key ID: 16 bytes, written as a UUID in manifests.
type KID [16]byte

// ErrBadKID is returned by ParseKID for a string that is no key ID.
var ErrBadKID = errors.New("a key ID is 32 hex digits, or a UUID")

// ParseKID reads a key ID written as 32 hex digits or as a UUID
// (8-4-4-4-12 hex digits).
func ParseKID(s string) (KID, error) {
	var k KID
	h := s
	if len(s) == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-' {
		h = s[:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	}
	if len(h) != 32 {
		return k, fmt.Errorf("%w: %q", ErrBadKID, s)
	}
	if _, err := hex.Decode(k[:], []byte(h)); err != nil {
		return k, fmt.Errorf("%w: %q", ErrBadKID, s)
	}
	return k, nil
}

// UUID writes the key ID as a lower-case UUID (cenc:default_KID, KEYID).
func (k KID) UUID() string {
	h := hex.EncodeToString(k[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// String is the key ID as a UUID.
func (k KID) String() string { return k.UUID() }

// Key is a content key: its ID and its 16-byte AES-128 value. Its value
// is secret: String and LogValue show the KID only.
type Key struct {
	KID   KID
	Value [16]byte
}

// ParseKey reads a key written "{KID hex}:{key hex}" (the key file's
// form), the value 32 hex digits.
func ParseKey(s string) (Key, error) {
	kid, value, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return Key{}, errors.New("a key is written {KID hex}:{key hex}")
	}
	var k Key
	var err error
	if k.KID, err = ParseKID(kid); err != nil {
		return Key{}, err
	}
	if len(value) != 32 {
		return Key{}, errors.New("a key's value is 32 hex digits (AES-128)")
	}
	if _, err := hex.Decode(k.Value[:], []byte(value)); err != nil {
		return Key{}, errors.New("a key's value is 32 hex digits (AES-128)")
	}
	return k, nil
}

// String shows the key's ID, never its value.
func (k Key) String() string { return "key " + k.KID.UUID() }

// LogValue shows the key's ID, never its value.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.KID.UUID()) }

// SystemID is a DRM system's ID (a pssh box's SystemID).
type SystemID = KID

// The DRM systems smoothcast signals.
var (
	// ClearKey is the W3C common PSSH system (EME's org.w3.clearkey).
	ClearKey = mustKID("1077efec-c0b2-4d02-ace3-3c1e52e2fb4b")
	// Widevine is Google's.
	Widevine = mustKID("edef8ba9-79d6-4ace-a3c8-27dcd51d21ed")
	// PlayReady is Microsoft's.
	PlayReady = mustKID("9a04f079-9840-4286-ab92-e65be0885f95")
	// FairPlay is Apple's (HLS only; its pssh, when present, is a
	// marker, the key URI is in the playlist).
	FairPlay = mustKID("94ce86fb-07ff-4f43-adb8-93d2fa968ca2")
)

// SystemName is a DRM system's short name, for logs, flags and docs
// ("clearkey", "widevine", "playready", "fairplay"), or its UUID.
func SystemName(id SystemID) string {
	switch id {
	case ClearKey:
		return "clearkey"
	case Widevine:
		return "widevine"
	case PlayReady:
		return "playready"
	case FairPlay:
		return "fairplay"
	}
	return id.UUID()
}

// ParseSystem reads a DRM system's short name or UUID.
func ParseSystem(s string) (SystemID, error) {
	for _, id := range []SystemID{ClearKey, Widevine, PlayReady, FairPlay} {
		if strings.EqualFold(s, SystemName(id)) {
			return id, nil
		}
	}
	id, err := ParseKID(s)
	if err != nil {
		return id, fmt.Errorf("DRM system %q: want clearkey, widevine, playready, fairplay or a system ID", s)
	}
	return id, nil
}

func mustKID(s string) KID {
	k, err := ParseKID(s)
	if err != nil {
		panic(err)
	}
	return k
}

// Period is what one key period of a channel encrypts with: its content
// key and the pssh boxes (whole boxes) of the DRM systems signalled for
// it. Without key rotation a channel has one period, 0.
type Period struct {
	Key  Key
	PSSH [][]byte
}

// PSSH makes a pssh box (version 1 when kids are given) of system id
// with data, the system's own header (a PlayReady Object, a Widevine
// header; for FairPlay, smoothcast's convention: the skd:// URI the HLS
// playlist gives as the key's URI).
func PSSH(id SystemID, kids []KID, data []byte) []byte {
	b := &mp4.PsshBox{SystemID: mp4.UUID(id[:]), Data: data}
	for _, k := range kids {
		b.KIDs = append(b.KIDs, mp4.UUID(k[:]))
	}
	if len(kids) > 0 {
		b.Version = 1
	}
	sw := bits.NewFixedSliceWriter(int(b.Size()))
	_ = b.EncodeSW(sw) // a fixed writer of the box's size cannot fail
	return sw.Bytes()
}

// ClearKeyPSSH is the W3C common pssh box (version 1) naming kids: what
// EME's org.w3.clearkey asks a license for.
func ClearKeyPSSH(kids ...KID) []byte { return PSSH(ClearKey, kids, nil) }

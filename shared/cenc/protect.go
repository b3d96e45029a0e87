package cenc

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/mp4box"
)

// ErrNotEncryptable is returned (wrapped) by NewTrack for a track
// smoothcast does not encrypt: a text or data track, or a codec mp4ff's
// encryption does not know. The relay stores such a track clear.
var ErrNotEncryptable = errors.New("track is not encryptable (text, data or an unsupported codec)")

// sampleEntries are the sample entries a Track encrypts: video by
// subsamples (NAL unit and slice headers, or AV1's OBU and frame headers,
// clear), audio whole.
var sampleEntries = map[string]string{
	"avc1": "video", "avc3": "video",
	"hvc1": "video", "hev1": "video", "dvh1": "video", "dvhe": "video",
	"av01": "video",
	"mp4a": "audio", "ac-3": "audio", "ec-3": "audio", "Opus": "audio",
}

// Track encrypts one track's fragments. One goroutine uses it: it owns
// and reuses the buffer Fragment returns the encrypted media in.
type Track struct {
	clearInit []byte
	scheme    Scheme
	trackID   uint32
	entry     string               // the clear sample entry's type (avc1, mp4a, ...)
	ipd       *mp4.InitProtectData // the pattern, trex and sample protector; keys come per call
	buf       []byte
}

// NewTrack prepares the encryption of the track whose clear init segment
// (ftyp and a moov of one track, as the relay stores it) is clearInit,
// with scheme. A text, data or unsupported track is ErrNotEncryptable.
func NewTrack(clearInit []byte, scheme Scheme) (*Track, error) {
	if _, err := ParseScheme(string(scheme)); err != nil {
		return nil, err
	}
	init, err := decodeInit(clearInit)
	if err != nil {
		return nil, err
	}
	trak := init.Moov.Trak
	t := &Track{clearInit: bytes.Clone(clearInit), scheme: scheme, trackID: trak.Tkhd.TrackID}
	entry := trak.Mdia.Minf.Stbl.Stsd.Children[0].Type()
	if entry == "encv" || entry == "enca" {
		return nil, fmt.Errorf("cenc: track %d: init segment is already protected (%s)", t.trackID, entry)
	}
	media, ok := sampleEntries[entry]
	if !ok {
		return nil, fmt.Errorf("cenc: track %d (%s, handler %q): %w", t.trackID, entry, trak.Mdia.Hdlr.HandlerType, ErrNotEncryptable)
	}
	if want := map[string]string{"video": "vide", "audio": "soun"}[media]; trak.Mdia.Hdlr.HandlerType != want {
		return nil, fmt.Errorf("cenc: track %d: %s sample entry in a %q track: %w", t.trackID, entry, trak.Mdia.Hdlr.HandlerType, ErrNotEncryptable)
	}
	t.entry = entry
	// The protection of a throw-away copy with a zero key gives what
	// every fragment needs but its key and IV: the tenc pattern, the trex
	// and the sample protector (parameter sets, sequence header).
	err = guard(func() error {
		t.ipd, err = mp4.InitProtect(init, make([]byte, 16), t.ivFor(Key{}), string(scheme), make(mp4.UUID, 16), nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cenc: track %d (%s): %w", t.trackID, entry, err)
	}
	if t.ipd.Trex == nil || t.ipd.Trex.TrackID != t.trackID {
		return nil, fmt.Errorf("cenc: track %d: init segment has no trex of the track", t.trackID)
	}
	return t, nil
}

// ivFor is the IV the init segment is protected with: cbcs's constant IV
// of k (HMAC-SHA256(key, "smoothcast cbcs iv" || KID)[:16]); for cenc 8
// bytes whose value is never written (each fragment's IVs are derived
// from its time: fragmentIV), only their size.
func (t *Track) ivFor(k Key) []byte {
	if t.scheme == CENC {
		return make([]byte, 8)
	}
	return constantIV(k)
}

// constantIV is the constant IV cbcs encrypts with under key k (in tenc,
// and in the seig of a fragment of a rotated key):
// HMAC-SHA256(key value, "smoothcast cbcs iv" || KID)[:16].
func constantIV(k Key) []byte {
	m := hmac.New(sha256.New, k.Value[:])
	m.Write([]byte("smoothcast cbcs iv"))
	m.Write(k.KID[:])
	return m.Sum(nil)[:16]
}

// firstIV is the 8-byte IV of a cenc fragment's first sample (the next
// samples' count up by one): HMAC-SHA256(key value, "smoothcast cenc iv"
// || track_ID (4 bytes BE) || baseMediaDecodeTime (8 bytes BE))[:8].
func firstIV(k Key, trackID uint32, baseMediaDecodeTime uint64) []byte {
	m := hmac.New(sha256.New, k.Value[:])
	var b [18 + 12]byte
	copy(b[:], "smoothcast cenc iv")
	binary.BigEndian.PutUint32(b[18:], trackID)
	binary.BigEndian.PutUint64(b[22:], baseMediaDecodeTime)
	m.Write(b[:])
	return m.Sum(nil)[:8]
}

// Init returns the track's protected init segment for period p: the
// sample entry becomes encv/enca with sinf (frma, schm, tenc: p's KID as
// the default KID; for cbcs, the pattern and p's constant IV), and p's
// pssh boxes go in the moov. The same track and period give the same
// bytes.
func (t *Track) Init(p Period) ([]byte, error) {
	init, err := decodeInit(t.clearInit)
	if err != nil {
		return nil, err
	}
	pssh, err := decodePSSH(p.PSSH)
	if err != nil {
		return nil, fmt.Errorf("cenc: track %d: %w", t.trackID, err)
	}
	err = guard(func() error {
		_, err := mp4.InitProtect(init, p.Key.Value[:], t.ivFor(p.Key), string(t.scheme), mp4.UUID(p.Key.KID[:]), pssh)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cenc: protect init segment of track %d: %w", t.trackID, err)
	}
	var b bytes.Buffer
	b.Grow(int(init.Size()))
	if err := init.Encode(&b); err != nil {
		return nil, fmt.Errorf("cenc: encode init segment of track %d: %w", t.trackID, err)
	}
	return b.Bytes(), nil
}

// Fragment encrypts one stored fragment of the track with period p's
// key. head is what precedes the media: any emsg boxes, the moof (one
// traf, one trun, a tfdt) and the mdat header; payload is the mdat's
// data. It returns the new head, a new slice (the emsg boxes as they
// were, the moof with senc, saiz and saio, its trun data offset moved by
// what the moof grew, and the mdat header as it was: the payload keeps
// its size), and the encrypted payload, in a buffer the Track owns and
// reuses: valid until the next call. cbcs audio (whole samples, a
// constant IV) has no senc, saiz nor saio (CMAF's recommendation, as
// mp4ff writes it). When p's key is not
// defaultKID (the init segment's), the traf also carries an sgpd of one
// seig entry (p's KID, and cbcs's pattern and constant IV or cenc's IV
// size) and an sbgp mapping every sample to it, and the moof p's pssh
// boxes (in-band key rotation). head and payload are never written to.
// The same inputs give the same bytes.
func (t *Track) Fragment(head, payload []byte, p Period, defaultKID KID) (newHead, newPayload []byte, err error) {
	emsgEnd, moofEnd, err := splitHead(head, len(payload))
	if err != nil {
		return nil, nil, fmt.Errorf("cenc: fragment of track %d (%s): %w", t.trackID, t.entry, err)
	}
	var pssh []*mp4.PsshBox
	rotated := p.Key.KID != defaultKID
	if rotated {
		if pssh, err = decodePSSH(p.PSSH); err != nil {
			return nil, nil, fmt.Errorf("cenc: fragment of track %d (%s): %w", t.trackID, t.entry, err)
		}
	}
	t.buf = append(t.buf[:0], payload...)
	err = guard(func() error {
		newHead, err = t.encrypt(head[emsgEnd:moofEnd], len(head)-moofEnd, p.Key, rotated, pssh)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("cenc: fragment of track %d (%s): %w", t.trackID, t.entry, err)
	}
	out := make([]byte, 0, emsgEnd+len(newHead)+len(head)-moofEnd)
	out = append(out, head[:emsgEnd]...)
	out = append(out, newHead...)
	out = append(out, head[moofEnd:]...)
	return out, t.buf, nil
}

// encrypt encrypts t.buf, the samples of moofBytes (followed by an mdat
// header of mdatHdr bytes), in place and returns the new moof.
func (t *Track) encrypt(moofBytes []byte, mdatHdr int, k Key, rotated bool, pssh []*mp4.PsshBox) ([]byte, error) {
	moof, err := decodeMoof(moofBytes)
	if err != nil {
		return nil, err
	}
	traf := moof.Traf
	if traf.Tfhd.TrackID != t.trackID {
		return nil, fmt.Errorf("traf of track %d in the fragment of track %d", traf.Tfhd.TrackID, t.trackID)
	}
	if traf.Tfdt == nil {
		return nil, errors.New("traf has no tfdt")
	}
	if traf.Senc != nil || traf.Saio != nil || traf.Saiz != nil || traf.UUIDSenc != nil || moof.Pssh != nil {
		return nil, errors.New("fragment is already encrypted (senc, saio, saiz or pssh in its moof)")
	}
	if traf.Tfhd.HasBaseDataOffset() || !traf.Trun.HasDataOffset() {
		return nil, errors.New("trun's data offset is not relative to the moof (base-data-offset in tfhd, or no data offset)")
	}
	if err := checkSamples(traf.Trun, t.ipd.Trex, traf.Tfhd, int64(traf.Trun.DataOffset)-int64(len(moofBytes)+mdatHdr), len(t.buf)); err != nil {
		return nil, err
	}
	frag := mp4.NewFragment()
	frag.AddChild(moof)
	frag.AddChild(&mp4.MdatBox{StartPos: uint64(len(moofBytes)), LargeSize: mdatHdr == 16, Data: t.buf})
	iv := constantIV(k)
	if t.scheme == CENC {
		iv = firstIV(k, t.trackID, traf.Tfdt.BaseMediaDecodeTime())
	}
	enc, err := t.ipd.NewFragmentEncryptor(k.Value[:], iv)
	if err != nil {
		return nil, err
	}
	// A stored fragment starts at a random access point: a new encryptor
	// (a new AV1 frame header state) per fragment is right.
	if err := enc.EncryptFragment(frag); err != nil {
		return nil, err
	}
	if rotated {
		t.rotate(moof, k, iv, pssh)
	}
	setSaio(moof)
	traf.Trun.DataOffset += int32(int64(moof.Size()) - int64(len(moofBytes)))
	sw := bits.NewFixedSliceWriter(int(moof.Size()))
	if err := moof.EncodeSW(sw); err != nil {
		return nil, fmt.Errorf("encode moof: %w", err)
	}
	return sw.Bytes(), nil
}

// rotate adds to moof what a fragment encrypted with a key other than
// its init segment's default needs: an sgpd of one seig entry and an sbgp
// mapping every sample to it in the traf, and the period's pssh boxes
// after the mfhd.
func (t *Track) rotate(moof *mp4.MoofBox, k Key, iv []byte, pssh []*mp4.PsshBox) {
	traf := moof.Traf
	seig := &mp4.SeigSampleGroupEntry{
		IsProtected: 1,
		KID:         mp4.UUID(bytes.Clone(k.KID[:])),
	}
	if t.scheme == CBCS {
		seig.CryptByteBlock, seig.SkipByteBlock = t.ipd.Tenc.DefaultCryptByteBlock, t.ipd.Tenc.DefaultSkipByteBlock
		seig.ConstantIV = iv
	} else {
		seig.PerSampleIVSize = 8
	}
	_ = traf.AddChild(&mp4.SbgpBox{
		GroupingType:            "seig",
		SampleCounts:            []uint32{traf.Trun.SampleCount()},
		GroupDescriptionIndices: []uint32{0x10001}, // the first entry of the traf's own sgpd
	})
	_ = traf.AddChild(&mp4.SgpdBox{
		Version:            1,
		GroupingType:       "seig",
		DefaultLength:      uint32(seig.Size()),
		SampleGroupEntries: []mp4.SampleGroupEntry{seig},
	})
	at := slices.IndexFunc(moof.Children, func(b mp4.Box) bool { return b.Type() == "traf" })
	boxes := make([]mp4.Box, len(pssh))
	for i, b := range pssh {
		boxes[i] = b
	}
	moof.Children = slices.Insert(moof.Children, at, boxes...)
	moof.Psshs = pssh
	if len(pssh) > 0 {
		moof.Pssh = pssh[0]
	}
}

// setSaio points the traf's saio, if any, at the first sample's entry in
// its senc: the offset, from the moof's start, of the senc's data.
func setSaio(moof *mp4.MoofBox) {
	traf := moof.Traf
	if traf.Saio == nil {
		return
	}
	offset := uint64(8) // the moof's header
	for _, c := range moof.Children {
		if c != mp4.Box(traf) {
			offset += c.Size()
			continue
		}
		offset += 8 // the traf's header
		for _, tc := range traf.Children {
			if tc == mp4.Box(traf.Senc) {
				traf.Saio.Offset[0] = int64(offset + 16) // full box header, sample count
				return
			}
			offset += tc.Size()
		}
	}
}

// checkSamples checks that trun's samples lie in a payload of n bytes
// from offset.
func checkSamples(trun *mp4.TrunBox, trex *mp4.TrexBox, tfhd *mp4.TfhdBox, offset int64, n int) error {
	trun.AddSampleDefaultValues(tfhd, trex)
	size := int64(0)
	for _, s := range trun.Samples {
		size += int64(s.Size)
	}
	if offset < 0 || offset+size > int64(n) {
		return fmt.Errorf("trun's %d samples (%d bytes from offset %d) lie outside the mdat's %d bytes", len(trun.Samples), size, offset, n)
	}
	return nil
}

// splitHead finds, in a stored fragment's head, where its emsg boxes end
// (the moof starts) and where its moof ends (the mdat header starts),
// and checks that the mdat header says payload bytes follow it.
func splitHead(head []byte, payload int) (emsgEnd, moofEnd int, err error) {
	emsgEnd, moofEnd, hdr, size, err := splitBoxes(head)
	if err != nil {
		return 0, 0, fmt.Errorf("head: %w", err)
	}
	if moofEnd+hdr != len(head) {
		return 0, 0, fmt.Errorf("head: %d bytes after the mdat header", len(head)-moofEnd-hdr)
	}
	if size != uint64(hdr+payload) {
		return 0, 0, fmt.Errorf("head: mdat of %d bytes holds a payload of %d", size, payload)
	}
	return emsgEnd, moofEnd, nil
}

// splitBoxes reads the boxes a stored fragment starts with: emsg boxes,
// a moof, an mdat header (the mdat's data may follow or not). It returns
// where the emsg boxes end, where the moof ends, and the mdat's header
// size and size.
func splitBoxes(b []byte) (emsgEnd, moofEnd, mdatHdr int, mdatSize uint64, err error) {
	for at := 0; ; {
		typ, size, _, err := boxAt(b, at)
		if err != nil {
			return 0, 0, 0, 0, err
		}
		if typ == "moof" {
			emsgEnd, moofEnd = at, at+int(size)
			break
		}
		if typ != "emsg" {
			return 0, 0, 0, 0, fmt.Errorf("%q box where a moof or emsg was expected", typ)
		}
		at += int(size)
	}
	typ, size, hdr, err := boxAt(b, moofEnd)
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("mdat: %w", err)
	}
	if typ != "mdat" {
		return 0, 0, 0, 0, fmt.Errorf("%q box after the moof where an mdat was expected", typ)
	}
	return emsgEnd, moofEnd, hdr, size, nil
}

// boxAt reads the header of the box at b[at:] (mp4box.Header): its
// type, its size and its header's size. A box that does not fit in b
// (but an mdat, whose data follows) is an error.
func boxAt(b []byte, at int) (typ string, size uint64, hdr int, err error) {
	typ, size, hdr, err = mp4box.Header(b[at:])
	switch {
	case err != nil:
		return "", 0, 0, fmt.Errorf("box at %d: %w", at, err)
	case size == 0:
		return "", 0, 0, fmt.Errorf("%q box at %d: size 0 (to the end of the file)", typ, at)
	case typ != "mdat" && size > uint64(len(b)-at):
		return "", 0, 0, fmt.Errorf("%q box at %d: %d bytes, %d left", typ, at, size, len(b)-at)
	}
	return typ, size, hdr, nil
}

// decodeMoof decodes a moof of one traf with a tfhd and one trun.
func decodeMoof(b []byte) (*mp4.MoofBox, error) {
	sr := bits.NewFixedSliceReader(b)
	box, err := mp4.DecodeBoxSR(0, sr)
	if err != nil {
		return nil, fmt.Errorf("decode moof: %w", err)
	}
	moof, ok := box.(*mp4.MoofBox)
	if !ok {
		return nil, fmt.Errorf("decode moof: got a %s box", box.Type())
	}
	if len(moof.Trafs) != 1 || moof.Traf.Tfhd == nil || len(moof.Traf.Truns) != 1 {
		return nil, fmt.Errorf("moof of %d trafs (want one, with a tfhd and one trun)", len(moof.Trafs))
	}
	return moof, nil
}

// decodeInit decodes an init segment of one audio or video track.
func decodeInit(b []byte) (*mp4.InitSegment, error) {
	var f *mp4.File
	err := guard(func() (err error) {
		f, err = mp4.DecodeFile(bytes.NewReader(b))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cenc: decode init segment: %w", err)
	}
	// mp4ff fills f.Init only for a moov whose sample tables are empty.
	moov := f.Moov
	moovs := 0
	for _, c := range f.Children {
		if c.Type() == "moov" {
			moovs++
		}
	}
	if moov == nil || moovs != 1 || len(moov.Traks) != 1 || len(f.Segments) != 0 {
		return nil, errors.New("cenc: init segment: want one moov, of one track, and no fragment")
	}
	trak := moov.Trak
	if trak.Tkhd == nil || trak.Mdia == nil || trak.Mdia.Hdlr == nil || trak.Mdia.Minf == nil ||
		trak.Mdia.Minf.Stbl == nil || trak.Mdia.Minf.Stbl.Stsd == nil || len(trak.Mdia.Minf.Stbl.Stsd.Children) != 1 {
		return nil, errors.New("cenc: init segment: track without tkhd, hdlr or one sample entry")
	}
	if moov.Mvex == nil || moov.Mvex.Trex == nil {
		return nil, fmt.Errorf("cenc: init segment of track %d has no mvex/trex", trak.Tkhd.TrackID)
	}
	init := mp4.NewMP4Init()
	if f.Ftyp != nil {
		init.AddChild(f.Ftyp)
	}
	init.AddChild(moov)
	return init, nil
}

// decodePSSH decodes whole pssh boxes.
func decodePSSH(boxes [][]byte) ([]*mp4.PsshBox, error) {
	out := make([]*mp4.PsshBox, 0, len(boxes))
	for i, b := range boxes {
		var box mp4.Box
		err := guard(func() (err error) {
			box, err = mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(b))
			return err
		})
		p, ok := box.(*mp4.PsshBox)
		if err != nil || !ok || p.Size() != uint64(len(b)) {
			return nil, fmt.Errorf("pssh %d of the key period is not one pssh box (%v)", i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// guard runs f, a panic in mp4ff (on malformed boxes) being an error.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed box: %v", r)
		}
	}()
	return f()
}

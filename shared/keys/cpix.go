package keys

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/cenc"
)

// The CPIX 2.3 documents of SPEKE v2.0 (AWS's "SPEKE API v2" pages:
// standard payload components, encryption contract, customizations and
// constraints; DASH-IF CPIX 2.3). The client's own: the key server
// stand-in (speketest) checks and answers the raw documents with a walk
// of its own, so that a mistake here cannot pass because both share it.
const (
	nsCPIX       = "urn:dashif:org:cpix"
	nsPSKC       = "urn:ietf:params:xml:ns:keyprov:pskc"
	cpixVersion  = "2.3"
	spekeVersion = "2.0"
)

// query is one SPEKE request: channel's key period n.
type query struct {
	channel   string
	n         uint64
	rotating  bool // a ContentKeyPeriodList and a KeyPeriodFilter
	contentID string
	kid       cenc.KID
	scheme    cenc.Scheme
	systems   []cenc.SystemID
}

// deriveKID is the KID of contentID's key period n: the first 16 bytes
// of HMAC-SHA256(salt, "smoothcast kid" 0 contentID 0 n (8 bytes BE)),
// marked as an RFC 9562 version 8 (custom) UUID. In SPEKE the encryptor
// makes the KIDs, and a key server answers the KID it is asked for
// (usually deriving the key from it): a KID that is a function of the
// channel and the period makes two relays (or a restarted one) ask for,
// and get, the same key for the same period, so they write the same
// bytes, as the relay's model requires. The salt keeps two deployments
// that share a key server and channel names from sharing keys.
func deriveKID(salt []byte, contentID string, n uint64) cenc.KID {
	m := hmac.New(sha256.New, salt)
	m.Write([]byte("smoothcast kid\x00"))
	m.Write([]byte(contentID))
	m.Write([]byte{0})
	m.Write(binary.BigEndian.AppendUint64(nil, n))
	var k cenc.KID
	copy(k[:], m.Sum(nil))
	k[6] = k[6]&0x0f | 0x80
	k[8] = k[8]&0x3f | 0x80
	return k
}

// periodID is the ContentKeyPeriod@id (an xs:ID) of period n.
func periodID(n uint64) string { return "keyPeriod_" + strconv.FormatUint(n, 10) }

// The request document, written with the cpix: and pskc: prefixes the
// specification's examples use.
type reqCPIX struct {
	XMLName   xml.Name         `xml:"cpix:CPIX"`
	NSCPIX    string           `xml:"xmlns:cpix,attr"`
	NSPSKC    string           `xml:"xmlns:pskc,attr"`
	ContentID string           `xml:"contentId,attr"`
	Version   string           `xml:"version,attr"`
	Keys      []reqContentKey  `xml:"cpix:ContentKeyList>cpix:ContentKey"`
	Systems   []reqDRMSystem   `xml:"cpix:DRMSystemList>cpix:DRMSystem"`
	Periods   *reqKeyPeriods   `xml:"cpix:ContentKeyPeriodList"`
	Rules     []reqContentRule `xml:"cpix:ContentKeyUsageRuleList>cpix:ContentKeyUsageRule"`
}

type reqContentKey struct {
	KID    string `xml:"kid,attr"`
	Scheme string `xml:"commonEncryptionScheme,attr"`
}

// reqDRMSystem asks for a system's signalling: the elements present
// (empty) are those the key server fills.
type reqDRMSystem struct {
	KID      string     `xml:"kid,attr"`
	SystemID string     `xml:"systemId,attr"`
	PSSH     *string    `xml:"cpix:PSSH"`
	CPD      *string    `xml:"cpix:ContentProtectionData"`
	HLS      []reqHLSSD `xml:"cpix:HLSSignalingData"`
	SSPHD    *string    `xml:"cpix:SmoothStreamingProtectionHeaderData"`
}

type reqHLSSD struct {
	Playlist string `xml:"playlist,attr"`
}

// reqKeyPeriods is the ContentKeyPeriodList, there only with rotation
// (the list must not be empty).
type reqKeyPeriods struct {
	Periods []reqKeyPeriod `xml:"cpix:ContentKeyPeriod"`
}

type reqKeyPeriod struct {
	ID    string `xml:"id,attr"`
	Index uint64 `xml:"index,attr"`
}

type reqContentRule struct {
	KID               string        `xml:"kid,attr"`
	IntendedTrackType string        `xml:"intendedTrackType,attr"`
	KeyPeriodFilter   *reqPeriodRef `xml:"cpix:KeyPeriodFilter"`
	AudioFilter       struct{}      `xml:"cpix:AudioFilter"`
	VideoFilter       struct{}      `xml:"cpix:VideoFilter"`
}

type reqPeriodRef struct {
	PeriodID string `xml:"periodId,attr"`
}

// requestDocument is q's CPIX request: one content key for every audio
// and video track (the encryption contract's intendedTrackType ALL,
// SPEKE's SHARED preset, with one bare AudioFilter and one bare
// VideoFilter), q's scheme, each system's signalling asked for (pssh,
// DASH ContentProtectionData and HLS media and master signalling;
// PlayReady's Smooth ProtectionHeader; FairPlay's HLS signalling only),
// and, with rotation, the period's ContentKeyPeriod@index.
func requestDocument(q query) []byte {
	kid := q.kid.UUID()
	doc := reqCPIX{
		NSCPIX: nsCPIX, NSPSKC: nsPSKC,
		ContentID: q.contentID, Version: cpixVersion,
		Keys:  []reqContentKey{{KID: kid, Scheme: string(q.scheme)}},
		Rules: []reqContentRule{{KID: kid, IntendedTrackType: "ALL"}},
	}
	empty := func() *string { s := ""; return &s }
	for _, id := range q.systems {
		s := reqDRMSystem{KID: kid, SystemID: id.UUID(), HLS: []reqHLSSD{{"media"}, {"master"}}}
		if id != cenc.FairPlay {
			s.PSSH, s.CPD = empty(), empty()
		}
		if id == cenc.PlayReady {
			s.SSPHD = empty()
		}
		doc.Systems = append(doc.Systems, s)
	}
	if q.rotating {
		doc.Periods = &reqKeyPeriods{[]reqKeyPeriod{{ID: periodID(q.n), Index: q.n}}}
		doc.Rules[0].KeyPeriodFilter = &reqPeriodRef{PeriodID: periodID(q.n)}
	}
	b, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic(err) // the document's types always marshal
	}
	return append([]byte(xml.Header), b...)
}

// The response document, read by namespace (whatever its prefixes).
type respCPIX struct {
	XMLName   xml.Name `xml:"urn:dashif:org:cpix CPIX"`
	ContentID string   `xml:"contentId,attr"`
	Version   string   `xml:"version,attr"`
	KeyList   []struct {
		Keys []respContentKey `xml:"urn:dashif:org:cpix ContentKey"`
	} `xml:"urn:dashif:org:cpix ContentKeyList"`
	SystemList []struct {
		Systems []respDRMSystem `xml:"urn:dashif:org:cpix DRMSystem"`
	} `xml:"urn:dashif:org:cpix DRMSystemList"`
	PeriodList []struct {
		Periods []struct {
			ID    string `xml:"id,attr"`
			Index string `xml:"index,attr"`
		} `xml:"urn:dashif:org:cpix ContentKeyPeriod"`
	} `xml:"urn:dashif:org:cpix ContentKeyPeriodList"`
}

type respContentKey struct {
	KID    string `xml:"kid,attr"`
	Scheme string `xml:"commonEncryptionScheme,attr"`
	Data   []struct {
		Secret []struct {
			Plain     []string   `xml:"urn:ietf:params:xml:ns:keyprov:pskc PlainValue"`
			Encrypted []struct{} `xml:"urn:ietf:params:xml:ns:keyprov:pskc EncryptedValue"`
		} `xml:"urn:ietf:params:xml:ns:keyprov:pskc Secret"`
	} `xml:"urn:dashif:org:cpix Data"`
}

type respDRMSystem struct {
	KID      string   `xml:"kid,attr"`
	SystemID string   `xml:"systemId,attr"`
	PSSH     []string `xml:"urn:dashif:org:cpix PSSH"`
	CPD      []string `xml:"urn:dashif:org:cpix ContentProtectionData"`
	HLS      []struct {
		Playlist string `xml:"playlist,attr"`
		Value    string `xml:",chardata"`
	} `xml:"urn:dashif:org:cpix HLSSignalingData"`
	SSPHD      []string `xml:"urn:dashif:org:cpix SmoothStreamingProtectionHeaderData"`
	URIExtXKey []string `xml:"urn:dashif:org:cpix URIExtXKey"`
}

// errEncryptedKeys: the key server encrypted the content key with a
// document key (SPEKE's content key encryption), which smoothcast does
// not ask for: keys come as pskc:PlainValue over HTTPS.
var errEncryptedKeys = errors.New("the content key is encrypted (pskc:EncryptedValue): smoothcast asks for plain values (pskc:PlainValue) over HTTPS")

// parseResponse reads the key server's answer to q: the key of the KID
// asked, and a whole pssh box per system asked, in q.systems' order
// (FairPlay's: smoothcast's convention, a pssh whose data is the skd://
// URI of the HLS signalling). Strict: everything asked must be there and
// be what was asked (contentId, version, KID, scheme, period); its
// errors name the channel and the period, never a key value.
func parseResponse(doc []byte, q query) (cenc.Period, error) {
	p, err := readResponse(doc, q)
	if err != nil {
		return cenc.Period{}, fmt.Errorf("channel %s: key period %d: SPEKE response: %w", q.channel, q.n, err)
	}
	return p, nil
}

func readResponse(doc []byte, q query) (cenc.Period, error) {
	var r respCPIX
	if err := xml.Unmarshal(doc, &r); err != nil {
		return cenc.Period{}, fmt.Errorf("not a CPIX document: %w", err)
	}
	if r.ContentID != q.contentID {
		return cenc.Period{}, fmt.Errorf("contentId %.80q, asked %q", r.ContentID, q.contentID)
	}
	if r.Version != cpixVersion {
		return cenc.Period{}, fmt.Errorf("CPIX version %.20q, asked %s", r.Version, cpixVersion)
	}
	if len(r.KeyList) != 1 || len(r.KeyList[0].Keys) != 1 {
		return cenc.Period{}, errors.New("want one ContentKeyList of one ContentKey")
	}
	ck := r.KeyList[0].Keys[0]
	kid, err := cenc.ParseKID(ck.KID)
	if err != nil {
		return cenc.Period{}, fmt.Errorf("ContentKey: %w", err)
	}
	if kid != q.kid {
		return cenc.Period{}, fmt.Errorf("the key server answered KID %s, asked %s", kid.UUID(), q.kid.UUID())
	}
	if ck.Scheme != string(q.scheme) {
		return cenc.Period{}, fmt.Errorf("commonEncryptionScheme %.10q, asked %s", ck.Scheme, q.scheme)
	}
	var p cenc.Period
	p.Key.KID = kid
	if p.Key.Value, err = contentKey(ck); err != nil {
		return cenc.Period{}, fmt.Errorf("KID %s: %w", kid.UUID(), err)
	}
	if q.rotating {
		if err := checkPeriod(r, q.n); err != nil {
			return cenc.Period{}, err
		}
	}
	if len(r.SystemList) != 1 {
		return cenc.Period{}, errors.New("want one DRMSystemList")
	}
	for _, id := range q.systems {
		s, err := findSystem(r.SystemList[0].Systems, id, kid)
		if err != nil {
			return cenc.Period{}, err
		}
		box, err := systemPSSH(s, id, kid)
		if err != nil {
			return cenc.Period{}, fmt.Errorf("DRM system %s: %w", cenc.SystemName(id), err)
		}
		p.PSSH = append(p.PSSH, box)
	}
	return p, nil
}

// contentKey is the 16-byte key of ck's pskc:PlainValue.
func contentKey(ck respContentKey) (v [16]byte, err error) {
	if len(ck.Data) != 1 || len(ck.Data[0].Secret) != 1 {
		return v, errors.New("no key (want one cpix:Data of one pskc:Secret)")
	}
	sec := ck.Data[0].Secret[0]
	if len(sec.Encrypted) > 0 {
		return v, errEncryptedKeys
	}
	if len(sec.Plain) != 1 {
		return v, errors.New("no key (pskc:PlainValue)")
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sec.Plain[0]))
	if err != nil || len(b) != len(v) {
		return v, errors.New("the key (pskc:PlainValue) is not 16 bytes of base64")
	}
	copy(v[:], b)
	return v, nil
}

// checkPeriod: the answer keeps the ContentKeyPeriod asked, index n.
func checkPeriod(r respCPIX, n uint64) error {
	if len(r.PeriodList) == 1 && len(r.PeriodList[0].Periods) == 1 {
		kp := r.PeriodList[0].Periods[0]
		if kp.ID == periodID(n) && kp.Index == strconv.FormatUint(n, 10) {
			return nil
		}
		return fmt.Errorf("ContentKeyPeriod %.40q index %.20q, asked %s index %d", kp.ID, kp.Index, periodID(n), n)
	}
	return fmt.Errorf("want the one ContentKeyPeriod asked (index %d)", n)
}

// findSystem is the one DRMSystem of id for kid.
func findSystem(systems []respDRMSystem, id cenc.SystemID, kid cenc.KID) (respDRMSystem, error) {
	var found []respDRMSystem
	for _, s := range systems {
		sid, err := cenc.ParseKID(s.SystemID)
		if err != nil || sid != id {
			continue
		}
		k, err := cenc.ParseKID(s.KID)
		if err != nil || k != kid {
			return respDRMSystem{}, fmt.Errorf("DRM system %s: KID %.40q, asked %s", cenc.SystemName(id), s.KID, kid.UUID())
		}
		found = append(found, s)
	}
	if len(found) != 1 {
		return respDRMSystem{}, fmt.Errorf("DRM system %s: %d DRMSystem elements for KID %s, want 1", cenc.SystemName(id), len(found), kid.UUID())
	}
	return found[0], nil
}

// systemPSSH checks s's answer (every element asked there and valid) and
// returns its pssh box.
func systemPSSH(s respDRMSystem, id cenc.SystemID, kid cenc.KID) ([]byte, error) {
	media, err := hlsSignaling(s)
	if err != nil {
		return nil, err
	}
	if id == cenc.FairPlay {
		uri, err := fairPlayURI(media, s.URIExtXKey)
		if err != nil {
			return nil, err
		}
		return cenc.PSSH(cenc.FairPlay, []cenc.KID{kid}, []byte(uri)), nil
	}
	box, err := onlyBase64(s.PSSH, "PSSH")
	if err != nil {
		return nil, err
	}
	if err := checkPSSHBox(box, id, kid); err != nil {
		return nil, err
	}
	cpd, err := onlyBase64(s.CPD, "ContentProtectionData")
	if err != nil {
		return nil, err
	}
	if err := checkContentProtection(cpd, box); err != nil {
		return nil, err
	}
	if id == cenc.PlayReady {
		if _, err := onlyBase64(s.SSPHD, "SmoothStreamingProtectionHeaderData"); err != nil {
			return nil, err
		}
	}
	return box, nil
}

// onlyBase64 decodes the one, non-empty, base64 element of a kind.
func onlyBase64(vs []string, name string) ([]byte, error) {
	if len(vs) != 1 {
		return nil, fmt.Errorf("want one %s, got %d", name, len(vs))
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(vs[0]))
	if err != nil {
		return nil, fmt.Errorf("%s: not base64: %w", name, err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%s: empty", name)
	}
	return b, nil
}

// hlsSignaling checks the two HLSSignalingData (media and master, as
// SPEKE v2 wants them) and returns the media playlist's text.
func hlsSignaling(s respDRMSystem) (media []byte, err error) {
	var master []byte
	for _, h := range s.HLS {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h.Value))
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("HLSSignalingData %.10q: empty or not base64", h.Playlist)
		}
		switch {
		case h.Playlist == "media" && media == nil:
			media = b
		case h.Playlist == "master" && master == nil:
			master = b
		default:
			return nil, fmt.Errorf("HLSSignalingData playlist %.10q: want one media and one master", h.Playlist)
		}
	}
	if media == nil || master == nil {
		return nil, errors.New("want HLSSignalingData for the media and the master playlists")
	}
	return media, nil
}

// fairPlayURI is the skd:// URI of the media playlist's EXT-X-KEY (or,
// from a key server that answers SPEKE v1's way too, of URIExtXKey).
func fairPlayURI(media []byte, uriExtXKey []string) (string, error) {
	uri := ""
	for _, line := range strings.Split(string(media), "\n") {
		line = strings.TrimSpace(line)
		if attrs, ok := strings.CutPrefix(line, "#EXT-X-KEY:"); ok {
			uri = hlsAttr(attrs, "URI")
			break
		}
	}
	if uri == "" && len(uriExtXKey) == 1 {
		if b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(uriExtXKey[0])); err == nil {
			uri = string(b)
		}
	}
	if !strings.HasPrefix(uri, "skd://") || len(uri) > 1024 || strings.ContainsAny(uri, "\"\r\n") {
		return "", errors.New("no skd:// URI in the media playlist's EXT-X-KEY")
	}
	return uri, nil
}

// hlsAttr is the quoted-string attribute name of an HLS attribute list.
func hlsAttr(list, name string) string {
	for list != "" {
		k, rest, ok := strings.Cut(list, "=")
		if !ok {
			return ""
		}
		k = strings.TrimSpace(k)
		var v string
		if strings.HasPrefix(rest, "\"") {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return ""
			}
			v, rest = rest[1:1+end], rest[2+end:]
			rest = strings.TrimPrefix(rest, ",")
		} else {
			v, rest, _ = strings.Cut(rest, ",")
		}
		if k == name {
			return v
		}
		list = rest
	}
	return ""
}

// checkPSSHBox: box is one whole pssh box of system id naming kid (when
// it names KIDs: version 1).
func checkPSSHBox(box []byte, id cenc.SystemID, kid cenc.KID) error {
	// The box's size is the data's, checked before mp4ff reads it (which
	// would allocate what a size field says).
	if len(box) < 8 || binary.BigEndian.Uint32(box) != uint32(len(box)) || string(box[4:8]) != "pssh" {
		return errors.New("PSSH: not one whole pssh box")
	}
	b, err := mp4.DecodeBox(0, bytes.NewReader(box))
	if err != nil {
		return fmt.Errorf("PSSH: not a pssh box: %w", err)
	}
	ps, ok := b.(*mp4.PsshBox)
	if !ok || int(ps.Size()) != len(box) {
		return errors.New("PSSH: not one whole pssh box")
	}
	if !bytes.Equal(ps.SystemID, id[:]) {
		return fmt.Errorf("PSSH: system %s, asked %s", cenc.KID(ps.SystemID).UUID(), id.UUID())
	}
	if len(ps.KIDs) == 0 {
		return nil
	}
	for _, k := range ps.KIDs {
		if bytes.Equal(k, kid[:]) {
			return nil
		}
	}
	return fmt.Errorf("PSSH: does not name KID %s", kid.UUID())
}

// checkContentProtection: the DASH signalling's pssh, if it has one, is
// the PSSH element's box (SPEKE v2: if both are there they are the same).
func checkContentProtection(cpd, box []byte) error {
	d := xml.NewDecoder(bytes.NewReader(cpd))
	d.Strict = false // a fragment: prefixes bound by the MPD, not here
	for {
		t, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("ContentProtectionData: not XML: %w", err)
		}
		se, ok := t.(xml.StartElement)
		if !ok || se.Name.Local != "pssh" {
			continue
		}
		var text string
		if err := d.DecodeElement(&text, &se); err != nil {
			return fmt.Errorf("ContentProtectionData: pssh: %w", err)
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
		if err != nil || !bytes.Equal(b, box) {
			return errors.New("ContentProtectionData's pssh is not the PSSH element's")
		}
	}
}

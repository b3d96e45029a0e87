// Package speketest is a SPEKE v2.0 key server stand-in for tests: an
// httptest server that checks every request document against the
// specification (AWS's SPEKE API v2 over DASH-IF CPIX 2.3: headers,
// namespaces, required elements and attributes, the encryption contract,
// the key periods), answers as a DRM vendor's key server would (a key
// derived from the KID, a pssh per DRM system asked, DASH
// ContentProtectionData, HLS media and master signalling with an skd://
// URI for FairPlay, PlayReady's Smooth protection header), can be told
// to fail (an error status, garbage, a hang, a wrong KID, no key, no
// pssh), and counts the requests per channel and key period.
//
// It reads the raw documents with its own walk, sharing no types with
// the client (package keys), so that a client's mistake cannot pass
// because both make it.
package speketest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/smoothcast/smoothcast/shared/cenc"
)

// Mode is how the stand-in answers a valid request.
type Mode int

// The modes.
const (
	// Answer: as a vendor's key server would.
	Answer Mode = iota
	// Unavailable: 503 Service Unavailable.
	Unavailable
	// Refuse: 403 Forbidden (a client error: not worth another try).
	Refuse
	// Garbage: 200 with a body that is no CPIX document.
	Garbage
	// Hang: no answer until the client gives up or the server closes.
	Hang
	// WrongKID: a CPIX answer whose ContentKey has another KID.
	WrongKID
	// NoKey: a CPIX answer whose ContentKey has no key.
	NoKey
	// NoPSSH: a CPIX answer whose PSSH elements are left empty.
	NoPSSH
)

// UserAgent is the stand-in's X-Speke-User-Agent.
const UserAgent = "smoothcast-speketest/1.0"

// Options configure a Server.
type Options struct {
	// ContentIDPrefix is taken off CPIX@contentId to name the channel
	// requests are counted under.
	ContentIDPrefix string
	// Credentials, when set, are the only ones a request may be signed
	// with: every request must carry a valid AWS SigV4 signature of
	// service execute-api in Region (an API Gateway with IAM auth).
	Credentials *aws.Credentials
	// Region of the signatures checked.
	Region string
	// AllowViolations keeps requests that break the specification from
	// failing the test (they are answered 422 and listed by Violations).
	AllowViolations bool
}

// Server is the stand-in. Its methods are safe for concurrent use.
type Server struct {
	// URL is the SPEKE endpoint to POST to.
	URL string

	opts    Options
	srv     *httptest.Server
	closing chan struct{}

	mu         sync.Mutex
	mode       Mode
	counts     map[slot]int
	docs       map[slot][]byte
	violations []string
	changed    chan struct{} // closed and replaced on every count
}

type slot struct {
	channel string
	period  uint64
}

// New starts a stand-in, closed when the test ends, and then fails the
// test for each request that broke the specification (unless
// opts.AllowViolations).
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{opts: opts, closing: make(chan struct{}), counts: map[slot]int{}, docs: map[slot][]byte{}, changed: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL + "/speke/v2.0/copyProtection"
	t.Cleanup(func() {
		close(s.closing)
		s.srv.Close()
		if !opts.AllowViolations {
			for _, v := range s.Violations() {
				t.Errorf("SPEKE request against the specification: %s", v)
			}
		}
	})
	return s
}

// Fail sets how the next requests are answered (Answer: normally).
func (s *Server) Fail(m Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode = m
}

// Requests is the number of valid requests for channel's key period
// (0 for a request without key periods), answered or failed.
func (s *Server) Requests(channel string, period uint64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[slot{channel, period}]
}

// Total is the number of valid requests.
func (s *Server) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.counts {
		n += c
	}
	return n
}

// Document is the last valid request document for channel's period.
func (s *Server) Document(channel string, period uint64) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.docs[slot{channel, period}]
}

// WaitRequests waits until channel's period has had n requests, or ctx
// ends.
func (s *Server) WaitRequests(ctx context.Context, channel string, period uint64, n int) error {
	for {
		s.mu.Lock()
		got, ch := s.counts[slot{channel, period}], s.changed
		s.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("channel %s period %d: %d requests, waiting for %d: %w", channel, period, got, n, ctx.Err())
		}
	}
}

// Violations are the specification's rules the requests broke, one line
// per request refused.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.violations...)
}

// Key is the content key the stand-in gives for kid (the same in every
// Server): HMAC-SHA256("speketest", kid)[:16].
func Key(kid cenc.KID) cenc.Key {
	m := hmac.New(sha256.New, []byte("speketest"))
	m.Write(kid[:])
	k := cenc.Key{KID: kid}
	copy(k.Value[:], m.Sum(nil))
	return k
}

// FairPlayURI is the skd:// URI the stand-in's FairPlay signalling gives
// for kid.
func FairPlayURI(kid cenc.KID) string { return "skd://speketest/" + hex.EncodeToString(kid[:]) }

const maxRequest = 1 << 20

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequest+1))
	if err != nil {
		http.Error(w, "reading the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	a, err := s.check(r, body)
	if err != nil {
		s.mu.Lock()
		s.violations = append(s.violations, err.Error())
		s.mu.Unlock()
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	s.mu.Lock()
	mode := s.mode
	for _, k := range a.keys {
		sl := slot{strings.TrimPrefix(a.contentID, s.opts.ContentIDPrefix), k.period}
		s.counts[sl]++
		s.docs[sl] = body
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	switch mode {
	case Unavailable:
		http.Error(w, "key server unavailable", http.StatusServiceUnavailable)
		return
	case Refuse:
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	case Garbage:
		w.Header().Set("Content-Type", "application/xml")
		w.Header().Set("X-Speke-Version", "2.0")
		_, _ = w.Write([]byte("<html>502 Bad Gateway</html"))
		return
	case Hang:
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		return
	}
	root, _ := parse(body) // checked
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("X-Speke-Version", r.Header.Get("X-Speke-Version"))
	w.Header().Set("X-Speke-User-Agent", UserAgent)
	_, _ = io.WriteString(w, respond(root, mode))
}

// Respond is the stand-in's answer (mode Answer) to a request document,
// or the specification's rule it breaks; without HTTP, so without the
// headers' checks: for fuzz seeds and benchmarks.
func Respond(request []byte) ([]byte, error) {
	root, err := parse(request)
	if err != nil {
		return nil, fmt.Errorf("not an XML document: %w", err)
	}
	if _, err := checkRequest(root); err != nil {
		return nil, err
	}
	return []byte(respond(root, Answer)), nil
}

// respond fills the checked request document in and writes it.
func respond(root *node, mode Mode) string {
	answer(root, mode)
	var out strings.Builder
	out.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	write(&out, root, map[string]string{nsCPIX: "cpix", nsPSKC: "pskc"}, true)
	return out.String()
}

// check checks the request: its signature (when asked), headers and
// document.
func (s *Server) check(r *http.Request, body []byte) (asked, error) {
	if len(body) > maxRequest {
		return asked{}, errors.New("request longer than 1 MiB")
	}
	if s.opts.Credentials != nil {
		if err := checkSigV4(r, body, *s.opts.Credentials, s.opts.Region); err != nil {
			return asked{}, err
		}
	}
	if err := checkHeaders(r); err != nil {
		return asked{}, err
	}
	root, err := parse(body)
	if err != nil {
		return asked{}, fmt.Errorf("not an XML document: %w", err)
	}
	return checkRequest(root)
}

// checkSigV4 checks the request's AWS SigV4 signature by signing it
// again, at its X-Amz-Date, with creds.
func checkSigV4(r *http.Request, body []byte, creds aws.Credentials, region string) error {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return fmt.Errorf("SigV4: Authorization %q is not AWS4-HMAC-SHA256", auth)
	}
	var signed []string
	for _, part := range strings.Split(rest, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "SignedHeaders="); ok {
			signed = strings.Split(v, ";")
		}
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("SigV4: X-Amz-Date %q", r.Header.Get("X-Amz-Date"))
	}
	again, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	for _, h := range signed {
		if h != "host" && h != "content-length" {
			again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	again.ContentLength = r.ContentLength
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hex.EncodeToString(sum[:]), "execute-api", region, at); err != nil {
		return fmt.Errorf("SigV4: %w", err)
	}
	if want := again.Header.Get("Authorization"); want != auth {
		return fmt.Errorf("SigV4: signature does not match (got %q, want %q)", auth, want)
	}
	return nil
}

// answer fills the checked request document in as a vendor's key
// server does: each ContentKey's key, each DRMSystem's elements asked.
func answer(root *node, mode Mode) {
	contentID, _ := root.attr("contentId")
	schemes := map[cenc.KID]string{}
	for _, list := range root.children(nsCPIX, "ContentKeyList") {
		for _, ck := range list.kids {
			kid, _ := kidAttr(ck)
			schemes[kid], _ = ck.attr("commonEncryptionScheme")
			if mode == WrongKID {
				other := kid
				other[15] ^= 0xff
				ck.setAttr("kid", other.UUID())
			}
			if mode == NoKey {
				continue
			}
			key := Key(kid)
			ck.kids = append(ck.kids, &node{name: xmlName(nsCPIX, "Data"), kids: []*node{
				{name: xmlName(nsPSKC, "Secret"), kids: []*node{
					{name: xmlName(nsPSKC, "PlainValue"), text: base64.StdEncoding.EncodeToString(key.Value[:])},
				}},
			}})
		}
	}
	for _, list := range root.children(nsCPIX, "DRMSystemList") {
		for _, ds := range list.kids {
			kid, _ := kidAttr(ds)
			sidText, _ := ds.attr("systemId")
			sid, _ := cenc.ParseKID(sidText)
			sig := signalling(sid, kid, schemes[kid], contentID)
			for _, k := range ds.kids {
				switch k.name.Local {
				case "PSSH":
					if mode != NoPSSH {
						k.text = b64(sig.pssh)
					}
				case "ContentProtectionData":
					k.text = b64([]byte(sig.dash))
				case "HLSSignalingData":
					if p, _ := k.attr("playlist"); p == "master" {
						k.text = b64([]byte(sig.hlsMaster))
					} else {
						k.text = b64([]byte(sig.hlsMedia))
					}
				case "SmoothStreamingProtectionHeaderData":
					k.text = b64(sig.smooth)
				}
			}
		}
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// systemSignalling is what a vendor answers for one system and key.
type systemSignalling struct {
	pssh                []byte // whole box
	dash                string // ContentProtectionData
	hlsMedia, hlsMaster string // EXT-X-KEY, EXT-X-SESSION-KEY
	smooth              []byte // the PlayReady Object
}

// signalling is a vendor's answer for system sid and kid: Widevine's
// pssh holds a WidevinePsshData (key_id, content_id, protection_scheme),
// PlayReady's a PlayReady Object (WRM header 4.3), FairPlay's an skd://
// URI (the HLS signalling's; its pssh, smoothcast's convention).
func signalling(sid, kid cenc.KID, scheme, contentID string) systemSignalling {
	method := "SAMPLE-AES"
	if scheme == "cenc" || scheme == "cens" {
		method = "SAMPLE-AES-CTR"
	}
	var s systemSignalling
	var keyFormat, uri string
	switch sid {
	case cenc.Widevine:
		s.pssh = cenc.PSSH(sid, []cenc.KID{kid}, widevineData(kid, scheme, contentID))
		keyFormat = "urn:uuid:" + sid.UUID()
		uri = "data:text/plain;base64," + b64(s.pssh)
	case cenc.PlayReady:
		s.smooth = playReadyObject(kid, scheme)
		s.pssh = cenc.PSSH(sid, []cenc.KID{kid}, s.smooth)
		keyFormat = "com.microsoft.playready"
		uri = "data:text/plain;charset=UTF-16;base64," + b64(s.smooth)
	case cenc.FairPlay:
		uri = FairPlayURI(kid)
		s.pssh = cenc.PSSH(sid, []cenc.KID{kid}, []byte(uri))
		keyFormat = "com.apple.streamingkeydelivery"
	default:
		s.pssh = cenc.PSSH(sid, []cenc.KID{kid}, []byte("speketest"))
		keyFormat = "urn:uuid:" + sid.UUID()
		uri = "data:text/plain;base64," + b64(s.pssh)
	}
	s.dash = `<cenc:pssh xmlns:cenc="urn:mpeg:cenc:2013">` + b64(s.pssh) + `</cenc:pssh>`
	if sid == cenc.PlayReady {
		s.dash += `<mspr:pro xmlns:mspr="urn:microsoft:playready">` + b64(s.smooth) + `</mspr:pro>`
	}
	attrs := fmt.Sprintf(`METHOD=%s,URI="%s",KEYID=0x%X,KEYFORMAT="%s",KEYFORMATVERSIONS="1"`, method, uri, kid[:], keyFormat)
	s.hlsMedia = "#EXT-X-KEY:" + attrs + "\n"
	s.hlsMaster = "#EXT-X-SESSION-KEY:" + attrs + "\n"
	return s
}

// widevineData is a WidevinePsshData protobuf: key_ids (2), content_id
// (4), protection_scheme (9, the scheme's fourcc).
func widevineData(kid cenc.KID, scheme, contentID string) []byte {
	b := []byte{0x12, 16}
	b = append(b, kid[:]...)
	b = append(b, 0x22)
	b = binary.AppendUvarint(b, uint64(len(contentID)))
	b = append(b, contentID...)
	if len(scheme) == 4 {
		b = append(b, 0x48)
		b = binary.AppendUvarint(b, uint64(binary.BigEndian.Uint32([]byte(scheme))))
	}
	return b
}

// playReadyObject is a PlayReady Object of one record: a WRM header
// (version 4.3) naming kid (in PlayReady's GUID byte order) with the
// scheme's algorithm, in UTF-16LE.
func playReadyObject(kid cenc.KID, scheme string) []byte {
	g := kid
	g[0], g[1], g[2], g[3] = g[3], g[2], g[1], g[0]
	g[4], g[5] = g[5], g[4]
	g[6], g[7] = g[7], g[6]
	alg := "AESCBC"
	if scheme == "cenc" || scheme == "cens" {
		alg = "AESCTR"
	}
	header := `<WRMHEADER xmlns="http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader" version="4.3.0.0"><DATA><PROTECTINFO><KIDS><KID ALGID="` +
		alg + `" VALUE="` + b64(g[:]) + `"></KID></KIDS></PROTECTINFO><LA_URL>https://speketest.invalid/playready</LA_URL></DATA></WRMHEADER>`
	var rec []byte
	for _, u := range utf16.Encode([]rune(header)) {
		rec = binary.LittleEndian.AppendUint16(rec, u)
	}
	out := binary.LittleEndian.AppendUint32(nil, uint32(4+2+2+2+len(rec)))
	out = binary.LittleEndian.AppendUint16(out, 1) // one record
	out = binary.LittleEndian.AppendUint16(out, 1) // a WRM header
	out = binary.LittleEndian.AppendUint16(out, uint16(len(rec)))
	return append(out, rec...)
}

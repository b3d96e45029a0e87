package speketest

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/smoothcast/smoothcast/shared/cenc"
)

// What the checks follow: AWS's "SPEKE API v2" pages (customizations and
// constraints to the DASH-IF specification, standard payload components,
// encryption contract, live workflow method call examples) over DASH-IF
// CPIX 2.3. The error messages are the specification's where it has one.
const (
	nsCPIX  = "urn:dashif:org:cpix"
	nsPSKC  = "urn:ietf:params:xml:ns:keyprov:pskc"
	nsSPEKE = "urn:aws:amazon:com:speke"
)

// asked is what a valid request asks: per content key, its KID, scheme
// and key period (the ContentKeyPeriod@index its usage rule's
// KeyPeriodFilter names; 0 without one).
type asked struct {
	contentID string
	keys      []askedKey
}

type askedKey struct {
	kid    cenc.KID
	scheme string
	period uint64
}

// checkHeaders checks a request's method and SPEKE headers.
func checkHeaders(r *http.Request) error {
	if r.Method != http.MethodPost {
		return fmt.Errorf("method %s: SPEKE requests are POSTs", r.Method)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/xml") {
		return fmt.Errorf("Content-Type %q: want application/xml", ct)
	}
	if v := r.Header.Get("X-Speke-Version"); v != "2.0" {
		return fmt.Errorf("Unsupported SPEKE version (X-Speke-Version %q, want 2.0)", v)
	}
	return nil
}

// checkRequest checks a request document against SPEKE v2.0 and returns
// what it asks.
func checkRequest(root *node) (asked, error) {
	var a asked
	if root.name.Space != nsCPIX || root.name.Local != "CPIX" {
		return a, fmt.Errorf("root element {%s}%s: want cpix:CPIX", root.name.Space, root.name.Local)
	}
	// The CPIX element's mandatory attributes include the cpix and pskc
	// namespace declarations.
	for _, p := range []struct{ prefix, ns string }{{"cpix", nsCPIX}, {"pskc", nsPSKC}} {
		declared := false
		for _, at := range root.attrs {
			if at.Name.Space == "xmlns" && at.Name.Local == p.prefix && at.Value == p.ns {
				declared = true
			}
		}
		if !declared {
			return a, fmt.Errorf("CPIX: no xmlns:%s=%q", p.prefix, p.ns)
		}
	}
	var ok bool
	if a.contentID, ok = root.attr("contentId"); !ok || a.contentID == "" {
		return a, fmt.Errorf("Missing CPIX@contentId")
	}
	version, ok := root.attr("version")
	if !ok || version == "" {
		return a, fmt.Errorf("Missing CPIX@version")
	}
	if version != "2.3" {
		return a, fmt.Errorf("Unsupported CPIX@version (%q, want 2.3)", version)
	}
	for _, k := range root.kids {
		if k.name.Space == nsSPEKE {
			return a, fmt.Errorf("speke:%s: the speke namespace is SPEKE v1's (deprecated in v2)", k.name.Local)
		}
		if k.name.Space != nsCPIX {
			return a, fmt.Errorf("unknown element {%s}%s in CPIX", k.name.Space, k.name.Local)
		}
		switch k.name.Local {
		case "ContentKeyList", "DRMSystemList", "ContentKeyUsageRuleList", "ContentKeyPeriodList", "DeliveryDataList":
		default:
			return a, fmt.Errorf("cpix:%s: not an element of a SPEKE v2 document", k.name.Local)
		}
	}
	lists := map[string]*node{}
	for _, name := range []string{"ContentKeyList", "DRMSystemList", "ContentKeyUsageRuleList", "ContentKeyPeriodList"} {
		l := root.children(nsCPIX, name)
		optional := name == "ContentKeyPeriodList"
		if len(l) > 1 || (len(l) == 0 && !optional) {
			return a, fmt.Errorf("CPIX: %d %s, want one", len(l), name)
		}
		if len(l) == 1 {
			lists[name] = l[0]
		}
	}
	keys, err := checkContentKeys(lists["ContentKeyList"])
	if err != nil {
		return a, err
	}
	if err := checkDRMSystems(lists["DRMSystemList"], keys); err != nil {
		return a, err
	}
	periods, err := checkPeriods(lists["ContentKeyPeriodList"])
	if err != nil {
		return a, err
	}
	keyPeriods, err := checkContract(lists["ContentKeyUsageRuleList"], keys, periods)
	if err != nil {
		return a, err
	}
	for _, kid := range keyOrder(lists["ContentKeyList"]) {
		a.keys = append(a.keys, askedKey{kid: kid, scheme: keys[kid], period: keyPeriods[kid]})
	}
	return a, nil
}

// onlyKids checks that n's children are cpix elements of the names given.
func onlyKids(n *node, names ...string) error {
	for _, k := range n.kids {
		if k.name.Space != nsCPIX || !contains(names, k.name.Local) {
			return fmt.Errorf("%s: unexpected element {%s}%s", n.name.Local, k.name.Space, k.name.Local)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// kidAttr is n's kid attribute, a UUID.
func kidAttr(n *node) (cenc.KID, error) {
	s, ok := n.attr("kid")
	if !ok {
		return cenc.KID{}, fmt.Errorf("%s: no kid", n.name.Local)
	}
	if len(s) != 36 {
		return cenc.KID{}, fmt.Errorf("%s@kid %q: want a UUID", n.name.Local, s)
	}
	kid, err := cenc.ParseKID(s)
	if err != nil {
		return cenc.KID{}, fmt.Errorf("%s@kid %q: want a UUID", n.name.Local, s)
	}
	return kid, nil
}

// checkContentKeys: one or more ContentKey, each a UUID kid (once) with
// a commonEncryptionScheme, all the same scheme, and no key (the key
// server gives it).
func checkContentKeys(list *node) (map[cenc.KID]string, error) {
	if err := onlyKids(list, "ContentKey"); err != nil {
		return nil, err
	}
	keys := map[cenc.KID]string{}
	scheme := ""
	for _, ck := range list.kids {
		kid, err := kidAttr(ck)
		if err != nil {
			return nil, err
		}
		if _, dup := keys[kid]; dup {
			return nil, fmt.Errorf("ContentKey %s twice", kid.UUID())
		}
		s, ok := ck.attr("commonEncryptionScheme")
		if !ok || s == "" {
			return nil, fmt.Errorf("Missing ContentKey@commonEncryptionScheme for KID %s", kid.UUID())
		}
		if !contains([]string{"cenc", "cbc1", "cens", "cbcs"}, s) {
			return nil, fmt.Errorf("ContentKey@commonEncryptionScheme %q for KID %s: want cenc, cbc1, cens or cbcs", s, kid.UUID())
		}
		if scheme != "" && s != scheme {
			return nil, fmt.Errorf("Non compliant ContentKey@commonEncryptionScheme combination")
		}
		scheme = s
		if len(ck.kids) > 0 || strings.TrimSpace(ck.text) != "" {
			return nil, fmt.Errorf("ContentKey %s: the request carries no key", kid.UUID())
		}
		keys[kid] = s
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("ContentKeyList: no ContentKey")
	}
	return keys, nil
}

// keyOrder is the ContentKeys' KIDs in document order.
func keyOrder(list *node) []cenc.KID {
	var out []cenc.KID
	for _, ck := range list.kids {
		kid, _ := kidAttr(ck)
		out = append(out, kid)
	}
	return out
}

// checkDRMSystems: one or more DRMSystem, each of a content key's kid
// and a UUID systemId (a pair once), asking (empty elements) for a PSSH,
// ContentProtectionData, the HLS signalling of both the media and the
// master playlist (both or neither), and, for PlayReady, the Smooth
// protection header.
func checkDRMSystems(list *node, keys map[cenc.KID]string) error {
	if err := onlyKids(list, "DRMSystem"); err != nil {
		return err
	}
	if len(list.kids) == 0 {
		return fmt.Errorf("DRMSystemList: no DRMSystem")
	}
	seen := map[[2]cenc.KID]bool{}
	for _, s := range list.kids {
		kid, err := kidAttr(s)
		if err != nil {
			return err
		}
		if _, ok := keys[kid]; !ok {
			return fmt.Errorf("DRMSystem@kid %s: no such ContentKey", kid.UUID())
		}
		sidText, _ := s.attr("systemId")
		sid, err := cenc.ParseKID(sidText)
		if err != nil || len(sidText) != 36 {
			return fmt.Errorf("DRMSystem@systemId %q: want a UUID", sidText)
		}
		if seen[[2]cenc.KID{kid, sid}] {
			return fmt.Errorf("DRMSystem %s for KID %s twice", sidText, kid.UUID())
		}
		seen[[2]cenc.KID{kid, sid}] = true
		for _, k := range s.kids {
			if k.name.Space == nsSPEKE {
				return fmt.Errorf("DRMSystem %s: speke:%s is SPEKE v1's (deprecated in v2)", sidText, k.name.Local)
			}
		}
		if err := onlyKids(s, "PSSH", "ContentProtectionData", "HLSSignalingData", "SmoothStreamingProtectionHeaderData"); err != nil {
			return err
		}
		for _, k := range s.kids {
			if len(k.kids) > 0 || strings.TrimSpace(k.text) != "" {
				return fmt.Errorf("DRMSystem %s: %s is asked for empty", sidText, k.name.Local)
			}
			if len(k.attrs) > 0 && k.name.Local != "HLSSignalingData" {
				return fmt.Errorf("DRMSystem %s: %s has attributes", sidText, k.name.Local)
			}
		}
		for _, name := range []string{"PSSH", "ContentProtectionData", "SmoothStreamingProtectionHeaderData"} {
			if len(s.children(nsCPIX, name)) > 1 {
				return fmt.Errorf("DRMSystem %s: %s twice", sidText, name)
			}
		}
		if len(s.children(nsCPIX, "SmoothStreamingProtectionHeaderData")) > 0 && sid != cenc.PlayReady {
			return fmt.Errorf("DRMSystem %s: SmoothStreamingProtectionHeaderData is PlayReady's", sidText)
		}
		hls := s.children(nsCPIX, "HLSSignalingData")
		if len(hls) > 0 {
			var playlists []string
			for _, h := range hls {
				p, _ := h.attr("playlist")
				playlists = append(playlists, p)
			}
			if len(hls) != 2 || !contains(playlists, "media") || !contains(playlists, "master") {
				return fmt.Errorf("DRMSystem %s: HLSSignalingData playlists %q: want one media and one master", sidText, playlists)
			}
		}
		if len(s.kids) == 0 {
			return fmt.Errorf("DRMSystem %s: asks for nothing", sidText)
		}
	}
	return nil
}

// checkPeriods: a ContentKeyPeriodList has one or more ContentKeyPeriod,
// each with an id (once) and an index (SPEKE tracks periods by index).
func checkPeriods(list *node) (map[string]uint64, error) {
	periods := map[string]uint64{}
	if list == nil {
		return periods, nil
	}
	if err := onlyKids(list, "ContentKeyPeriod"); err != nil {
		return nil, err
	}
	if len(list.kids) == 0 {
		return nil, fmt.Errorf("ContentKeyPeriodList: no ContentKeyPeriod")
	}
	for _, p := range list.kids {
		id, _ := p.attr("id")
		if !validID(id) {
			return nil, fmt.Errorf("ContentKeyPeriod@id %q: want an xs:ID", id)
		}
		if _, dup := periods[id]; dup {
			return nil, fmt.Errorf("ContentKeyPeriod %s twice", id)
		}
		is, ok := p.attr("index")
		n, err := strconv.ParseUint(is, 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("ContentKeyPeriod %s: index %q: want a non-negative integer", id, is)
		}
		periods[id] = n
	}
	return periods, nil
}

// validID: an xs:ID (NCName), for the ASCII names an encryptor uses.
func validID(s string) bool {
	if s == "" || !(s[0] == '_' || s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '-' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// checkContract checks the encryption contract: a ContentKeyUsageRule per
// content key, each with an intendedTrackType (unique), at least one
// AudioFilter or VideoFilter ("ALL": exactly one of each, without
// attributes), only the filters SPEKE supports, and, when there are key
// periods, a KeyPeriodFilter naming one. It returns each key's period.
func checkContract(list *node, keys map[cenc.KID]string, periods map[string]uint64) (map[cenc.KID]uint64, error) {
	if err := onlyKids(list, "ContentKeyUsageRule"); err != nil {
		return nil, fmt.Errorf("Malformed encryption contract: %w", err)
	}
	filters := 0
	for _, r := range list.kids {
		filters += len(r.children(nsCPIX, "AudioFilter")) + len(r.children(nsCPIX, "VideoFilter"))
	}
	if filters == 0 {
		return nil, fmt.Errorf("Missing CPIX encryption contract")
	}
	out := map[cenc.KID]uint64{}
	types := map[string]bool{}
	for _, r := range list.kids {
		kid, err := kidAttr(r)
		if err != nil {
			return nil, err
		}
		if _, ok := keys[kid]; !ok {
			return nil, fmt.Errorf("ContentKeyUsageRule@kid %s: no such ContentKey", kid.UUID())
		}
		if _, dup := out[kid]; dup {
			return nil, fmt.Errorf("Malformed encryption contract: two rules for KID %s", kid.UUID())
		}
		tt, _ := r.attr("intendedTrackType")
		if tt == "" {
			return nil, fmt.Errorf("Malformed encryption contract: ContentKeyUsageRule %s without intendedTrackType", kid.UUID())
		}
		if types[tt] {
			return nil, fmt.Errorf("Malformed encryption contract: intendedTrackType %q twice", tt)
		}
		types[tt] = true
		for _, k := range r.kids {
			if k.name.Space == nsCPIX && (k.name.Local == "BitrateFilter" || k.name.Local == "LabelFilter") {
				return nil, fmt.Errorf("Malformed encryption contract: SPEKE does not support %s", k.name.Local)
			}
		}
		if err := onlyKids(r, "KeyPeriodFilter", "AudioFilter", "VideoFilter"); err != nil {
			return nil, fmt.Errorf("Malformed encryption contract: %w", err)
		}
		audio, video := r.children(nsCPIX, "AudioFilter"), r.children(nsCPIX, "VideoFilter")
		if len(audio)+len(video) == 0 {
			return nil, fmt.Errorf("Malformed encryption contract: rule %q has no AudioFilter or VideoFilter", tt)
		}
		if tt == "ALL" && (len(audio) != 1 || len(video) != 1 || len(audio[0].attrs) > 0 || len(video[0].attrs) > 0) {
			return nil, fmt.Errorf("Malformed encryption contract: intendedTrackType ALL wants one bare AudioFilter and one bare VideoFilter")
		}
		if tt != "ALL" && len(audio)+len(video) != strings.Count(tt, "+")+1 {
			return nil, fmt.Errorf("Malformed encryption contract: intendedTrackType %q has %d filters", tt, len(audio)+len(video))
		}
		kpf := r.children(nsCPIX, "KeyPeriodFilter")
		switch {
		case len(kpf) > 1:
			return nil, fmt.Errorf("Malformed encryption contract: rule %q has %d KeyPeriodFilter", tt, len(kpf))
		case len(kpf) == 1:
			id, _ := kpf[0].attr("periodId")
			n, ok := periods[id]
			if !ok {
				return nil, fmt.Errorf("KeyPeriodFilter@periodId %q: no such ContentKeyPeriod", id)
			}
			out[kid] = n
		case len(periods) > 0:
			return nil, fmt.Errorf("Malformed encryption contract: rule %q has no KeyPeriodFilter, with key periods", tt)
		default:
			out[kid] = 0
		}
	}
	for kid := range keys {
		if _, ok := out[kid]; !ok {
			return nil, fmt.Errorf("Malformed encryption contract: no rule for KID %s", kid.UUID())
		}
	}
	return out, nil
}

package hls

// Reading playlists (RFC 8216): the project's own, to test and check
// them, and encoders' uploads. No library on the module proxy fits:
// github.com/bluenviron/gohlslib/v2's playlist package (v2.2.0) reads
// EXTINF through a float64 and truncates (2.005333 s becomes 2.005332999
// s, which adds up to 43 µs a day of 2 s segments), refuses a media
// playlist without segments and EXTINF 0, drops unknown tags and
// EXT-X-I-FRAME-STREAM-INF, caps EXT-X-MEDIA-SEQUENCE at 2^31 and names
// no line in its errors.

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits on what Parse holds: past MaxSegments segments or MaxVariants
// variants and renditions a playlist is refused; past MaxOther unknown
// tags the rest are not kept.
const (
	MaxSegments = 1 << 20
	MaxVariants = 1 << 12
	MaxOther    = 256
)

// Playlist is an HLS playlist as Parse reads it: a multivariant playlist
// (Variants and Renditions) or a media playlist (Segments and the tags
// about them). Fields are zero for tags the playlist lacks.
type Playlist struct {
	// Multivariant is whether the playlist has EXT-X-STREAM-INF,
	// EXT-X-I-FRAME-STREAM-INF or EXT-X-MEDIA tags.
	Multivariant        bool
	Version             int  // EXT-X-VERSION
	IndependentSegments bool // EXT-X-INDEPENDENT-SEGMENTS

	// Variants are a multivariant playlist's EXT-X-STREAM-INF (with the
	// URI that follows each) and EXT-X-I-FRAME-STREAM-INF tags, in order.
	Variants []Variant
	// Renditions are its EXT-X-MEDIA tags, in order.
	Renditions []Rendition
	// SessionKeys are its EXT-X-SESSION-KEY tags, in order.
	SessionKeys []Key

	TargetDuration        uint64 // EXT-X-TARGETDURATION, in seconds
	MediaSequence         uint64 // EXT-X-MEDIA-SEQUENCE
	DiscontinuitySequence uint64 // EXT-X-DISCONTINUITY-SEQUENCE
	Type                  string // EXT-X-PLAYLIST-TYPE: VOD, EVENT or empty
	// Maps are a media playlist's EXT-X-MAP tags, in order; each segment
	// names the one in force for it.
	Maps []*Map
	// Keys are a media playlist's EXT-X-KEY tags, in order; each segment
	// names those in force for it.
	Keys     []*Key
	Segments []Segment
	Ended    bool // EXT-X-ENDLIST

	// Other are the tags Parse does not know (the first MaxOther), in
	// order: kept, never acted on.
	Other []Tag
}

// Segment is a media segment: its URI line and the tags before it.
type Segment struct {
	URI string
	// Duration is the EXTINF duration, exact to the nanosecond (decimal
	// digits past the ninth are dropped): no float rounding, so that
	// durations add up as they were written.
	Duration time.Duration
	Title    string // after the EXTINF duration's comma
	// ByteRange is the EXT-X-BYTERANGE tag, nil when none.
	ByteRange *ByteRange
	// Discontinuity is whether an EXT-X-DISCONTINUITY tag precedes it.
	Discontinuity bool
	// Gap is whether it has an EXT-X-GAP tag: it holds no media, and a
	// client does not load it.
	Gap bool
	// ProgramDateTime is its EXT-X-PROGRAM-DATE-TIME; zero when none.
	ProgramDateTime time.Time
	// Map is the EXT-X-MAP in force; nil when none.
	Map *Map
	// Keys are the EXT-X-KEY tags in force, one per KEYFORMAT: for each
	// the last before the segment; none after a METHOD=NONE (RFC 8216bis
	// 4.4.4.4).
	Keys []*Key
	// Line is the line of its URI, from 1.
	Line int
}

// Key is an EXT-X-KEY or EXT-X-SESSION-KEY tag: how segments are
// encrypted and where a client gets the key (RFC 8216bis 4.4.4.4).
type Key struct {
	Method            string // NONE, AES-128, SAMPLE-AES, SAMPLE-AES-CTR…
	URI               string // "" with METHOD=NONE
	IV                string // as written (0x and hex), "" when none
	KeyFormat         string // KEYFORMAT, "identity" when absent
	KeyFormatVersions string // KEYFORMATVERSIONS as written, "" when absent
	KeyID             string // KEYID (a DRM system's extension, 0x and hex), "" when none
	Line              int    // of the tag, from 1
}

// Map is an EXT-X-MAP tag: the media initialization section.
type Map struct {
	URI       string
	ByteRange *ByteRange // BYTERANGE; nil when none
}

// ByteRange is a sub-range of a resource: Length bytes from Offset, or
// (HasOffset false) from where the previous sub-range of the same
// resource ends.
type ByteRange struct {
	Length, Offset uint64
	HasOffset      bool
}

// MediaURIs are the URIs of the media playlists a multivariant playlist
// names, each once, in order: its variants' (EXT-X-STREAM-INF), then its
// renditions' (EXT-X-MEDIA with a URI).
func (p *Playlist) MediaURIs() []string {
	var uris []string
	add := func(u string) {
		if u != "" && !slices.Contains(uris, u) {
			uris = append(uris, u)
		}
	}
	for _, v := range p.Variants {
		if !v.IFrame {
			add(v.URI)
		}
	}
	for _, r := range p.Renditions {
		add(r.URI)
	}
	return uris
}

// Variant is an EXT-X-STREAM-INF tag and the URI of its media playlist,
// or (IFrame) an EXT-X-I-FRAME-STREAM-INF tag, whose URI is an attribute.
type Variant struct {
	URI              string
	IFrame           bool
	Bandwidth        uint64  // BANDWIDTH
	AverageBandwidth uint64  // AVERAGE-BANDWIDTH
	Codecs           string  // CODECS, as written: comma-separated
	Width, Height    int     // RESOLUTION
	FrameRate        float64 // FRAME-RATE
	Audio            string  // AUDIO: a rendition group's id
	Video            string  // VIDEO
	Subtitles        string  // SUBTITLES
	ClosedCaptions   string  // CLOSED-CAPTIONS
	Line             int     // of the tag, from 1
}

// Rendition is an EXT-X-MEDIA tag.
type Rendition struct {
	Type            string // AUDIO, VIDEO, SUBTITLES or CLOSED-CAPTIONS
	GroupID         string
	Name            string
	Language        string
	AssocLanguage   string
	Default         bool
	Autoselect      bool
	Forced          bool
	InstreamID      string
	Characteristics string
	Channels        string
	URI             string
	Line            int // of the tag, from 1
}

// Tag is a tag Parse does not know: its name (EXT-X-GAP) and what follows
// the colon.
type Tag struct {
	Name, Value string
	Line        int
}

// ParseError is why Parse refused a playlist, and the line (from 1).
type ParseError struct {
	Line int
	Err  error
}

func (e *ParseError) Error() string { return fmt.Sprintf("hls: line %d: %v", e.Line, e.Err) }

func (e *ParseError) Unwrap() error { return e.Err }

// Parse reads a multivariant or media playlist (RFC 8216). The first line
// is #EXTM3U; blank lines and comments are skipped, unknown tags kept
// (Other). A malformed value of a tag it knows, a URI line without an
// EXTINF or EXT-X-STREAM-INF before it (or either without its URI), tags
// of both kinds of playlist, or more than the limits hold are errors
// (*ParseError, naming the line).
func Parse(b []byte) (*Playlist, error) {
	p := &parser{pl: &Playlist{}}
	text := strings.TrimPrefix(string(b), "\uFEFF")
	for len(text) > 0 || p.line == 0 {
		var line string
		line, text, _ = strings.Cut(text, "\n")
		p.line++
		if err := p.parseLine(strings.TrimSpace(line)); err != nil {
			return nil, &ParseError{Line: p.line, Err: err}
		}
	}
	switch {
	case p.variantLine > 0:
		return nil, &ParseError{Line: p.variantLine, Err: errors.New("EXT-X-STREAM-INF without a URI after it")}
	case p.infLine > 0:
		return nil, &ParseError{Line: p.infLine, Err: errors.New("EXTINF without a URI after it")}
	}
	return p.pl, nil
}

// parser is Parse's state between lines.
type parser struct {
	pl   *Playlist
	line int
	// media and multivariant are the first lines of a tag of each kind
	// of playlist.
	media, multivariant int
	// next is the segment the tags so far describe; infLine the line of
	// its EXTINF (0: none yet).
	next    Segment
	infLine int
	// variant waits for its URI since variantLine (0: none).
	variant     Variant
	variantLine int
	curMap      *Map
	curKeys     []*Key
}

func (p *parser) parseLine(line string) error {
	if p.line == 1 {
		if line != "#EXTM3U" {
			return errors.New("not an HLS playlist: the first line is not #EXTM3U")
		}
		return nil
	}
	switch {
	case line == "":
		return nil
	case strings.HasPrefix(line, "#EXT"):
		name, value, _ := strings.Cut(line[1:], ":")
		if err := p.tag(name, value); err != nil {
			return fmt.Errorf("#%s: %w", name, err)
		}
		return nil
	case strings.HasPrefix(line, "#"):
		return nil // a comment
	}
	return p.uri(line)
}

// uri takes a URI line: a variant's media playlist or a segment.
func (p *parser) uri(line string) error {
	switch {
	case p.variantLine > 0:
		p.variant.URI = line
		p.pl.Variants = append(p.pl.Variants, p.variant)
		p.variant, p.variantLine = Variant{}, 0
	case p.infLine > 0:
		if len(p.pl.Segments) == MaxSegments {
			return fmt.Errorf("more than %d segments", MaxSegments)
		}
		p.next.URI, p.next.Line, p.next.Map, p.next.Keys = line, p.line, p.curMap, p.curKeys
		p.pl.Segments = append(p.pl.Segments, p.next)
		p.next, p.infLine = Segment{}, 0
	default:
		return fmt.Errorf("URI %q without an EXTINF or EXT-X-STREAM-INF before it", line)
	}
	return nil
}

// kind notes a tag of a media (or a multivariant) playlist: one playlist
// cannot have both (RFC 8216 4.1).
func (p *parser) kind(multivariant bool) error {
	mine, theirs, what, other := &p.media, p.multivariant, "media", "multivariant"
	if multivariant {
		mine, theirs, what, other = &p.multivariant, p.media, "multivariant", "media"
		p.pl.Multivariant = true
	}
	if theirs > 0 {
		return fmt.Errorf("a %s playlist's tag after a %s playlist's at line %d: a playlist is one or the other", what, other, theirs)
	}
	if *mine == 0 {
		*mine = p.line
	}
	return nil
}

// tag takes the tag name (without its #) and its value.
func (p *parser) tag(name, value string) error {
	switch name {
	case "EXT-X-VERSION":
		v, err := parseInt(value, math.MaxInt32)
		p.pl.Version = int(v)
		return err
	case "EXT-X-INDEPENDENT-SEGMENTS":
		p.pl.IndependentSegments = true
		return nil
	case "EXT-X-STREAM-INF", "EXT-X-I-FRAME-STREAM-INF":
		return p.streamInf(name == "EXT-X-I-FRAME-STREAM-INF", value)
	case "EXT-X-MEDIA":
		return p.rendition(value)
	case "EXT-X-SESSION-KEY":
		if err := p.multivariantTag(); err != nil {
			return err
		}
		k, err := parseKey(value, p.line)
		if err == nil && k.Method == "NONE" {
			err = errors.New("METHOD=NONE in a session key")
		}
		if err == nil {
			p.pl.SessionKeys = append(p.pl.SessionKeys, *k)
		}
		return err
	case "EXT-X-TARGETDURATION", "EXT-X-MEDIA-SEQUENCE", "EXT-X-DISCONTINUITY-SEQUENCE", "EXT-X-PLAYLIST-TYPE",
		"EXT-X-ENDLIST", "EXT-X-MAP", "EXT-X-KEY", "EXTINF", "EXT-X-BYTERANGE", "EXT-X-DISCONTINUITY", "EXT-X-PROGRAM-DATE-TIME", "EXT-X-GAP":
		if err := p.kind(false); err != nil {
			return err
		}
		return p.mediaTag(name, value)
	}
	if len(p.pl.Other) < MaxOther {
		p.pl.Other = append(p.pl.Other, Tag{Name: name, Value: value, Line: p.line})
	}
	return nil
}

// mediaTag takes a tag of a media playlist.
func (p *parser) mediaTag(name, value string) error {
	var err error
	switch name {
	case "EXT-X-TARGETDURATION":
		p.pl.TargetDuration, err = parseInt(value, math.MaxUint64)
	case "EXT-X-MEDIA-SEQUENCE":
		p.pl.MediaSequence, err = parseInt(value, math.MaxUint64)
	case "EXT-X-DISCONTINUITY-SEQUENCE":
		p.pl.DiscontinuitySequence, err = parseInt(value, math.MaxUint64)
	case "EXT-X-PLAYLIST-TYPE":
		if value != "VOD" && value != "EVENT" {
			return fmt.Errorf("%q is neither VOD nor EVENT", value)
		}
		p.pl.Type = value
	case "EXT-X-ENDLIST":
		p.pl.Ended = true
	case "EXT-X-MAP":
		err = p.addMap(value)
	case "EXT-X-KEY":
		err = p.addKey(value)
	case "EXTINF":
		err = p.extinf(value)
	case "EXT-X-BYTERANGE":
		p.next.ByteRange, err = parseByteRange(value)
	case "EXT-X-DISCONTINUITY":
		p.next.Discontinuity = true
	case "EXT-X-GAP":
		p.next.Gap = true
	case "EXT-X-PROGRAM-DATE-TIME":
		p.next.ProgramDateTime, err = parseDateTime(value)
	}
	return err
}

func (p *parser) extinf(value string) error {
	if p.infLine > 0 {
		return fmt.Errorf("a second EXTINF before the URI of the one at line %d", p.infLine)
	}
	dur, title, _ := strings.Cut(value, ",")
	d, err := parseSeconds(dur)
	if err != nil {
		return err
	}
	p.next.Duration, p.next.Title, p.infLine = d, title, p.line
	return nil
}

func (p *parser) addMap(value string) error {
	var m Map
	err := readAttributes(value, map[string]*string{"URI": &m.URI}, func(name, v string) (err error) {
		if name == "BYTERANGE" {
			m.ByteRange, err = parseByteRange(v)
		}
		return err
	})
	if err != nil {
		return err
	}
	if m.URI == "" {
		return errors.New("no URI")
	}
	p.curMap = &m
	p.pl.Maps = append(p.pl.Maps, &m)
	return nil
}

// addKey takes an EXT-X-KEY: it replaces the key in force of its
// KEYFORMAT; METHOD=NONE ends them all.
func (p *parser) addKey(value string) error {
	if len(p.pl.Keys) == MaxOther {
		return fmt.Errorf("more than %d keys", MaxOther)
	}
	k, err := parseKey(value, p.line)
	if err != nil {
		return err
	}
	p.pl.Keys = append(p.pl.Keys, k)
	if k.Method == "NONE" {
		p.curKeys = nil
		return nil
	}
	keys := slices.DeleteFunc(slices.Clone(p.curKeys), func(o *Key) bool { return o.KeyFormat == k.KeyFormat })
	p.curKeys = append(keys, k)
	return nil
}

// parseKey reads the attributes of a key tag at line: METHOD is
// required, and a URI unless it is NONE (when no other attribute may be
// there).
func parseKey(value string, line int) (*Key, error) {
	k := &Key{Line: line}
	strs := map[string]*string{"METHOD": &k.Method, "URI": &k.URI, "IV": &k.IV, "KEYFORMAT": &k.KeyFormat,
		"KEYFORMATVERSIONS": &k.KeyFormatVersions, "KEYID": &k.KeyID}
	if err := readAttributes(value, strs, func(string, string) error { return nil }); err != nil {
		return nil, err
	}
	switch {
	case k.Method == "":
		return nil, errors.New("no METHOD")
	case k.Method == "NONE" && (k.URI != "" || k.IV != "" || k.KeyFormat != "" || k.KeyFormatVersions != ""):
		return nil, errors.New("METHOD=NONE with other attributes")
	case k.Method != "NONE" && k.URI == "":
		return nil, fmt.Errorf("METHOD=%s without a URI", k.Method)
	}
	if k.KeyFormat == "" && k.Method != "NONE" {
		k.KeyFormat = "identity"
	}
	return k, nil
}

// multivariantTag notes a tag of a multivariant playlist that adds a
// variant or a rendition.
func (p *parser) multivariantTag() error {
	if err := p.kind(true); err != nil {
		return err
	}
	if len(p.pl.Variants)+len(p.pl.Renditions) == MaxVariants {
		return fmt.Errorf("more than %d variants and renditions", MaxVariants)
	}
	return nil
}

func (p *parser) streamInf(iframe bool, value string) error {
	if err := p.multivariantTag(); err != nil {
		return err
	}
	if p.variantLine > 0 {
		return fmt.Errorf("the EXT-X-STREAM-INF at line %d has no URI", p.variantLine)
	}
	v := Variant{IFrame: iframe, Line: p.line}
	strs := map[string]*string{"URI": &v.URI, "CODECS": &v.Codecs, "AUDIO": &v.Audio, "VIDEO": &v.Video,
		"SUBTITLES": &v.Subtitles, "CLOSED-CAPTIONS": &v.ClosedCaptions}
	err := readAttributes(value, strs, func(name, val string) (err error) {
		switch name {
		case "BANDWIDTH":
			v.Bandwidth, err = parseInt(val, math.MaxUint64)
		case "AVERAGE-BANDWIDTH":
			v.AverageBandwidth, err = parseInt(val, math.MaxUint64)
		case "RESOLUTION":
			v.Width, v.Height, err = parseResolution(val)
		case "FRAME-RATE":
			v.FrameRate, err = parseDecimal(val)
		}
		return err
	})
	if err != nil {
		return err
	}
	if iframe {
		if v.URI == "" {
			return errors.New("no URI")
		}
		p.pl.Variants = append(p.pl.Variants, v)
		return nil
	}
	p.variant, p.variantLine = v, p.line
	return nil
}

func (p *parser) rendition(value string) error {
	if err := p.multivariantTag(); err != nil {
		return err
	}
	r := Rendition{Line: p.line}
	strs := map[string]*string{"TYPE": &r.Type, "GROUP-ID": &r.GroupID, "NAME": &r.Name, "LANGUAGE": &r.Language,
		"ASSOC-LANGUAGE": &r.AssocLanguage, "INSTREAM-ID": &r.InstreamID, "CHARACTERISTICS": &r.Characteristics,
		"CHANNELS": &r.Channels, "URI": &r.URI}
	yesNo := map[string]*bool{"DEFAULT": &r.Default, "AUTOSELECT": &r.Autoselect, "FORCED": &r.Forced}
	err := readAttributes(value, strs, func(name, val string) (err error) {
		if b, ok := yesNo[name]; ok {
			*b, err = parseYesNo(val)
		}
		return err
	})
	if err != nil {
		return err
	}
	if r.Type == "" || r.GroupID == "" || r.Name == "" {
		return errors.New("TYPE, GROUP-ID and NAME are required")
	}
	p.pl.Renditions = append(p.pl.Renditions, r)
	return nil
}

// readAttributes reads an attribute list (RFC 8216 4.2) of NAME=value
// pairs, a quoted value without its quotes (it may hold commas): the
// value of a name in strs is stored there as it is, any other is given
// to other.
func readAttributes(list string, strs map[string]*string, other func(name, value string) error) error {
	for rest := list; rest != ""; {
		name, after, ok := strings.Cut(rest, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return fmt.Errorf("attribute list %q: a name without =value", list)
		}
		var value string
		if strings.HasPrefix(after, `"`) {
			end := strings.IndexByte(after[1:], '"')
			if end < 0 {
				return fmt.Errorf("attribute %s: a quoted value without its closing quote", name)
			}
			value, rest = after[1:end+1], after[end+2:]
			if rest != "" {
				if rest[0] != ',' {
					return fmt.Errorf("attribute %s: %q after the quoted value", name, rest)
				}
				rest = rest[1:]
			}
		} else {
			value, rest, _ = strings.Cut(after, ",")
		}
		if s, ok := strs[name]; ok {
			*s = value
		} else if err := other(name, value); err != nil {
			return fmt.Errorf("attribute %s: %w", name, err)
		}
	}
	return nil
}

// parseInt reads a decimal-integer no greater than limit.
func parseInt(s string, limit uint64) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > limit {
		return 0, fmt.Errorf("%q is not a decimal integer up to %d", s, limit)
	}
	return v, nil
}

// parseDecimal reads a decimal-floating-point.
func parseDecimal(s string) (float64, error) {
	if _, err := parseSeconds(s); err != nil {
		return 0, err
	}
	return strconv.ParseFloat(s, 64)
}

// parseSeconds reads a decimal-floating-point number of seconds exactly,
// to the nanosecond: digits, and a point and digits (either part may be
// empty, not both).
func parseSeconds(s string) (time.Duration, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" || strings.Trim(whole, "0123456789") != "" || strings.Trim(frac, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a decimal number of seconds", s)
	}
	var sec uint64
	if whole != "" {
		var err error
		if sec, err = strconv.ParseUint(whole, 10, 64); err != nil || sec > math.MaxInt64/uint64(time.Second)-1 {
			return 0, fmt.Errorf("%q seconds is too long", s)
		}
	}
	var ns uint64
	for i := range 9 {
		ns *= 10
		if i < len(frac) {
			ns += uint64(frac[i] - '0')
		}
	}
	return time.Duration(sec)*time.Second + time.Duration(ns), nil
}

// parseByteRange reads n[@o].
func parseByteRange(s string) (*ByteRange, error) {
	n, o, hasOffset := strings.Cut(s, "@")
	br := &ByteRange{HasOffset: hasOffset}
	var err error
	if br.Length, err = parseInt(n, math.MaxUint64); err != nil {
		return nil, fmt.Errorf("byte range %q: %w", s, err)
	}
	if hasOffset {
		if br.Offset, err = parseInt(o, math.MaxUint64); err != nil {
			return nil, fmt.Errorf("byte range %q: %w", s, err)
		}
	}
	return br, nil
}

// parseResolution reads WIDTHxHEIGHT.
func parseResolution(s string) (w, h int, err error) {
	ws, hs, ok := strings.Cut(s, "x")
	wv, err1 := parseInt(ws, math.MaxInt32)
	hv, err2 := parseInt(hs, math.MaxInt32)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%q is not a resolution WIDTHxHEIGHT", s)
	}
	return int(wv), int(hv), nil
}

func parseYesNo(s string) (bool, error) {
	switch s {
	case "YES":
		return true, nil
	case "NO":
		return false, nil
	}
	return false, fmt.Errorf("%q is neither YES nor NO", s)
}

// dateTimeLayouts are the date-times EXT-X-PROGRAM-DATE-TIME takes: ISO
// 8601 with an offset written with or without its colon.
var dateTimeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700"}

func parseDateTime(s string) (time.Time, error) {
	for _, layout := range dateTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO 8601 date-time with an offset", s)
}

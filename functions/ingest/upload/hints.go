package upload

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/smoothcast/smoothcast/shared/manifest/dash"
	"github.com/smoothcast/smoothcast/shared/manifest/hls"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// The encoder's own manifests are hints: they say which init segment a
// media segment belongs to (an HLS media playlist's EXT-X-MAP and its
// segment URIs, an MPD's SegmentTemplate) and when the stream ends
// (EXT-X-ENDLIST, a static MPD). Before any manifest says so, a segment
// goes to the rendition whose init segment's name matches its own
// (ffmpeg's dash muxer: init-stream0.m4s, chunk-stream0-00001.m4s) or to
// the only rendition there is, when nothing else could claim it
// (channel.place).

// Bounds on what a channel's hints hold.
const (
	maxRules         = 64  // MPD representations remembered
	maxExactSegments = 256 // segment names remembered from HLS playlists
	maxStems         = 64  // HLS media playlists remembered
)

// hints is what a channel's uploaded playlists and MPDs said.
type hints struct {
	exact map[string]string // segment file: init file (HLS media playlists), or TS playlist
	stems map[string]string // HLS media playlist name less its extension: init file, or TS playlist
	rules []segmentRule     // from the MPD
	// TS media playlists (ts.go): those of the names above that are TS
	// renditions, and each variant's BANDWIDTH by its playlist's name.
	ts        map[string]bool
	bandwidth map[string]int
	// WebVTT subtitle playlists (vtt.go): each one's latest listing by
	// its name, where each segment they listed goes, and what the
	// multivariant playlist said of each subtitle rendition (by its
	// playlist's name; master: a multivariant playlist came).
	vtt     map[string]*vttListing
	vttSegs map[string]vttPlace
	subs    map[string]hls.Rendition
	master  bool
	// subsAV: the media playlists of the variants that name each
	// subtitle playlist's group, by the subtitle playlist's name.
	subsAV map[string][]string
	// recorded: the text tracks of WebVTT renditions a relay started
	// again read from the record, by playlist.
	recorded map[string]recordedVTT
	// The caption services of each variant's video (captions.go), by
	// its media playlist's stem.
	captions map[string]timeline.Captions
}

// segmentRule places media segments by an MPD's SegmentTemplate.
type segmentRule struct {
	media, init *regexp.Regexp
}

// learned is what one playlist or MPD said beyond placements: which
// renditions' streams ended (all: every rendition's, as a static MPD
// says).
type learned struct {
	ended []string // init files
	all   bool
	// marks are a media playlist's ad markers, markErrs the malformed
	// ones (markers.go).
	marks    []mark
	markErrs []error
}

// empty reports whether no playlist or MPD said anything yet.
func (h *hints) empty() bool {
	return len(h.exact) == 0 && len(h.stems) == 0 && len(h.rules) == 0 && len(h.vtt) == 0 && len(h.subs) == 0
}

// learnPlaylist learns from an HLS playlist: a media playlist's EXT-X-MAP
// names the init segment of its segments, listed or to come (named after
// the playlist, as ffmpeg names them); EXT-X-ENDLIST ends that rendition.
// A multivariant playlist says nothing the relay needs.
func (h *hints) learnPlaylist(file string, b []byte) (learned, error) {
	pl, err := hls.Parse(b)
	if err != nil {
		return learned{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if pl.Multivariant {
		h.learnVariants(pl)
		h.learnSubtitles(pl)
		h.learnCaptions(pl)
		return learned{}, nil
	}
	if isVTTPlaylist(pl) {
		return h.learnVTTPlaylist(file, pl), nil
	}
	if len(pl.Maps) == 0 {
		return h.learnTSPlaylist(file, pl), nil // MPEG-TS segments
	}
	init := path.Base(pl.Maps[len(pl.Maps)-1].URI)
	if h.stems == nil {
		h.stems, h.exact = map[string]string{}, map[string]string{}
	}
	stem := strings.TrimSuffix(file, path.Ext(file))
	if _, known := h.stems[stem]; !known && len(h.stems) >= maxStems {
		clear(h.stems) // playlists under ever new names: the newest matter
	}
	h.stems[stem] = init
	for _, seg := range pl.Segments {
		if seg.Map == nil {
			continue
		}
		if len(h.exact) >= maxExactSegments {
			clear(h.exact) // the newest playlist lists what matters
		}
		h.exact[path.Base(strings.SplitN(seg.URI, "?", 2)[0])] = path.Base(seg.Map.URI)
	}
	var l learned
	l.marks, l.markErrs = marksOf(pl)
	if pl.Ended {
		l.ended = []string{init}
	}
	return l, nil
}

// learnMPD learns from an MPD which init segment each media segment
// belongs to (the SegmentTemplate in force for each Representation); an
// MPD that says it is static ends the channel's renditions.
func (h *hints) learnMPD(b []byte) (learned, error) {
	doc, err := dash.Parse(b)
	if err != nil {
		return learned{}, fmt.Errorf("%w: MPD does not parse: %w", ErrMalformed, err)
	}
	var rules []segmentRule
	for rep, t := range dash.Representations(doc) {
		if t == nil || t.Initialization == "" || t.Media == "" || len(rules) >= maxRules {
			continue
		}
		rules = append(rules, segmentRule{media: templateRegexp(t.Media, rep.Id), init: templateRegexp(t.Initialization, rep.Id)})
	}
	h.rules = rules
	return learned{all: doc.Type != nil && *doc.Type == "static"}, nil
}

var templateVar = regexp.MustCompile(`\\\$(RepresentationID|Number|Time|Bandwidth|ext|SubNumber)(%0[0-9]+d)?\\\$`)

// templateRegexp matches the file names a SegmentTemplate attribute makes
// for Representation id.
func templateRegexp(tpl, id string) *regexp.Regexp {
	quoted := regexp.QuoteMeta(path.Base(tpl))
	expr := templateVar.ReplaceAllStringFunc(quoted, func(v string) string {
		switch {
		case strings.HasPrefix(v, `\$RepresentationID`):
			return regexp.QuoteMeta(id)
		case strings.HasPrefix(v, `\$ext`):
			return `[A-Za-z0-9]+`
		}
		return `[0-9]+`
	})
	return regexp.MustCompile("^" + strings.ReplaceAll(expr, `\$\$`, `\$`) + "$")
}

// place names the init segment, among inits (the renditions there are),
// that a media segment belongs to, by every rule, the guess of the only
// rendition included; "" if none can be told yet.
func (h *hints) place(file string, inits func(yield func(string) bool)) string {
	if init := h.named(file, inits); init != "" {
		return init
	}
	return h.only(inits)
}

// named names the init segment, among inits, that the encoder's manifests
// or the names place a media segment with; "" if they do not tell yet.
func (h *hints) named(file string, inits func(yield func(string) bool)) string {
	if init, ok := h.exact[file]; ok && !h.ts[init] {
		return init
	}
	for _, r := range h.rules {
		if !r.media.MatchString(file) {
			continue
		}
		for name := range inits {
			if r.init.MatchString(name) {
				return name
			}
		}
	}
	// An HLS media playlist's stem and a segment number (ffmpeg: stem%d).
	best := ""
	for stem, init := range h.stems {
		if h.ts[init] {
			continue // a TS rendition's
		}
		if rest, ok := strings.CutPrefix(file, stem); ok && segmentNumber.MatchString(rest) && len(stem) > len(best) {
			best = stem
		}
	}
	if best != "" {
		return h.stems[best]
	}
	// The same name once the words init/chunk and the number are gone
	// (ffmpeg's dash muxer: init-stream0.m4s, chunk-stream0-00001.m4s).
	key, match := fileKey(file, true), ""
	for name := range inits {
		if fileKey(name, false) == key {
			if match != "" {
				return "" // ambiguous
			}
			match = name
		}
	}
	return match
}

// only is the one rendition there is while no playlist or MPD said
// anything: a guess, which channel.place takes only for a segment that
// nothing else could claim.
func (h *hints) only(inits func(yield func(string) bool)) string {
	n, only := 0, ""
	for name := range inits {
		n, only = n+1, name
	}
	if n == 1 && len(h.stems) == 0 && len(h.rules) == 0 {
		return only
	}
	return ""
}

var segmentNumber = regexp.MustCompile(`^[0-9]+\.[A-Za-z0-9]+$`)

// fileKey is a file name without its extension, the words that say init
// or media, and (for a media segment) its trailing number.
func fileKey(name string, media bool) string {
	name = strings.TrimSuffix(name, path.Ext(name))
	words := strings.FieldsFunc(name, func(r rune) bool { return r == '-' || r == '_' || r == '.' })
	if media && len(words) > 0 && strings.Trim(words[len(words)-1], "0123456789") == "" {
		words = words[:len(words)-1]
	}
	var kept []string
	for _, w := range words {
		switch strings.ToLower(w) {
		case "init", "chunk", "seg", "segment", "media", "fragment", "frag":
			continue
		}
		kept = append(kept, w)
	}
	return strings.Join(kept, "_")
}

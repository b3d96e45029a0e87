package check

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Smooth Streaming client manifest (MS-SSTR 2.2.2), as much as a check
// needs.
type smoothDoc struct {
	TimeScale uint64         `xml:"TimeScale,attr"`
	IsLive    string         `xml:"IsLive,attr"`
	Streams   []smoothStream `xml:"StreamIndex"`
}

type smoothStream struct {
	Type   string `xml:"Type,attr"`
	Name   string `xml:"Name,attr"`
	URL    string `xml:"Url,attr"`
	Levels []struct {
		Bitrate uint64 `xml:"Bitrate,attr"`
	} `xml:"QualityLevel"`
	Chunks []smoothChunk `xml:"c"`
}

// smoothChunk is a c element: fragments from t (else where the previous
// ends), each d long.
type smoothChunk struct {
	T *uint64 `xml:"t,attr"`
	D uint64  `xml:"d,attr"`
	R uint64  `xml:"r,attr"` // how many fragments (1 when absent)
}

// smoothTimes expands a StreamIndex's c elements into fragment start times.
func smoothTimes(s smoothStream) ([]uint64, error) {
	var times []uint64
	var next uint64
	for i, c := range s.Chunks {
		if c.T != nil {
			if i > 0 && *c.T < next {
				return nil, fmt.Errorf("stream %s: c %d starts at %d, before the previous ends (%d)", s.Name, i, *c.T, next)
			}
			next = *c.T
		}
		n := max(c.R, 1)
		if c.D == 0 && (n > 1 || i < len(s.Chunks)-1) {
			return nil, fmt.Errorf("stream %s: c %d has no duration", s.Name, i)
		}
		if len(times)+int(n) > 1<<20 {
			return nil, fmt.Errorf("stream %s: more than %d fragments", s.Name, 1<<20)
		}
		for range n {
			times = append(times, next)
			next += c.D
		}
	}
	return times, nil
}

// smoothURL fills a StreamIndex Url template.
func smoothURL(tmpl string, bitrate, start uint64) string {
	b, t := strconv.FormatUint(bitrate, 10), strconv.FormatUint(start, 10)
	return strings.NewReplacer("{bitrate}", b, "{Bitrate}", b, "{start time}", t, "{start_time}", t).Replace(tmpl)
}

func (c *checker) smooth(ctx context.Context, u *url.URL) *listing {
	l := newListing(Smooth)
	body := c.getManifest(ctx, Smooth, u)
	if body == nil {
		return l
	}
	var doc smoothDoc
	if err := xml.Unmarshal(body, &doc); err != nil {
		c.fail(Smooth, u, fmt.Errorf("not a Smooth client manifest: %w", err))
		return l
	}
	l.live = strings.EqualFold(doc.IsLive, "TRUE")
	c.setLive(l.live)
	for _, s := range doc.Streams {
		times, err := smoothTimes(s)
		if err != nil {
			c.fail(Smooth, u, err)
			return l
		}
		if s.URL == "" {
			c.fail(Smooth, u, fmt.Errorf("stream %s has no Url template", s.Name))
			return l
		}
		for _, q := range s.Levels {
			fallback := s.Name + "@" + strconv.FormatUint(q.Bitrate, 10)
			var t *listedTrack
			for _, start := range times {
				fu, err := u.Parse(smoothURL(s.URL, q.Bitrate, start))
				if err != nil {
					c.fail(Smooth, u, fmt.Errorf("stream %s: Url template: %w", s.Name, err))
					return l
				}
				if t == nil {
					id, _, _, ok := parseObject(fu)
					if !ok {
						id = fallback
					}
					t = l.track(id)
				}
				t.frags = append(t.frags, newRef(fu, start, true))
			}
			if t == nil {
				l.track(fallback)
			}
		}
	}
	l.ok = true
	return l
}

// HLS

// attrs parses an HLS attribute list (KEY=VALUE,KEY="quoted, maybe").
func attrs(s string) map[string]string {
	out := map[string]string{}
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			break
		}
		k := strings.TrimSpace(s[:eq])
		s = s[eq+1:]
		var v string
		if strings.HasPrefix(s, `"`) {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				v, s = s[1:], ""
			} else {
				v, s = s[1:end+1], s[end+2:]
			}
			s = strings.TrimPrefix(s, ",")
		} else if comma := strings.IndexByte(s, ','); comma >= 0 {
			v, s = s[:comma], s[comma+1:]
		} else {
			v, s = s, ""
		}
		out[k] = v
	}
	return out
}

// playlist is one parsed HLS playlist.
type playlist struct {
	master   bool
	variants []string // URIs of media playlists (master)
	init     string   // EXT-X-MAP URI (media)
	segments []string // segment URIs (media)
	ended    bool     // EXT-X-ENDLIST
	byteRng  bool     // EXT-X-BYTERANGE seen
}

func parsePlaylist(body []byte) (playlist, error) {
	var p playlist
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	first := true
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if first {
			if line != "#EXTM3U" {
				return p, errors.New("not an HLS playlist: no #EXTM3U")
			}
			first = false
			continue
		}
		tag, val, _ := strings.Cut(line, ":")
		switch {
		case line == "":
		case tag == "#EXT-X-STREAM-INF":
			p.master = true
		case tag == "#EXT-X-MEDIA" || tag == "#EXT-X-I-FRAME-STREAM-INF":
			p.master = true
			if uri := attrs(val)["URI"]; uri != "" {
				p.variants = append(p.variants, uri)
			}
		case tag == "#EXT-X-MAP":
			p.init = attrs(val)["URI"]
		case tag == "#EXT-X-ENDLIST":
			p.ended = true
		case tag == "#EXT-X-BYTERANGE":
			p.byteRng = true
		case strings.HasPrefix(line, "#"):
		case p.master:
			p.variants = append(p.variants, line)
		default:
			p.segments = append(p.segments, line)
		}
	}
	if err := sc.Err(); err != nil {
		return p, fmt.Errorf("reading playlist: %w", err)
	}
	if first {
		return p, errors.New("empty playlist")
	}
	return p, nil
}

func (c *checker) hls(ctx context.Context, u *url.URL) *listing {
	l := newListing(HLS)
	body := c.getManifest(ctx, HLS, u)
	if body == nil {
		return l
	}
	p, err := parsePlaylist(body)
	if err != nil {
		c.fail(HLS, u, err)
		return l
	}
	media := []*url.URL{u}
	bodies := [][]byte{body}
	if p.master {
		media, bodies = nil, nil
		seen := map[string]bool{}
		for _, v := range p.variants {
			mu, err := u.Parse(v)
			if err != nil {
				c.fail(HLS, u, fmt.Errorf("media playlist URI %q: %w", v, err))
				return l
			}
			if seen[mu.String()] {
				continue
			}
			seen[mu.String()] = true
			b := c.getManifest(ctx, HLS, mu)
			if b == nil {
				continue // a problem already
			}
			media, bodies = append(media, mu), append(bodies, b)
		}
	}
	all := true
	live := false
	for i, mu := range media {
		mp, err := parsePlaylist(bodies[i])
		if err == nil && mp.master {
			err = errors.New("a multivariant playlist where a media playlist should be")
		}
		if err != nil {
			c.fail(HLS, mu, err)
			all = false
			continue
		}
		live = live || !mp.ended
		if p.master {
			c.setLiveAt(mu.String(), !mp.ended)
		} else {
			c.setLive(!mp.ended)
		}
		if mp.byteRng {
			c.note("hls %s: EXT-X-BYTERANGE: whole objects are checked, not the ranges", mu)
		}
		var t *listedTrack
		var initRef *ref
		if mp.init != "" {
			iu, err := mu.Parse(mp.init)
			if err != nil {
				c.fail(HLS, mu, fmt.Errorf("EXT-X-MAP URI %q: %w", mp.init, err))
				all = false
				continue
			}
			r := newRef(iu, 0, false)
			initRef = &r
			if id, _, _, ok := parseObject(iu); ok {
				t = l.track(id)
			}
		}
		var frags []ref
		for _, s := range mp.segments {
			su, err := mu.Parse(s)
			if err != nil {
				c.fail(HLS, mu, fmt.Errorf("segment URI %q: %w", s, err))
				all = false
				frags = nil
				break
			}
			id, tm, timed, ok := parseObject(su)
			if t == nil && ok {
				t = l.track(id)
			}
			frags = append(frags, newRef(su, tm, timed))
		}
		if t == nil {
			t = l.track(mu.String())
		}
		if initRef != nil {
			t.init = initRef
		}
		t.frags = append(t.frags, frags...)
	}
	if p.master {
		c.setLiveAt(u.String(), live)
	}
	l.live = live
	l.ok = all
	return l
}

// setLiveAt records whether the manifest fetched from u is live.
func (c *checker) setLiveAt(u string, live bool) {
	for i := range c.rep.Manifests {
		if c.rep.Manifests[i].URL == u {
			c.rep.Manifests[i].Live = live
		}
	}
}

// DASH MPD: SegmentTemplate with SegmentTimeline, at the AdaptationSet or
// the Representation, BaseURL at any level.
type mpd struct {
	Type    string      `xml:"type,attr"`
	BaseURL []string    `xml:"BaseURL"`
	Periods []mpdPeriod `xml:"Period"`
}

type mpdPeriod struct {
	ID      string   `xml:"id,attr"`
	BaseURL []string `xml:"BaseURL"`
	Sets    []mpdSet `xml:"AdaptationSet"`
}

type mpdSet struct {
	BaseURL  []string     `xml:"BaseURL"`
	Template *mpdTemplate `xml:"SegmentTemplate"`
	Reps     []mpdRep     `xml:"Representation"`
}

type mpdRep struct {
	ID        string       `xml:"id,attr"`
	Bandwidth uint64       `xml:"bandwidth,attr"`
	BaseURL   []string     `xml:"BaseURL"`
	Template  *mpdTemplate `xml:"SegmentTemplate"`
}

type mpdTemplate struct {
	Initialization string       `xml:"initialization,attr"`
	Media          string       `xml:"media,attr"`
	StartNumber    *uint64      `xml:"startNumber,attr"`
	Timeline       *mpdTimeline `xml:"SegmentTimeline"`
}

type mpdTimeline struct {
	S []mpdS `xml:"S"`
}

// mpdS is an S element of a SegmentTimeline.
type mpdS struct {
	T *uint64 `xml:"t,attr"`
	D uint64  `xml:"d,attr"`
	R int64   `xml:"r,attr"` // more fragments of the same duration; -1: up to the next S
}

// merged is rep's template over set's, attribute by attribute.
func merged(set, rep *mpdTemplate) *mpdTemplate {
	switch {
	case set == nil:
		return rep
	case rep == nil:
		return set
	}
	m := *set
	if rep.Initialization != "" {
		m.Initialization = rep.Initialization
	}
	if rep.Media != "" {
		m.Media = rep.Media
	}
	if rep.StartNumber != nil {
		m.StartNumber = rep.StartNumber
	}
	if rep.Timeline != nil {
		m.Timeline = rep.Timeline
	}
	return &m
}

// dashTimes expands a SegmentTimeline into fragment start times.
func dashTimes(t *mpdTemplate) ([]uint64, error) {
	if t.Timeline == nil {
		return nil, errors.New("SegmentTemplate without a SegmentTimeline")
	}
	var times []uint64
	var next uint64
	ss := t.Timeline.S
	for i, s := range ss {
		if s.T != nil {
			if i > 0 && *s.T < next {
				return nil, fmt.Errorf("S %d starts at %d, before the previous ends (%d)", i, *s.T, next)
			}
			next = *s.T
		}
		if s.D == 0 {
			return nil, fmt.Errorf("S %d has no duration", i)
		}
		n := s.R + 1
		if s.R < 0 {
			if i == len(ss)-1 || ss[i+1].T == nil {
				return nil, fmt.Errorf("S %d: r=%d needs the next S's t", i, s.R)
			}
			n = int64((*ss[i+1].T - next + s.D - 1) / s.D)
		}
		if int64(len(times))+n > 1<<20 {
			return nil, fmt.Errorf("more than %d fragments", 1<<20)
		}
		for range n {
			times = append(times, next)
			next += s.D
		}
	}
	return times, nil
}

// dashFill substitutes a SegmentTemplate's identifiers ($RepresentationID$,
// $Bandwidth$, $Time$, $Number$, each with an optional %0Nd, and $$).
func dashFill(tmpl string, rep mpdRep, time, number uint64) (string, error) {
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '$')
		if i < 0 {
			b.WriteString(tmpl)
			return b.String(), nil
		}
		b.WriteString(tmpl[:i])
		tmpl = tmpl[i+1:]
		j := strings.IndexByte(tmpl, '$')
		if j < 0 {
			return "", errors.New("unterminated $ identifier")
		}
		ident, format, _ := strings.Cut(tmpl[:j], "%")
		tmpl = tmpl[j+1:]
		var n uint64
		switch ident {
		case "":
			b.WriteByte('$')
			continue
		case "RepresentationID":
			b.WriteString(rep.ID)
			continue
		case "Bandwidth":
			n = rep.Bandwidth
		case "Time":
			n = time
		case "Number":
			n = number
		default:
			return "", fmt.Errorf("identifier $%s$", ident)
		}
		if format == "" {
			b.WriteString(strconv.FormatUint(n, 10))
			continue
		}
		w, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(format, "0"), "d"))
		if err != nil || !strings.HasSuffix(format, "d") {
			return "", fmt.Errorf("format %%%s", format)
		}
		fmt.Fprintf(&b, "%0*d", w, n)
	}
}

// under resolves the first of bases against u.
func under(u *url.URL, bases []string) (*url.URL, error) {
	if len(bases) == 0 || strings.TrimSpace(bases[0]) == "" {
		return u, nil
	}
	return u.Parse(strings.TrimSpace(bases[0]))
}

func (c *checker) dash(ctx context.Context, u *url.URL) *listing {
	l := newListing(DASH)
	body := c.getManifest(ctx, DASH, u)
	if body == nil {
		return l
	}
	var doc mpd
	if err := xml.Unmarshal(body, &doc); err != nil {
		c.fail(DASH, u, fmt.Errorf("not an MPD: %w", err))
		return l
	}
	l.live = doc.Type == "dynamic"
	c.setLive(l.live)
	fail := func(err error) *listing {
		c.fail(DASH, u, err)
		return l
	}
	mpdBase, err := under(u, doc.BaseURL)
	if err != nil {
		return fail(fmt.Errorf("BaseURL: %w", err))
	}
	for pi, p := range doc.Periods {
		pBase, err := under(mpdBase, p.BaseURL)
		if err != nil {
			return fail(fmt.Errorf("period %s: BaseURL: %w", p.ID, err))
		}
		for si, set := range p.Sets {
			sBase, err := under(pBase, set.BaseURL)
			if err != nil {
				return fail(fmt.Errorf("period %s: AdaptationSet %d: BaseURL: %w", p.ID, si, err))
			}
			for _, rep := range set.Reps {
				where := fmt.Sprintf("period %q (%d) representation %q", p.ID, pi, rep.ID)
				rBase, err := under(sBase, rep.BaseURL)
				if err != nil {
					return fail(fmt.Errorf("%s: BaseURL: %w", where, err))
				}
				tmpl := merged(set.Template, rep.Template)
				if tmpl == nil || tmpl.Media == "" {
					c.note("dash %s: no SegmentTemplate media; not checked", where)
					continue
				}
				times, err := dashTimes(tmpl)
				if err != nil {
					return fail(fmt.Errorf("%s: %w", where, err))
				}
				var initRef *ref
				var id string
				if tmpl.Initialization != "" {
					s, err := dashFill(tmpl.Initialization, rep, 0, 0)
					if err != nil {
						return fail(fmt.Errorf("%s: initialization: %w", where, err))
					}
					iu, err := rBase.Parse(s)
					if err != nil {
						return fail(fmt.Errorf("%s: initialization: %w", where, err))
					}
					r := newRef(iu, 0, false)
					initRef = &r
					id, _, _, _ = parseObject(iu)
				}
				number := uint64(1)
				if tmpl.StartNumber != nil {
					number = *tmpl.StartNumber
				}
				var frags []ref
				for k, tm := range times {
					s, err := dashFill(tmpl.Media, rep, tm, number+uint64(k))
					if err != nil {
						return fail(fmt.Errorf("%s: media: %w", where, err))
					}
					fu, err := rBase.Parse(s)
					if err != nil {
						return fail(fmt.Errorf("%s: media: %w", where, err))
					}
					if id == "" {
						id, _, _, _ = parseObject(fu)
					}
					frags = append(frags, newRef(fu, tm, true))
				}
				if id == "" {
					id = "representation " + rep.ID
				}
				t := l.track(id)
				if initRef != nil {
					t.init = initRef
				}
				t.frags = append(t.frags, frags...)
			}
		}
	}
	l.ok = true
	return l
}

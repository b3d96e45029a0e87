package check

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/Eyevinn/dash-mpd/mpd"

	"github.com/smoothcast/smoothcast/shared/manifest/dash"
	"github.com/smoothcast/smoothcast/shared/manifest/hls"
	"github.com/smoothcast/smoothcast/shared/manifest/smooth"
)

// Each format's manifest is read by its package's parser (smooth.Parse,
// hls.Parse, dash.Parse with dash-mpd) and expanded into the objects it
// references.

// smooth lists what the Smooth client manifest at u references.
func (c *checker) smooth(ctx context.Context, u *url.URL) *listing {
	l := newListing(Smooth)
	body := c.getManifest(ctx, Smooth, u)
	if body == nil {
		return l
	}
	doc, err := smooth.Parse(body)
	if err != nil {
		c.fail(Smooth, u, fmt.Errorf("not a Smooth client manifest: %w", err))
		return l
	}
	l.live = doc.Live()
	c.setLive(l.live)
	for i := range doc.Streams {
		s := &doc.Streams[i]
		frags, err := s.Fragments()
		if err != nil {
			c.fail(Smooth, u, err)
			return l
		}
		if s.URL == "" {
			c.fail(Smooth, u, fmt.Errorf("stream %s has no Url template", s.Name))
			return l
		}
		for _, q := range s.Levels {
			fallback := s.Name + "@" + strconv.Itoa(q.Bitrate)
			var t *listedTrack
			for _, f := range frags {
				fu, err := u.Parse(s.FragmentURL(q.Bitrate, f.Start))
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
				t.frags = append(t.frags, newRef(fu, f.Start, true))
			}
			if t == nil {
				l.track(fallback)
			}
		}
	}
	l.ok = true
	return l
}

// hls lists what the HLS playlist at u references: a media playlist's,
// or every media playlist's a multivariant playlist names.
func (c *checker) hls(ctx context.Context, u *url.URL) *listing {
	l := newListing(HLS)
	body := c.getManifest(ctx, HLS, u)
	if body == nil {
		return l
	}
	p, err := hls.Parse(body)
	if err != nil {
		c.fail(HLS, u, err)
		return l
	}
	media := []*url.URL{u}
	bodies := [][]byte{body}
	if p.Multivariant {
		media, bodies = nil, nil
		seen := map[string]bool{}
		for _, v := range mediaPlaylists(p) {
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
		mp, err := hls.Parse(bodies[i])
		if err == nil && mp.Multivariant {
			err = errors.New("a multivariant playlist where a media playlist should be")
		}
		if err != nil {
			c.fail(HLS, mu, err)
			all = false
			continue
		}
		live = live || !mp.Ended
		if p.Multivariant {
			c.setLiveAt(mu.String(), !mp.Ended)
		} else {
			c.setLive(!mp.Ended)
		}
		if slices.ContainsFunc(mp.Segments, func(s hls.Segment) bool { return s.ByteRange != nil }) {
			c.note("hls %s: EXT-X-BYTERANGE: whole objects are checked, not the ranges", mu)
		}
		var t *listedTrack
		var initRef *ref
		if len(mp.Maps) > 0 {
			init := mp.Maps[len(mp.Maps)-1].URI
			iu, err := mu.Parse(init)
			if err != nil {
				c.fail(HLS, mu, fmt.Errorf("EXT-X-MAP URI %q: %w", init, err))
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
		for _, s := range mp.Segments {
			if s.Gap {
				continue // EXT-X-GAP: a hole, no object to check
			}
			su, err := mu.Parse(s.URI)
			if err != nil {
				c.fail(HLS, mu, fmt.Errorf("segment URI %q: %w", s.URI, err))
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
	if p.Multivariant {
		c.setLiveAt(u.String(), live)
	}
	l.live = live
	l.ok = all
	return l
}

// mediaPlaylists are the URIs of the media playlists a multivariant
// playlist names (renditions, variants and I-frame variants), in the
// order of its lines.
func mediaPlaylists(p *hls.Playlist) []string {
	type named struct {
		line int
		uri  string
	}
	var all []named
	for _, r := range p.Renditions {
		if r.URI != "" {
			all = append(all, named{r.Line, r.URI})
		}
	}
	for _, v := range p.Variants {
		all = append(all, named{v.Line, v.URI})
	}
	slices.SortFunc(all, func(a, b named) int { return a.line - b.line })
	uris := make([]string, len(all))
	for i, n := range all {
		uris[i] = n.uri
	}
	return uris
}

// setLiveAt records whether the manifest fetched from u is live.
func (c *checker) setLiveAt(u string, live bool) {
	for i := range c.rep.Manifests {
		if c.rep.Manifests[i].URL == u {
			c.rep.Manifests[i].Live = live
		}
	}
}

// under resolves the first of bases against u.
func under(u *url.URL, bases []*mpd.BaseURLType) (*url.URL, error) {
	if len(bases) == 0 || strings.TrimSpace(string(bases[0].Value)) == "" {
		return u, nil
	}
	return u.Parse(strings.TrimSpace(string(bases[0].Value)))
}

// dash lists what the MPD at u references: SegmentTemplate with
// SegmentTimeline at any level, BaseURL at any level.
func (c *checker) dash(ctx context.Context, u *url.URL) *listing {
	l := newListing(DASH)
	body := c.getManifest(ctx, DASH, u)
	if body == nil {
		return l
	}
	doc, err := dash.Parse(body)
	if err != nil {
		c.fail(DASH, u, fmt.Errorf("not an MPD: %w", err))
		return l
	}
	l.live = doc.GetType() == mpd.DYNAMIC_TYPE
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
		pBase, err := under(mpdBase, p.BaseURLs)
		if err != nil {
			return fail(fmt.Errorf("period %s: BaseURL: %w", p.Id, err))
		}
		for si, set := range p.AdaptationSets {
			sBase, err := under(pBase, set.BaseURLs)
			if err != nil {
				return fail(fmt.Errorf("period %s: AdaptationSet %d: BaseURL: %w", p.Id, si, err))
			}
			for _, rep := range set.Representations {
				where := fmt.Sprintf("period %q (%d) representation %q", p.Id, pi, rep.Id)
				rBase, err := under(sBase, rep.BaseURLs)
				if err != nil {
					return fail(fmt.Errorf("%s: BaseURL: %w", where, err))
				}
				tmpl := dash.TemplateOf(p, set, rep)
				if tmpl == nil || tmpl.Media == "" {
					c.note("dash %s: no SegmentTemplate media; not checked", where)
					continue
				}
				segs, err := tmpl.Segments()
				if err != nil {
					return fail(fmt.Errorf("%s: %w", where, err))
				}
				var initRef *ref
				var id string
				if tmpl.Initialization != "" {
					s, err := tmpl.InitURL()
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
				var frags []ref
				for _, seg := range segs {
					s, err := tmpl.MediaURL(seg)
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
					frags = append(frags, newRef(fu, seg.Time, true))
				}
				if id == "" {
					id = "representation " + rep.Id
				}
				t := l.track(id)
				if initRef != nil {
					t.init = initRef
				}
				t.frags = append(t.frags, frags...)
				t.codecs = cmp.Or(rep.Codecs, set.Codecs)
			}
		}
	}
	l.ok = true
	return l
}

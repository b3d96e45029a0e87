package upload

// # Closed captions an HLS upload declares
//
// A multivariant playlist's EXT-X-MEDIA TYPE=CLOSED-CAPTIONS (INSTREAM-ID
// CC1 to CC4 or SERVICE1 to SERVICE63, LANGUAGE), in the group a
// variant's CLOSED-CAPTIONS names, says that variant's video carries
// CEA-608/708 captions in its SEI. The relay writes them into the init
// segments of that variant's video tracks (udta kind boxes in the
// urn:scte:dash:cc:cea-608:2015 and cea-708 schemes, fmp4.CaptionKinds),
// from which the manifests signal them. An init segment is stored once:
// only the renditions that start after the multivariant playlist came
// get them (ffmpeg uploads it after the first segments, so a relay sees
// it in time only once the encoder republishes it and a rendition
// starts again, or from encoders that upload it first).

import (
	"bytes"
	"fmt"
	"path"
	"strings"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/manifest/hls"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// learnCaptions learns, from a multivariant playlist, the caption
// services of each variant's video, by its media playlist's stem.
func (h *hints) learnCaptions(pl *hls.Playlist) {
	groups := map[string][]timeline.Caption{}
	for _, r := range pl.Renditions {
		if r.Type != "CLOSED-CAPTIONS" || r.InstreamID == "" {
			continue
		}
		groups[r.GroupID] = append(groups[r.GroupID], timeline.Caption{InstreamID: r.InstreamID, Language: r.Language})
	}
	for _, v := range pl.Variants {
		cc := groups[v.ClosedCaptions]
		if v.IFrame || len(cc) == 0 {
			continue
		}
		list := timeline.MakeCaptions(cc)
		if _, err := list.Services(); err != nil {
			continue // not services a kind box can declare
		}
		if h.captions == nil || len(h.captions) >= maxStems {
			h.captions = map[string]timeline.Captions{}
		}
		file := path.Base(strings.SplitN(v.URI, "?", 2)[0])
		h.captions[strings.TrimSuffix(file, path.Ext(file))] = list
	}
}

// captionsOf is what the multivariant playlist said of the captions of
// rendition key's video: a TS rendition's (its playlist's name), or an
// fMP4 rendition's (its init segment's name, which a media playlist's
// EXT-X-MAP names).
func (h *hints) captionsOf(key string) timeline.Captions {
	if cc, ok := h.captions[strings.TrimSuffix(key, path.Ext(key))]; ok {
		return cc
	}
	for stem, init := range h.stems {
		if init == key {
			return h.captions[stem]
		}
	}
	return ""
}

// captionScheme reports whether a kind box's scheme is CEA-608's or
// CEA-708's.
func captionScheme(uri string) bool {
	uri = strings.TrimRight(uri, "\x00")
	return uri == timeline.CEA608Scheme || uri == timeline.CEA708Scheme
}

// withCaptions is an init segment whose video tracks declare services
// (kind boxes replacing any they had in those schemes); init unchanged
// when it has no video track or services is empty.
func withCaptions(init []byte, services timeline.Captions) ([]byte, error) {
	kinds := fmp4.CaptionKinds(services)
	if len(kinds) == 0 {
		return init, nil
	}
	f, err := mp4.DecodeFile(bytes.NewReader(init))
	if err != nil || f.Init == nil || f.Init.Moov == nil {
		return nil, fmt.Errorf("%w: init segment: %w", ErrMalformed, err)
	}
	changed := false
	for _, trak := range f.Init.Moov.Traks {
		if trak.Mdia == nil || trak.Mdia.Hdlr == nil || trak.Mdia.Hdlr.HandlerType != "vide" {
			continue
		}
		if trak.Udta == nil {
			trak.AddChild(&mp4.UdtaBox{})
		}
		kept := trak.Udta.Children[:0]
		for _, c := range trak.Udta.Children {
			if k, ok := c.(*mp4.KindBox); ok && captionScheme(k.SchemeURI) {
				continue
			}
			kept = append(kept, c)
		}
		trak.Udta.Children = kept
		for _, k := range kinds {
			trak.Udta.AddChild(k)
		}
		changed = true
	}
	if !changed {
		return init, nil
	}
	var buf bytes.Buffer
	if err := f.Encode(&buf); err != nil {
		return nil, fmt.Errorf("init segment with captions: %w", err)
	}
	return buf.Bytes(), nil
}

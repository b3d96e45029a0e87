package hls

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// subtitleGroup is the GROUP-ID of the text tracks' renditions.
const subtitleGroup = "subs"

// quotable makes a label an HLS quoted-string, which cannot hold a
// double quote, CR or LF (RFC 8216 4.2) and has no escapes.
var quotable = strings.NewReplacer(`"`, "'", "\r", " ", "\n", " ")

// captionsOf is the multivariant playlist's view of the text tracks and
// the CEA-608/708 captions of its videos: what subtitles writes as
// renditions, and what each variant says of them.
type captionsOf struct {
	// codecs are the codecs of the subtitle renditions that CODECS
	// names (IMSC1's stpp.ttml.*; WebVTT is named by no codec).
	codecs []string
	// subtitles is whether there is a subtitle group.
	subtitles bool
	// cc is the CLOSED-CAPTIONS group of each video's captions.
	cc map[timeline.Captions]string
}

// variantAttrs appends to a variant's EXT-X-STREAM-INF the groups that
// go with video v (nil for an audio-only variant): SUBTITLES and
// CLOSED-CAPTIONS.
//
// A variant without captions has no CLOSED-CAPTIONS attribute, not
// CLOSED-CAPTIONS=NONE: NONE tells a player that the video carries no
// CEA-608 at all (Apple's QA1801: AVPlayer then offers no "Unknown CC"
// and shows none), and a track without Captions may be one whose
// encoder carries them without saying so; RFC 8216bis 4.4.6.2 also
// allows NONE only when every variant says NONE.
func (c *captionsOf) variantAttrs(b *bytes.Buffer, v *timeline.TrackView) {
	if c.subtitles {
		fmt.Fprintf(b, ",SUBTITLES=%q", subtitleGroup)
	}
	if v != nil && v.Captions != "" {
		if g, ok := c.cc[v.Captions]; ok {
			fmt.Fprintf(b, ",CLOSED-CAPTIONS=%q", g)
		}
	}
}

// addCodecs appends the subtitle codecs to a variant's CODECS.
func (c *captionsOf) addCodecs(codecs string) string {
	for _, s := range c.codecs {
		codecs = strings.TrimPrefix(codecs+","+s, ",")
	}
	return codecs
}

// textRenditions writes an EXT-X-MEDIA TYPE=SUBTITLES for each text track
// name (the first track of each: a text track has one rendition) and a
// TYPE=CLOSED-CAPTIONS for each caption service of the videos, and says
// what the variants must add (captionsOf).
//
// A subtitle rendition's NAME is the track's label, else its name,
// unique in the group (RFC 8216bis 4.4.6.1); DEFAULT=YES for the first
// default track that is not forced (at most one per group), which also
// needs AUTOSELECT=YES; FORCED=YES for forced subtitles, AUTOSELECT=YES
// too, so that a player shows them for the viewer's language with
// subtitles off (Apple's HLS authoring specification); the caption role
// (subtitles for the deaf and hard of hearing) says so with Apple's two
// accessibility characteristics. A WebVTT rendition's playlist lists
// WebVTT files (Media); an IMSC1 one lists fMP4 fragments, and the
// variants' CODECS then name its codec (stpp.ttml.im1t), as RFC 8216bis
// 4.4.6.2 asks of every format a rendition of the variant holds. The
// group holds one format (subtitleTracks).
//
// Each distinct list of caption services (timeline.Captions) of the
// videos is a CLOSED-CAPTIONS group, "cc", "cc2", ...: one rendition per
// service, with its INSTREAM-ID (CC1 to CC4, SERVICE1 to SERVICE63) and
// language, never the default (a player that honoured DEFAULT=YES would
// show captions nobody asked for). A list that does not parse is left
// out (the track's description, not the manifest, is wrong).
func textRenditions(b *bytes.Buffer, p *timeline.Presentation, video []*timeline.TrackView) *captionsOf {
	c := &captionsOf{cc: map[timeline.Captions]string{}}
	text := subtitleTracks(p)
	used := map[string]bool{}
	def := slices.IndexFunc(text, func(t *timeline.TrackView) bool { return t.Default && !t.Forced })
	for i, t := range text {
		c.subtitles = true
		if strings.HasPrefix(t.Codecs, "stpp") && !slices.Contains(c.codecs, t.Codecs) {
			c.codecs = append(c.codecs, t.Codecs)
		}
		name := quotable.Replace(t.Label)
		if name == "" {
			name = t.ID.Name
		}
		if used[name] {
			name += " (" + t.ID.Name + ")"
		}
		for n := 2; used[name]; n++ {
			name = t.ID.Name + " " + strconv.Itoa(n)
		}
		used[name] = true
		fmt.Fprintf(b, "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=%q,NAME=\"%s\",", subtitleGroup, name)
		if t.Language != "" && t.Language != "und" {
			fmt.Fprintf(b, "LANGUAGE=%q,", t.Language)
		}
		if i == def {
			b.WriteString("DEFAULT=YES,")
		} else {
			b.WriteString("DEFAULT=NO,")
		}
		b.WriteString("AUTOSELECT=YES,")
		if t.Forced {
			b.WriteString("FORCED=YES,")
		}
		if t.Role == "caption" {
			b.WriteString(`CHARACTERISTICS="public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound",`)
		}
		fmt.Fprintf(b, "URI=%q\n", mediaRef(p, t.ID))
	}
	for _, v := range video {
		if v.Captions == "" {
			continue
		}
		if _, ok := c.cc[v.Captions]; ok {
			continue
		}
		services, err := v.Captions.Services()
		if err != nil || len(services) == 0 {
			continue
		}
		g := "cc"
		if n := len(c.cc); n > 0 {
			g += strconv.Itoa(n + 1)
		}
		c.cc[v.Captions] = g
		for _, s := range services {
			name := s.InstreamID
			if s.Language != "" {
				name += " " + s.Language
			}
			fmt.Fprintf(b, "#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID=%q,NAME=%q,", g, name)
			if s.Language != "" && s.Language != "und" {
				fmt.Fprintf(b, "LANGUAGE=%q,", s.Language)
			}
			fmt.Fprintf(b, "DEFAULT=NO,AUTOSELECT=YES,INSTREAM-ID=%q\n", s.InstreamID)
		}
	}
	return c
}

// subtitleTracks are the text tracks the SUBTITLES group lists: the
// first track of each text name that has fragments, all of one format.
// A channel with WebVTT and IMSC1 tracks lists its WebVTT ones only: a
// group holds one format, since a player learns a rendition's format
// from the CODECS of the variants that name its group (hls.js gives
// every rendition of the group the text codec CODECS names, and parsed
// a WebVTT rendition beside an IMSC1 one as IMSC1: no cue), and a group
// per format would need every variant twice (one per group). WebVTT is
// what every HLS player reads (Safari, hls.js, ffmpeg, VLC); the IMSC1
// tracks stay in DASH and Smooth.
func subtitleTracks(p *timeline.Presentation) []*timeline.TrackView {
	var text []*timeline.TrackView
	vtt := false
	for _, g := range p.Groups() {
		if g.Kind == timeline.Text && !g.Views[0].State.Timeline.Empty() {
			text = append(text, g.Views[0])
			vtt = vtt || webVTT(g.Views[0])
		}
	}
	if vtt {
		text = slices.DeleteFunc(text, func(tv *timeline.TrackView) bool { return !webVTT(tv) })
	}
	return text
}

// webVTT reports whether track tv's HLS segments are WebVTT files: a
// wvtt text track, whose fragments the relay also stores as WebVTT
// (layout.WebVTTKey), since HLS players read WebVTT subtitles as text,
// not as fMP4. Its playlist has no EXT-X-MAP.
func webVTT(tv *timeline.TrackView) bool { return tv.Kind == timeline.Text && tv.Codecs == "wvtt" }

// appendSegmentRef appends the URI of track id's segment that starts at
// start, relative to its media playlist: the fragment, or for a WebVTT
// track (vtt) the WebVTT file beside it (layout.WebVTTKey).
func appendSegmentRef(dst []byte, id layout.TrackID, start uint64, vtt bool) []byte {
	if !vtt {
		return layout.AppendFragmentRef(dst, id, start)
	}
	dst = append(dst, "Fragments("...)
	dst = append(dst, id.Name...)
	dst = append(dst, '=')
	dst = strconv.AppendUint(dst, start, 10)
	return append(dst, ").vtt"...)
}

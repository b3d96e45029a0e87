// Package dash renders a dynamic MPEG-DASH MPD (ISO/IEC 23009-1, live
// profile) of a live presentation over the same CMAF fragments and init
// segments HLS uses: SegmentTemplate with SegmentTimeline addressed by
// $RepresentationID$ and $Time$, so that every segment URL is the Smooth
// fragment URL. A pure function from a timeline.Presentation to bytes.
//
// It also reads MPDs, its own and encoders': Parse parses them with
// github.com/Eyevinn/dash-mpd, and TemplateOf, Representations,
// Template.Segments and Fill give what a reader needs to list segment
// URLs (read.go).
//
// The render schema is the tagged structs below (mpd and the types under
// it), declared once: build fills them, write writes them by hand, and
// the reference test marshals the same value with encoding/xml and
// compares the bytes. dash-mpd's MPD struct cannot be that schema without
// changing what clients get (golden files in testdata): it orders
// attributes otherwise (minBufferTime before timeShiftBufferDepth;
// maxWidth and segmentAlignment before mimeType; media before timescale;
// width, height, sar and frameRate before codecs), writes durations in
// hours and minutes (PT30M where the MPD has PT1800S), and marshals with
// dash-mpd's own fork of encoding/xml, so that the equivalence test would
// no longer compare against encoding/xml.
package dash

import (
	"cmp"
	"encoding/xml"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/manifest/sparse"
	"github.com/smoothcast/smoothcast/shared/manifest/xmlout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// Options are the parts of the MPD that do not come from the presentation.
type Options struct {
	// UTCTimingURL is where clients fetch the time (urn:mpeg:dash:utc:http-iso:2014);
	// empty leaves UTCTiming out.
	UTCTimingURL string
	// MinimumUpdatePeriod; zero uses the longest fragment duration.
	MinimumUpdatePeriod time.Duration
}

// mpd is the MPD element: the schema of the MPD Render writes, declared
// once. build fills it; write writes it by hand, in the order of the
// fields and with their omitempty rules; the reference test marshals the
// same value with encoding/xml and compares the bytes. The optional
// attributes are left out when empty.
type mpd struct {
	XMLName                    xml.Name     `xml:"urn:mpeg:dash:schema:mpd:2011 MPD"`
	XmlnsCenc                  string       `xml:"xmlns:cenc,attr,omitempty"` // when a track is encrypted (protection.go)
	XmlnsMspr                  string       `xml:"xmlns:mspr,attr,omitempty"` // when one has a PlayReady pssh
	Profiles                   string       `xml:"profiles,attr"`
	Type                       string       `xml:"type,attr"`
	AvailabilityStartTime      string       `xml:"availabilityStartTime,attr,omitempty"`
	PublishTime                string       `xml:"publishTime,attr"`
	MediaPresentationDuration  string       `xml:"mediaPresentationDuration,attr,omitempty"`
	MinimumUpdatePeriod        string       `xml:"minimumUpdatePeriod,attr,omitempty"`
	TimeShiftBufferDepth       string       `xml:"timeShiftBufferDepth,attr,omitempty"`
	SuggestedPresentationDelay string       `xml:"suggestedPresentationDelay,attr,omitempty"`
	MaxSegmentDuration         string       `xml:"maxSegmentDuration,attr"`
	MinBufferTime              string       `xml:"minBufferTime,attr"`
	Periods                    []period     `xml:"Period"`
	UTCTiming                  []descriptor `xml:"UTCTiming"`
}

type period struct {
	ID           string          `xml:"id,attr"`
	Start        string          `xml:"start,attr"`
	EventStreams []eventStream   `xml:"EventStream"`
	Assets       []adaptationSet `xml:"AdaptationSet"`
}

// adaptationSet is an AdaptationSet element: Lang, the sizes and Label
// are left out when empty or zero. Its elements are in the order of the
// MPD schema: ContentProtection (protection.go), InbandEventStream
// (events.go), Label, Accessibility, Role
// (text.go: text tracks and the videos' captions).
type adaptationSet struct {
	ID               int    `xml:"id,attr"`
	ContentType      string `xml:"contentType,attr"`
	MimeType         string `xml:"mimeType,attr"`
	Lang             string `xml:"lang,attr,omitempty"`
	SegmentAlignment bool   `xml:"segmentAlignment,attr"`
	StartWithSAP     int    `xml:"startWithSAP,attr"`
	MaxWidth         int    `xml:"maxWidth,attr,omitempty"`
	MaxHeight        int    `xml:"maxHeight,attr,omitempty"`
	// ContentProtection is the tracks' protection when they share one
	// (protection.go).
	ContentProtection []contentProtection `xml:"ContentProtection"`
	Inband            *descriptor         `xml:"InbandEventStream"`
	Label             string              `xml:"Label,omitempty"`
	Accessibility     []descriptor        `xml:"Accessibility"`
	Roles             []descriptor        `xml:"Role"`
	SegmentTemplate   segmentTemplate     `xml:"SegmentTemplate"`
	Representations   []representation    `xml:"Representation"`
}

// descriptor is an element of two attributes, schemeIdUri and value:
// Role, AudioChannelConfiguration, UTCTiming.
type descriptor struct {
	SchemeIDURI string `xml:"schemeIdUri,attr"`
	Value       string `xml:"value,attr"`
}

// segmentTemplate is a SegmentTemplate element; the fields after
// Timescale are left out when zero or empty.
type segmentTemplate struct {
	Timescale uint64 `xml:"timescale,attr"`
	// PresentationTimeOffset maps the first fragment of a static range to
	// the start of its Period.
	PresentationTimeOffset uint64 `xml:"presentationTimeOffset,attr,omitempty"`
	Initialization         string `xml:"initialization,attr,omitempty"`
	Media                  string `xml:"media,attr,omitempty"`
	// SegmentTimeline is the SegmentTimeline element. write leaves it
	// empty and writes Timeline's spans instead; the reference fills it
	// from Timeline, so that encoding/xml writes the same.
	SegmentTimeline *segmentTimeline `xml:"SegmentTimeline"`
	// Timeline, when set, is what the SegmentTimeline lists.
	Timeline *timeline.Timeline `xml:"-"`
}

// segmentTimeline is a SegmentTimeline element.
type segmentTimeline struct {
	S []segment `xml:"S"`
}

// segment is an S element: R+1 segments (DASH counts repeats, where
// Smooth counts fragments) of D ticks each, from T, or where the previous
// element's last segment ends when T is nil.
type segment struct {
	T *uint64 `xml:"t,attr"`
	D uint64  `xml:"d,attr"`
	R uint64  `xml:"r,attr,omitempty"`
}

// newSegment is the S element that lists span s: t only where the span
// does not start where the previous one ends.
func newSegment(s timeline.Span) segment {
	e := segment{D: s.Duration, R: s.Count - 1}
	if !s.Follows {
		t := s.Start
		e.T = &t
	}
	return e
}

// representation is a Representation element; the fields after Codecs
// are left out when zero, empty or nil. Properties are its
// SupplementalProperty elements: an HDR transfer function, Dolby Atmos.
type representation struct {
	ID                string      `xml:"id,attr"`
	Bandwidth         int         `xml:"bandwidth,attr"`
	Codecs            string      `xml:"codecs,attr"`
	Width             int         `xml:"width,attr,omitempty"`
	Height            int         `xml:"height,attr,omitempty"`
	FrameRate         string      `xml:"frameRate,attr,omitempty"`
	SAR               string      `xml:"sar,attr,omitempty"`
	AudioSamplingRate int         `xml:"audioSamplingRate,attr,omitempty"`
	Channels          *descriptor `xml:"AudioChannelConfiguration"`
	// ContentProtection is the track's protection when the tracks of its
	// AdaptationSet do not share one.
	ContentProtection []contentProtection `xml:"ContentProtection"`
	Properties        []descriptor        `xml:"SupplementalProperty"`
	SegmentTemplate   *segmentTemplate    `xml:"SegmentTemplate"`
}

// Render returns the MPD of a live presentation. Each group of tracks of
// one kind and name (the renditions of one Smooth StreamIndex) becomes an
// AdaptationSet whose SegmentTimeline lists the fragments every rendition
// has, so that every URL a client builds exists. publishTime is the wall-
// clock end of the newest fragment, so that equal states give equal MPDs.
func Render(p *timeline.Presentation, o Options) ([]byte, error) {
	m, err := build(p, o)
	if err != nil {
		return nil, err
	}
	w := xmlout.Writer{Buf: make([]byte, 0, m.size())}
	w.Buf = append(w.Buf, xmlout.Header...)
	m.write(&w)
	return append(w.Buf, '\n'), nil
}

// build is the MPD of p, before it is written.
func build(p *timeline.Presentation, o Options) (*mpd, error) {
	m := &mpd{
		Profiles:              "urn:mpeg:dash:profile:isoff-live:2011",
		Type:                  "dynamic",
		AvailabilityStartTime: p.Epoch.UTC().Format(time.RFC3339Nano),
		TimeShiftBufferDepth:  duration(p.DVRWindow),
	}
	// The extent of what the adaptation sets list: its end is the publish
	// time; a static range ends at FirstEnd, so that no reader looks for a
	// segment past the end of an adaptation set that stops a few samples
	// early.
	var extent timeline.Extent
	var groups []timeline.Group
	var commons []timeline.Timeline
	for _, g := range p.Groups() {
		if g.Kind != timeline.Video && g.Kind != timeline.Audio && g.Kind != timeline.Text {
			continue
		}
		common := p.Common(g)
		if common.Empty() {
			continue
		}
		if g.Kind == timeline.Text {
			common = sparse.Close(common) // its silences
		} else {
			// A text track may end long before the others (no cue
			// since): the MPD's extent is the audio's and video's.
			extent.Add(p, &common, g.Views[0].Timescale)
		}
		groups, commons = append(groups, g), append(commons, common)
	}
	assets, maxDur, err := adaptationSets(p, groups)
	if err != nil {
		return nil, err
	}
	if maxDur == 0 {
		maxDur = 2 * time.Second
	}
	// Periods: a new one wherever the encoder's timeline breaks (it
	// restarted, or its clock jumped), timed from the availability start
	// (the channel's epoch), or from the first fragment of a static MPD.
	origin := p.Epoch
	if p.VOD() {
		origin = extent.Start
	}
	m.Periods = periods(p, origin, groups, commons, assets, maxDur)
	m.namespaces()
	newest := extent.End
	if extent.Empty() {
		newest = p.Epoch
	}
	m.PublishTime = newest.UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano)
	m.MaxSegmentDuration = duration(maxDur)
	m.MinBufferTime = duration(maxDur)
	if p.VOD() {
		// A finished range: a static MPD whose Period starts at the range's
		// first fragment.
		m.Type, m.AvailabilityStartTime, m.TimeShiftBufferDepth = "static", "", ""
		m.MediaPresentationDuration = duration(extent.FirstEnd.Sub(extent.Start))
	} else {
		mup := o.MinimumUpdatePeriod
		if mup == 0 {
			mup = maxDur
		}
		m.MinimumUpdatePeriod = duration(mup)
		// Three segments behind the live edge, as HLS clients hold back.
		m.SuggestedPresentationDelay = duration(3 * maxDur)
		if depth := extent.End.Sub(extent.Start); p.Range != nil && depth > p.DVRWindow {
			// A start-over reaching further back than the DVR window.
			m.TimeShiftBufferDepth = duration(depth)
		}
	}
	if o.UTCTimingURL != "" && !p.VOD() {
		m.UTCTiming = []descriptor{{SchemeIDURI: "urn:mpeg:dash:utc:http-iso:2014", Value: o.UTCTimingURL}}
	}
	return m, nil
}

// adaptationSets returns an AdaptationSet per group, without timelines,
// and the longest fragment any of their tracks has.
func adaptationSets(p *timeline.Presentation, groups []timeline.Group) ([]adaptationSet, time.Duration, error) {
	// Representation ids are the bitrates, which $RepresentationID$ puts in
	// the URL; a bitrate two groups share gets a name-qualified id and a
	// SegmentTemplate of its own.
	seen := map[int]int{}
	for _, tv := range p.Tracks {
		seen[tv.ID.Bitrate]++
	}
	var maxDur time.Duration
	var assets []adaptationSet
	for _, g := range groups {
		tv0 := g.Views[0]
		ts := tv0.Timescale
		for _, tv := range g.Views {
			if tv.Timescale != ts {
				return nil, 0, fmt.Errorf("dash: channel %s: tracks named %q mix timescales %d and %d", p.Channel, g.Name, ts, tv.Timescale)
			}
			maxDur = max(maxDur, ticksDuration(tv.State.MaxDuration, ts))
		}
		assets = append(assets, newAdaptationSet(g, len(assets), seen))
	}
	return assets, maxDur, nil
}

// newAdaptationSet is the AdaptationSet of group g, whose tracks share a
// timescale; seen counts the tracks of each bitrate.
func newAdaptationSet(g timeline.Group, id int, seen map[int]int) adaptationSet {
	tv0 := g.Views[0]
	ts := tv0.Timescale
	as := adaptationSet{
		ID:               id,
		SegmentAlignment: true,
		StartWithSAP:     1,
		Roles:            []descriptor{{SchemeIDURI: timeline.RoleScheme, Value: cmp.Or(tv0.Role, "main")}},
		SegmentTemplate: segmentTemplate{
			Timescale: ts,
			Media:     layout.FragmentPattern(g.Name, "$RepresentationID$", "$Time$"),
		},
	}
	switch g.Kind {
	case timeline.Video:
		as.ContentType, as.MimeType = "video", "video/mp4"
	case timeline.Audio:
		as.ContentType, as.MimeType = "audio", "audio/mp4"
		if tv0.Language != "" && tv0.Language != "und" {
			as.Lang = tv0.Language
		}
	case timeline.Text:
		textAdaptationSet(&as, tv0)
	}
	if g.Kind == timeline.Video {
		as.Accessibility = captionsAccessibility(g.Views)
	}
	if carriesEvents(g) {
		as.Inband = &inband
	}
	for _, tv := range g.Views {
		if g.Kind == timeline.Video {
			as.MaxWidth, as.MaxHeight = max(as.MaxWidth, tv.Width), max(as.MaxHeight, tv.Height)
		}
		as.Representations = append(as.Representations, newRepresentation(g, tv, seen[tv.ID.Bitrate] > 1))
	}
	as.setVersion(g, "")
	return as
}

// setVersion makes as, the AdaptationSet of group g, that of the tracks'
// init segments of version v (timeline.Run.Init): their Initialization
// patterns (layout.InitPatternOf) and ContentProtection (ProtectionOf(v),
// none for a clear version), on the AdaptationSet when the tracks share
// one, else on each Representation. The Representations' SegmentTemplates
// are copied, not written into: Periods share them.
func (as *adaptationSet) setVersion(g timeline.Group, v string) {
	as.SegmentTemplate.Initialization = layout.InitPatternOf(g.Name, "$RepresentationID$", v)
	p, shared := groupProtection(g, v)
	as.ContentProtection = contentProtections(p)
	for i, tv := range g.Views {
		r := &as.Representations[i]
		r.ContentProtection = nil
		if !shared {
			r.ContentProtection = contentProtections(tv.ProtectionOf(v))
		}
		if r.SegmentTemplate != nil {
			st := *r.SegmentTemplate
			st.Initialization = layout.InitPatternOf(g.Name, strconv.Itoa(tv.ID.Bitrate), v)
			r.SegmentTemplate = &st
		}
	}
}

// newRepresentation is the Representation of track tv of group g; shared
// is whether another track has its bitrate.
func newRepresentation(g timeline.Group, tv *timeline.TrackView, shared bool) representation {
	ts := tv.Timescale
	r := representation{ID: strconv.Itoa(tv.ID.Bitrate), Bandwidth: tv.ID.Bitrate, Codecs: tv.Codecs}
	if _, peak, ok := tv.State.Bitrates(ts); ok {
		r.Bandwidth = peak // measured from the fragments, as ABR needs it
	}
	if shared {
		r.ID = tv.ID.Name + "_" + r.ID
		b := strconv.Itoa(tv.ID.Bitrate)
		// Its Initialization is the version's (setVersion).
		r.SegmentTemplate = &segmentTemplate{
			Timescale: ts,
			Media:     layout.FragmentPattern(g.Name, b, "$Time$"),
		}
	}
	switch g.Kind {
	case timeline.Video:
		r.Width, r.Height, r.SAR = tv.Width, tv.Height, "1:1"
		if fps, ok := tv.State.FrameRate(ts); ok {
			r.FrameRate = frameRate(fps)
		}
		if tc, ok := transferCharacteristics[tv.VideoRange]; ok {
			r.Properties = append(r.Properties, descriptor{SchemeIDURI: "urn:mpeg:mpegB:cicp:TransferCharacteristics", Value: tc})
		}
	case timeline.Audio:
		r.AudioSamplingRate = tv.SamplingRate
		r.Channels = audioChannels(tv)
		if tv.JOC > 0 {
			// Dolby Atmos in E-AC-3 (DASH-IF IOP 9.2.1.2, Dolby's
			// delivery specification).
			r.Properties = append(r.Properties,
				descriptor{SchemeIDURI: "tag:dolby.com,2018:dash:EC3_ExtensionType:2018", Value: "JOC"},
				descriptor{SchemeIDURI: "tag:dolby.com,2018:dash:EC3_ExtensionComplexityIndex:2018", Value: strconv.Itoa(tv.JOC)})
		}
	}
	return r
}

// transferCharacteristics are the code points (ISO/IEC 23091-2) of the HDR
// video ranges, as DASH-IF IOP's HDR signalling writes them.
var transferCharacteristics = map[string]string{"PQ": "16", "HLG": "18"}

// audioChannels is the AudioChannelConfiguration of audio track tv: for
// AC-3 and E-AC-3 the scheme DASH-IF IOP 9.2.1.2 gives them, Dolby's, with
// the channel map in four hex digits (F801 for 5.1); for other codecs the
// channel count in MPEG's (23003-3). nil when the count is unknown.
func audioChannels(tv *timeline.TrackView) *descriptor {
	switch {
	case (tv.Codecs == "ac-3" || tv.Codecs == "ec-3") && tv.ChannelMap > 0:
		return &descriptor{SchemeIDURI: "tag:dolby.com,2014:dash:audio_channel_configuration:2011", Value: fmt.Sprintf("%04X", tv.ChannelMap)}
	case tv.Channels > 0:
		return &descriptor{SchemeIDURI: "urn:mpeg:dash:23003:3:audio_channel_configuration:2011", Value: strconv.Itoa(tv.Channels)}
	}
	return nil
}

// periods splits the adaptation sets' timelines at the breaks any of them
// has (breaks less than a fragment apart are one: audio and video of one
// encoder break together, a few samples apart). A fragment belongs to the
// last Period that begins no later than half a fragment after it starts.
// Period ids are stable as the window slides: "0" for the first, then
// "b" and the break's time in milliseconds since the epoch. A change of a
// track's protection is a break (timeline.Arrival.Init): each Period's
// AdaptationSet is that of the init segment version of its first
// fragment (setVersion).
func periods(p *timeline.Presentation, origin time.Time, groups []timeline.Group, commons []timeline.Timeline, assets []adaptationSet, maxDur time.Duration) []period {
	var breaks []time.Time
	for i, c := range commons {
		if groups[i].Kind == timeline.Text {
			continue // a text track's Periods are the others'
		}
		ts := groups[i].Views[0].Timescale
		if c.HasBreakAt {
			breaks = append(breaks, p.Wallclock(c.BreakAt, ts))
		}
		for _, r := range c.Runs {
			if r.Break && r.Count > 0 { // a break marks a run's first fragment
				breaks = append(breaks, p.Wallclock(r.Start, ts))
			}
		}
	}
	slices.SortFunc(breaks, time.Time.Compare)
	var begins []time.Time // begins[k] starts Period k+1
	for _, b := range breaks {
		if n := len(begins); n > 0 && b.Sub(begins[n-1]) < maxDur {
			continue
		}
		begins = append(begins, b)
	}
	// [period][group]: with no break, one Period of the timelines as they
	// are.
	parts, versions := [][]timeline.Timeline{commons}, [][]string{firstVersions(commons)}
	if len(begins) > 0 {
		parts, versions = splitAt(p, begins, groups, commons, maxDur)
	}
	var out []period
	evs := p.Events()
	for k, part := range parts {
		begin, id := origin, "0"
		if k > 0 {
			begin, id = begins[k-1], "b"+strconv.FormatInt(begins[k-1].Sub(p.Epoch).Milliseconds(), 10)
		}
		per := period{ID: id, Start: duration(max(begin.Sub(origin), 0))}
		var end time.Time
		if k < len(begins) {
			end = begins[k]
		}
		per.EventStreams = eventStreams(evs, p, begin, end)
		for i := range part {
			if part[i].Empty() {
				continue
			}
			as := assets[i]
			as.Representations = slices.Clone(as.Representations)
			if v := versions[k][i]; v != "" {
				as.setVersion(groups[i], v)
			}
			ts := groups[i].Views[0].Timescale
			pto := p.MediaTime(begin, ts)
			as.SegmentTemplate.Timeline = &part[i]
			as.SegmentTemplate.PresentationTimeOffset = pto
			for j, r := range as.Representations {
				if r.SegmentTemplate != nil {
					st := *r.SegmentTemplate
					st.PresentationTimeOffset = pto
					as.Representations[j].SegmentTemplate = &st
				}
			}
			per.Assets = append(per.Assets, as)
		}
		if len(per.Assets) > 0 {
			out = append(out, per)
		}
	}
	return out
}

// firstVersions are the init segment versions of the timelines' first
// fragments ("" for an empty one).
func firstVersions(tls []timeline.Timeline) []string {
	vs := make([]string, len(tls))
	for i := range tls {
		if !tls[i].Empty() {
			vs[i] = tls[i].Runs[0].Init
		}
	}
	return vs
}

// splitAt cuts each group's timeline into the Periods that begins start:
// parts[k][i] is group i's part of Period k, versions[k][i] the init
// segment version of its first fragment.
func splitAt(p *timeline.Presentation, begins []time.Time, groups []timeline.Group, commons []timeline.Timeline, maxDur time.Duration) (parts [][]timeline.Timeline, versions [][]string) {
	parts = make([][]timeline.Timeline, len(begins)+1)
	versions = make([][]string, len(begins)+1)
	for k := range parts {
		parts[k] = make([]timeline.Timeline, len(groups))
		versions[k] = make([]string, len(groups))
	}
	for i, c := range commons {
		ts := groups[i].Views[0].Timescale
		prevEnd, started := uint64(0), make([]bool, len(parts))
		for e := range c.All() {
			w := p.Wallclock(e.Start, ts).Add(maxDur / 2)
			k := sort.Search(len(begins), func(j int) bool { return begins[j].After(w) })
			tl := &parts[k][i]
			if !started[k] {
				tl.FirstSeq, started[k] = e.Seq, true
				versions[k][i] = e.Init
			}
			tl.Append(e.Fragment, !tl.Empty() && (e.Gap || e.Start != prevEnd))
			prevEnd = e.End()
		}
	}
	return parts, versions
}

func ticksDuration(ticks, timescale uint64) time.Duration {
	if timescale == 0 {
		return 0
	}
	return time.Duration(ticks/timescale)*time.Second + time.Duration(ticks%timescale*uint64(time.Second)/timescale)
}

// duration formats d as an xs:duration in seconds (PT2S, PT1800S, PT2.4S).
func duration(d time.Duration) string {
	sec := strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
	return "PT" + sec + "S"
}

// frameRate writes a measured frame rate as a DASH FrameRateType: an
// integer, or a fraction for the NTSC rates (30000/1001) and others.
func frameRate(fps float64) string {
	if n := math.Round(fps); math.Abs(fps-n) < 0.01 {
		return strconv.Itoa(int(n))
	}
	if n := math.Round(fps * 1.001); math.Abs(fps*1.001-n) < 0.01 {
		return strconv.Itoa(int(n)*1000) + "/1001"
	}
	return strconv.Itoa(int(math.Round(fps*1000))) + "/1000"
}

// size is about the length of the MPD, for the buffer: at most one S
// element per fragment of a cyclic run, one per constant run.
func (m *mpd) size() int {
	n := 1024
	for i := range m.Periods {
		for j := range m.Periods[i].Assets {
			as := &m.Periods[i].Assets[j]
			n += 1024 + 512*len(as.Representations)
			if tl := as.SegmentTemplate.Timeline; tl != nil {
				n += 40 * min(tl.MaxSpans(), xmlout.MaxSizeHint)
			}
		}
	}
	return min(n, xmlout.MaxSizeHint)
}

// write writes the MPD element.
func (m *mpd) write(w *xmlout.Writer) {
	w.Start(0, "MPD")
	w.Attr("xmlns", "urn:mpeg:dash:schema:mpd:2011")
	w.AttrOmit("xmlns:cenc", m.XmlnsCenc)
	w.AttrOmit("xmlns:mspr", m.XmlnsMspr)
	w.Attr("profiles", m.Profiles)
	w.Attr("type", m.Type)
	w.AttrOmit("availabilityStartTime", m.AvailabilityStartTime)
	w.Attr("publishTime", m.PublishTime)
	w.AttrOmit("mediaPresentationDuration", m.MediaPresentationDuration)
	w.AttrOmit("minimumUpdatePeriod", m.MinimumUpdatePeriod)
	w.AttrOmit("timeShiftBufferDepth", m.TimeShiftBufferDepth)
	w.AttrOmit("suggestedPresentationDelay", m.SuggestedPresentationDelay)
	w.Attr("maxSegmentDuration", m.MaxSegmentDuration)
	w.Attr("minBufferTime", m.MinBufferTime)
	if len(m.Periods) == 0 && len(m.UTCTiming) == 0 {
		w.Empty("MPD")
		return
	}
	w.Open()
	for i := range m.Periods {
		m.Periods[i].write(w, 1)
	}
	for i := range m.UTCTiming {
		m.UTCTiming[i].write(w, 1, "UTCTiming")
	}
	w.End(0, "MPD")
}

// write writes the Period element at depth.
func (per *period) write(w *xmlout.Writer, depth int) {
	w.Start(depth, "Period")
	w.Attr("id", per.ID)
	w.Attr("start", per.Start)
	if len(per.Assets) == 0 && len(per.EventStreams) == 0 {
		w.Empty("Period")
		return
	}
	w.Open()
	for i := range per.EventStreams {
		per.EventStreams[i].write(w, depth+1)
	}
	for i := range per.Assets {
		per.Assets[i].write(w, depth+1)
	}
	w.End(depth, "Period")
}

// write writes the AdaptationSet element at depth: its Role, its
// SegmentTemplate, its Representations.
func (as *adaptationSet) write(w *xmlout.Writer, depth int) {
	w.Start(depth, "AdaptationSet")
	w.IntAttr("id", as.ID)
	w.Attr("contentType", as.ContentType)
	w.Attr("mimeType", as.MimeType)
	w.AttrOmit("lang", as.Lang)
	w.Attr("segmentAlignment", strconv.FormatBool(as.SegmentAlignment))
	w.IntAttr("startWithSAP", as.StartWithSAP)
	w.IntAttrOmit("maxWidth", as.MaxWidth)
	w.IntAttrOmit("maxHeight", as.MaxHeight)
	w.Open() // the SegmentTemplate, at least
	for i := range as.ContentProtection {
		as.ContentProtection[i].write(w, depth+1)
	}
	if as.Inband != nil {
		as.Inband.write(w, depth+1, "InbandEventStream")
	}
	if as.Label != "" {
		writeLabel(w, depth+1, as.Label)
	}
	for i := range as.Accessibility {
		as.Accessibility[i].write(w, depth+1, "Accessibility")
	}
	for i := range as.Roles {
		as.Roles[i].write(w, depth+1, "Role")
	}
	as.SegmentTemplate.write(w, depth+1)
	for i := range as.Representations {
		as.Representations[i].write(w, depth+1)
	}
	w.End(depth, "AdaptationSet")
}

// write writes the descriptor as element name at depth.
func (d *descriptor) write(w *xmlout.Writer, depth int, name string) {
	w.Start(depth, name)
	w.Attr("schemeIdUri", d.SchemeIDURI)
	w.Attr("value", d.Value)
	w.Empty(name)
}

// write writes the SegmentTemplate element at depth, with its
// SegmentTimeline if it has a timeline.
func (st *segmentTemplate) write(w *xmlout.Writer, depth int) {
	w.Start(depth, "SegmentTemplate")
	w.UintAttr("timescale", st.Timescale)
	w.UintAttrOmit("presentationTimeOffset", st.PresentationTimeOffset)
	w.AttrOmit("initialization", st.Initialization)
	w.AttrOmit("media", st.Media)
	if st.Timeline == nil {
		w.Empty("SegmentTemplate")
		return
	}
	w.Open()
	writeSegmentTimeline(w, depth+1, st.Timeline)
	w.End(depth, "SegmentTemplate")
}

// writeSegmentTimeline writes the SegmentTimeline element of tl at depth:
// an S element per span of equal durations.
func writeSegmentTimeline(w *xmlout.Writer, depth int, tl *timeline.Timeline) {
	w.Start(depth, "SegmentTimeline")
	first := true
	for s := range tl.Spans() {
		if first {
			w.Open()
			first = false
		}
		// The attributes of newSegment's S element, written in the loop:
		// a call per element costs a tenth of the MPD's time.
		w.Start(depth+1, "S")
		if !s.Follows {
			w.UintAttr("t", s.Start)
		}
		w.UintAttr("d", s.Duration)
		w.UintAttrOmit("r", s.Count-1)
		w.Empty("S")
	}
	if first {
		w.Empty("SegmentTimeline")
		return
	}
	w.End(depth, "SegmentTimeline")
}

// write writes the Representation element at depth.
func (r *representation) write(w *xmlout.Writer, depth int) {
	w.Start(depth, "Representation")
	w.Attr("id", r.ID)
	w.IntAttr("bandwidth", r.Bandwidth)
	w.Attr("codecs", r.Codecs)
	w.IntAttrOmit("width", r.Width)
	w.IntAttrOmit("height", r.Height)
	w.AttrOmit("frameRate", r.FrameRate)
	w.AttrOmit("sar", r.SAR)
	w.IntAttrOmit("audioSamplingRate", r.AudioSamplingRate)
	if r.Channels == nil && len(r.ContentProtection) == 0 && len(r.Properties) == 0 && r.SegmentTemplate == nil {
		w.Empty("Representation")
		return
	}
	w.Open()
	if r.Channels != nil {
		r.Channels.write(w, depth+1, "AudioChannelConfiguration")
	}
	for i := range r.ContentProtection {
		r.ContentProtection[i].write(w, depth+1)
	}
	for i := range r.Properties {
		r.Properties[i].write(w, depth+1, "SupplementalProperty")
	}
	if r.SegmentTemplate != nil {
		r.SegmentTemplate.write(w, depth+1)
	}
	w.End(depth, "Representation")
}

package dash

// The reference renderer: Render as it was before it wrote XML by hand,
// marshalling structs with encoding/xml. Render must give the same bytes
// for every presentation (equivalence_test.go), and the benchmarks
// measure both in the same run.

import (
	"bytes"
	"cmp"
	"encoding/xml"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

type refMPD struct {
	XMLName                    xml.Name       `xml:"urn:mpeg:dash:schema:mpd:2011 MPD"`
	Profiles                   string         `xml:"profiles,attr"`
	Type                       string         `xml:"type,attr"`
	AvailabilityStartTime      string         `xml:"availabilityStartTime,attr,omitempty"`
	PublishTime                string         `xml:"publishTime,attr"`
	MediaPresentationDuration  string         `xml:"mediaPresentationDuration,attr,omitempty"`
	MinimumUpdatePeriod        string         `xml:"minimumUpdatePeriod,attr,omitempty"`
	TimeShiftBufferDepth       string         `xml:"timeShiftBufferDepth,attr,omitempty"`
	SuggestedPresentationDelay string         `xml:"suggestedPresentationDelay,attr,omitempty"`
	MaxSegmentDuration         string         `xml:"maxSegmentDuration,attr"`
	MinBufferTime              string         `xml:"minBufferTime,attr"`
	Periods                    []refPeriod    `xml:"Period"`
	UTCTiming                  []refUTCTiming `xml:"UTCTiming"`
}

type refPeriod struct {
	ID     string             `xml:"id,attr"`
	Start  string             `xml:"start,attr"`
	Assets []refAdaptationSet `xml:"AdaptationSet"`
}

type refAdaptationSet struct {
	ID               int                 `xml:"id,attr"`
	ContentType      string              `xml:"contentType,attr"`
	MimeType         string              `xml:"mimeType,attr"`
	Lang             string              `xml:"lang,attr,omitempty"`
	SegmentAlignment bool                `xml:"segmentAlignment,attr"`
	StartWithSAP     int                 `xml:"startWithSAP,attr"`
	MaxWidth         int                 `xml:"maxWidth,attr,omitempty"`
	MaxHeight        int                 `xml:"maxHeight,attr,omitempty"`
	Role             *refDescriptor      `xml:"Role"`
	SegmentTemplate  refSegmentTemplate  `xml:"SegmentTemplate"`
	Representations  []refRepresentation `xml:"Representation"`
}

type refDescriptor struct {
	SchemeIDURI string `xml:"schemeIdUri,attr"`
	Value       string `xml:"value,attr"`
}

type refSegmentTemplate struct {
	Timescale uint64 `xml:"timescale,attr"`
	// PresentationTimeOffset maps the first fragment of a static range to
	// the start of its Period.
	PresentationTimeOffset uint64      `xml:"presentationTimeOffset,attr,omitempty"`
	Initialization         string      `xml:"initialization,attr,omitempty"`
	Media                  string      `xml:"media,attr,omitempty"`
	Timeline               *refSegTime `xml:"SegmentTimeline"`
}

type refSegTime struct {
	S []refS `xml:"S"`
}

// refS is an S element: t only where the start does not follow from the
// previous element, r the number of repeats after the first (DASH counts
// repeats, where Smooth counts fragments).
type refS struct {
	T *uint64 `xml:"t,attr"`
	D uint64  `xml:"d,attr"`
	R uint64  `xml:"r,attr,omitempty"`
}

type refRepresentation struct {
	ID                string              `xml:"id,attr"`
	Bandwidth         int                 `xml:"bandwidth,attr"`
	Codecs            string              `xml:"codecs,attr"`
	Width             int                 `xml:"width,attr,omitempty"`
	Height            int                 `xml:"height,attr,omitempty"`
	FrameRate         string              `xml:"frameRate,attr,omitempty"`
	SAR               string              `xml:"sar,attr,omitempty"`
	AudioSamplingRate int                 `xml:"audioSamplingRate,attr,omitempty"`
	Channels          *refDescriptor      `xml:"AudioChannelConfiguration"`
	SegmentTemplate   *refSegmentTemplate `xml:"SegmentTemplate"`
}

type refUTCTiming struct {
	SchemeIDURI string `xml:"schemeIdUri,attr"`
	Value       string `xml:"value,attr"`
}

// renderReference is Render as it was: the same structs, marshalled with
// encoding/xml.
func renderReference(p *timeline.Presentation, o Options) ([]byte, error) {
	m := refMPD{
		Profiles:              "urn:mpeg:dash:profile:isoff-live:2011",
		Type:                  "dynamic",
		AvailabilityStartTime: p.Epoch.UTC().Format(time.RFC3339Nano),
		TimeShiftBufferDepth:  refDuration(p.DVRWindow),
	}
	// Representation ids are the bitrates, which $RepresentationID$ puts in
	// the URL; a bitrate two groups share gets a name-qualified id and a
	// SegmentTemplate of its own.
	seen := map[int]int{}
	for _, tv := range p.Tracks {
		seen[tv.ID.Bitrate]++
	}
	var maxDur time.Duration
	// The extent of what the adaptation sets list: its end is the publish
	// time; a static range ends at FirstEnd, so that no reader looks for a
	// segment past the end of an adaptation set that stops a few samples
	// early.
	var extent timeline.Extent
	var groups []timeline.Group
	var commons []timeline.Timeline
	for _, g := range p.Groups() {
		if g.Kind != timeline.Video && g.Kind != timeline.Audio {
			continue
		}
		common := p.Common(g)
		if common.Empty() {
			continue
		}
		extent.Add(p, &common, g.Views[0].Timescale)
		groups, commons = append(groups, g), append(commons, common)
	}
	var assets []refAdaptationSet
	for _, g := range groups {
		tv0 := g.Views[0]
		ts := tv0.Timescale
		for _, tv := range g.Views {
			if tv.Timescale != ts {
				return nil, fmt.Errorf("dash: channel %s: tracks named %q mix timescales %d and %d", p.Channel, g.Name, ts, tv.Timescale)
			}
			maxDur = max(maxDur, refTicksDuration(tv.State.MaxDuration, ts))
		}
		as := refAdaptationSet{
			ID:               len(assets),
			SegmentAlignment: true,
			StartWithSAP:     1,
			Role:             &refDescriptor{SchemeIDURI: timeline.RoleScheme, Value: cmp.Or(tv0.Role, "main")},
			SegmentTemplate: refSegmentTemplate{
				Timescale:      ts,
				Initialization: layout.InitPattern(g.Name, "$RepresentationID$"),
				Media:          layout.FragmentPattern(g.Name, "$RepresentationID$", "$Time$"),
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
		}
		for _, tv := range g.Views {
			r := refRepresentation{ID: strconv.Itoa(tv.ID.Bitrate), Bandwidth: tv.ID.Bitrate, Codecs: tv.Codecs}
			if _, peak, ok := tv.State.Bitrates(ts); ok {
				r.Bandwidth = peak // measured from the fragments, as ABR needs it
			}
			if seen[tv.ID.Bitrate] > 1 {
				r.ID = tv.ID.Name + "_" + r.ID
				b := strconv.Itoa(tv.ID.Bitrate)
				r.SegmentTemplate = &refSegmentTemplate{
					Timescale:      ts,
					Initialization: layout.InitPattern(g.Name, b),
					Media:          layout.FragmentPattern(g.Name, b, "$Time$"),
				}
			}
			switch g.Kind {
			case timeline.Video:
				r.Width, r.Height, r.SAR = tv.Width, tv.Height, "1:1"
				if fps, ok := tv.State.FrameRate(ts); ok {
					r.FrameRate = refFrameRate(fps)
				}
				as.MaxWidth, as.MaxHeight = max(as.MaxWidth, tv.Width), max(as.MaxHeight, tv.Height)
			case timeline.Audio:
				r.AudioSamplingRate = tv.SamplingRate
				if tv.Channels > 0 {
					r.Channels = &refDescriptor{SchemeIDURI: "urn:mpeg:dash:23003:3:audio_channel_configuration:2011", Value: strconv.Itoa(tv.Channels)}
				}
			}
			as.Representations = append(as.Representations, r)
		}
		assets = append(assets, as)
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
	m.Periods = refPeriods(p, origin, groups, commons, assets, maxDur)
	newest := extent.End
	if extent.Empty() {
		newest = p.Epoch
	}
	m.PublishTime = newest.UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano)
	m.MaxSegmentDuration = refDuration(maxDur)
	m.MinBufferTime = refDuration(maxDur)
	if p.VOD() {
		// A finished range: a static MPD whose Period starts at the range's
		// first fragment.
		m.Type, m.AvailabilityStartTime, m.TimeShiftBufferDepth = "static", "", ""
		m.MediaPresentationDuration = refDuration(extent.FirstEnd.Sub(extent.Start))
	} else {
		mup := o.MinimumUpdatePeriod
		if mup == 0 {
			mup = maxDur
		}
		m.MinimumUpdatePeriod = refDuration(mup)
		// Three segments behind the live edge, as HLS clients hold back.
		m.SuggestedPresentationDelay = refDuration(3 * maxDur)
		if depth := extent.End.Sub(extent.Start); p.Range != nil && depth > p.DVRWindow {
			// A start-over reaching further back than the DVR window.
			m.TimeShiftBufferDepth = refDuration(depth)
		}
	}
	if o.UTCTimingURL != "" && !p.VOD() {
		m.UTCTiming = []refUTCTiming{{SchemeIDURI: "urn:mpeg:dash:utc:http-iso:2014", Value: o.UTCTimingURL}}
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("dash: MPD of channel %s: %w", p.Channel, err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// refPeriods splits the adaptation sets' timelines at the breaks any of them
// has (breaks less than a fragment apart are one: audio and video of one
// encoder break together, a few samples apart). A fragment belongs to the
// last Period that begins no later than half a fragment after it starts.
// Period ids are stable as the window slides: "0" for the first, then
// "b" and the break's time in milliseconds since the epoch.
func refPeriods(p *timeline.Presentation, origin time.Time, groups []timeline.Group, commons []timeline.Timeline, assets []refAdaptationSet, maxDur time.Duration) []refPeriod {
	var breaks []time.Time
	for i, c := range commons {
		ts := groups[i].Views[0].Timescale
		if c.HasBreakAt {
			breaks = append(breaks, p.Wallclock(c.BreakAt, ts))
		}
		for e := range c.All() {
			if e.Break {
				breaks = append(breaks, p.Wallclock(e.Start, ts))
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
	parts := [][]timeline.Timeline{commons}
	if len(begins) > 0 {
		parts = refSplitAt(p, begins, groups, commons, maxDur)
	}
	var out []refPeriod
	for k, part := range parts {
		begin, id := origin, "0"
		if k > 0 {
			begin, id = begins[k-1], "b"+strconv.FormatInt(begins[k-1].Sub(p.Epoch).Milliseconds(), 10)
		}
		per := refPeriod{ID: id, Start: refDuration(max(begin.Sub(origin), 0))}
		for i, tl := range part {
			if tl.Empty() {
				continue
			}
			as := assets[i]
			as.Representations = slices.Clone(as.Representations)
			ts := groups[i].Views[0].Timescale
			pto := p.MediaTime(begin, ts)
			as.SegmentTemplate.Timeline = refSegmentTimeline(tl)
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

// refSplitAt cuts each group's timeline into the Periods that begins start:
// parts[k][i] is group i's part of Period k.
func refSplitAt(p *timeline.Presentation, begins []time.Time, groups []timeline.Group, commons []timeline.Timeline, maxDur time.Duration) [][]timeline.Timeline {
	parts := make([][]timeline.Timeline, len(begins)+1)
	for k := range parts {
		parts[k] = make([]timeline.Timeline, len(groups))
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
			}
			tl.Append(e.Fragment, !tl.Empty() && (e.Gap || e.Start != prevEnd))
			prevEnd = e.End()
		}
	}
	return parts
}

func refSegmentTimeline(tl timeline.Timeline) *refSegTime {
	st := &refSegTime{}
	prevEnd, first := uint64(0), true
	for r := range tl.Spans() {
		e := refS{D: r.Duration, R: r.Count - 1}
		if first || r.Start != prevEnd {
			t := r.Start
			e.T = &t
		}
		st.S = append(st.S, e)
		prevEnd, first = r.End(), false
	}
	return st
}

func refTicksDuration(ticks, timescale uint64) time.Duration {
	if timescale == 0 {
		return 0
	}
	return time.Duration(ticks/timescale)*time.Second + time.Duration(ticks%timescale*uint64(time.Second)/timescale)
}

// refDuration formats d as an xs:duration in seconds (PT2S, PT1800S, PT2.4S).
func refDuration(d time.Duration) string {
	sec := strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
	return "PT" + sec + "S"
}

// refFrameRate writes a measured frame rate as a DASH FrameRateType: an
// integer, or a fraction for the NTSC rates (30000/1001) and others.
func refFrameRate(fps float64) string {
	if n := math.Round(fps); math.Abs(fps-n) < 0.01 {
		return strconv.Itoa(int(n))
	}
	if n := math.Round(fps * 1.001); math.Abs(fps*1.001-n) < 0.01 {
		return strconv.Itoa(int(n)*1000) + "/1001"
	}
	return strconv.Itoa(int(math.Round(fps*1000))) + "/1000"
}

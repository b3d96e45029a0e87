package dash

// The reference writer: what build makes, marshalled with encoding/xml
// as Render did before it wrote XML by hand. Render must give the same
// bytes for every presentation (equivalence_test.go), and the benchmarks
// measure both in the same run.

import (
	"bytes"
	"encoding/xml"
	"fmt"

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

// renderReference is the MPD build makes, marshalled with encoding/xml
// into the tagged copies of its structs above: what the hand-written
// writer must match byte for byte. (Until 2026-12-01 it also kept the
// builder as it was; the new one, which finds breaks from the timeline's
// runs, matched it on every case.)
func renderReference(p *timeline.Presentation, o Options) ([]byte, error) {
	m, err := build(p, o)
	if err != nil {
		return nil, err
	}
	ref := refMPD{
		Profiles: m.Profiles, Type: m.Type, AvailabilityStartTime: m.AvailabilityStartTime, PublishTime: m.PublishTime,
		MediaPresentationDuration: m.MediaPresentationDuration, MinimumUpdatePeriod: m.MinimumUpdatePeriod,
		TimeShiftBufferDepth: m.TimeShiftBufferDepth, SuggestedPresentationDelay: m.SuggestedPresentationDelay,
		MaxSegmentDuration: m.MaxSegmentDuration, MinBufferTime: m.MinBufferTime,
	}
	for _, per := range m.Periods {
		rp := refPeriod{ID: per.ID, Start: per.Start}
		for _, as := range per.Assets {
			ra := refAdaptationSet{ID: as.ID, ContentType: as.ContentType, MimeType: as.MimeType, Lang: as.Lang,
				SegmentAlignment: as.SegmentAlignment, StartWithSAP: as.StartWithSAP, MaxWidth: as.MaxWidth,
				MaxHeight: as.MaxHeight, Role: (*refDescriptor)(as.Role), SegmentTemplate: refTemplate(as.SegmentTemplate)}
			for _, r := range as.Representations {
				rr := refRepresentation{ID: r.ID, Bandwidth: r.Bandwidth, Codecs: r.Codecs, Width: r.Width, Height: r.Height,
					FrameRate: r.FrameRate, SAR: r.SAR, AudioSamplingRate: r.AudioSamplingRate, Channels: (*refDescriptor)(r.Channels)}
				if r.SegmentTemplate != nil {
					st := refTemplate(*r.SegmentTemplate)
					rr.SegmentTemplate = &st
				}
				ra.Representations = append(ra.Representations, rr)
			}
			rp.Assets = append(rp.Assets, ra)
		}
		ref.Periods = append(ref.Periods, rp)
	}
	for _, u := range m.UTCTiming {
		ref.UTCTiming = append(ref.UTCTiming, refUTCTiming(u))
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(ref); err != nil {
		return nil, fmt.Errorf("dash: channel %s: %w", p.Channel, err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

func refTemplate(st segmentTemplate) refSegmentTemplate {
	r := refSegmentTemplate{Timescale: st.Timescale, PresentationTimeOffset: st.PresentationTimeOffset,
		Initialization: st.Initialization, Media: st.Media}
	if st.Timeline != nil {
		r.Timeline = refSegmentTimeline(*st.Timeline)
	}
	return r
}

// refSegmentTimeline is the S elements of a timeline.
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

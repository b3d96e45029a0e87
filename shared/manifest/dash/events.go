package dash

import (
	"time"

	"github.com/smoothcast/smoothcast/shared/manifest/xmlout"
	"github.com/smoothcast/smoothcast/shared/scte35"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// eventStream is a Period's EventStream of ad markers (SCTE 214-1: scheme
// urn:scte:scte35:2014:xml+bin, each Event holding the
// splice_info_section in base64 in scte35:Signal/scte35:Binary). Its
// timescale is its first event's track's.
type eventStream struct {
	SchemeIDURI            string  `xml:"schemeIdUri,attr"`
	Timescale              uint64  `xml:"timescale,attr"`
	PresentationTimeOffset uint64  `xml:"presentationTimeOffset,attr,omitempty"`
	Events                 []event `xml:"Event"`
}

// event is an Event of an eventStream: its time (presentationTime less
// the stream's presentationTimeOffset is its time in the Period), its
// duration when known, its id (the emsg's).
type event struct {
	PresentationTime uint64 `xml:"presentationTime,attr"`
	Duration         uint64 `xml:"duration,attr,omitempty"`
	ID               uint32 `xml:"id,attr"`
	Signal           signal `xml:"scte35:Signal"`
}

// signal is scte35:Signal, declaring its namespace itself.
type signal struct {
	NS     string `xml:"xmlns:scte35,attr"`
	Binary string `xml:"scte35:Binary"`
}

// inband is the InbandEventStream of an AdaptationSet whose fragments
// carry ad markers in emsg boxes (the relay writes them there): DASH
// players read them as they load the segments.
var inband = descriptor{SchemeIDURI: scte35.Scheme}

// carriesEvents says whether a group's tracks carry in-band events.
func carriesEvents(g timeline.Group) bool {
	for _, tv := range g.Views {
		for _, e := range tv.State.Events {
			if e.Scheme == scte35.Scheme {
				return true
			}
		}
	}
	return false
}

// eventStreams are the EventStreams of the Period from begin to end
// (zero: open) whose times count from pto (ticks of each stream's
// timescale at begin: see periods): the presentation's SCTE-35 events
// that fall in it.
func eventStreams(evs []timeline.TimedEvent, p *timeline.Presentation, begin, end time.Time) []eventStream {
	var es *eventStream
	for i := range evs {
		e := &evs[i]
		if e.Scheme != scte35.Scheme || e.At.Before(begin) || !end.IsZero() && !e.At.Before(end) {
			continue
		}
		if es == nil {
			es = &eventStream{SchemeIDURI: scte35.XMLBinScheme, Timescale: e.Timescale, PresentationTimeOffset: p.MediaTime(begin, e.Timescale)}
		}
		t, d := e.Time, e.Duration
		if e.Timescale != es.Timescale {
			t = p.MediaTime(e.At, es.Timescale)
			d = timeline.Ticks(timeline.DurationOf(d, e.Timescale), es.Timescale)
		}
		if info, err := scte35.Parse(e.Data); err == nil && d == 0 && info.Kind == scte35.Out && info.Duration > 0 {
			d = timeline.Ticks(info.Duration, es.Timescale)
		}
		es.Events = append(es.Events, event{PresentationTime: t, Duration: d, ID: e.ID,
			Signal: signal{NS: scte35.Namespace, Binary: scte35.Base64(e.Data)}})
	}
	if es == nil {
		return nil
	}
	return []eventStream{*es}
}

// write writes the EventStream element at depth.
func (es *eventStream) write(w *xmlout.Writer, depth int) {
	w.Start(depth, "EventStream")
	w.Attr("schemeIdUri", es.SchemeIDURI)
	w.UintAttr("timescale", es.Timescale)
	w.UintAttrOmit("presentationTimeOffset", es.PresentationTimeOffset)
	if len(es.Events) == 0 {
		w.Empty("EventStream")
		return
	}
	w.Open()
	for i := range es.Events {
		ev := &es.Events[i]
		w.Start(depth+1, "Event")
		w.UintAttr("presentationTime", ev.PresentationTime)
		w.UintAttrOmit("duration", ev.Duration)
		w.UintAttr("id", uint64(ev.ID))
		w.Open()
		w.Start(depth+2, "scte35:Signal")
		w.Attr("xmlns:scte35", ev.Signal.NS)
		w.Open()
		w.Start(depth+3, "scte35:Binary")
		w.Open()
		w.Escape(ev.Signal.Binary)
		w.Buf = append(w.Buf, "</scte35:Binary>"...)
		w.End(depth+2, "scte35:Signal")
		w.End(depth+1, "Event")
	}
	w.End(depth, "EventStream")
}

package manifesttest

import (
	"time"

	"github.com/smoothcast/smoothcast/shared/scte35"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// Markers gives p's video tracks (Presentation's: 10 MHz, six 2 s
// fragments) the SCTE-35 ad markers a push carries in band, the same in
// each rendition: a break of 6 s out at 3.5 s (inside the second
// fragment), back in at 9.5 s, a time_signal-like command (a splice_null
// here) at 11 s, and a break announced for 13 s, after the last fragment.
func Markers(p *timeline.Presentation) *timeline.Presentation {
	const s = 10_000_000
	evs := []timeline.Event{
		{Scheme: scte35.Scheme, ID: 10, Time: 35 * s / 10, Data: scte35.Insert(10, true, 6*time.Second)},
		{Scheme: scte35.Scheme, ID: 11, Time: 95 * s / 10, Data: scte35.Insert(10, false, 0)},
		{Scheme: scte35.Scheme, ID: 12, Time: 11 * s, Duration: 1 * s, Data: spliceNull},
		{Scheme: scte35.Scheme, ID: 13, Time: 13 * s, Data: scte35.Insert(13, true, 0)},
	}
	for i := range p.Tracks {
		if p.Tracks[i].Kind == timeline.Video {
			p.Tracks[i].State.AddEvents(evs)
		}
	}
	return p
}

// spliceNull is a splice_info_section with a splice_null command.
var spliceNull = []byte{0xfc, 0x30, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x7a, 0x4f, 0xbf, 0xff}

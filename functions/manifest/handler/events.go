package handler

import (
	"fmt"
	"log/slog"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/manifest/hls"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// events turns the emsg boxes at the head of a stored fragment into the
// events its track's state keeps (timeline.TrackState.AddEvents): the
// relay wrote them in the track's timescale on the channel's timeline.
// One that is not an ad marker the relay would write is logged and left
// out; the fragment is published all the same.
func (h *Handler) events(emsgs []*mp4.EmsgBox, arr timeline.Arrival, tr timeline.Track, log *slog.Logger) []timeline.Event {
	var evs []timeline.Event
	for _, e := range emsgs {
		ev, err := fmp4.EventOf(e, arr.Start, uint32(tr.Timescale), 0)
		if err != nil {
			log.Warn("fragment carries an event that is left out", "id", e.ID, "err", err)
			continue
		}
		evs = append(evs, ev)
	}
	return evs
}

// cueMarkers reads the choice of HLS marker tags (hls.QueryMarkers):
// true for hls.MarkersCue, false without the parameter, an error for any
// other value.
func cueMarkers(q map[string]string) (bool, error) {
	v, ok := q[hls.QueryMarkers]
	switch {
	case !ok:
		return false, nil
	case v == hls.MarkersCue:
		return true, nil
	}
	return false, fmt.Errorf("bad %s: %q (the one choice is %s)", hls.QueryMarkers, v, hls.MarkersCue)
}

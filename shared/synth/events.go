package synth

import (
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/scte35"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// Marker is an SCTE-35 ad marker a push sends in band, as DASH-IF ingest
// carries them: an emsg (scheme scte35.Scheme, message data a
// splice_insert) before the moof of one fragment of each video track
// (of the muxed moof, when Muxed).
type Marker struct {
	// Fragment is the index of the fragment the emsg comes before.
	Fragment int
	// At is the splice point, after the fragment's start (it may fall
	// inside the fragment, or later).
	At time.Duration
	// ID is the emsg id and the splice_event_id.
	ID uint32
	// Out starts an ad break of Duration (0: not said); else the break
	// ends.
	Out      bool
	Duration time.Duration
	// V0 sends a version 0 emsg (time relative to the fragment's start)
	// instead of version 1 (time on the track's timeline).
	V0 bool
}

// Payload is the splice_info_section the marker carries.
func (m Marker) Payload() []byte { return scte35.Insert(m.ID, m.Out, m.Duration) }

// MarkerAt is the marker's presentation time in the stream's timescale.
func (s *Stream) MarkerAt(m Marker) uint64 {
	return uint64(m.Fragment)*s.fragTicks + ticks(m.At, s.cfg.Timescale)
}

// appendMarkers writes to s.buf the emsg boxes of the markers that come
// before fragment k of track id (0: the muxed moof).
func (s *Stream) appendMarkers(k int, id uint32) {
	if len(s.cfg.Markers) == 0 || !s.carries(id) {
		return
	}
	for _, m := range s.cfg.Markers {
		if m.Fragment != k {
			continue
		}
		e := &mp4.EmsgBox{Version: 1, TimeScale: s.cfg.Timescale, PresentationTime: s.MarkerAt(m), EventDuration: 0xFFFFFFFF,
			ID: m.ID, SchemeIDURI: scte35.Scheme, MessageData: m.Payload()}
		if m.V0 {
			e.Version, e.PresentationTime, e.PresentationTimeDelta = 0, 0, uint32(ticks(m.At, s.cfg.Timescale))
		}
		if m.Duration > 0 {
			e.EventDuration = uint32(ticks(m.Duration, s.cfg.Timescale))
		}
		_ = e.Encode(&s.buf) // a bytes.Buffer does not fail
	}
}

// carries says whether the fragments of track id (0: the muxed moof)
// carry the markers: a video track's, or the muxed moof.
func (s *Stream) carries(id uint32) bool {
	for _, t := range s.tracks {
		if t.id == id || id == 0 {
			if t.Kind == timeline.Video {
				return true
			}
		}
	}
	return false
}

package ingest

import (
	"slices"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/scte35"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// emsg takes an in-band event (DASH-IF ingest: an emsg box before a
// moof). Only SCTE-35 markers (scte35.Scheme) are kept; an emsg of
// another scheme is dropped, and a malformed one (its box, its
// splice_info_section: fmp4.EventOf) is logged and dropped: a bad marker
// never fails the stream. At most fmp4.MaxFragmentEvents wait for the
// next moof; more are dropped.
func (s *Session) emsg(box mp4box.Box) {
	e, err := fmp4.DecodeEmsg(box.Data)
	if err == nil && e.SchemeIDURI != scte35.Scheme {
		s.log.Debug("dropping an emsg of another scheme", "scheme", e.SchemeIDURI, "offset", box.Pos)
		return
	}
	if err == nil {
		_, err = scte35.Parse(e.MessageData)
	}
	switch {
	case err != nil:
		s.log.Warn("dropping a malformed ad marker (emsg)", "offset", box.Pos, "err", err)
	case len(s.emsgs) >= fmp4.MaxFragmentEvents:
		s.log.Warn("dropping an ad marker (emsg): too many before one fragment", "offset", box.Pos, "limit", fmp4.MaxFragmentEvents)
	default:
		e.MessageData = slices.Clone(e.MessageData) // the reader reuses its buffer
		s.emsgs = append(s.emsgs, e)
	}
}

// carriers says which parts of the moof in hand carry the events that
// came before it: its video parts, or every part when it has no video
// (a CMAF push of one track per connection carries them in whatever
// track the encoder put them).
func (s *Session) carriers(ps []piece) []bool {
	out := make([]bool, len(ps))
	if len(s.emsgs) == 0 {
		return out
	}
	video := slices.ContainsFunc(ps, func(p piece) bool { return p.t.kind == timeline.Video && !p.dropped })
	for i, p := range ps {
		out[i] = !p.dropped && (!video || p.t.kind == timeline.Video)
	}
	return out
}

// carry puts the events in hand at the head of piece pc's fragment, each
// as a version 1 emsg in the track's timescale on the channel's timeline
// (what DASH players read in band, and the manifest function keeps in
// the track's state). An event whose time cannot be placed is dropped.
func (s *Session) carry(pc *piece) {
	ts := pc.t.trak.Mdia.Mdhd.Timescale
	offset := int64(s.offset.Seconds()) * int64(ts)
	var head []byte
	for _, e := range s.emsgs {
		ev, err := fmp4.EventOf(e, pc.info.Start, ts, offset)
		if err != nil {
			s.log.Warn("dropping an ad marker (emsg)", "track", pc.t.name, "id", e.ID, "err", err)
			continue
		}
		head = fmp4.AppendEmsg(head, ev, ts)
		s.log.Info("ad marker", "track", pc.t.name, "id", ev.ID, "time", ev.Time, "fragment", pc.info.Start)
	}
	if head != nil {
		pc.head = append(head, pc.head...)
	}
}

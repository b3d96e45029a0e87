package ingest

import (
	"encoding/binary"
	"maps"
	"slices"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/scte35"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// emsg takes an in-band event (DASH-IF ingest: an emsg box before a
// moof): see keep. One whose box is malformed is logged and dropped.
func (s *Session) emsg(box mp4box.Box) {
	e, err := fmp4.DecodeEmsg(box.Data)
	if err != nil {
		s.log.Warn("dropping a malformed ad marker (emsg)", "offset", box.Pos, "err", err)
		return
	}
	e.MessageData = slices.Clone(e.MessageData) // the reader reuses its buffer
	s.keep(e, box.Pos)
}

// keep keeps an ad marker (at offset in the stream) for the next moof's
// fragments, or, when the connection has no media to carry it, hands it
// to the channel's other connections (Options.Markers). Only SCTE-35
// markers (scte35.Scheme) are kept; one of another scheme is dropped,
// and a malformed one (its splice_info_section: scte35.Parse) is logged
// and dropped: a bad marker never fails the stream. At most
// fmp4.MaxFragmentEvents wait for the next moof; more are dropped.
func (s *Session) keep(e *mp4.EmsgBox, offset uint64) {
	if e.SchemeIDURI != scte35.Scheme {
		s.log.Debug("dropping an emsg of another scheme", "scheme", e.SchemeIDURI, "offset", offset)
		return
	}
	if _, err := scte35.Parse(e.MessageData); err != nil {
		s.log.Warn("dropping a malformed ad marker (emsg)", "offset", offset, "err", err)
		return
	}
	if !s.carriesMedia() && s.opts.Markers != nil {
		s.opts.Markers.Put(e)
		return
	}
	if len(s.emsgs) >= fmp4.MaxFragmentEvents {
		s.log.Warn("dropping an ad marker (emsg): too many before one fragment", "offset", offset, "limit", fmp4.MaxFragmentEvents)
		return
	}
	s.emsgs = append(s.emsgs, e)
}

// carriesMedia says whether the connection declared a media track.
func (s *Session) carriesMedia() bool {
	for _, t := range s.tracks {
		if t.data == nil {
			return true
		}
	}
	return false
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

// MarkerQueue hands ad markers between the connections of a channel
// (Options.Markers). Its times are the encoder's, as the emsg boxes
// that carry them say (version 1).
type MarkerQueue interface {
	// Put gives the markers of a connection that has no media to carry
	// them.
	Put(e *mp4.EmsgBox)
	// Take returns the markers this connection has not taken yet.
	Take() []*mp4.EmsgBox
}

// dataTrack is what a data track's samples hold.
type dataTrack struct {
	// evte: each sample holds emib boxes (a timed-metadata track, ISO/IEC
	// 23001-18 as DASH-IF ingest sends it); else each is a sparse
	// fragment's message as Azure Media Services takes it: version (1),
	// id, presentation_time_delta (32 bits each), the section.
	evte   bool
	scheme string
}

// dataTrackOf says whether trak is a data track, and what its samples
// hold: a track of handler meta, with an evte sample entry (timed
// metadata) or another (a sparse track: urim, or the SMIL's textstream
// of Subtype DATA, whose Scheme param names the scheme).
func (s *Session) dataTrackOf(trak *mp4.TrakBox) *dataTrack {
	if trak.Mdia == nil || trak.Mdia.Hdlr == nil || trak.Mdia.Hdlr.HandlerType != "meta" || trak.Mdia.Mdhd == nil || trak.Mdia.Mdhd.Timescale == 0 {
		return nil
	}
	d := &dataTrack{scheme: scte35.Scheme}
	if st := trak.Mdia.Minf; st != nil && st.Stbl != nil && st.Stbl.Stsd != nil && st.Stbl.Stsd.Evte != nil {
		d.evte = true
	}
	for _, t := range s.smil {
		if t.TrackID == trak.Tkhd.TrackID && t.Params["Scheme"] != "" {
			d.scheme = t.Params["Scheme"]
		}
	}
	return d
}

// trexOf is track id's defaults in moov (nil when none).
func trexOf(moov *mp4.MoovBox, id uint32) *mp4.TrexBox {
	if moov.Mvex == nil {
		return nil
	}
	for _, tx := range moov.Mvex.Trexs {
		if tx.TrackID == id {
			return tx
		}
	}
	return nil
}

// dataParts turns the data tracks' parts of the moof in hand into ad
// markers (each sample one or more, as emsg boxes of version 1 on the
// encoder's clock), and returns the media parts. A malformed sample is
// logged and dropped.
func (s *Session) dataParts(parts []fmp4.Part) []fmp4.Part {
	media := parts[:0]
	for i := range parts {
		p := &parts[i]
		t := s.tracks[p.TrackID]
		if t.data == nil {
			media = append(media, *p)
			continue
		}
		ts := t.trak.Mdia.Mdhd.Timescale
		samples, err := p.TimedSamples(t.trex, 0)
		if err != nil {
			s.log.Warn("dropping a data track's fragment", "track_id", p.TrackID, "offset", s.moofAt, "err", err)
			continue
		}
		for _, smp := range samples {
			for _, e := range t.data.events(smp, ts) {
				s.keep(e, s.moofAt)
			}
			if t.data.evte {
				continue
			}
			if len(smp.Data) < 12 || binary.BigEndian.Uint32(smp.Data) != 1 {
				s.log.Warn("dropping a malformed ad marker (sparse track sample)", "track_id", p.TrackID, "offset", s.moofAt, "bytes", len(smp.Data))
			}
		}
	}
	return media
}

// events are the emsg boxes of one sample of the data track (timescale
// ts); those that cannot be read are left out (the caller logs a sparse
// sample that is no message).
func (d *dataTrack) events(smp fmp4.TimedSample, ts uint32) []*mp4.EmsgBox {
	e := func(at int64, dur, id uint32, scheme string, data []byte) *mp4.EmsgBox {
		if at < 0 {
			return nil
		}
		if dur == 0 {
			dur = 0xFFFFFFFF
		}
		return &mp4.EmsgBox{Version: 1, TimeScale: ts, PresentationTime: uint64(at), EventDuration: dur, ID: id, SchemeIDURI: scheme, MessageData: slices.Clone(data)}
	}
	var out []*mp4.EmsgBox
	if !d.evte {
		if len(smp.Data) >= 12 && binary.BigEndian.Uint32(smp.Data) == 1 {
			id, delta := binary.BigEndian.Uint32(smp.Data[4:]), binary.BigEndian.Uint32(smp.Data[8:])
			if x := e(smp.Time+int64(delta), smp.Dur, id, d.scheme, smp.Data[12:]); x != nil {
				out = append(out, x)
			}
		}
		return out
	}
	for box, err := range mp4box.All(smp.Data) {
		if err != nil || box.Type != "emib" {
			continue // emeb (no event), or what is no box
		}
		b, err := mp4box.Decode(box)
		if m, ok := b.(*mp4.EmibBox); err == nil && ok {
			if x := e(smp.Time+m.PresentationTimeDelta, m.EventDuration, m.Id, m.SchemeIdURI, m.MessageData); x != nil {
				out = append(out, x)
			}
		}
	}
	return out
}

// takeQueued adds the markers other connections of the channel handed
// on (Options.Markers) to those the next moof carries, on a connection
// with video: the video fragments carry the markers, as a push's own.
func (s *Session) takeQueued() {
	if s.opts.Markers == nil || !slices.ContainsFunc(slices.Collect(maps.Values(s.tracks)), func(t *track) bool { return t.data == nil && t.kind == timeline.Video }) {
		return
	}
	for _, e := range s.opts.Markers.Take() {
		if len(s.emsgs) < fmp4.MaxFragmentEvents {
			s.emsgs = append(s.emsgs, e)
		}
	}
}

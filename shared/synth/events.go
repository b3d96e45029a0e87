package synth

import (
	"bytes"
	"encoding/binary"
	"fmt"
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

// DataTrack is a push of one data track (handler meta) that carries ad
// markers: a timed-metadata track (Evte: an evte sample entry, each
// sample emib boxes, times in tfdt), or a sparse track as Azure Media
// Services took SCTE-35 from a Smooth encoder (the live server manifest
// declares it a textstream of Subtype DATA with its Scheme and parent
// track, the sample entry is urim, times are in tfxd, and each
// fragment's one sample is a message: AMSMessage).
type DataTrack struct {
	Timescale uint32
	Evte      bool
	// Parent names the media track whose timeline the sparse track's
	// times share (the server manifest's parentTrackName).
	Parent string
	// Starts and Samples are each fragment's time and its one sample.
	Starts  []uint64
	Samples [][]byte
}

// Push is the bytes of the push: ftyp, the server manifest (a sparse
// track), the moov, and a moof and mdat per sample.
func (d DataTrack) Push() ([]byte, error) {
	init := mp4.CreateEmptyInit()
	init.Moov.Mvhd.Timescale = d.Timescale
	trak := init.AddEmptyTrack(d.Timescale, "meta", "und")
	trak.Mdia.Minf.Stbl.Stsd.AddChild(&mp4.EvteBox{DataReferenceIndex: 1})
	var b bytes.Buffer
	if err := mp4.NewFtyp("isml", 1, []string{"piff", "iso2"}).Encode(&b); err != nil {
		return nil, err
	}
	if !d.Evte {
		doc := fmt.Sprintf(`<?xml version="1.0" encoding="utf-8"?>
<smil xmlns="http://www.w3.org/2001/SMIL20/Language"><head/><body><switch>
<textstream systemBitrate="0"><param name="trackID" value="%d"/><param name="trackName" value="scte35"/><param name="parentTrackName" value="%s"/><param name="manifestOutput" value="true"/><param name="Subtype" value="DATA"/><param name="Scheme" value="%s"/><param name="timescale" value="%d"/></textstream>
</switch></body></smil>
`, trak.Tkhd.TrackID, d.Parent, scte35.Scheme, d.Timescale)
		size := 8 + 16 + 4 + len(doc)
		b.Write([]byte{byte(size >> 24), byte(size >> 16), byte(size >> 8), byte(size)})
		b.WriteString("uuid" + serverManifestUUID + "\x00\x00\x00\x00")
		b.WriteString(doc)
	}
	if err := init.Moov.Encode(&b); err != nil {
		return nil, err
	}
	body := bytes.Clone(b.Bytes())
	if !d.Evte {
		body = bytes.Replace(body, []byte("evte"), []byte("urim"), 1) // a sample entry mp4ff has no type for
	}
	for k, data := range d.Samples {
		frag, err := mp4.CreateFragment(uint32(k+1), trak.Tkhd.TrackID)
		if err != nil {
			return nil, err
		}
		frag.AddFullSample(mp4.FullSample{Sample: mp4.Sample{Flags: mp4.SyncSampleFlags, Size: uint32(len(data))}, DecodeTime: d.Starts[k], Data: data})
		if !d.Evte {
			s := &Stream{}
			s.timed(frag.Moof.Traf, int64(d.Starts[k]), 0)
		}
		b.Reset()
		if err := frag.Encode(&b); err != nil {
			return nil, err
		}
		body = append(body, b.Bytes()...)
	}
	return body, nil
}

// AMSMessage is a sparse fragment's sample as Azure Media Services took
// it: version (1), id, presentation_time_delta (from the fragment's
// time), the section.
func AMSMessage(version, id, delta uint32, section []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, version)
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint32(b, delta)
	return append(b, section...)
}

// EmibSample is a timed-metadata sample of one emib box.
func EmibSample(delta int64, id uint32, scheme string, section []byte) []byte {
	var b bytes.Buffer
	_ = (&mp4.EmibBox{PresentationTimeDelta: delta, Id: id, SchemeIdURI: scheme, MessageData: section}).Encode(&b) // a bytes.Buffer does not fail
	return b.Bytes()
}

// SparseTrack is the sparse track (DataTrack) of markers for a stream
// of fragments of fragTicks ticks of timescale whose parent track is
// parent: each marker a fragment at its fragment's start, the splice
// point its delta.
func SparseTrack(timescale uint32, fragTicks uint64, parent string, markers []Marker) DataTrack {
	d := DataTrack{Timescale: timescale, Parent: parent}
	for _, m := range markers {
		d.Starts = append(d.Starts, uint64(m.Fragment)*fragTicks)
		d.Samples = append(d.Samples, AMSMessage(1, m.ID, uint32(ticks(m.At, timescale)), m.Payload()))
	}
	return d
}

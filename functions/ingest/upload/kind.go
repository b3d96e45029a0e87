package upload

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/mp4box"
)

// kind is what an uploaded file is, told by its content, not its name.
type kind int

const (
	unknown kind = iota
	initSegment
	mediaSegment
	playlist // HLS, multivariant or media
	mpd
	tsSegment  // an MPEG-TS media segment (ts.go)
	vttSegment // a WebVTT segment of an HLS subtitle playlist (vtt.go)
)

func (k kind) String() string {
	return [...]string{"unknown", "init segment", "media segment", "HLS playlist", "MPD", "MPEG-TS segment", "WebVTT segment"}[k]
}

// maxManifest is the largest playlist or MPD an encoder may upload.
const maxManifest = 1 << 20

// classify tells what b is from its first bytes: an HLS playlist, an MPD,
// or top-level boxes where a moov makes an init segment and a moof a
// media segment.
func classify(b []byte) kind {
	text := bytes.TrimLeft(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), " \t\r\n")
	switch {
	case isWebVTT(text):
		return vttSegment
	case bytes.HasPrefix(text, []byte("#EXTM3U")):
		return playlist
	case bytes.HasPrefix(text, []byte("<")) && bytes.Contains(text, []byte("<MPD")):
		return mpd
	case isTS(b):
		return tsSegment
	}
	for box, err := range mp4box.All(b) {
		if err != nil {
			break
		}
		switch box.Type {
		case "moov":
			return initSegment
		case "moof":
			return mediaSegment
		}
	}
	return unknown
}

// wholeBoxes checks that b is a sequence of whole boxes, each giving its
// size, in which every moof has its mdat right after it, and that a media
// segment has media: a file cut short must never reach a session, nor a
// moof without its media.
func wholeBoxes(b []byte, k kind) error {
	moofs, prev, prevAt := 0, "", uint64(0)
	for box, err := range mp4box.All(b) {
		if err != nil {
			return fmt.Errorf("%w: the upload (%d bytes) is not whole boxes: %w", ErrMalformed, len(b), err)
		}
		if binary.BigEndian.Uint32(box.Data) == 0 {
			return fmt.Errorf("%w: the %s box at offset %d has size 0 (to the end): an upload must give every box its size", ErrMalformed, box.Type, box.Pos)
		}
		switch {
		case box.Type == "moof":
			moofs++
		case box.Type == "mdat" && prev != "moof":
			return fmt.Errorf("%w: mdat at offset %d without a moof right before it", ErrMalformed, box.Pos)
		}
		if prev == "moof" && box.Type != "mdat" {
			return fmt.Errorf("%w: moof at offset %d not followed by its mdat", ErrMalformed, prevAt)
		}
		prev, prevAt = box.Type, box.Pos
	}
	if prev == "moof" {
		return fmt.Errorf("%w: moof at offset %d not followed by its mdat", ErrMalformed, prevAt)
	}
	if k == mediaSegment && moofs == 0 {
		return fmt.Errorf("%w: media segment without a moof", ErrMalformed)
	}
	return nil
}

// trackDefaults is the track defaults (trex) of an init segment, and the
// track whose times place its media segments: its first video track, else
// its first track (muxed segments carry several tracks, each in its own
// timescale, and only one of them can order them).
func trackDefaults(b []byte) (trexs []*mp4.TrexBox, ref uint32) {
	box, ok := mp4box.Find(b, "moov")
	if !ok {
		return nil, 0
	}
	m, err := mp4box.Decode(box)
	moov, ok := m.(*mp4.MoovBox)
	if err != nil || !ok {
		return nil, 0
	}
	for _, trak := range moov.Traks {
		if trak.Tkhd == nil {
			continue
		}
		video := trak.Mdia != nil && trak.Mdia.Hdlr != nil && trak.Mdia.Hdlr.HandlerType == "vide"
		if ref == 0 || video {
			ref = trak.Tkhd.TrackID
		}
		if video {
			break
		}
	}
	if moov.Mvex != nil {
		trexs = moov.Mvex.Trexs
	}
	return trexs, ref
}

// span is where a media segment starts (the tfdt of its first moof) and
// ends (its last moof's tfdt and duration, with its track's defaults from
// trexs), in the times of track ref when the segment carries it (a muxed
// segment: a traf per track), else of whatever track its moofs carry;
// timed is false when a moof has no tfdt.
func span(b []byte, trexs []*mp4.TrexBox, ref uint32) (start, end uint64, timed bool) {
	first := true
	for _, only := range []bool{true, false} {
		for box, err := range mp4box.All(b) {
			if err != nil {
				break
			}
			if box.Type != "moof" {
				continue
			}
			moof, err := fmp4.DecodeMoofTracks(box.Data, maxTrafs)
			if err != nil {
				return 0, 0, false
			}
			for _, traf := range moof.Trafs {
				if only && traf.Tfhd.TrackID != ref {
					continue
				}
				if traf.Tfdt == nil {
					return 0, 0, false
				}
				t := traf.Tfdt.BaseMediaDecodeTime()
				var trex *mp4.TrexBox
				for _, x := range trexs {
					if x.TrackID == traf.Tfhd.TrackID {
						trex = x
					}
				}
				var dur uint64
				for _, trun := range traf.Truns {
					dur += trun.AddSampleDefaultValues(traf.Tfhd, trex)
				}
				if first {
					start, first = t, false
				}
				end = max(end, t+dur)
			}
		}
		if !first {
			break
		}
	}
	return start, end, !first
}

// maxTrafs bounds the trafs of a moof span reads: the session refuses a
// moof with more tracks than a stream may have.
const maxTrafs = 64

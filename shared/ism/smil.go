// Package ism reads what is Smooth's own in a Smooth Streaming push
// (MS-SSTR 3.3.4, the fragmented MP4 live ingest format): the live server
// manifest (SMIL) an encoder may send in a uuid box before its moov, which
// names its tracks and declares their bitrates. The push itself is
// fragmented MP4, which shared/ingest reads.
package ism

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// ServerManifestUUID is the uuid of the live server manifest box that an
// encoder may send between ftyp and moov.
const ServerManifestUUID = "a5d40b30-e814-11dd-ba2f-0800200c9a66"

// Bounds on a track's bitrate, in bits per second, wherever it comes
// from (the SMIL's systemBitrate, the sample entry's btrt or esds, or
// measured from the first fragment). MaxBitrate is the most the
// manifests and the keys carry (QualityLevels is a 31-bit number in the
// layout; Smooth's Bitrate, DASH's bandwidth and HLS's BANDWIDTH are read
// as 32-bit integers by players): a systemBitrate of 2^31 used to store
// fragments that no manifest could list. MinBitrate is below any real
// track (speech at 6 to 8 kbit/s is the lowest AAC carries) and is the
// least the session measures.
const (
	MinBitrate = 1_000
	MaxBitrate = math.MaxInt32
)

// ErrBitrate is wrapped by CheckBitrate's errors.
var ErrBitrate = errors.New("bitrate out of bounds")

// CheckBitrate refuses a bitrate outside MinBitrate..MaxBitrate.
func CheckBitrate(bps int) error {
	switch {
	case bps > MaxBitrate:
		return fmt.Errorf("%w: %d bit/s is more than a manifest can carry (%d at most)", ErrBitrate, bps, MaxBitrate)
	case bps < MinBitrate:
		return fmt.Errorf("%w: %d bit/s is less than any real track (%d at least)", ErrBitrate, bps, MinBitrate)
	}
	return nil
}

// SMILTrack is one <video>, <audio> or <textstream> element of the live
// server manifest.
type SMILTrack struct {
	Kind          string // video, audio or textstream
	SystemBitrate int
	TrackID       uint32
	TrackName     string
	Language      string
	Params        map[string]string
}

type smilDoc struct {
	Body struct {
		Switch struct {
			Items []smilItem `xml:",any"`
		} `xml:"switch"`
	} `xml:"body"`
}

type smilItem struct {
	XMLName       xml.Name
	SystemBitrate string `xml:"systemBitrate,attr"`
	Params        []struct {
		Name  string `xml:"name,attr"`
		Value string `xml:"value,attr"`
	} `xml:"param"`
}

// ParseSMIL parses a live server manifest document ("IIS Smooth Streaming
// Live Server Manifest Format"): the tracks of its switch element. A
// systemBitrate of 0 declares nothing; any other outside MinBitrate to
// MaxBitrate is refused (CheckBitrate).
func ParseSMIL(doc []byte) ([]SMILTrack, error) {
	var d smilDoc
	dec := xml.NewDecoder(bytes.NewReader(doc))
	dec.Strict = false
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("parse live server manifest: %w", err)
	}
	var out []SMILTrack
	for _, it := range d.Body.Switch.Items {
		t := SMILTrack{Kind: it.XMLName.Local, Params: map[string]string{}}
		for _, p := range it.Params {
			t.Params[p.Name] = p.Value
		}
		br := it.SystemBitrate
		if br == "" {
			br = t.Params["systemBitrate"]
		}
		if br != "" {
			v, err := strconv.Atoi(br)
			if err != nil || v < 0 {
				return nil, fmt.Errorf("parse live server manifest: %s systemBitrate %q", t.Kind, br)
			}
			if v != 0 {
				if err := CheckBitrate(v); err != nil {
					return nil, fmt.Errorf("live server manifest: %s systemBitrate: %w", t.Kind, err)
				}
			}
			t.SystemBitrate = v
		}
		if id := t.Params["trackID"]; id != "" {
			v, err := strconv.ParseUint(id, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("parse live server manifest: %s trackID %q", t.Kind, id)
			}
			t.TrackID = uint32(v)
		}
		t.TrackName = t.Params["trackName"]
		t.Language = t.Params["systemLanguage"]
		out = append(out, t)
	}
	return out, nil
}

// ServerManifestDoc returns the SMIL document inside a live server manifest
// uuid box payload (after the 16-byte uuid): an optional 4-byte
// version/flags field, then the XML.
func ServerManifestDoc(afterUUID []byte) []byte {
	if i := bytes.IndexByte(afterUUID, '<'); i >= 0 {
		return afterUUID[i:]
	}
	return nil
}

package smooth

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

type refMedia struct {
	XMLName        xml.Name `xml:"SmoothStreamingMedia"`
	MajorVersion   int      `xml:"MajorVersion,attr"`
	MinorVersion   int      `xml:"MinorVersion,attr"`
	TimeScale      uint64   `xml:"TimeScale,attr"`
	Duration       uint64   `xml:"Duration,attr"`
	IsLive         string   `xml:"IsLive,attr"`
	LookaheadCount int      `xml:"LookaheadCount,attr"`
	// LookAheadFragmentCount is the name IIS writes and GStreamer reads for
	// what MS-SSTR calls LookaheadCount.
	LookAheadFragmentCount int              `xml:"LookAheadFragmentCount,attr"`
	DVRWindowLength        uint64           `xml:"DVRWindowLength,attr"`
	Streams                []refStreamIndex `xml:"StreamIndex"`
}

type refStreamIndex struct {
	Type          string            `xml:"Type,attr"`
	Name          string            `xml:"Name,attr"`
	Language      string            `xml:"Language,attr,omitempty"`
	TimeScale     uint64            `xml:"TimeScale,attr,omitempty"`
	Chunks        int               `xml:"Chunks,attr"`
	QualityLevels int               `xml:"QualityLevels,attr"`
	URL           string            `xml:"Url,attr"`
	MaxWidth      int               `xml:"MaxWidth,attr,omitempty"`
	MaxHeight     int               `xml:"MaxHeight,attr,omitempty"`
	DisplayWidth  int               `xml:"DisplayWidth,attr,omitempty"`
	DisplayHeight int               `xml:"DisplayHeight,attr,omitempty"`
	Levels        []refQualityLevel `xml:"QualityLevel"`
	Chunk         []refChunk        `xml:"c"`
}

type refQualityLevel struct {
	Index            int    `xml:"Index,attr"`
	Bitrate          int    `xml:"Bitrate,attr"`
	FourCC           string `xml:"FourCC,attr"`
	MaxWidth         int    `xml:"MaxWidth,attr,omitempty"`
	MaxHeight        int    `xml:"MaxHeight,attr,omitempty"`
	SamplingRate     int    `xml:"SamplingRate,attr,omitempty"`
	Channels         int    `xml:"Channels,attr,omitempty"`
	BitsPerSample    int    `xml:"BitsPerSample,attr,omitempty"`
	PacketSize       int    `xml:"PacketSize,attr,omitempty"`
	AudioTag         int    `xml:"AudioTag,attr,omitempty"`
	CodecPrivateData string `xml:"CodecPrivateData,attr"`
}

// refChunk is a "c" element. T is a pointer so that it is written only where
// the start does not follow from the previous chunk; R counts fragments of
// the same duration (MS-SSTR: the total, so r is omitted for a single one).
type refChunk struct {
	T *uint64 `xml:"t,attr"`
	D uint64  `xml:"d,attr"`
	R uint64  `xml:"r,attr,omitempty"`
}

// renderReference is the manifest build makes, marshalled with
// encoding/xml into the tagged copies of its structs above: what the
// hand-written writer must match byte for byte. (Until 2026-12-01 it also
// kept the builder as it was; the new one matched it on every case.)
func renderReference(p *timeline.Presentation) ([]byte, error) {
	m, err := build(p)
	if err != nil {
		return nil, err
	}
	ref := refMedia{
		MajorVersion: m.MajorVersion, MinorVersion: m.MinorVersion, TimeScale: m.TimeScale, Duration: m.Duration,
		IsLive: m.IsLive, LookaheadCount: m.LookaheadCount, LookAheadFragmentCount: m.LookAheadFragmentCount,
		DVRWindowLength: m.DVRWindowLength,
	}
	for _, si := range m.Streams {
		r := refStreamIndex{Type: si.Type, Name: si.Name, Language: si.Language, TimeScale: si.TimeScale,
			Chunks: si.Chunks, QualityLevels: si.QualityLevels, URL: si.URL, MaxWidth: si.MaxWidth,
			MaxHeight: si.MaxHeight, DisplayWidth: si.DisplayWidth, DisplayHeight: si.DisplayHeight,
			Chunk: refChunks(si.Timeline)}
		for _, ql := range si.Levels {
			r.Levels = append(r.Levels, refQualityLevel(ql))
		}
		ref.Streams = append(ref.Streams, r)
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(ref); err != nil {
		return nil, fmt.Errorf("smooth manifest of channel %s: %w", p.Channel, err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// refChunks are the c elements of a timeline: a t where the start does
// not follow from the previous chunk, r for a run of more than one.
func refChunks(tl timeline.Timeline) []refChunk {
	var out []refChunk
	prevEnd, first := uint64(0), true
	for r := range tl.Spans() {
		c := refChunk{D: r.Duration}
		if first || r.Start != prevEnd {
			t := r.Start
			c.T = &t
		}
		if r.Count > 1 {
			c.R = r.Count
		}
		out = append(out, c)
		prevEnd, first = r.End(), false
	}
	return out
}

package smooth

// The reference renderer: Render as it was before it wrote XML by hand,
// marshalling structs with encoding/xml. Render must give the same bytes
// for every presentation (equivalence_test.go), and the benchmarks
// measure both in the same run.

import (
	"bytes"
	"encoding/xml"
	"fmt"

	"github.com/smoothcast/smoothcast/shared/layout"
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

// renderReference is Render as it was: the same structs, marshalled with
// encoding/xml.
func renderReference(p *timeline.Presentation) ([]byte, error) {
	m := refMedia{
		MajorVersion: 2,
		MinorVersion: 2,
		TimeScale:    DefaultTimeScale,
		IsLive:       "TRUE",
		// Every stored fragment carries a tfrf announcing the next one
		// (fmp4.Rewrite), so live clients can run ahead of manifest
		// refreshes. GStreamer's mssdemux (1.22) needs the count above zero
		// to parse fragments of a live stream at all: at zero it drops
		// every byte it downloads.
		LookaheadCount:         1,
		LookAheadFragmentCount: 1,
		DVRWindowLength:        timeline.Ticks(p.DVRWindow, DefaultTimeScale),
	}
	var extent timeline.Extent
	for _, g := range p.Groups() {
		si, err := refStreamIndexOf(p, g, &extent)
		if err != nil {
			return nil, err
		}
		if si.Chunks > 0 {
			m.Streams = append(m.Streams, si)
		}
	}
	if p.VOD() {
		// A finished range: clients play it from its start to its end.
		m.IsLive, m.DVRWindowLength = "FALSE", 0
		m.Duration = timeline.Ticks(extent.End.Sub(extent.Start), DefaultTimeScale)
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("smooth manifest of channel %s: %w", p.Channel, err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// refStreamIndexOf renders group g and adds what it lists to extent.
func refStreamIndexOf(p *timeline.Presentation, g timeline.Group, extent *timeline.Extent) (refStreamIndex, error) {
	kind, name, views := g.Kind, g.Name, g.Views
	si := refStreamIndex{
		Type:          string(kind),
		Name:          name,
		QualityLevels: len(views),
		URL:           layout.SmoothURLTemplate(name),
	}
	timescale := views[0].Timescale
	for i, tv := range views {
		if tv.Timescale != timescale {
			return si, fmt.Errorf("channel %s: tracks named %q mix timescales %d and %d", p.Channel, name, timescale, tv.Timescale)
		}
		if tv.Language != "" && si.Language == "" {
			si.Language = tv.Language
		}
		ql := refQualityLevel{Index: i, Bitrate: tv.ID.Bitrate, FourCC: tv.FourCC, CodecPrivateData: tv.CodecPrivateData}
		switch kind {
		case timeline.Video:
			ql.MaxWidth, ql.MaxHeight = tv.Width, tv.Height
			si.MaxWidth, si.MaxHeight = max(si.MaxWidth, tv.Width), max(si.MaxHeight, tv.Height)
		case timeline.Audio:
			ql.SamplingRate, ql.Channels, ql.BitsPerSample = tv.SamplingRate, tv.Channels, tv.BitsPerSample
			ql.PacketSize, ql.AudioTag = tv.PacketSize, tv.AudioTag
		}
		si.Levels = append(si.Levels, ql)
	}
	if kind == timeline.Video {
		si.DisplayWidth, si.DisplayHeight = si.MaxWidth, si.MaxHeight
	}
	if timescale != DefaultTimeScale {
		si.TimeScale = timescale
	}
	common := p.Common(g)
	if last, ok := common.Last(); ok && !p.VOD() {
		// Each fragment's tfrf announces the next one. A live manifest
		// lists a fragment only once the fragment it announces is
		// stored, as MS-SSTR's look-ahead has a server hold each fragment
		// back: the newest waits for its successor. Clients that follow
		// tfrf (dash.js) then never start at a fragment whose successor
		// is still missing; one that did could stall on its 404s.
		common.TrimAfter(last.Start)
	}
	extent.Add(p, &common, timescale)
	prevEnd, first := uint64(0), true
	for r := range common.Spans() {
		c := refChunk{D: r.Duration}
		if first || r.Start != prevEnd {
			t := r.Start
			c.T = &t
		}
		if r.Count > 1 {
			c.R = r.Count
		}
		si.Chunk = append(si.Chunk, c)
		si.Chunks += int(r.Count)
		prevEnd, first = r.End(), false
	}
	return si, nil
}

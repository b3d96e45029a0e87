// Package smooth renders the Smooth Streaming client manifest ([MS-SSTR]
// 2.2.2) of a live presentation, a pure function from a
// timeline.Presentation to bytes, and reads one back (Parse). Both use
// one schema, Manifest and the types under it: the renderer fills it and
// writes it by hand in a fifteenth of encoding/xml's time, the
// equivalence tests check that encoding/xml marshals the same value to
// the same bytes, and Parse unmarshals into it.
package smooth

import (
	"encoding/xml"
	"fmt"
	"slices"

	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/manifest/sparse"
	"github.com/smoothcast/smoothcast/shared/manifest/xmlout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// DefaultTimeScale is the Smooth Streaming default: 100 ns units.
const DefaultTimeScale = 10_000_000

// Manifest is the SmoothStreamingMedia element: the schema of the
// client manifest, declared once. Render builds it and writes it by hand
// (write), in the order of the fields and with their omitempty rules; the
// reference test marshals the same value with encoding/xml and compares
// the bytes; Parse unmarshals into it.
type Manifest struct {
	XMLName      xml.Name `xml:"SmoothStreamingMedia"`
	MajorVersion int      `xml:"MajorVersion,attr"`
	MinorVersion int      `xml:"MinorVersion,attr"`
	TimeScale    uint64   `xml:"TimeScale,attr"`
	Duration     uint64   `xml:"Duration,attr"`
	IsLive       string   `xml:"IsLive,attr"`
	// LookaheadCount, LookAheadFragmentCount and DVRWindowLength are
	// left out when zero: a finished (VOD) manifest has none (MS-SSTR
	// 2.2.2.1 gives them to live presentations only).
	LookaheadCount int `xml:"LookaheadCount,attr,omitempty"`
	// LookAheadFragmentCount is the name IIS writes and GStreamer reads for
	// what MS-SSTR calls LookaheadCount.
	LookAheadFragmentCount int           `xml:"LookAheadFragmentCount,attr,omitempty"`
	DVRWindowLength        uint64        `xml:"DVRWindowLength,attr,omitempty"`
	Streams                []StreamIndex `xml:"StreamIndex"`
	// Protection is there when a stream is encrypted and signalled for
	// PlayReady (protection.go); after the streams, as Microsoft's own
	// PlayReady manifests have it.
	Protection *Protection `xml:"Protection"`
}

// StreamIndex is a StreamIndex element. Subtype, Language, TimeScale
// and the sizes are left out when empty or zero.
type StreamIndex struct {
	Type string `xml:"Type,attr"`
	// Subtype is a text stream's kind (MS-SSTR 2.2.2.3): SUBT, CAPT or
	// DESC (textSubtype).
	Subtype       string         `xml:"Subtype,attr,omitempty"`
	Name          string         `xml:"Name,attr"`
	Language      string         `xml:"Language,attr,omitempty"`
	TimeScale     uint64         `xml:"TimeScale,attr,omitempty"`
	Chunks        int            `xml:"Chunks,attr"`
	QualityLevels int            `xml:"QualityLevels,attr"`
	URL           string         `xml:"Url,attr"`
	MaxWidth      int            `xml:"MaxWidth,attr,omitempty"`
	MaxHeight     int            `xml:"MaxHeight,attr,omitempty"`
	DisplayWidth  int            `xml:"DisplayWidth,attr,omitempty"`
	DisplayHeight int            `xml:"DisplayHeight,attr,omitempty"`
	Levels        []QualityLevel `xml:"QualityLevel"`
	// C are the c elements. Render leaves them empty and writes one per
	// span of Timeline instead (the reference fills them from it, so
	// that encoding/xml writes the same); Parse fills them.
	C []Chunk `xml:"c"`
	// Timeline holds the fragments a rendered StreamIndex lists.
	Timeline timeline.Timeline `xml:"-"`
}

// QualityLevel is a QualityLevel element; the fields after FourCC but
// CodecPrivateData are left out when zero.
type QualityLevel struct {
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

// Chunk is a c element: R fragments (MS-SSTR counts them all, so no r is
// one) of D ticks each, from T, or where the previous element's last
// fragment ends when T is nil.
type Chunk struct {
	T *uint64 `xml:"t,attr"`
	D uint64  `xml:"d,attr"`
	R uint64  `xml:"r,attr,omitempty"`
}

// chunk is the c element that lists span s: t only where the span does
// not start where the previous one ends, r only for more than one
// fragment.
func chunk(s timeline.Span) Chunk {
	c := Chunk{D: s.Duration}
	if !s.Follows {
		t := s.Start
		c.T = &t
	}
	if s.Count > 1 {
		c.R = s.Count
	}
	return c
}

// Render returns the client manifest of a live presentation. Tracks are
// grouped into one StreamIndex per kind and track name; a StreamIndex lists
// only the fragments that all of its quality levels have, so that every
// URL a client can build from it exists. Empty stream indexes are left out,
// and so are tracks Smooth cannot carry (carried).
//
// Each QualityLevel says what fmp4.Describe found: H.264 as H264, HEVC as
// HVC1 or HEV1 (parameter sets in Annex B as CodecPrivateData), AAC as
// AACL or AACH, AC-3 and E-AC-3 as AC-3 and EC-3 with AudioTag 65534 and
// the WAVEFORMATEXTENSIBLE extension IIS writes as CodecPrivateData.
// A TTML text track (stpp, FourCC TTML) is a StreamIndex of Type text
// with its Subtype (textSubtype) and Language, its holes left between c
// elements; a WebVTT one (no FourCC) is left out, as MS-SSTR knows no
// WebVTT. An encrypted channel signalled for PlayReady has its Protection
// element (protection.go): that of its newest fragments when its
// protection changed, which a Smooth client cannot follow.
func Render(p *timeline.Presentation) ([]byte, error) {
	m, err := build(p)
	if err != nil {
		return nil, err
	}
	w := xmlout.Writer{Buf: make([]byte, 0, m.size())}
	w.Buf = append(w.Buf, xmlout.Header...)
	m.write(&w)
	return append(w.Buf, '\n'), nil
}

// build is the manifest of p, before it is written.
func build(p *timeline.Presentation) (*Manifest, error) {
	m := &Manifest{
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
	var listed [][]*timeline.TrackView
	for _, g := range p.Groups() {
		if g.Views = carried(g.Views); len(g.Views) == 0 {
			continue
		}
		si, err := renderStreamIndex(p, g, &extent)
		if err != nil {
			return nil, err
		}
		if si.Chunks > 0 {
			m.Streams = append(m.Streams, si)
			listed = append(listed, g.Views)
		}
	}
	m.Protection = protection(p, listed)
	if p.VOD() {
		// A finished range: clients play it from its start to its end;
		// nothing is ahead to look for, no window slides.
		m.IsLive, m.DVRWindowLength = "FALSE", 0
		m.LookaheadCount, m.LookAheadFragmentCount = 0, 0
		m.Duration = timeline.Ticks(extent.End.Sub(extent.Start), DefaultTimeScale)
	}
	return m, nil
}

// textSubtype is the Subtype of a text StreamIndex whose track has DASH
// role role: CAPT for captions (subtitles for the deaf and hard of
// hearing), DESC for a description, SUBT for the rest (subtitles, forced
// subtitles), as MS-SSTR 2.2.2.3 names them and dash.js maps them back
// to DASH roles.
func textSubtype(role string) string {
	switch role {
	case "caption":
		return "CAPT"
	case "description":
		return "DESC"
	}
	return "SUBT"
}

// carried is the tracks of views that Smooth can carry: all but those
// described with a codec and no FourCC (AV1, which no Smooth client
// knows a FourCC for, and hev1 whose parameter sets are only in band,
// which a Smooth client could not configure its decoder for). Describing
// them under a made-up FourCC would only make clients fail on them; left
// out, the rest of the channel plays. The HLS and DASH manifests list
// them.
func carried(views []*timeline.TrackView) []*timeline.TrackView {
	uncarried := func(tv *timeline.TrackView) bool { return tv.FourCC == "" && tv.Codecs != "" }
	if !slices.ContainsFunc(views, uncarried) {
		return views
	}
	return slices.DeleteFunc(slices.Clone(views), uncarried) // the views are the caller's
}

// renderStreamIndex renders group g and adds what it lists to extent.
func renderStreamIndex(p *timeline.Presentation, g timeline.Group, extent *timeline.Extent) (StreamIndex, error) {
	kind, name, views := g.Kind, g.Name, g.Views
	si := StreamIndex{
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
		ql := QualityLevel{Index: i, Bitrate: tv.ID.Bitrate, FourCC: tv.FourCC, CodecPrivateData: tv.CodecPrivateData}
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
	switch kind {
	case timeline.Video:
		si.DisplayWidth, si.DisplayHeight = si.MaxWidth, si.MaxHeight
	case timeline.Text:
		si.Subtype = textSubtype(views[0].Role)
	}
	if timescale != DefaultTimeScale {
		si.TimeScale = timescale
	}
	common := p.Common(g)
	if kind == timeline.Text {
		common = sparse.Close(common) // its silences (sparse.Close)
	}
	if last, ok := common.Last(); ok && !p.VOD() {
		// Each fragment's tfrf announces the next one. A live manifest
		// lists a fragment only once the fragment it announces is
		// stored, as MS-SSTR's look-ahead has a server hold each fragment
		// back: the newest waits for its successor. Clients that follow
		// tfrf (dash.js) then never start at a fragment whose successor
		// is still missing; one that did could stall on its 404s.
		common.TrimAfter(last.Start)
	}
	if kind != timeline.Text {
		// A text track may end long before the others (no cue since):
		// the presentation lasts as long as its audio and video.
		extent.Add(p, &common, timescale)
	}
	for _, r := range common.Runs {
		si.Chunks += int(r.Count)
	}
	si.Timeline = common
	return si, nil
}

// size is about the length of the manifest, for the buffer: at most one c
// element per fragment of a cyclic run, one per constant run.
func (m *Manifest) size() int {
	n := 512
	for i := range m.Streams {
		si := &m.Streams[i]
		n += 512 + 256*len(si.Levels)
		n += 32 * min(si.Timeline.MaxSpans(), xmlout.MaxSizeHint)
	}
	return min(n, xmlout.MaxSizeHint)
}

// write writes the SmoothStreamingMedia element.
func (m *Manifest) write(w *xmlout.Writer) {
	w.Start(0, "SmoothStreamingMedia")
	w.IntAttr("MajorVersion", m.MajorVersion)
	w.IntAttr("MinorVersion", m.MinorVersion)
	w.UintAttr("TimeScale", m.TimeScale)
	w.UintAttr("Duration", m.Duration)
	w.Attr("IsLive", m.IsLive)
	w.IntAttrOmit("LookaheadCount", m.LookaheadCount)
	w.IntAttrOmit("LookAheadFragmentCount", m.LookAheadFragmentCount)
	w.UintAttrOmit("DVRWindowLength", m.DVRWindowLength)
	if len(m.Streams) == 0 {
		w.Empty("SmoothStreamingMedia")
		return
	}
	w.Open()
	for i := range m.Streams {
		m.Streams[i].write(w, 1)
	}
	if m.Protection != nil {
		m.Protection.write(w, 1)
	}
	w.End(0, "SmoothStreamingMedia")
}

// write writes the StreamIndex element at depth: its attributes, its
// quality levels and its c elements.
func (si *StreamIndex) write(w *xmlout.Writer, depth int) {
	w.Start(depth, "StreamIndex")
	w.Attr("Type", si.Type)
	w.AttrOmit("Subtype", si.Subtype)
	w.Attr("Name", si.Name)
	w.AttrOmit("Language", si.Language)
	w.UintAttrOmit("TimeScale", si.TimeScale)
	w.IntAttr("Chunks", si.Chunks)
	w.IntAttr("QualityLevels", si.QualityLevels)
	w.Attr("Url", si.URL)
	w.IntAttrOmit("MaxWidth", si.MaxWidth)
	w.IntAttrOmit("MaxHeight", si.MaxHeight)
	w.IntAttrOmit("DisplayWidth", si.DisplayWidth)
	w.IntAttrOmit("DisplayHeight", si.DisplayHeight)
	w.Open() // a quality level at least: a group has a track
	for i := range si.Levels {
		si.Levels[i].write(w, depth+1)
	}
	writeChunks(w, depth+1, &si.Timeline)
	w.End(depth, "StreamIndex")
}

// write writes the QualityLevel element at depth.
func (ql *QualityLevel) write(w *xmlout.Writer, depth int) {
	w.Start(depth, "QualityLevel")
	w.IntAttr("Index", ql.Index)
	w.IntAttr("Bitrate", ql.Bitrate)
	w.Attr("FourCC", ql.FourCC)
	w.IntAttrOmit("MaxWidth", ql.MaxWidth)
	w.IntAttrOmit("MaxHeight", ql.MaxHeight)
	w.IntAttrOmit("SamplingRate", ql.SamplingRate)
	w.IntAttrOmit("Channels", ql.Channels)
	w.IntAttrOmit("BitsPerSample", ql.BitsPerSample)
	w.IntAttrOmit("PacketSize", ql.PacketSize)
	w.IntAttrOmit("AudioTag", ql.AudioTag)
	w.Attr("CodecPrivateData", ql.CodecPrivateData)
	w.Empty("QualityLevel")
}

// writeChunks writes the c elements that list tl, at depth: one per span
// of equal durations, with the attributes of chunk's, written in the
// loop (a call per element costs a tenth of the manifest's time).
func writeChunks(w *xmlout.Writer, depth int, tl *timeline.Timeline) {
	for s := range tl.Spans() {
		w.Start(depth, "c")
		if !s.Follows {
			w.UintAttr("t", s.Start)
		}
		w.UintAttr("d", s.Duration)
		if s.Count > 1 {
			w.UintAttr("r", s.Count)
		}
		w.Empty("c")
	}
}

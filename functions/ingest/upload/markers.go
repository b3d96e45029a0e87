package upload

import (
	"bytes"
	"hash/crc32"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/manifest/hls"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/scte35"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// An HLS upload's ad markers (EXT-X-CUE-OUT, EXT-X-CUE-IN, EXT-X-DATERANGE
// with SCTE35 attributes: hls.Markers) reach the session as a push's do:
// as emsg boxes (scheme scte35.Scheme, version 1, the time on the
// encoder's clock) before a segment's moof, which the session puts at the
// head of the fragment it stores. A marker is on a segment (its anchor):
// it goes before that segment if the playlist comes first, else (as an
// encoder uploads a segment, then the playlist that lists it) before the
// rendition's next segment, at the anchor's start plus its offset. A
// CUE-OUT or CUE-IN carries no section: the relay makes a splice_insert
// for it (scte35.Insert), so that every format carries one. Each marker
// goes once, however many playlists list it; a marker on a rendition's
// last segment has no segment to ride after it. MPEG-TS uploads carry no
// markers.

// Bounds on what a channel keeps of markers.
const (
	maxMarks  = 64  // markers waiting for their anchor segment
	maxSent   = 256 // markers sent, remembered to send each once
	maxRecent = 64  // segments handed on, remembered as anchors
)

// mark is a marker on the segment of file: at offset after its start.
type mark struct {
	file   string
	offset time.Duration
	kind   scte35.Kind
	dur    time.Duration
	sec    []byte // nil: make a splice_insert
	id     string // DATERANGE ID; "" for CUE tags
}

// key tells a marker from another across playlists.
func (m *mark) key() string {
	return m.file + "|" + strconv.FormatInt(int64(m.offset), 10) + "|" + strconv.Itoa(int(m.kind)) + "|" + m.id
}

// markState is a channel's markers; the channel goroutine owns it.
type markState struct {
	waiting []mark                // anchors not handed on yet
	sent    []string              // keys, oldest first
	recent  []anchor              // segments handed on, oldest first
	carry   map[*rendition][]byte // emsg boxes for a rendition's next segment
}

// anchor is a segment handed to its rendition's worker.
type anchor struct {
	file  string
	r     *rendition
	start uint64 // in the rendition's reference track's timescale
}

// marksOf are the markers of media playlist pl (its segment files by base
// name), and what was wrong with the others.
func marksOf(pl *hls.Playlist) ([]mark, []error) {
	ms, errs := hls.Markers(pl)
	out := make([]mark, 0, len(ms))
	for _, m := range ms {
		file := path.Base(strings.SplitN(pl.Segments[m.Segment].URI, "?", 2)[0])
		out = append(out, mark{file: file, offset: m.Offset, kind: m.Kind, dur: m.Duration, sec: m.Section, id: m.ID})
	}
	return out, errs
}

// learnMarks takes a playlist's markers: those on a segment handed on
// already ride the rendition's next segment, the others wait for theirs.
func (c *channel) learnMarks(l learned) {
	for _, err := range l.markErrs {
		c.log.Warn("dropping a malformed ad marker of a playlist", "err", err)
	}
	st := &c.marks
	for _, m := range l.marks {
		k := m.key()
		if slices.Contains(st.sent, k) || slices.ContainsFunc(st.waiting, func(w mark) bool { return w.key() == k }) {
			continue
		}
		if i := slices.IndexFunc(st.recent, func(a anchor) bool { return a.file == m.file }); i >= 0 {
			a := st.recent[i]
			if a.r.closed {
				continue
			}
			if st.carry == nil {
				st.carry = map[*rendition][]byte{}
			}
			st.carry[a.r] = c.appendMark(st.carry[a.r], a, m)
			continue
		}
		if len(st.waiting) == maxMarks {
			c.log.Warn("dropping an ad marker: too many wait for their segments", "file", st.waiting[0].file, "limit", maxMarks)
			st.waiting = st.waiting[1:]
		}
		st.waiting = append(st.waiting, m)
	}
}

// markDispatch gives segment s, on its way to rendition r's worker, the
// emsg boxes of the markers due before it: those that waited for r's
// segments handed on before, and its own.
func (c *channel) markDispatch(r *rendition, s *segment) {
	if r.ts || !s.timed {
		return
	}
	st := &c.marks
	a := anchor{file: s.file, r: r, start: s.start}
	if len(st.recent) == maxRecent {
		st.recent = st.recent[1:]
	}
	st.recent = append(st.recent, a)
	marks := st.carry[r]
	delete(st.carry, r)
	kept := st.waiting[:0]
	for _, m := range st.waiting {
		if m.file == s.file {
			marks = c.appendMark(marks, a, m)
		} else {
			kept = append(kept, m)
		}
	}
	st.waiting = kept
	s.marks = marks
}

// appendMark appends marker m on anchor a as an emsg box, and notes it
// sent.
func (c *channel) appendMark(dst []byte, a anchor, m mark) []byte {
	st := &c.marks
	if len(st.sent) == maxSent {
		st.sent = st.sent[1:]
	}
	st.sent = append(st.sent, m.key())
	ts := a.r.timescale
	if ts == 0 {
		c.log.Warn("dropping an ad marker: its rendition's timescale is unknown", "file", m.file, "init", a.r.init)
		return dst
	}
	t := a.start + timeline.Ticks(m.offset, uint64(ts))
	// The id is what the renditions agree on (each carries the marker):
	// the DATERANGE's ID, else the splice point in milliseconds.
	ms := t * 1000 / uint64(ts)
	id := crc32.ChecksumIEEE([]byte(m.id))
	if m.id == "" {
		id = crc32.ChecksumIEEE([]byte(strconv.Itoa(int(m.kind)) + "@" + strconv.FormatUint(ms, 10)))
	}
	sec := m.sec
	if sec == nil {
		sec = scte35.Insert(id, m.kind == scte35.Out, m.dur)
	}
	e := &mp4.EmsgBox{Version: 1, TimeScale: ts, PresentationTime: t, EventDuration: 0xFFFFFFFF, ID: id, SchemeIDURI: scte35.Scheme, MessageData: sec}
	if d := timeline.Ticks(m.dur, uint64(ts)); d > 0 && d < 0xFFFFFFFF {
		e.EventDuration = uint32(d)
	}
	var b bytes.Buffer
	_ = e.Encode(&b) // a bytes.Buffer does not fail
	c.log.Info("ad marker", "file", m.file, "init", a.r.init, "time", t, "id", id, "kind", int(m.kind))
	return append(dst, b.Bytes()...)
}

// withMarks is the segment's body as its session is fed it: the emsg
// boxes of its markers, then its own boxes.
func (s *segment) withMarks() []byte {
	if len(s.marks) == 0 {
		return s.body
	}
	return append(slices.Clip(s.marks), s.body...)
}

// refTimescale is the timescale of track ref in init segment b (0 when
// it cannot be read).
func refTimescale(b []byte, ref uint32) uint32 {
	box, ok := mp4box.Find(b, "moov")
	if !ok {
		return 0
	}
	m, err := mp4box.Decode(box)
	moov, ok := m.(*mp4.MoovBox)
	if err != nil || !ok {
		return 0
	}
	for _, trak := range moov.Traks {
		if trak.Tkhd != nil && trak.Tkhd.TrackID == ref && trak.Mdia != nil && trak.Mdia.Mdhd != nil {
			return trak.Mdia.Mdhd.Timescale
		}
	}
	return 0
}

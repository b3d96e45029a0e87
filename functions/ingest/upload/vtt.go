package upload

// # WebVTT subtitle renditions
//
// An HLS upload's subtitles (ffmpeg's -f hls with a subtitle stream in
// -var_stream_map's sgroup) come as WebVTT segments (out_00.vtt), a media
// playlist that lists them (out_0_vtt.m3u8: no EXT-X-MAP, every segment
// a .vtt) and the multivariant playlist's EXT-X-MEDIA TYPE=SUBTITLES,
// whose URI names that playlist. Such a playlist is a text rendition,
// keyed (and its session's stream named) by the playlist's name, as a TS
// rendition is.
//
// A WebVTT segment waits (held, 202) until its playlist lists it, a
// multivariant playlist came, and the media playlist of a variant that
// names its group came (whether its A/V is MPEG-TS sets its cue times): the init segment the relay makes for the
// rendition (webvtt.Init: a wvtt track, timescale 1000, the language,
// NAME as its label, DEFAULT as tkhd's enabled flag, FORCED as the role
// forced-subtitle, CHARACTERISTICS that transcribe dialog as caption)
// says what EXT-X-MEDIA says (plain subtitles have no role: the track
// is text_{language}), and cannot be rewritten once stored.
// ffmpeg uploads the multivariant playlist after each variant's first
// segments, so its first subtitle segments wait a moment; an encoder
// should republish it (ffmpeg: -master_pl_publish_rate) for a relay that
// starts again to learn it.
//
// Each segment becomes one wvtt fragment of its time range, even with no
// cue (one vtte sample), so that the text timeline follows the A/V. A cue
// that lasts past its segment's end is also in the fragments after, up
// to its end: ffmpeg writes it in the segment where it starts only. Its
// range: its place in the stream in cue time (the EXTINF durations of
// the segments before it, from the media sequence's start; when the
// relay joins late, the target duration for those it never saw, then the
// previous segment's end), mapped to media time as its cues are. A cue
// time maps to media time by the segment's X-TIMESTAMP-MAP (MPEGTS, 33
// bits, unwrapped nearest the rendition's previous segment's, at LOCAL);
// without one, a cue time is the stream's output time, as ffmpeg writes
// it, which is its MPEG-TS time less 1.4 s (ffmpeg's mpegts muxer starts
// its timestamps there) when the channel's A/V segments are MPEG-TS, and
// its fMP4 media time otherwise.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/manifest/hls"
	"github.com/smoothcast/smoothcast/shared/webvtt"
)

const (
	// vttTimescale is the timescale of the text tracks the relay makes.
	vttTimescale = 1000
	// ffmpegTSStart is where ffmpeg's mpegts muxer starts the timestamps
	// of an output that starts at 0 (its default muxdelay, 0.7 s, twice).
	ffmpegTSStart = 1400 * time.Millisecond
	// maxVTTStarts bounds the segment times a WebVTT rendition keeps, to
	// time a resend as the segment it repeats.
	maxVTTStarts = 16
)

// isWebVTT tells a WebVTT file from its first bytes (after a BOM and
// white space).
func isWebVTT(text []byte) bool {
	rest, ok := bytes.CutPrefix(text, []byte("WEBVTT"))
	return ok && (len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n' || rest[0] == '\r')
}

// checkWebVTT refuses a WebVTT segment that does not parse.
func checkWebVTT(b []byte) error {
	if _, err := webvtt.Parse(b); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}

// vttListing is a WebVTT playlist's latest listing: the durations of its
// segments from its media sequence number first, and its target
// duration, for segments it no longer lists.
type vttListing struct {
	first  uint64
	durs   []time.Duration
	target time.Duration
}

// dur is the duration of segment seq: listed, else the target duration.
func (l *vttListing) dur(seq uint64) time.Duration {
	if seq >= l.first && seq-l.first < uint64(len(l.durs)) {
		return l.durs[seq-l.first]
	}
	return l.target
}

// sum is the duration of segments from to to (excluded); at most
// maxVTTSum segments are counted, past which the rest count as target
// durations (no loop over a forged sequence number).
func (l *vttListing) sum(from, to uint64) time.Duration {
	const maxVTTSum = 1 << 16
	var d time.Duration
	n := uint64(0)
	for seq := from; seq < to; seq++ {
		if n++; n > maxVTTSum {
			return d + time.Duration(to-seq)*l.target
		}
		d += l.dur(seq)
	}
	return d
}

// vttPlace is where a WebVTT segment a playlist listed goes: its
// playlist, its media sequence number and its duration.
type vttPlace struct {
	key string
	seq uint64
	dur time.Duration
}

// isVTTPlaylist reports whether a media playlist lists WebVTT segments:
// every one a .vtt or .webvtt file, no EXT-X-MAP.
func isVTTPlaylist(pl *hls.Playlist) bool {
	if len(pl.Segments) == 0 || len(pl.Maps) > 0 {
		return false
	}
	for _, s := range pl.Segments {
		switch strings.ToLower(path.Ext(strings.SplitN(s.URI, "?", 2)[0])) {
		case ".vtt", ".webvtt":
		default:
			return false
		}
	}
	return true
}

// learnVTTPlaylist learns from a WebVTT playlist where each segment it
// lists goes and how long it is; EXT-X-ENDLIST ends its rendition.
func (h *hints) learnVTTPlaylist(file string, pl *hls.Playlist) learned {
	if h.vtt == nil || (h.vtt[file] == nil && len(h.vtt) >= maxStems) {
		h.vtt = map[string]*vttListing{}
	}
	l := &vttListing{first: pl.MediaSequence, target: time.Duration(pl.TargetDuration) * time.Second}
	for i, seg := range pl.Segments {
		l.durs = append(l.durs, seg.Duration)
		if h.vttSegs == nil || len(h.vttSegs) >= maxExactSegments {
			h.vttSegs = map[string]vttPlace{} // the newest playlist lists what matters
		}
		h.vttSegs[path.Base(strings.SplitN(seg.URI, "?", 2)[0])] = vttPlace{key: file, seq: pl.MediaSequence + uint64(i), dur: seg.Duration}
	}
	h.vtt[file] = l
	if pl.Ended {
		return learned{ended: []string{file}}
	}
	return learned{}
}

// learnSubtitles learns what a multivariant playlist says of its
// subtitle renditions, by their playlists' names.
func (h *hints) learnSubtitles(pl *hls.Playlist) {
	h.master = true
	for _, r := range pl.Renditions {
		if r.Type != "SUBTITLES" || r.URI == "" {
			continue
		}
		if h.subs == nil || len(h.subs) >= maxStems {
			h.subs, h.subsAV = map[string]hls.Rendition{}, map[string][]string{}
		}
		key := path.Base(strings.SplitN(r.URI, "?", 2)[0])
		h.subs[key] = r
		var av []string
		for _, v := range pl.Variants {
			if v.Subtitles == r.GroupID && !v.IFrame && len(av) < maxStems {
				av = append(av, path.Base(strings.SplitN(v.URI, "?", 2)[0]))
			}
		}
		h.subsAV[key] = av
	}
}

// avOf tells whether the A/V segments beside WebVTT playlist key are
// MPEG-TS (ts), once a media playlist of a variant that names its group
// came (known); a subtitle playlist no variant names goes with the
// channel's media playlists, as do the renditions a relay started again
// restores.
func (h *hints) avOf(key string) (ts, known bool) {
	if rec, ok := h.recorded[key]; ok && h.subsAV[key] == nil {
		return rec.avTS, true
	}
	av, ok := h.subsAV[key]
	if !ok || len(av) == 0 {
		return len(h.ts) > 0, true
	}
	for _, pl := range av {
		if h.ts[pl] {
			return true, true
		}
		if _, fmp4 := h.stems[strings.TrimSuffix(pl, path.Ext(pl))]; fmp4 {
			return false, true
		}
	}
	return false, false
}

// subtitleTrack is the text track the multivariant playlist describes
// for the WebVTT playlist key.
func (h *hints) subtitleTrack(key string) webvtt.Track {
	t := webvtt.Track{ID: 1, Timescale: vttTimescale}
	r, ok := h.subs[key]
	if !ok {
		if rec, ok := h.recorded[key]; ok {
			return rec.track
		}
		return t
	}
	t.Language, t.Label, t.Default = r.Language, r.Name, r.Default
	switch {
	case r.Forced:
		t.Role = "forced-subtitle"
	case strings.Contains(r.Characteristics, "public.accessibility.transcribes-spoken-dialog"),
		strings.Contains(r.Characteristics, "public.accessibility.describes-music-and-sound"):
		t.Role = "caption"
	}
	return t
}

// ownRendition is the rendition of a segment that starts its own (TS,
// WebVTT); nil if nothing places it yet.
func (c *channel) ownRendition(s *segment) (*rendition, error) {
	if s.vtt {
		return c.vttRendition(s)
	}
	return c.tsRendition(s)
}

// vttRendition is the WebVTT rendition a segment goes to, started if its
// playlist has none; nil until its playlist lists it and a multivariant
// playlist came.
func (c *channel) vttRendition(s *segment) (*rendition, error) {
	p, ok := c.hints.vttSegs[s.file]
	_, recorded := c.hints.recorded[p.key]
	if !ok || !c.hints.master && !recorded {
		return nil, nil
	}
	avTS, known := c.hints.avOf(p.key)
	if r := c.renditions[p.key]; r != nil {
		if !r.vtt {
			return nil, fmt.Errorf("channel %s: segment %s: WebVTT, and %s is a rendition of other segments: %w", c.name, s.file, p.key, ErrConflict)
		}
		return r, nil
	}
	if !known {
		return nil, nil // its cue times depend on its variant's segments
	}
	sess, err := c.u.sessions.Open(c.name, p.key, s.remote)
	if err != nil {
		return nil, err
	}
	c.seq++
	r := &rendition{c: c, init: p.key, seq: c.seq, sess: sess, jobs: make(chan job, maxInflight+1), vtt: true}
	r.vttc.avTS = avTS
	r.vttw = &vttWorker{key: p.key, track: c.hints.subtitleTrack(p.key), avTS: avTS, log: c.log.With("rendition", p.key), post: c.post}
	c.renditions[p.key] = r
	delete(c.gone, p.key)
	go r.work(c.u)
	c.log.Info("WebVTT rendition starts", "rendition", p.key, "language", r.vttw.track.Language, "name", r.vttw.track.Label)
	return r, nil
}

// vttInit reports the init segment a WebVTT rendition's session took,
// to be recorded (record.go) as "vtt:" (or "vtt+ts:" beside MPEG-TS A/V)
// and its playlist's name: a relay started again that never sees the
// multivariant playlist (ffmpeg uploads it once) describes the track,
// and times its cues, as before.
type vttInit struct {
	key  string
	init []byte
	avTS bool
}

// The prefixes that mark a WebVTT rendition's init segment in the
// channel's record of uploads, beside fMP4 or MPEG-TS A/V.
const (
	vttRecordPrefix   = "vtt:"
	vttTSRecordPrefix = "vtt+ts:"
)

// recordedVTT is a WebVTT rendition a relay started again read from the
// record.
type recordedVTT struct {
	track webvtt.Track
	avTS  bool
}

// restoreVTT takes, from the record a relay started again reads, the
// text track of a WebVTT rendition; it reports whether file was one.
func (c *channel) restoreVTT(file string, init []byte) bool {
	key, ok := strings.CutPrefix(file, vttRecordPrefix)
	keyTS, avTS := strings.CutPrefix(file, vttTSRecordPrefix)
	switch {
	case avTS:
		key = keyTS
	case !ok:
		return false
	}
	tr, err := fmp4.ParseInit(init)
	if err != nil {
		c.log.Warn("WebVTT rendition not restored: its recorded init segment does not parse", "rendition", key, "err", err)
		return true
	}
	if c.hints.recorded == nil || len(c.hints.recorded) >= maxStems {
		c.hints.recorded = map[string]recordedVTT{}
	}
	t := webvtt.Track{ID: 1, Timescale: vttTimescale, Language: tr.Language, Label: tr.Label, Default: tr.Default, Role: tr.Role}
	if tr.Forced {
		t.Role = "forced-subtitle"
	}
	c.hints.recorded[key] = recordedVTT{track: t, avTS: avTS}
	c.log.Info("WebVTT rendition's track restored from the store", "rendition", key)
	c.placeHeld()
	return true
}

// vttClock is how a WebVTT rendition times its segments: the last
// X-TIMESTAMP-MAP it unwrapped, where the segment after its newest starts
// in cue time, and the times of its latest segments.
type vttClock struct {
	avTS   bool // its variant's A/V segments are MPEG-TS
	mpegts int64
	hasRef bool
	next   uint64
	nextAt time.Duration
	has    bool
	starts map[uint64]vttTiming
}

// vttTiming is a segment's timing: its range in media time (ms) and what
// its cue times add up to.
type vttTiming struct {
	start, end uint64
	shift      time.Duration
}

// vttTime times a WebVTT segment (see the rules above).
func (r *rendition) vttTime(s *segment) {
	s.start, s.end, s.timed = 0, 0, false
	h := &r.c.hints
	p, ok := h.vttSegs[s.file]
	l := h.vtt[p.key]
	if !ok || l == nil {
		return
	}
	f, err := webvtt.Parse(s.body)
	if err != nil {
		return // checked when it came
	}
	k := &r.vttc
	if t, ok := k.starts[p.seq]; ok {
		s.start, s.end, s.vttShift, s.timed = t.start, t.end, t.shift, true
		return
	}
	var at time.Duration // the segment's start in cue time
	switch {
	case !k.has:
		at = l.sum(0, p.seq)
	case p.seq >= k.next:
		at = k.nextAt + l.sum(k.next, p.seq)
	default:
		at = k.nextAt - l.sum(p.seq, k.next)
	}
	shift := r.vttShift(f.Map)
	t := vttTiming{start: webvtt.Ticks(at+shift, vttTimescale), end: webvtt.Ticks(at+p.dur+shift, vttTimescale), shift: shift}
	t.end = max(t.end, t.start+1)
	if !k.has || p.seq >= k.next {
		k.next, k.nextAt, k.has = p.seq+1, at+p.dur, true
	}
	if k.starts == nil || len(k.starts) >= maxVTTStarts {
		k.starts = map[uint64]vttTiming{}
	}
	k.starts[p.seq] = t
	s.start, s.end, s.vttShift, s.timed = t.start, t.end, t.shift, true
}

// vttShift is what a segment's cue times add up to become media times:
// its timestamp map's, unwrapped nearest the rendition's last one, else
// the default (see the rules above).
func (r *rendition) vttShift(m *webvtt.TimestampMap) time.Duration {
	k := &r.vttc
	if m == nil {
		if k.avTS {
			return ffmpegTSStart
		}
		return 0
	}
	ts := int64(m.MPEGTS)
	if k.hasRef {
		d := (ts - k.mpegts) & (1<<33 - 1)
		if d >= 1<<32 {
			d -= 1 << 33
		}
		ts = k.mpegts + d
	}
	k.mpegts, k.hasRef = ts, true
	return webvtt.Duration(uint64(max(ts, 0)), 90000) - m.Local
}

// vttWorker is a WebVTT rendition's maker of init segment and fragments:
// its worker goroutine's.
type vttWorker struct {
	key    string
	track  webvtt.Track
	avTS   bool // recorded with the init segment
	log    *slog.Logger
	post   func(message)
	inited bool
	seq    uint32
	// carry are the cues (in media time) of the segments fed that end
	// after the newest one's range: ffmpeg writes a cue in the segment
	// where it starts only, and the fragments after hold its rest.
	carry []webvtt.Cue
	end   uint64 // the newest segment's end
}

// feed feeds the session a WebVTT segment as a wvtt fragment of its
// range, the rendition's init segment first.
func (w *vttWorker) feed(ctx context.Context, sess Session, s *segment) error {
	held := s.put == nil
	if !w.inited {
		init, err := webvtt.Init(w.track)
		if err != nil {
			return fmt.Errorf("segment %s: %w", s.file, err)
		}
		if err := sess.Feed(ctx, Segment{File: w.key, Body: init, Received: s.received, Held: held}); err != nil {
			return err
		}
		w.inited = true
		w.post(&vttInit{key: w.key, init: init, avTS: w.avTS})
	}
	f, err := webvtt.Parse(s.body)
	if err != nil {
		return fmt.Errorf("segment %s: %w: %w", s.file, ErrMalformed, err)
	}
	var cues []webvtt.Cue
	if s.start >= w.end {
		for _, c := range w.carry {
			if webvtt.Ticks(c.End, vttTimescale) > s.start {
				cues = append(cues, c)
			}
		}
	}
	for _, c := range f.Cues {
		c.Start, c.End = c.Start+s.vttShift, c.End+s.vttShift
		if !slices.Contains(cues, c) { // a cue the encoder repeats, as RFC 8216 asks
			cues = append(cues, c)
		}
	}
	if s.start >= w.end {
		w.carry, w.end = w.carry[:0], s.end
		for _, c := range cues {
			if webvtt.Ticks(c.End, vttTimescale) > s.end && len(w.carry) < webvtt.MaxCues {
				w.carry = append(w.carry, c)
			}
		}
	}
	w.seq++
	frag, err := webvtt.Fragment(w.seq, w.track.ID, webvtt.Samples(cues, s.start, s.end, vttTimescale))
	if err != nil {
		return fmt.Errorf("segment %s: %w", s.file, err)
	}
	err = sess.Feed(ctx, Segment{File: s.file, Body: frag, Received: s.received, Held: held})
	if err != nil && held {
		w.log.Warn("held segment not stored", "file", s.file, "err", err)
	}
	return err
}

package upload

// MPEG-TS segments: the rules are in the package doc (upload.go).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"path"
	"slices"
	"strings"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/ism"
	"github.com/smoothcast/smoothcast/shared/manifest/hls"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/packager"
	"github.com/smoothcast/smoothcast/shared/timeline"
	"github.com/smoothcast/smoothcast/shared/tsdemux"
)

// isTS tells an MPEG-TS segment from its first bytes: the sync byte at
// the start of its first two packets.
func isTS(b []byte) bool {
	return len(b) >= tsdemux.PacketSize && b[0] == 0x47 && (len(b) == tsdemux.PacketSize || b[tsdemux.PacketSize] == 0x47)
}

// wholePackets checks that an MPEG-TS segment is whole 188-byte packets,
// each with its sync byte: a segment cut short is refused at once, even
// one that would be held.
func wholePackets(b []byte) error {
	if len(b)%tsdemux.PacketSize != 0 {
		return fmt.Errorf("%w: an MPEG-TS segment of %d bytes is not whole 188-byte packets (cut short?)", ErrMalformed, len(b))
	}
	for at := 0; at < len(b); at += tsdemux.PacketSize {
		if b[at] != 0x47 {
			return fmt.Errorf("%w: the MPEG-TS packet at byte %d has no sync byte", ErrMalformed, at)
		}
	}
	return nil
}

// errRestarted ends a TS rendition whose encoder started again.
var errRestarted = errors.New("its encoder started again: a segment from before its first")

// tsTimeOffset keeps a TS rendition's unwrapped times positive: they
// start at a segment's 33-bit timestamp and go back at most 2^32.
const tsTimeOffset = 1 << 33

// learnTSPlaylist learns from a media playlist without EXT-X-MAP (TS
// segments): the playlist is the rendition of the segments it lists and
// of those to come named after it.
func (h *hints) learnTSPlaylist(file string, pl *hls.Playlist) learned {
	if h.stems == nil {
		h.stems, h.exact = map[string]string{}, map[string]string{}
	}
	if h.ts == nil || len(h.ts) >= maxStems {
		h.ts = map[string]bool{}
	}
	h.ts[file] = true
	stem := strings.TrimSuffix(file, path.Ext(file))
	if _, known := h.stems[stem]; !known && len(h.stems) >= maxStems {
		clear(h.stems)
	}
	h.stems[stem] = file
	for _, seg := range pl.Segments {
		if len(h.exact) >= maxExactSegments {
			clear(h.exact)
		}
		h.exact[path.Base(strings.SplitN(seg.URI, "?", 2)[0])] = file
	}
	if pl.Ended {
		return learned{ended: []string{file}}
	}
	return learned{}
}

// learnVariants learns each variant's BANDWIDTH from a multivariant
// playlist, by its media playlist's file name.
func (h *hints) learnVariants(pl *hls.Playlist) {
	for _, v := range pl.Variants {
		if v.IFrame || v.Bandwidth == 0 || v.Bandwidth > uint64(ism.MaxBitrate) {
			continue
		}
		if h.bandwidth == nil || len(h.bandwidth) >= maxStems {
			h.bandwidth = map[string]int{}
		}
		h.bandwidth[path.Base(strings.SplitN(v.URI, "?", 2)[0])] = int(v.Bandwidth)
	}
}

// placeTS names the TS rendition (its media playlist) a TS segment
// belongs to: the playlist that lists it, else the one playlist whose
// stem and a number make its name; "" if none can be told yet.
func (h *hints) placeTS(file string) string {
	if key, ok := h.exact[file]; ok && h.ts[key] {
		return key
	}
	key, n := "", 0
	for stem, k := range h.stems {
		if !h.ts[k] {
			continue
		}
		if rest, ok := strings.CutPrefix(file, stem); ok && segmentNumber.MatchString(rest) {
			key = k
			n++
		}
	}
	if n != 1 {
		return "" // none, or ambiguous: the playlist will list it
	}
	return key
}

// tsRate is a TS track's bitrate, kept for its rendition's next session.
type tsRate struct {
	codec    packager.Codec
	language string
	bitrate  int
}

// tsRates reports the bitrates a TS rendition's first segment fixed, and
// the init segment the packager made of it (recorded, so that a relay
// started again keeps the bitrates).
type tsRates struct {
	key   string
	rates []tsRate
	init  []byte
}

// tsRecordPrefix marks a TS rendition's init segment in the channel's
// record of uploads (record.go): "ts:" and its playlist's name.
const tsRecordPrefix = "ts:"

// restoreTS takes, from the record a relay started again reads, the
// bitrates of a TS rendition (its packaged init segment's btrt and esds);
// it reports whether file was one.
func (c *channel) restoreTS(file string, init []byte) bool {
	key, ok := strings.CutPrefix(file, tsRecordPrefix)
	if !ok {
		return false
	}
	if _, known := c.tsRates[key]; known {
		return true // this relay's own, newer
	}
	box, found := mp4box.Find(init, "moov")
	if !found {
		return true
	}
	m, err := mp4box.Decode(box)
	moov, isMoov := m.(*mp4.MoovBox)
	if err != nil || !isMoov {
		return true
	}
	var rates []tsRate
	for _, trak := range moov.Traks {
		r := tsRate{bitrate: fmp4.DeclaredBitrate(trak)}
		if trak.Mdia == nil || trak.Mdia.Minf == nil || trak.Mdia.Minf.Stbl == nil || trak.Mdia.Minf.Stbl.Stsd == nil || len(trak.Mdia.Minf.Stbl.Stsd.Children) == 0 {
			return true
		}
		switch trak.Mdia.Minf.Stbl.Stsd.Children[0].Type() {
		case "avc1", "avc3":
			r.codec = packager.H264
		case "hvc1", "hev1":
			r.codec = packager.HEVC
		case "mp4a":
			r.codec = packager.AAC
		case "ac-3":
			r.codec = packager.AC3
		case "ec-3":
			r.codec = packager.EAC3
		}
		if lang := trak.Mdia.Mdhd.GetLanguage(); r.codec.Video() || lang != "und" {
			r.language = lang
		}
		if r.codec.Video() {
			r.language = ""
		}
		rates = append(rates, r)
	}
	c.rememberTS(&tsRates{key: key, rates: rates})
	c.log.Info("TS rendition's bitrates restored from the store", "rendition", key)
	return true
}

// placedOwn offers a TS or WebVTT segment to its rendition, starting one
// if need be, or refuses it when its rendition cannot start; false when
// nothing places it yet.
func (c *channel) placedOwn(s *segment) bool {
	r, err := c.ownRendition(s)
	switch {
	case err != nil:
		if s.put == nil {
			c.log.Warn("held segment dropped", "err", err)
		}
		s.answer(err)
		return true
	case r == nil:
		return false
	}
	c.offer(r, s)
	return true
}

// tsRendition is the TS rendition a segment goes to, started if its
// playlist has none (yet, or any more); nil if nothing places it, an
// error if it cannot start (a limit).
func (c *channel) tsRendition(s *segment) (*rendition, error) {
	key := c.hints.placeTS(s.file)
	if key == "" {
		return nil, nil
	}
	if r := c.renditions[key]; r != nil {
		if !r.ts {
			return nil, fmt.Errorf("channel %s: segment %s: MPEG-TS, and %s is a rendition of fMP4 segments: %w", c.name, s.file, key, ErrConflict)
		}
		return r, nil
	}
	sess, err := c.u.sessions.Open(c.name, key, s.remote)
	if err != nil {
		return nil, err
	}
	return c.startTS(key, sess), nil
}

// startTS starts the TS rendition of key over sess.
func (c *channel) startTS(key string, sess Session) *rendition {
	c.seq++
	r := &rendition{c: c, init: key, seq: c.seq, sess: sess, jobs: make(chan job, maxInflight+1), ts: true}
	r.tsw = &tsWorker{key: key, log: c.log.With("rendition", key), post: c.post,
		previous: c.tsRates[key], bandwidth: c.hints.bandwidth[key], captions: c.hints.captionsOf(key)}
	if prev := c.tsEnded[key]; prev != nil {
		prev.tsPrev = nil
		r.tsPrev = prev // to tell a late segment of the run that ended
	}
	c.renditions[key] = r
	delete(c.gone, key)
	delete(c.tsEnded, key)
	go r.work(c.u)
	c.log.Info("TS rendition starts", "rendition", key)
	return r
}

// rememberTS keeps what a TS rendition's first segment fixed, and
// records its init segment.
func (c *channel) rememberTS(m *tsRates) {
	if c.tsRates == nil || len(c.tsRates) >= maxStems {
		c.tsRates = map[string][]tsRate{}
	}
	c.tsRates[m.key] = m.rates
	if m.init != nil {
		c.record.add(c, tsRecordPrefix+m.key, m.init, nil)
	}
}

// tsTime reads where a TS segment starts and ends, nearest to r's
// previous segment.
func (r *rendition) tsTime(s *segment) {
	start, end, ok := tsdemux.Span(s.body)
	if !ok {
		s.start, s.end, s.timed = 0, 0, false
		return
	}
	ref, has := r.tsRef, r.tsHasRef
	if !has && r.tsPrev != nil {
		ref, has = r.tsPrev.tsRef, r.tsPrev.tsHasRef
	}
	u := start
	if has {
		d := (start - ref) & (1<<33 - 1)
		if d >= 1<<32 {
			d -= 1 << 33
		}
		u = ref + d
	}
	r.tsRef, r.tsHasRef = u, true
	s.start, s.end, s.timed = uint64(u+tsTimeOffset), uint64(u+end-start+tsTimeOffset), true
}

// restartTS starts r's rendition again with s when s says its encoder
// started again, or refuses s when it is a late segment of the run a new
// rendition replaced; it reports whether it dealt with s.
func (c *channel) restartTS(r *rendition, s *segment) bool {
	if !s.timed {
		return false
	}
	if prev := r.tsPrev; prev != nil && !r.tsHasFirst {
		// The rendition's first segment, after one that ended: a late
		// segment of that run is refused, not taken as a new start.
		if s.start > prev.tsFirst && s.start <= prev.newest {
			s.answer(fmt.Errorf("channel %s: segment %s: the rendition of %s has ended, and this segment is one of its: %w", c.name, s.file, r.init, ErrConflict))
			return true
		}
	}
	if !r.tsHasFirst {
		r.tsFirst, r.tsHasFirst = s.start, true
		r.tsPrev = nil // its times are this rendition's from now on
		return false
	}
	if len(r.dispatched) == 0 {
		return false
	}
	if i := slices.Index(r.dispatched, s.start); i >= 0 && r.sums[i] == crc32.ChecksumIEEE(s.body) {
		return false // a resend: offer answers it
	} else if i < 0 {
		dur := uint64(0)
		if r.hasNext && r.next > r.newest {
			dur = r.next - r.newest
		}
		if s.start > r.tsFirst && (dur == 0 || s.start+4*dur >= r.newest) {
			return false
		}
	}
	// From before the rendition's first segment, far back, or where a
	// segment it has started but another one: the encoder started again
	// (a TS rendition has no init segment to wait for).
	c.log.Info("TS rendition starts again: its encoder restarted", "rendition", r.init, "file", s.file)
	c.end(r, false, errRestarted)
	sess, err := c.u.sessions.Open(c.name, r.init, s.remote)
	if err != nil {
		s.answer(err)
		return true
	}
	nr := c.startTS(r.init, sess)
	nr.tsPrev = nil // a new start, not a late segment of the old one
	c.offer(nr, s)
	return true
}

// forgetRefused forgets that a TS segment the worker refused was handed
// on, as its demuxer and packager do: the same segment sent again
// (corrected) is taken anew, not answered as a resend with the refusal,
// and, if it was the newest, the next segment follows the one before it.
func (r *rendition) forgetRefused(s *segment) {
	if !s.timed || s.resend {
		return
	}
	if i := slices.Index(r.dispatched, s.start); i >= 0 {
		r.dispatched = slices.Delete(r.dispatched, i, i+1)
		r.sums = slices.Delete(r.sums, i, i+1)
		if s.start == r.first && len(r.dispatched) > 0 {
			r.first = slices.Min(r.dispatched)
		}
	}
	if r.newest == s.start && !slices.ContainsFunc(r.dispatched, func(t uint64) bool { return t >= s.start }) {
		r.newest, r.next, r.hasNext = s.was.newest, s.was.next, s.was.hasNext
	}
}

// tsWorker is a TS rendition's demultiplexer and packager: its worker
// goroutine's.
type tsWorker struct {
	key       string
	log       *slog.Logger
	post      func(message)
	previous  []tsRate          // the rendition's previous session's bitrates
	bandwidth int               // the variant's BANDWIDTH, 0 if unknown
	captions  timeline.Captions // what the multivariant playlist said its video carries

	dmx *tsdemux.Demuxer
	seg tsSegmentSamples
	pkg *packager.Packager
	out boxBuffer

	// The first segment's bitrates and the init segment, reported to the
	// channel once the init segment is stored.
	rates []tsRate
	init  []byte
}

// tsSegmentSamples is a tsdemux.Handler that keeps one segment's samples
// until the whole segment is demultiplexed.
type tsSegmentSamples struct {
	tracks  []packager.Track
	samples []tsSample
}

type tsSample struct {
	track int
	s     packager.Sample
}

func (t *tsSegmentSamples) Tracks(_ context.Context, tracks []packager.Track) error {
	t.tracks = tracks
	return nil
}

func (t *tsSegmentSamples) Sample(_ context.Context, i int, s packager.Sample) error {
	t.samples = append(t.samples, tsSample{i, s})
	return nil
}

// write hands the packager the segment's samples and cuts.
func (w *tsWorker) write(ctx context.Context) error {
	for _, x := range w.seg.samples {
		if err := w.pkg.Write(ctx, x.track, x.s); err != nil {
			return err
		}
	}
	return w.pkg.Cut(ctx)
}

// boxBuffer is a packager.BoxSink that keeps the boxes it is given.
type boxBuffer struct{ b []byte }

func (b *boxBuffer) Box(_ context.Context, box mp4box.Box) error {
	b.b = append(b.b, box.Data...)
	return nil
}

// keepInit forgets the fragments of a refused segment, keeping the init
// segment if the packager wrote it then: it writes it once.
func (b *boxBuffer) keepInit() {
	end := 0
	if moov, ok := mp4box.Find(b.b, "moov"); ok {
		end = int(moov.Pos) + len(moov.Data)
	}
	b.b = b.b[:end]
}

// feed demultiplexes and packages one TS segment and feeds its session
// the result: the init segment first, at the rendition's first segment.
func (w *tsWorker) feed(ctx context.Context, sess Session, s *segment, held bool) error {
	err := w.segment(ctx, sess, s, held)
	if w.rates != nil && w.init != nil {
		w.post(&tsRates{key: w.key, rates: w.rates, init: w.init})
		w.rates = nil
	}
	clear(w.seg.samples)
	w.seg.samples = w.seg.samples[:0]
	if err != nil && held {
		// No request hears of it.
		w.log.Warn("held segment not stored", "file", s.file, "err", err)
	}
	return err
}

func (w *tsWorker) segment(ctx context.Context, sess Session, s *segment, held bool) error {
	if w.dmx == nil {
		w.dmx = tsdemux.New(&w.seg, tsdemux.Options{Log: w.log, Reuse: true})
	}
	if err := w.dmx.Segment(ctx, s.body); err != nil {
		if w.pkg == nil {
			w.dmx, w.seg = nil, tsSegmentSamples{} // the next segment starts over
		}
		return fmt.Errorf("segment %s: %w", s.file, err)
	}
	first := w.pkg == nil
	var tracks []packager.Track
	if first {
		tracks = w.bitrates(w.seg.tracks, w.seg.samples)
		pkg, err := packager.New(&w.out, tracks, packager.Options{OnCut: true, Log: w.log})
		if err != nil {
			w.dmx, w.seg = nil, tsSegmentSamples{}
			return fmt.Errorf("segment %s: %w", s.file, err)
		}
		w.pkg = pkg
	}
	if err := w.write(ctx); err != nil {
		// The packager dropped the segment; the demuxer forgets it too,
		// so that the next segment follows the last one stored.
		if first || !w.dmx.Forget() {
			w.dmx, w.pkg, w.seg = nil, nil, tsSegmentSamples{}
			w.out.b = w.out.b[:0]
		} else {
			w.out.keepInit()
		}
		return fmt.Errorf("segment %s: %w", s.file, err)
	}
	if first {
		rates := make([]tsRate, len(tracks))
		for i, t := range tracks {
			rates[i] = tsRate{t.Codec, t.Language, t.Bitrate}
		}
		w.rates = rates
	}
	body := w.out.b
	w.out.b = w.out.b[:0]
	// The init segment (ftyp, moov) goes as a file of its own, as an
	// fMP4 upload's does.
	if moov, ok := mp4box.Find(body, "moov"); ok {
		end := int(moov.Pos) + len(moov.Data)
		init, err := withCaptions(body[:end], w.captions)
		if err != nil {
			return fmt.Errorf("segment %s: %w", s.file, err)
		}
		if err := sess.Feed(ctx, Segment{File: w.key, Body: init, Received: s.received, Held: held}); err != nil {
			return err
		}
		if w.init == nil {
			w.init = bytes.Clone(init)
		}
		body = body[end:]
	}
	if len(body) == 0 {
		return nil
	}
	return sess.Feed(ctx, Segment{File: s.file, Body: body, Received: s.received, Held: held})
}

// bitrates fixes the tracks' bitrates at the rendition's first segment
// (see the package's rules above).
func (w *tsWorker) bitrates(tracks []packager.Track, samples []tsSample) []packager.Track {
	tracks = append([]packager.Track(nil), tracks...)
	if len(w.previous) == len(tracks) {
		same := true
		for i, t := range tracks {
			same = same && w.previous[i].codec == t.Codec && w.previous[i].language == t.Language
		}
		if same {
			for i := range tracks {
				tracks[i].Bitrate = w.previous[i].bitrate
			}
			return tracks
		}
	}
	measured := measure(len(tracks), samples)
	for i := range tracks {
		tracks[i].Bitrate = measured[i]
	}
	if w.bandwidth <= 0 {
		return tracks
	}
	video, audio := -1, 0
	for i, t := range tracks {
		switch {
		case t.Codec.Video() && video < 0:
			video = i
		case t.Codec.Video():
			return tracks // BANDWIDTH cannot be shared between two videos
		default:
			audio += measured[i]
		}
	}
	switch {
	case video >= 0:
		tracks[video].Bitrate = max(w.bandwidth-audio, ism.MinBitrate)
	case len(tracks) == 1:
		tracks[0].Bitrate = w.bandwidth
	}
	return tracks
}

// measure is each track's bitrate over a segment: its bytes over the
// segment's duration (from the first sample to one frame past the last,
// the longest track's), to the kbit/s; 0 (the session measures it) when
// the segment is too short to tell.
func measure(n int, samples []tsSample) []int {
	bytes := make([]int64, n)
	first, last, prev := make([]int64, n), make([]int64, n), make([]int64, n)
	count := make([]int, n)
	for _, x := range samples {
		i := x.track
		size := len(x.s.Frame)
		for _, nalu := range x.s.NALUs {
			size += 4 + len(nalu)
		}
		bytes[i] += int64(size)
		if count[i] == 0 {
			first[i] = x.s.DTS
		}
		prev[i], last[i] = last[i], x.s.DTS
		count[i]++
	}
	var span int64
	for i := range n {
		if count[i] > 1 {
			span = max(span, last[i]-first[i]+last[i]-prev[i])
		}
	}
	out := make([]int, n)
	if span <= 0 {
		return out
	}
	for i := range n {
		bps := bytes[i] * 8 * 90000 / span
		out[i] = int(max((bps+500)/1000*1000, ism.MinBitrate))
		if ism.CheckBitrate(out[i]) != nil {
			out[i] = 0
		}
	}
	return out
}

package relay

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/mp4box"
)

// Uploads: DASH-IF Live Media Ingest interface 2, as ffmpeg's dash and hls
// muxers send it with -method PUT. The encoder PUTs files under the
// channel, /live/{channel}.isml/{file}: an init segment per rendition,
// then its media segments (CMAF: styp, moof with tfdt, mdat), and its own
// MPD or HLS playlists, rewritten as it goes. The relay tells the files
// apart by their content, not their names.
//
// Each rendition (one init segment) is fed, segment by segment, to a
// session of its own, the same one that reads a Smooth or CMAF push: so
// an upload is stored, rewritten, deduplicated, rebased and ended exactly
// as a push is. A segment is answered once it is stored. The encoder's
// manifests are hints: they say which init segment a media segment
// belongs to (an HLS media playlist's EXT-X-MAP and its segment URIs, an
// MPD's SegmentTemplate) and when the stream ends (EXT-X-ENDLIST, a static
// MPD); the channel's own Smooth, HLS and DASH manifests are built from
// the segments, as for any push. Before any manifest says so, a segment
// goes to the rendition whose init segment's name matches its own (ffmpeg's
// dash muxer: init-stream0.m4s, chunk-stream0-00001.m4s) or to the only
// rendition there is; a segment no rule places waits, a few at most, for
// the manifest or the init segment that places it. DELETEs are answered
// and ignored: retention decides what goes.

// freeBox is an empty free box. Written to a rendition's session after a
// segment, it is read only once the session has stored the segment's
// fragments (sessions read box by box, nothing ahead): its write returning
// is the acknowledgement.
var freeBox = []byte{0, 0, 0, 8, 'f', 'r', 'e', 'e'}

// Bounds on what a channel's uploads hold.
const (
	maxPending        = 16  // segments waiting for their init segment or manifest (and at most MaxBox bytes)
	maxUploadRules    = 64  // MPD representations remembered
	maxExactSegments  = 256 // segment names remembered from HLS playlists
	maxManifestUpload = 1 << 20
)

// uploadChannel is what the relay knows of one channel's uploads. Only
// the renditions' sessions hold media, as a push's does.
type uploadChannel struct {
	mu         sync.Mutex
	renditions map[string]*rendition // by the init segment's file name
	exact      map[string]string     // segment file: init file (HLS media playlists)
	stems      map[string]string     // HLS media playlist name less .m3u8: init file
	rules      []segmentRule         // from the MPD
	pending    []*pendingSegment
	// The restore of the renditions recorded in the store (restoreOnce):
	// done, in progress (closed when it ends), or to try again after.
	restored     bool
	restoring    chan struct{}
	restoreAfter time.Time
	recordMu     sync.Mutex // one write of the channel's record at a time
	// pendingBytes bounds what pending holds to one box of the largest
	// size the relay takes (Config.MaxBox).
	pendingBytes int
}

// segmentRule places media segments by an MPD's SegmentTemplate.
type segmentRule struct {
	media, init *regexp.Regexp
}

type pendingSegment struct {
	file string
	body []byte
}

// rendition is one init segment's session.
type rendition struct {
	init    string
	st      *stream // its status
	pw      *io.PipeWriter
	done    chan struct{} // closed when the session has ended
	err     error         // what ended it, once done is closed
	mu      sync.Mutex    // one segment at a time, in order
	idle    *time.Timer   // drops a rendition whose encoder went silent
	idleFor time.Duration // 0: never idle
	feeding int           // segments being fed (waiting or stored): no idle meanwhile
	ending  bool          // the encoder's manifest said the stream ended
	// fed: the tfdt of the first moof of every segment stored, newest last.
	fed []uint64
	// next is where the newest segment stored ends (once one was timed):
	// a segment starting later leaves a gap, and waits up to reorderWait
	// for the segments before it, whose storing closes progress.
	next        uint64
	hasNext     bool
	trexs       []*mp4.TrexBox // the tracks' defaults, for segment durations
	reorderWait time.Duration
	progress    chan struct{}
	log         *slog.Logger
}

// errReplaced ends a rendition whose init segment was uploaded again.
var errReplaced = errors.New("its init segment was uploaded again")

// endLinger is how long a rendition whose end the encoder's manifest
// announced still takes segments: ffmpeg's dash muxer uploads its last
// segments and its final, static MPD at the same time.
const endLinger = 2 * time.Second

func (rl *Relay) uploadChannel(name string) *uploadChannel {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.uploads == nil {
		rl.uploads = map[string]*uploadChannel{}
	}
	uc := rl.uploads[name]
	if uc == nil {
		uc = &uploadChannel{renditions: map[string]*rendition{}, exact: map[string]string{}, stems: map[string]string{}}
		rl.uploads[name] = uc
	}
	return uc
}

// uploadKind is what an uploaded file is, from its first bytes.
type uploadKind int

const (
	uploadUnknown uploadKind = iota
	uploadInit
	uploadMedia
	uploadHLS
	uploadMPD
)

func classify(b []byte) uploadKind {
	text := bytes.TrimLeft(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), " \t\r\n")
	switch {
	case bytes.HasPrefix(text, []byte("#EXTM3U")):
		return uploadHLS
	case bytes.HasPrefix(text, []byte("<")) && bytes.Contains(text, []byte("<MPD")):
		return uploadMPD
	}
	// Top-level boxes: a moov makes an init segment, a moof a media one.
	for box, err := range mp4box.All(b) {
		if err != nil {
			break
		}
		switch box.Type {
		case "moov":
			return uploadInit
		case "moof":
			return uploadMedia
		}
	}
	return uploadUnknown
}

// serveUpload handles a file an encoder PUTs (or POSTs, or DELETEs) under a
// channel.
func (rl *Relay) serveUpload(w http.ResponseWriter, r *http.Request, up layout.UploadPath, token string) {
	log := rl.Log.With("channel", up.Channel, "file", up.File, "remote", r.RemoteAddr)
	switch r.Method {
	case http.MethodPut, http.MethodPost, http.MethodDelete:
	default:
		w.Header().Set("Allow", "PUT, POST, DELETE")
		refuse(w, "method not allowed: upload with PUT or POST", http.StatusMethodNotAllowed)
		return
	}
	fail := func(kind string, err error) { rl.noteError(kind, up.Channel, up.File, r.RemoteAddr, err) }
	if code, reason := rl.authorize(r, up.Channel, token); code != 0 {
		log.Warn("upload refused: authentication", "status", code, "reason", reason)
		fail(errAuth, errors.New(reason))
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="smoothcast ingest"`)
		}
		refuse(w, reason, code)
		return
	}
	if r.Method == http.MethodDelete {
		// The encoder's own window sliding: what it deletes stays until the
		// retention, so that nothing inside the DVR window goes missing.
		log.Debug("upload delete ignored")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var body io.Reader = r.Body
	if rl.Cfg.ReadTimeout > 0 || rl.Cfg.MinRate > 0 {
		body = &deadlineReader{r: r.Body, rc: http.NewResponseController(w), d: rl.Cfg.ReadTimeout,
			minRate: rl.Cfg.MinRate, window: rl.Cfg.RateWindow, since: time.Now()}
	}
	b, err := io.ReadAll(io.LimitReader(body, int64(rl.Cfg.MaxBox)+1))
	rl.metrics.bytes.WithLabelValues(kindUpload).Add(float64(len(b)))
	if err != nil {
		log.Warn("upload dropped", "err", err)
		fail(errorKind(err), err)
		refuse(w, err.Error(), http.StatusBadRequest)
		return
	}
	if len(b) > rl.Cfg.MaxBox {
		log.Warn("upload refused: too large", "limit", rl.Cfg.MaxBox)
		msg := fmt.Sprintf("upload larger than %d bytes", rl.Cfg.MaxBox)
		fail(errTooLarge, errors.New(msg))
		refuse(w, msg, http.StatusRequestEntityTooLarge)
		return
	}
	if len(b) == 0 {
		w.WriteHeader(http.StatusOK) // an encoder's probe
		return
	}
	kind := classify(b)
	if kind == uploadInit || kind == uploadMedia {
		if err := wholeBoxes(b, kind); err != nil {
			log.Warn("upload refused", "err", err)
			fail(errProtocol, err)
			refuse(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	var uc *uploadChannel
	if kind != uploadUnknown {
		uc = rl.uploadChannel(up.Channel) // only for what is media or a manifest
		rl.restoreOnce(context.WithoutCancel(r.Context()), up.Channel, uc, kind == uploadInit, log)
	}
	switch kind {
	case uploadInit:
		err = rl.uploadInit(up.Channel, uc, up.File, b, r.RemoteAddr, log)
		if err == nil {
			// Not the request's context: ffmpeg closes its connection
			// once it has sent a file, without waiting for the answer.
			if rerr := rl.recordInit(context.WithoutCancel(r.Context()), up.Channel, uc, up.File, b); rerr != nil {
				// The upload goes on; only a relay started again would
				// miss the rendition.
				log.Warn("init segment not recorded: a relay started again will not restore its rendition", "err", rerr)
			}
		}
	case uploadMedia:
		var held bool
		held, err = rl.uploadMedia(uc, up.File, b, log)
		if err == nil && held {
			w.WriteHeader(http.StatusAccepted)
			return
		}
	case uploadHLS, uploadMPD:
		if len(b) > maxManifestUpload {
			fail(errTooLarge, errors.New("manifest too large"))
			refuse(w, "manifest too large", http.StatusRequestEntityTooLarge)
			return
		}
		if kind == uploadHLS {
			err = rl.uploadPlaylist(uc, up.File, b, log)
		} else {
			err = rl.uploadMPD(uc, b, log)
		}
	default:
		log.Warn("upload refused: not media", "bytes", len(b))
		fail(errProtocol, errors.New("not an init segment, a media segment, an HLS playlist or an MPD"))
		refuse(w, "not an init segment, a media segment, an HLS playlist or an MPD", http.StatusBadRequest)
		return
	}
	if err != nil {
		code, what := errorStatus(err)
		var ue *uploadError
		if errors.As(err, &ue) {
			code, what = ue.code, "upload refused"
		}
		log.Warn(what, "err", err)
		fail(errorKind(err), err)
		refuse(w, err.Error(), code)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// uploadError is a refusal with its status.
type uploadError struct {
	code int
	msg  string
}

func (e *uploadError) Error() string { return e.msg }

// uploadInit starts the rendition of an init segment (one uploaded again
// ends the old session first, as a drop), then feeds it the segments that
// were waiting for it.
func (rl *Relay) uploadInit(channel string, uc *uploadChannel, file string, b []byte, remote string, log *slog.Logger) error {
	pr, pw := io.Pipe()
	st := &stream{channel: channel, name: "upload:" + file, kind: kindUpload, remote: remote, started: time.Now()}
	rend := &rendition{init: file, st: st, pw: pw, done: make(chan struct{}), log: log.With("stream", st.name),
		trexs: initTrexs(b), reorderWait: rl.Cfg.ReorderWait, progress: make(chan struct{})}
	// Held until the init segment is fed: no segment reaches the session
	// before it (a concurrent PUT or drain waits here).
	rend.mu.Lock()
	uc.mu.Lock()
	old := uc.renditions[file]
	uc.renditions[file] = rend // one rendition per name, even for two PUTs at once
	uc.mu.Unlock()
	if old != nil {
		// An init segment again is a new encoder session, as a new
		// connection is for a push: the old one ends as a drop (the channel
		// stays live), and the new one is rebased if it starts over.
		old.end(errReplaced)
	}
	if reason := rl.admit(channel); reason != "" {
		rend.err = &uploadError{http.StatusTooManyRequests, reason}
		_ = pw.CloseWithError(rend.err)
		close(rend.done)
		rend.mu.Unlock()
		return rend.err
	}
	rl.register(st, nil)
	go func() {
		stats, written, dupes, started, err := rl.runSession(context.Background(), st, &sessionReader{r: pr, st: st}, rend.log)
		pr.CloseWithError(cmpErr(err, io.ErrClosedPipe))
		attrs := []any{"bytes", stats.Bytes, "fragments", stats.Fragments, "written", written, "duplicates", dupes, "seconds", time.Since(started).Seconds()}
		if err != nil {
			rend.log.Warn("upload session ended", append(attrs, "err", err)...)
		} else {
			rend.log.Info("upload session ended", append(attrs, "end_of_stream", true)...)
		}
		if errors.Is(err, errUploadIdle) {
			// No request hears of it: count it here. What ends a session
			// while a segment is fed is counted by that segment's request.
			rl.streamError(st, errTimeout, err)
		}
		rend.err = err
		rl.unregister(st)
		rl.leave(channel)
		close(rend.done)
	}()
	if rl.Cfg.ReadTimeout > 0 {
		rend.idleFor = rl.Cfg.ReadTimeout
		rend.armIdle()
	}
	err := rend.feedLocked(b, time.Time{})
	rend.mu.Unlock()
	if err != nil {
		return err
	}
	rl.drainPending(uc)
	return nil
}

func cmpErr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// uploadMedia stores a media segment through its rendition, or holds it
// (held) until the init segment or the manifest that places it comes.
func (rl *Relay) uploadMedia(uc *uploadChannel, file string, b []byte, log *slog.Logger) (held bool, err error) {
	uc.mu.Lock()
	rend := uc.renditions[uc.place(file)]
	if rend == nil {
		if len(uc.pending) >= maxPending || uc.pendingBytes+len(b) > max(rl.Cfg.MaxBox, len(b)) {
			uc.mu.Unlock()
			return false, &uploadError{http.StatusServiceUnavailable,
				fmt.Sprintf("segment %s belongs to no init segment the relay has (after a relay restart, send the init segments again); %d segments (%d bytes) already wait", file, len(uc.pending), uc.pendingBytes)}
		}
		uc.pending = append(uc.pending, &pendingSegment{file: file, body: b})
		uc.pendingBytes += len(b)
		uc.mu.Unlock()
		log.Debug("segment waits for its init segment or manifest")
		return true, nil
	}
	uc.mu.Unlock()
	return false, rl.feedInOrder(uc, rend, b)
}

// feedInOrder feeds rend the segments of it that wait, and b (nil for a
// drain: only what waits), in media time, and returns b's outcome. A
// rendition replaced meanwhile (its init segment uploaded again) leaves
// what it did not store to its successor, which this call goes on to
// feed: the successor's own drain may have run before those segments
// were put back to wait.
func (rl *Relay) feedInOrder(uc *uploadChannel, rend *rendition, b []byte) error {
	var own error
	for range 4 {
		replaced, fed, err := rl.feedCurrent(uc, rend, b)
		if fed {
			b, own = nil, err
		}
		if !replaced {
			return own
		}
		uc.mu.Lock()
		next := uc.renditions[rend.init]
		uc.mu.Unlock()
		if next == nil || next == rend {
			if b != nil {
				return err // why b was not stored
			}
			return own
		}
		rend = next
	}
	if b == nil {
		return own
	}
	return &uploadError{http.StatusConflict, "the rendition of " + rend.init + " keeps being replaced: upload its init segment once"}
}

// feedCurrent is feedInOrder on rend alone. replaced says rend stopped
// being its init segment's rendition before all was fed (what was not
// fed waits again, but b); fed says b was, with err its outcome (else err
// says why not).
func (rl *Relay) feedCurrent(uc *uploadChannel, rend *rendition, b []byte) (replaced, fed bool, err error) {
	rend.mu.Lock()
	defer rend.mu.Unlock()
	uc.mu.Lock()
	current := uc.renditions[rend.init] == rend
	uc.mu.Unlock()
	if !current {
		return true, false, nil
	}
	// The held segments and b, in media time, not arrival order: held
	// segments are often the ones that arrived out of it, and b may be
	// the one a held segment's gap waits for. One reorder wait for all.
	mine := &pendingSegment{body: b}
	batch := uc.takePending(rend.init)
	if b != nil {
		batch = append(batch, mine)
	}
	batch = rend.inMediaTime(batch)
	deadline := time.Now().Add(rend.reorderWait)
	var own error
	for i, p := range batch {
		err := rend.feedLocked(p.body, deadline)
		if err != nil && rend.ended() && errors.Is(rend.err, errReplaced) {
			// Replaced while this one was fed: the held ones left wait
			// for the successor, and b goes to it unless it was stored.
			uc.requeue(slices.DeleteFunc(slices.Clone(batch[i:]), func(q *pendingSegment) bool { return q == mine }))
			if fed {
				return true, true, own
			}
			return true, false, err
		}
		switch {
		case p == mine:
			fed, own = true, err
			if err != nil {
				rend.st.failed(errorKind(err), err)
			}
		case err != nil:
			rend.log.Warn("waiting segment not stored", "file", p.file, "err", err)
			kind := errorKind(err)
			rend.st.failed(kind, err)
			rl.streamError(rend.st, kind, fmt.Errorf("waiting segment %s not stored: %w", p.file, err))
		}
	}
	return false, fed, own
}

// inMediaTime sorts segments by where they start (stably: an untimed
// one keeps its place relative to those starting at zero).
func (r *rendition) inMediaTime(segs []*pendingSegment) []*pendingSegment {
	if len(segs) < 2 {
		return segs
	}
	type keyed struct {
		start uint64
		seg   *pendingSegment
	}
	ks := make([]keyed, len(segs))
	for i, p := range segs {
		start, _, _ := segmentSpan(p.body, r.trexs)
		ks[i] = keyed{start, p}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int { return cmp.Compare(a.start, b.start) })
	for i, k := range ks {
		segs[i] = k.seg
	}
	return segs
}

// maxFed bounds the segment times a rendition remembers to tell a resend
// from a segment out of order.
const maxFed = 8

// order says whether a segment starting at start (its first tfdt) is new,
// a resend of one stored (nothing to do), or out of order (before the
// newest stored, and not one of them). The caller holds r.mu.
func (r *rendition) order(start uint64) (resend bool, err error) {
	if len(r.fed) == 0 {
		return false, nil
	}
	for _, f := range r.fed {
		if f == start {
			return true, nil
		}
	}
	if newest := r.fed[len(r.fed)-1]; start < newest {
		return false, &uploadError{http.StatusConflict, fmt.Sprintf("segment out of order: it starts at %d, before the newest segment of %s (%d); upload each rendition's segments in order", start, r.init, newest)}
	}
	return false, nil
}

// segmentSpan is where a media segment starts (the tfdt of its first
// moof) and ends (its last moof's tfdt and duration, with its track's
// defaults from trexs); timed is false when a moof has no tfdt.
func segmentSpan(b []byte, trexs []*mp4.TrexBox) (start, end uint64, timed bool) {
	first := true
	for box, err := range mp4box.All(b) {
		if err != nil {
			break
		}
		if box.Type != "moof" {
			continue
		}
		moof, err := fmp4.DecodeMoof(box.Data)
		if err != nil || moof.Traf == nil || moof.Traf.Tfdt == nil || moof.Traf.Tfhd == nil {
			return 0, 0, false
		}
		t := moof.Traf.Tfdt.BaseMediaDecodeTime()
		var trex *mp4.TrexBox
		for _, x := range trexs {
			if x.TrackID == moof.Traf.Tfhd.TrackID {
				trex = x
			}
		}
		_, dur, _ := fmp4.Timing(moof, trex)
		if first {
			start, first = t, false
		}
		end = max(end, t+dur)
	}
	return start, end, !first
}

// initTrexs is the track defaults (trex) of an init segment.
func initTrexs(b []byte) []*mp4.TrexBox {
	box, ok := mp4box.Find(b, "moov")
	if !ok {
		return nil
	}
	if m, err := mp4box.Decode(box); err == nil {
		if moov, ok := m.(*mp4.MoovBox); ok && moov.Mvex != nil {
			return moov.Mvex.Trexs
		}
	}
	return nil
}

// awaitEarlier waits, r.mu released, until a segment starting at start
// no longer leaves a gap after what r has stored, r ends, or the
// deadline passes. The caller holds r.mu, and holds it again on return.
func (r *rendition) awaitEarlier(start, end uint64, deadline time.Time) {
	wait := time.Until(deadline)
	if wait <= 0 || !r.hasNext {
		return
	}
	// A hole under 1 % of the segment is an encoder's rounding.
	slack := (end - start) / 100
	var timeout <-chan time.Time
	for start > r.next+slack && !r.ended() {
		if timeout == nil {
			r.log.Debug("segment leaves a gap: waiting for the ones before it", "start", start, "stored_to", r.next, "wait", wait)
			t := time.NewTimer(wait)
			defer t.Stop()
			timeout = t.C
		}
		progress := r.progress
		r.mu.Unlock()
		select {
		case <-progress:
		case <-r.done:
		case <-timeout:
			r.mu.Lock()
			return
		}
		r.mu.Lock()
	}
}

// drainPending feeds every waiting segment that can now be placed.
func (rl *Relay) drainPending(uc *uploadChannel) {
	uc.mu.Lock()
	var ready []*rendition
	seen := map[*rendition]bool{}
	for _, p := range uc.pending {
		if r := uc.renditions[uc.place(p.file)]; r != nil && !seen[r] {
			seen[r] = true
			ready = append(ready, r)
		}
	}
	uc.mu.Unlock()
	for _, r := range ready {
		_ = rl.feedInOrder(uc, r, nil)
	}
}

// takePending removes and returns, in arrival order, the waiting segments
// that now belong to init.
func (uc *uploadChannel) takePending(init string) []*pendingSegment {
	uc.mu.Lock()
	defer uc.mu.Unlock()
	var mine []*pendingSegment
	kept := uc.pending[:0]
	for _, p := range uc.pending {
		if uc.place(p.file) == init {
			mine = append(mine, p)
			uc.pendingBytes -= len(p.body)
		} else {
			kept = append(kept, p)
		}
	}
	uc.pending = kept
	return mine
}

// requeue puts segments taken from pending back at its front, in order.
func (uc *uploadChannel) requeue(ps []*pendingSegment) {
	uc.mu.Lock()
	defer uc.mu.Unlock()
	uc.pending = append(append([]*pendingSegment(nil), ps...), uc.pending...)
	for _, p := range ps {
		uc.pendingBytes += len(p.body)
	}
}

// place names the init segment a media segment belongs to ("" if none
// can be told yet). The caller holds uc.mu.
func (uc *uploadChannel) place(file string) string {
	if init, ok := uc.exact[file]; ok {
		return init
	}
	for _, r := range uc.rules {
		if !r.media.MatchString(file) {
			continue
		}
		for name := range uc.renditions {
			if r.init.MatchString(name) {
				return name
			}
		}
	}
	// An HLS media playlist's stem and a segment number (ffmpeg: stem%d).
	best := ""
	for stem := range uc.stems {
		if rest, ok := strings.CutPrefix(file, stem); ok && segmentNumber.MatchString(rest) && len(stem) > len(best) {
			best = stem
		}
	}
	if best != "" {
		return uc.stems[best]
	}
	// The same name once the words init/chunk and the number are gone
	// (ffmpeg's dash muxer: init-stream0.m4s, chunk-stream0-00001.m4s).
	key, match := fileKey(file, true), ""
	for name := range uc.renditions {
		if fileKey(name, false) == key {
			if match != "" {
				match = "" // ambiguous
				break
			}
			match = name
		}
	}
	if match != "" {
		return match
	}
	if len(uc.renditions) == 1 && len(uc.stems) == 0 && len(uc.rules) == 0 {
		for name := range uc.renditions {
			return name
		}
	}
	return ""
}

var segmentNumber = regexp.MustCompile(`^[0-9]+\.[A-Za-z0-9]+$`)

// fileKey is a file name without its extension, the words that say init
// or media, and (for a media segment) its trailing number.
func fileKey(name string, media bool) string {
	name = strings.TrimSuffix(name, path.Ext(name))
	words := strings.FieldsFunc(name, func(r rune) bool { return r == '-' || r == '_' || r == '.' })
	if media && len(words) > 0 && strings.Trim(words[len(words)-1], "0123456789") == "" {
		words = words[:len(words)-1]
	}
	var kept []string
	for _, w := range words {
		switch strings.ToLower(w) {
		case "init", "chunk", "seg", "segment", "media", "fragment", "frag":
			continue
		}
		kept = append(kept, w)
	}
	return strings.Join(kept, "_")
}

// uploadPlaylist learns from an HLS playlist: a media playlist's EXT-X-MAP
// names the init segment of its segments, listed or to come (named after
// the playlist, as ffmpeg names them); EXT-X-ENDLIST ends that rendition.
// A multivariant playlist says nothing the relay needs.
func (rl *Relay) uploadPlaylist(uc *uploadChannel, file string, b []byte, log *slog.Logger) error {
	var init string
	var segments []string
	ended := false
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "#EXT-X-MAP:"):
			if m := mapURI.FindStringSubmatch(line); m != nil {
				init = path.Base(m[1])
			}
		case line == "#EXT-X-ENDLIST":
			ended = true
		case line != "" && !strings.HasPrefix(line, "#"):
			segments = append(segments, path.Base(strings.SplitN(line, "?", 2)[0]))
		}
	}
	if init == "" {
		return nil // a multivariant playlist, or one without fMP4
	}
	uc.mu.Lock()
	uc.stems[strings.TrimSuffix(file, path.Ext(file))] = init
	for _, s := range segments {
		if len(uc.exact) >= maxExactSegments {
			clear(uc.exact) // the newest playlist lists what matters
		}
		uc.exact[s] = init
	}
	rend := uc.renditions[init]
	uc.mu.Unlock()
	rl.drainPending(uc)
	if ended && rend != nil {
		log.Info("playlist ended: the rendition ends", "init", init)
		rend.endSoon()
	}
	return nil
}

var mapURI = regexp.MustCompile(`URI="([^"]+)"`)

// mpdDoc is what the relay reads of an encoder's MPD.
type mpdDoc struct {
	Type    string `xml:"type,attr"`
	Periods []struct {
		Sets []struct {
			Template *mpdTemplate `xml:"SegmentTemplate"`
			Reps     []struct {
				ID       string       `xml:"id,attr"`
				Template *mpdTemplate `xml:"SegmentTemplate"`
			} `xml:"Representation"`
		} `xml:"AdaptationSet"`
	} `xml:"Period"`
}

type mpdTemplate struct {
	Init  string `xml:"initialization,attr"`
	Media string `xml:"media,attr"`
}

// uploadMPD learns from an MPD which init segment each media segment
// belongs to (SegmentTemplate, per Representation); a static MPD ends the
// channel's renditions.
func (rl *Relay) uploadMPD(uc *uploadChannel, b []byte, log *slog.Logger) error {
	var doc mpdDoc
	if err := xml.Unmarshal(b, &doc); err != nil {
		return &uploadError{http.StatusBadRequest, "MPD does not parse: " + err.Error()}
	}
	var rules []segmentRule
	for _, p := range doc.Periods {
		for _, as := range p.Sets {
			for _, rep := range as.Reps {
				tpl := rep.Template
				if tpl == nil {
					tpl = as.Template
				}
				if tpl == nil || tpl.Init == "" || tpl.Media == "" || len(rules) >= maxUploadRules {
					continue
				}
				rules = append(rules, segmentRule{media: templateRegexp(tpl.Media, rep.ID), init: templateRegexp(tpl.Init, rep.ID)})
			}
		}
	}
	uc.mu.Lock()
	uc.rules = rules
	var all []*rendition
	for _, r := range uc.renditions {
		all = append(all, r)
	}
	uc.mu.Unlock()
	rl.drainPending(uc)
	if doc.Type == "static" {
		log.Info("MPD is static: the channel's renditions end")
		for _, r := range all {
			r.endSoon()
		}
	}
	return nil
}

var templateVar = regexp.MustCompile(`\\\$(RepresentationID|Number|Time|Bandwidth|ext|SubNumber)(%0[0-9]+d)?\\\$`)

// templateRegexp matches the file names a SegmentTemplate attribute makes
// for Representation id.
func templateRegexp(tpl, id string) *regexp.Regexp {
	quoted := regexp.QuoteMeta(path.Base(tpl))
	expr := templateVar.ReplaceAllStringFunc(quoted, func(v string) string {
		switch {
		case strings.HasPrefix(v, `\$RepresentationID`):
			return regexp.QuoteMeta(id)
		case strings.HasPrefix(v, `\$ext`):
			return `[A-Za-z0-9]+`
		}
		return `[0-9]+`
	})
	return regexp.MustCompile("^" + strings.ReplaceAll(expr, `\$\$`, `\$`) + "$")
}

// feedLocked feeds one segment; one that leaves a gap waits for the
// segments before it until deadline (zero: not at all). The caller holds
// r.mu.
func (r *rendition) feedLocked(b []byte, deadline time.Time) error {
	ended := func() error {
		return &uploadError{http.StatusConflict, fmt.Sprintf("the rendition of %s has ended (%v): send its init segment again", r.init, r.err)}
	}
	if r.ended() {
		return ended()
	}
	// No idle end while a segment waits or is stored: a store retrying
	// for as long as the idle time, or the linger after the encoder's
	// end, must not drop a healthy rendition. The last feed out starts
	// the idle time again.
	r.feeding++
	if r.idle != nil {
		r.idle.Stop()
	}
	defer func() {
		if r.feeding--; r.feeding == 0 && !r.ended() {
			r.armIdle()
		}
	}()
	start, end, timed := segmentSpan(b, r.trexs)
	if timed {
		r.awaitEarlier(start, end, deadline)
		if r.ended() {
			return ended()
		}
		resend, err := r.order(start)
		if err != nil {
			return err
		}
		if resend {
			r.log.Debug("segment resent: stored already", "start", start)
			return nil
		}
	}
	_, err := r.pw.Write(b)
	if err == nil {
		_, err = r.pw.Write(freeBox)
	}
	if err == nil && timed {
		if r.fed = append(r.fed, start); len(r.fed) > maxFed {
			r.fed = r.fed[1:]
		}
		// A segment of no known duration says nothing of where the next
		// one starts.
		r.next, r.hasNext = max(r.next, end), end > start
		close(r.progress)
		r.progress = make(chan struct{})
	}
	if err != nil {
		<-r.done
		if errors.Is(r.err, errReplaced) {
			return &uploadError{http.StatusConflict, "a newer upload of " + r.init + " replaced this rendition"}
		}
		if r.err != nil {
			return r.err
		}
		return &uploadError{http.StatusConflict, "the rendition of " + r.init + " has ended: send its init segment again"}
	}
	return nil
}

// wholeBoxes checks that b is a sequence of whole boxes in which every moof
// has its mdat right after it, and that a media segment has media: a file
// cut short must never reach a session, which would read the next file as
// its rest, nor a moof without its media, which it would wait on.
func wholeBoxes(b []byte, kind uploadKind) error {
	moofs, prev, prevAt := 0, "", uint64(0)
	for box, err := range mp4box.All(b) {
		if err != nil {
			return &uploadError{http.StatusBadRequest, fmt.Sprintf("the upload (%d bytes) is not whole boxes: %v", len(b), err)}
		}
		if binary.BigEndian.Uint32(box.Data) == 0 {
			// "To the end" means the end of the upload here, but a session
			// reads a rendition's uploads as one stream: it would read on
			// into the next file.
			return &uploadError{http.StatusBadRequest, fmt.Sprintf("the box at offset %d has size 0 (to the end): an upload must give every box its size", box.Pos)}
		}
		switch {
		case box.Type == "moof":
			moofs++
		case box.Type == "mdat" && prev != "moof":
			return &uploadError{http.StatusBadRequest, fmt.Sprintf("mdat at offset %d without a moof right before it", box.Pos)}
		}
		if prev == "moof" && box.Type != "mdat" {
			return &uploadError{http.StatusBadRequest, fmt.Sprintf("moof at offset %d not followed by its mdat", prevAt)}
		}
		prev, prevAt = box.Type, box.Pos
	}
	if prev == "moof" {
		return &uploadError{http.StatusBadRequest, fmt.Sprintf("moof at offset %d not followed by its mdat", prevAt)}
	}
	if kind == uploadMedia && moofs == 0 {
		return &uploadError{http.StatusBadRequest, "media segment without a moof"}
	}
	return nil
}

// endSoon ends the rendition's stream cleanly once endLinger passes with
// no segment.
func (r *rendition) endSoon() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ending, r.idleFor = true, endLinger
	if r.feeding == 0 {
		r.armIdle() // else the last feed out does
	}
}

// armIdle starts the idle time (again). The caller holds r.mu.
func (r *rendition) armIdle() {
	switch {
	case r.idleFor <= 0:
	case r.idle == nil:
		r.idle = time.AfterFunc(r.idleFor, r.expire)
	default:
		r.idle.Reset(r.idleFor)
	}
}

// expire ends a rendition with no segment for its idle time: cleanly if
// its end was announced, as a drop if not.
func (r *rendition) expire() {
	r.mu.Lock()
	ending, idle, feeding := r.ending, r.idleFor, r.feeding
	r.mu.Unlock()
	if feeding > 0 {
		return // fired as a feed began: the last feed out starts it again
	}
	if ending {
		r.finish()
		return
	}
	r.end(fmt.Errorf("%w: no segment for %v", errUploadIdle, idle))
}

// errUploadIdle ends a rendition whose encoder went silent.
var errUploadIdle = errors.New("upload idle")

// finish ends the rendition's stream cleanly (the encoder's manifest says
// it ended) and waits for its session.
func (r *rendition) finish() {
	r.mu.Lock()
	_ = r.pw.Close()
	r.mu.Unlock()
	<-r.done
}

// end drops the rendition (no end of stream) and waits for its session.
func (r *rendition) end(why error) {
	_ = r.pw.CloseWithError(why)
	<-r.done
}

func (r *rendition) ended() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// CloseUploads ends every upload session (as drops: the encoders may come
// back) and waits for their last writes. Call it when the relay stops,
// after its server has stopped taking requests.
func (rl *Relay) CloseUploads() {
	rl.mu.Lock()
	var all []*rendition
	for _, uc := range rl.uploads {
		uc.mu.Lock()
		for _, r := range uc.renditions {
			all = append(all, r)
		}
		uc.mu.Unlock()
	}
	rl.mu.Unlock()
	// Every pipe at once, then the waits: each session writes its end
	// markers, which may take their own retries.
	for _, r := range all {
		_ = r.pw.CloseWithError(errShuttingDown)
	}
	for _, r := range all {
		<-r.done
	}
}

package upload

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"
)

// channel is one channel's uploads. Everything below inbox is owned by
// the goroutine that runs run; coming is Uploads.mu's.
type channel struct {
	u     *Uploads
	name  string
	log   *slog.Logger
	inbox chan message
	done  chan struct{} // closed when run returns

	coming int // requests acquired but not yet received (Uploads.mu)

	renditions map[string]*rendition // the current one of each init file
	gone       map[string]error      // init files whose rendition ended, and why
	ending     int                   // renditions told to end whose workers have not finished
	hints      hints
	held       []*segment // media segments no rule places yet, in arrival order
	heldBytes  int
	holdTimer  *time.Timer
	restore    restoreState
	record     recordState
	closing    []chan struct{} // Close in progress: closed once every rendition has ended
	seq        int             // renditions started
	// forget retires the channel once it has had nothing in flight for
	// Config.Forget: its hints and restore outlive a quiet moment
	// between an encoder's uploads, not the encoder.
	forget    *time.Timer
	forgetGen uint64
	// TS renditions (ts.go): the bitrates each one's first segment fixed,
	// and the ones that ended, by playlist.
	tsRates map[string][]tsRate
	tsEnded map[string]*rendition
	marks   markState // ad markers (markers.go)
}

// message is what the channel goroutine takes: *put, *closeAll, and the
// reports of its own workers, timers and I/O goroutines.
type message any

// put is one uploaded file and where its answer goes.
type put struct {
	file    File
	kind    kind
	reply   chan putResult // buffered: answering never blocks
	release func()         // gives the body's memory back; nil once given
}

type putResult struct {
	result Result
	err    error
}

// answer answers the upload and gives its body's memory back: the put is
// done with (a held segment's body is kept: segment.held).
func (p *put) answer(r Result, err error) {
	p.free() // before the reply: the caller may read p once answered
	p.reply <- putResult{r, err}
}

// free gives the body's memory back, once.
func (p *put) free() {
	if p.release != nil {
		p.release()
		p.release = nil
	}
}

// closeAll ends every rendition (Uploads.Close).
type closeAll struct{ done chan struct{} }

// maxGone bounds the ended renditions a channel remembers.
const maxGone = 64

// errEndedCleanly is why a rendition whose stream the encoder ended is
// gone.
var errEndedCleanly = errors.New("the encoder's manifest said its stream ended")

// holdExpired says held segments may have waited long enough.
type holdExpired struct{}

// forgetNow says the channel has been quiet for Config.Forget.
type forgetNow struct{ gen uint64 }

func newChannel(u *Uploads, name string) *channel {
	return &channel{u: u, name: name, log: u.cfg.Log.With("channel", name), inbox: make(chan message),
		done: make(chan struct{}), renditions: map[string]*rendition{}}
}

// post sends the channel goroutine a message from a goroutine of its own
// (a worker, a timer, an I/O goroutine), never from the channel goroutine
// itself. A timer stopped too late may post after the channel retired:
// its message goes nowhere.
func (c *channel) post(m message) {
	select {
	case c.inbox <- m:
	case <-c.done:
	}
}

// run is the channel goroutine: it takes messages until it has nothing
// left and no request is on its way in.
func (c *channel) run() {
	defer close(c.done)
	for {
		switch m := (<-c.inbox).(type) {
		case *put:
			c.u.arrived(c)
			if c.u.onTake != nil {
				c.u.onTake(m.file)
			}
			c.armForgetAgain()
			c.take(m)
			if c.untouched() && c.u.retire(c) {
				// A refused upload (an init segment over the stream
				// limits: 429) leaves nothing to keep: its channel goes
				// at once, not after Config.Forget, so that refusals
				// under new names cost nothing past their request.
				return
			}
		case *closeAll:
			c.u.arrived(c)
			c.closeAll(m)
		case *fed:
			c.fed(m)
		case *ended:
			c.ended(m)
		case *timerFired:
			c.timer(m)
		case holdExpired:
			c.expireHeld(time.Now())
		case *restored:
			c.restored(m)
		case *recorded:
			c.recorded(m)
		case *tsRates:
			c.rememberTS(m)
		case *vttInit:
			prefix := vttRecordPrefix
			if m.avTS {
				prefix = vttTSRecordPrefix
			}
			c.record.add(c, prefix+m.key, m.init, nil)
		case forgetNow:
			if m.gen == c.forgetGen && c.empty() && c.u.retire(c) {
				return
			}
		}
		c.armForget()
	}
}

// armForgetAgain makes an upload start the quiet time over.
func (c *channel) armForgetAgain() {
	if c.forget != nil {
		c.forget.Stop()
		c.forget = nil
	}
}

// armForget starts the channel's quiet time when it has nothing in
// flight, and stops it when it has.
func (c *channel) armForget() {
	empty := c.empty()
	if empty && c.forget != nil {
		return
	}
	c.forgetGen++
	if c.forget != nil {
		c.forget.Stop()
		c.forget = nil
	}
	if empty {
		gen := c.forgetGen
		c.forget = time.AfterFunc(c.u.cfg.Forget, func() { c.post(forgetNow{gen}) })
	}
}

// empty reports whether the channel holds nothing: no rendition (working
// or ending), no segment held, no restore or record write in progress.
func (c *channel) empty() bool {
	return len(c.renditions) == 0 && c.ending == 0 && len(c.held) == 0 &&
		!c.restore.running && !c.record.writing() && len(c.closing) == 0
}

// untouched reports whether the channel has nothing and never had: no
// rendition ever started, no hint learned, nothing ended, held,
// restoring or recording.
func (c *channel) untouched() bool {
	return c.seq == 0 && c.empty() && len(c.gone) == 0 && c.hints.empty() && len(c.restore.parked) == 0
}

// take handles an uploaded file.
func (c *channel) take(p *put) {
	if len(c.closing) > 0 {
		p.answer(0, fmt.Errorf("channel %s: %s: %w", c.name, p.file.Name, ErrClosed))
		return
	}
	if p.kind == initSegment {
		// An encoder starting: nothing to restore.
		c.restore.notNeeded()
		_ = c.startRendition(p.file.Name, p.file.Body, p.file.Remote, p)
		return
	}
	if c.restore.park(p, c) {
		return
	}
	switch p.kind {
	case mediaSegment, tsSegment, vttSegment:
		c.media(p)
	case playlist, mpd:
		learn := c.hints.learnMPD
		if p.kind == playlist {
			learn = func(b []byte) (learned, error) { return c.hints.learnPlaylist(p.file.Name, b) }
		}
		l, err := learn(p.file.Body)
		if err != nil {
			p.answer(0, fmt.Errorf("channel %s: %s: %w", c.name, p.file.Name, err))
			return
		}
		c.learnt(l)
		p.answer(Done, nil)
	}
}

// media places a media segment in its rendition, or holds it until an
// init segment or a manifest places it.
func (c *channel) media(p *put) {
	c.record.touch(c)
	s := &segment{file: p.file.Name, body: p.file.Body, received: p.file.Received, put: p, ts: p.kind == tsSegment, vtt: p.kind == vttSegment, remote: p.file.Remote}
	if !c.placed(s) && c.hold(s) {
		s.held()
	}
}

// placed offers s to its rendition, or refuses it when its rendition has
// ended; false when nothing places it yet.
func (c *channel) placed(s *segment) bool {
	if s.ts || s.vtt {
		return c.placedOwn(s)
	}
	init := c.place(s.file)
	if r := c.renditions[init]; r != nil {
		c.offer(r, s)
		return true
	}
	if why, ok := c.gone[init]; ok {
		err := fmt.Errorf("channel %s: segment %s: the rendition of %s has ended (%v): send its init segment again: %w", c.name, s.file, init, why, ErrConflict)
		if s.put == nil {
			c.log.Warn("held segment dropped", "err", err)
		}
		s.answer(err)
		return true
	}
	return false
}

// hold keeps s until an init segment or a manifest places it, a few
// segments and Config.Hold at most (past the bounds, s is refused as
// busy); it reports whether s is held.
func (c *channel) hold(s *segment) bool {
	if len(c.held) >= c.u.cfg.MaxHeld || c.heldBytes+len(s.body) > max(c.u.cfg.MaxHeldBytes, len(s.body)) {
		s.answer(fmt.Errorf("channel %s: segment %s belongs to no init segment the relay has (after a relay restart, send the init segments again); %d segments (%d bytes) already wait: %w",
			c.name, s.file, len(c.held), c.heldBytes, ErrBusy))
		return false
	}
	c.held = append(c.held, s)
	c.heldBytes += len(s.body)
	if c.holdTimer == nil {
		c.holdTimer = time.AfterFunc(c.u.cfg.Hold, func() { c.post(holdExpired{}) })
	}
	c.log.Debug("segment waits for its init segment or manifest", "file", s.file)
	return true
}

// place names the rendition a media segment belongs to, current or gone
// ("" if none can be told yet): the one the encoder's manifests or the
// names place it with, else the only rendition there is when nothing
// else could claim the segment (unclaimed).
func (c *channel) place(file string) string {
	inits := func(yield func(string) bool) {
		for name, r := range c.renditions {
			if !r.ts && !r.vtt && !yield(name) {
				return
			}
		}
		for name := range c.gone {
			if c.renditions[name] == nil && !c.hints.ts[name] && c.hints.vtt[name] == nil && !yield(name) {
				return
			}
		}
	}
	if init := c.hints.named(file, inits); init != "" {
		return init
	}
	if init := c.hints.only(inits); init != "" && unclaimed(file, init) {
		return init
	}
	return ""
}

// unclaimed reports whether no rendition but init, the channel's only one
// while no manifest said anything, could claim a segment named file: an
// init segment that names no rendition (ffmpeg's hls muxer with one
// variant: init.mp4) is its encoder's only one, and a segment named as
// the init segment but for a number (video-0.mp4, video-1.m4s) is of its
// rendition. An init segment that names its rendition (ffmpeg's hls
// muxer with -var_stream_map: init_0.mp4, its segments stream_0N.m4s; its
// dash muxer: init-stream0.m4s) is one of several whose init segments and
// manifests may come after their first segments, on other connections:
// a segment of another name waits for them (held, 202), as any segment
// no rule places does. Neither the segment's tracks nor its times could
// tell: every rendition's one track is track 1, and two renditions of
// one kind start together.
func unclaimed(file, init string) bool {
	key := fileKey(file, true)
	return fileKey(init, false) == "" || key != "" && fileKey(init, true) == key
}

// learnt acts on what a playlist or MPD said: segments held may now be
// placed, and renditions whose stream ended end once they are quiet.
func (c *channel) learnt(l learned) {
	c.learnMarks(l)
	c.placeHeld()
	if l.all {
		c.log.Info("MPD is static: the channel's renditions end")
		for _, r := range c.renditions {
			c.endSoon(r)
		}
	}
	for _, init := range l.ended {
		if r := c.renditions[init]; r != nil {
			c.log.Info("playlist ended: the rendition ends", "init", init)
			c.endSoon(r)
		}
	}
}

// placeHeld offers every held segment that can now be placed to its
// rendition, in media time per rendition (held segments are often the
// ones that arrived out of order).
func (c *channel) placeHeld() {
	byRendition := map[*rendition][]*segment{}
	kept := c.held[:0]
	for _, s := range c.held {
		var r *rendition
		if s.ts || s.vtt {
			var err error
			if r, err = c.ownRendition(s); err != nil {
				c.log.Warn("held segment dropped", "err", err)
				s.answer(err)
				c.heldBytes -= len(s.body)
				continue
			}
		} else if r = c.renditions[c.place(s.file)]; r != nil && (r.ts || r.vtt) {
			r = nil
		}
		switch {
		case (s.ts || s.vtt) && r == nil:
			kept = append(kept, s)
			continue
		case r != nil && r == s.notFor:
			kept = append(kept, s) // waits for the init segment that replaces r
			continue
		case r != nil:
			byRendition[r] = append(byRendition[r], s)
		case !c.placed(s): // refused: its rendition ended
			kept = append(kept, s)
			continue
		}
		c.heldBytes -= len(s.body)
	}
	clear(c.held[len(kept):])
	c.held = kept
	if len(c.held) == 0 && c.holdTimer != nil {
		c.holdTimer.Stop()
		c.holdTimer = nil
	}
	for _, r := range slices.SortedFunc(maps.Keys(byRendition), func(a, b *rendition) int { return a.seq - b.seq }) {
		for _, s := range r.inMediaTime(byRendition[r]) {
			c.offer(r, s)
		}
	}
}

// expireHeld drops the held segments that waited Config.Hold for their
// init segment or manifest.
func (c *channel) expireHeld(now time.Time) {
	c.holdTimer = nil
	kept := c.held[:0]
	for _, s := range c.held {
		if now.Sub(s.received) >= c.u.cfg.Hold {
			if s.stored {
				c.log.Info("no init segment followed: the segment was a resend, stored already", "file", s.file, "start", s.start)
			} else {
				c.log.Warn("held segment dropped: no init segment or manifest placed it", "file", s.file, "waited", now.Sub(s.received).Round(time.Millisecond))
			}
			c.heldBytes -= len(s.body)
			s.free()
			continue
		}
		kept = append(kept, s)
	}
	clear(c.held[len(kept):])
	c.held = kept
	if len(c.held) > 0 {
		next := c.u.cfg.Hold - now.Sub(c.held[0].received)
		c.holdTimer = time.AfterFunc(next, func() { c.post(holdExpired{}) })
	}
}

// startRendition starts the rendition of an init segment (one of the same
// name ends, as a drop: its queued segments are stored first, those
// waiting for a gap go to the new one) and answers p, if any, once the
// init segment is taken and recorded. An error says why it could not
// start (p has it as its answer).
func (c *channel) startRendition(file string, body []byte, remote string, p *put) error {
	sess, err := c.u.sessions.Open(c.name, file, remote)
	if err != nil {
		if p != nil {
			p.answer(0, err)
		}
		return err
	}
	if cc := c.hints.captionsOf(file); cc != "" {
		if with, err := withCaptions(body, cc); err != nil {
			c.log.Warn("captions not declared in the init segment", "init", file, "err", err)
		} else {
			body = with
		}
	}
	r := newRendition(c, file, body, sess)
	old := c.renditions[file]
	c.renditions[file] = r
	delete(c.gone, file)
	r.dispatch(&segment{file: file, body: body, received: time.Now(), put: p, init: true})
	if old != nil {
		waiting := old.waiting
		old.waiting = nil
		c.end(old, false, ErrReplaced)
		for _, s := range waiting {
			s.deadline = time.Time{}
			c.offer(r, s)
		}
	}
	c.placeHeld()
	return nil
}

// endSoon ends r once it has been quiet for Config.Linger (the encoder's
// manifest said its stream ended).
func (c *channel) endSoon(r *rendition) {
	r.ending = true
	r.armTimer()
}

// end tells r's worker to end the session after what is queued, cleanly
// or as a drop (why), and forgets r as its init file's rendition.
func (c *channel) end(r *rendition, clean bool, why error) {
	if r.closed {
		return
	}
	r.closed = true
	r.stopTimer()
	for _, s := range r.waiting {
		s.answer(fmt.Errorf("channel %s: segment %s not stored: the rendition of %s ended (%v): %w", c.name, s.file, r.init, why, ErrConflict))
	}
	r.waiting = nil
	if c.renditions[r.init] == r {
		delete(c.renditions, r.init)
		if len(c.gone) >= maxGone {
			clear(c.gone) // an encoder with that many names: forget the oldest (all)
		}
		if c.gone == nil {
			c.gone = map[string]error{}
		}
		c.gone[r.init] = cmpOr(why, errEndedCleanly)
		if r.ts {
			if c.tsEnded == nil || len(c.tsEnded) >= maxGone {
				c.tsEnded = map[string]*rendition{}
			}
			c.tsEnded[r.init] = r
		}
	}
	c.ending++
	r.jobs <- job{end: true, clean: clean, why: why}
}

// ended: a rendition's worker has closed its session.
func (c *channel) ended(m *ended) {
	c.ending--
	if len(c.closing) > 0 && len(c.renditions) == 0 && c.ending == 0 {
		for _, done := range c.closing {
			close(done)
		}
		c.closing = nil
	}
}

// closeAll ends every rendition as a drop and answers what waits.
func (c *channel) closeAll(m *closeAll) {
	for _, s := range c.held {
		c.log.Warn("held segment dropped: the relay is shutting down", "file", s.file)
		s.free()
	}
	c.held, c.heldBytes = nil, 0
	if c.holdTimer != nil {
		c.holdTimer.Stop()
		c.holdTimer = nil
	}
	c.restore.closeParked(c)
	for _, r := range c.renditions {
		c.end(r, false, ErrClosed)
	}
	if c.ending == 0 {
		close(m.done)
		return
	}
	c.closing = append(c.closing, m.done)
}

package upload

import (
	"cmp"
	"fmt"
	"hash/crc32"
	"slices"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

// rendition is one init segment's session and the order of its segments.
// The channel goroutine owns every field but sess, which is the worker's
// (work), and jobs, which carries the channel's orders to the worker in
// the order they were given.
type rendition struct {
	c     *channel
	init  string
	seq   int            // a channel's renditions in the order they started
	trexs []*mp4.TrexBox // the tracks' defaults, for segment durations
	ref   uint32         // the track whose times order its segments
	sess  Session
	jobs  chan job

	// timescale is ref's: the ad markers' times are in it (markers.go).
	timescale uint32

	// Segments handed to the worker: starts of the latest (to tell a
	// resend), the newest's start, and where the newest ends (once one
	// was timed): a segment starting later leaves a gap, and waits.
	dispatched []uint64
	sums       []uint32 // the CRC-32 of each of them: a resend is the same segment
	first      uint64   // the earliest start handed on
	newest     uint64
	next       uint64
	hasNext    bool
	inflight   int        // handed to the worker, not yet reported fed
	waiting    []*segment // segments that would leave a gap, by start
	ending     bool       // the encoder's manifest said its stream ended
	closed     bool       // told to end
	timer      *time.Timer
	timerGen   uint64 // ignores a timer that fired after it was stopped

	// A TS rendition (ts.go): tsw is its worker's; the rest the channel
	// goroutine's: the unwrapped time of its latest segment, its first
	// segment's start, and the rendition of its key that ended before it.
	ts         bool
	tsw        *tsWorker
	tsRef      int64
	tsHasRef   bool
	tsFirst    uint64
	tsHasFirst bool
	tsPrev     *rendition

	// A WebVTT rendition (vtt.go): vttw is its worker's; vttc its
	// timing, the channel goroutine's.
	vtt  bool
	vttw *vttWorker
	vttc vttClock
}

// segment is an uploaded file on its way to a rendition.
type segment struct {
	file     string
	body     []byte
	received time.Time
	put      *put   // who waits for the answer; nil for a held segment
	dups     []*put // resends of it that came while it waited
	release  func() // gives a held segment's body's memory back
	init     bool   // the rendition's init segment
	ts       bool   // an MPEG-TS segment
	vtt      bool   // a WebVTT segment
	// vttShift is what a WebVTT segment's cue times add up to become
	// media times (its X-TIMESTAMP-MAP, or the default one).
	vttShift time.Duration
	remote   string // who uploaded it (a TS segment starts its rendition)
	// The rendition's order before it was handed on (forgetRefused).
	was struct {
		newest, next uint64
		hasNext      bool
	}
	resend   bool       // a segment already handed to the worker: nothing to store
	spanOf   *rendition // whose track defaults start, end and timed were read with
	start    uint64
	end      uint64
	timed    bool
	deadline time.Time  // of its reorder wait
	notFor   *rendition // held for the rendition that replaces this one (awaitInit)
	stored   bool       // the same bytes as the segment notFor stored at its start
	marks    []byte     // emsg boxes of the ad markers fed before it (markers.go)
}

// held answers the request of a segment that is held: 202, stored later
// (its body, and the memory it holds, stay until then).
func (s *segment) held() {
	if s.put != nil {
		s.release, s.put.release = s.put.release, nil
		s.put.answer(Held, nil)
		s.put = nil
	}
}

// answer is the segment's end: it answers whoever waits (it, and its
// resends), and gives its body's memory back.
func (s *segment) answer(err error) {
	if s.put != nil {
		s.put.answer(Done, err)
		s.put = nil
	}
	for _, p := range s.dups {
		p.answer(Done, err)
	}
	s.dups = nil
	s.free()
}

// free gives a held segment's body's memory back (a segment dropped with
// nobody to answer).
func (s *segment) free() {
	if s.release != nil {
		s.release()
		s.release = nil
	}
}

// job is one order to a rendition's worker.
type job struct {
	seg   *segment
	end   bool // close the session (clean, or as a drop: why)
	clean bool
	why   error
}

// fed reports a segment the worker has fed (err: why it was not stored).
type fed struct {
	r   *rendition
	seg *segment
	err error
}

// ended reports a rendition whose worker has closed its session.
type ended struct{ r *rendition }

// timerFired is a rendition's timer: its idle (or linger) time, or its
// earliest reorder wait, is over.
type timerFired struct {
	r   *rendition
	gen uint64
}

const (
	// maxDispatched bounds the starts a rendition remembers to tell a
	// resend from a segment out of order.
	maxDispatched = 8
	// maxInflight bounds the segments of one rendition queued for its
	// worker; the jobs channel holds as many and the end order, so that
	// the channel goroutine never blocks on it.
	maxInflight = 64
)

func newRendition(c *channel, file string, init []byte, sess Session) *rendition {
	c.seq++
	r := &rendition{c: c, init: file, seq: c.seq, sess: sess, jobs: make(chan job, maxInflight+1)}
	r.trexs, r.ref = trackDefaults(init)
	r.timescale = refTimescale(init, r.ref)
	go r.work(c.u)
	return r
}

// work is the rendition's worker: it feeds the session what it is handed,
// in order, and reports each to the channel goroutine; at the end order
// it closes the session.
func (r *rendition) work(u *Uploads) {
	results := map[uint64]error{} // the latest segments' outcomes, for resends
	var order []uint64
	for j := range r.jobs {
		if j.end {
			r.sess.Close(j.clean, j.why)
			r.c.post(&ended{r})
			return
		}
		s := j.seg
		var err error
		switch {
		case s.resend:
			err = results[s.start]
		case r.tsw != nil:
			err = r.tsw.feed(u.ctx, r.sess, s, s.put == nil)
		default:
			if r.vttw != nil {
				err = r.vttw.feed(u.ctx, r.sess, s)
			} else {
				err = r.sess.Feed(u.ctx, Segment{File: s.file, Body: s.withMarks(), Received: s.received, Held: s.put == nil && !s.init})
			}
			if s.timed {
				if results[s.start] = err; len(order) == maxDispatched {
					delete(results, order[0])
					order = order[1:]
				}
				order = append(order, s.start)
			}
		}
		r.c.post(&fed{r, s, err})
	}
}

// inMediaTime sorts segments by where they start (stably: an untimed one
// keeps its place relative to those starting at zero), timing each.
func (r *rendition) inMediaTime(segs []*segment) []*segment {
	for _, s := range segs {
		r.time(s)
	}
	slices.SortStableFunc(segs, func(a, b *segment) int { return cmp.Compare(a.start, b.start) })
	return segs
}

// time reads where s starts and ends, once per rendition.
func (r *rendition) time(s *segment) {
	if s.spanOf != r {
		switch {
		case r.ts:
			r.tsTime(s)
		case r.vtt:
			r.vttTime(s)
		default:
			s.start, s.end, s.timed = span(s.body, r.trexs, r.ref)
		}
		s.spanOf = r
	}
}

// offer places a media segment in r's order: a resend of a segment handed
// on already is answered with that one's outcome, one that starts where
// r's first did or where one handed on did but is another segment (or is
// r's first again after later ones) waits for the init segment of an
// encoder that started again (awaitInit), one
// older than the newest is refused (out of order), one that would leave a
// gap waits up to Config.ReorderWait for the ones before it, and the rest
// go to the worker.
func (c *channel) offer(r *rendition, s *segment) {
	if r.closed {
		s.answer(fmt.Errorf("channel %s: segment %s: the rendition of %s has ended: send its init segment again: %w", c.name, s.file, r.init, ErrConflict))
		return
	}
	r.time(s)
	if r.ts && c.restartTS(r, s) {
		return
	}
	if s.timed {
		for _, w := range r.waiting {
			if w.start == s.start {
				c.log.Debug("segment resent while it waits", "file", s.file, "start", s.start)
				if s.put != nil {
					s.put.free() // its body: the one that waits is stored
					w.dups = append(w.dups, s.put)
				}
				s.free()
				return
			}
		}
	}
	if s.timed && len(r.dispatched) > 0 {
		i := slices.Index(r.dispatched, s.start)
		same := i >= 0 && r.sums[i] == crc32.ChecksumIEEE(s.body)
		switch {
		case same && !r.ts && !r.vtt && s.start == r.first && r.newest > s.start:
			// The rendition's first segment again, byte for byte, after
			// later ones: an encoder that started again with the same
			// output (a file looped, a test pattern), whose init segment
			// may still be on its way. Taken as a resend, it would make
			// the restart's next segments look like a reconnect's.
			s.stored = true
			c.awaitInit(r, s)
			return
		case same:
			c.log.Debug("segment resent: stored already", "file", s.file, "start", s.start)
			s.resend = true
			r.dispatch(s)
			return
		case !r.ts && !r.vtt && (i >= 0 || s.start == r.first): // a TS rendition's: restartTS
			c.awaitInit(r, s)
			return
		case s.start < r.newest:
			s.answer(fmt.Errorf("channel %s: segment %s out of order: it starts at %d, before the newest segment of %s (%d); upload each rendition's segments in order: %w",
				c.name, s.file, s.start, r.init, r.newest, ErrConflict))
			return
		}
	}
	// A hole under 1 % of the segment is an encoder's rounding.
	if s.timed && r.hasNext && s.start > r.next+(s.end-s.start)/100 && c.u.cfg.ReorderWait > 0 {
		if len(r.waiting) >= maxInflight {
			s.answer(fmt.Errorf("channel %s: segment %s: %d segments of %s already wait for the ones before them: %w", c.name, s.file, len(r.waiting), r.init, ErrBusy))
			return
		}
		if s.deadline.IsZero() {
			s.deadline = time.Now().Add(c.u.cfg.ReorderWait)
			c.log.Debug("segment leaves a gap: waiting for the ones before it", "file", s.file, "start", s.start, "stored_to", r.next, "wait", c.u.cfg.ReorderWait)
		}
		i, _ := slices.BinarySearchFunc(r.waiting, s, func(a, b *segment) int { return cmp.Compare(a.start, b.start) })
		r.waiting = slices.Insert(r.waiting, i, s)
		r.armTimer()
		return
	}
	r.dispatch(s)
	r.release(time.Time{})
}

// awaitInit holds s, a segment r has no place for because it starts again
// where r's first segment or a segment r stored started: an encoder that
// started again under the same file names (ffmpeg restarted: its init
// segment, sent first on another connection, may be taken after its
// first segment). It waits, as a segment no rule places does (Held, for
// Config.Hold at most), for the init segment that replaces r; stored in
// r it would be lost as a resend, or refused as out of order.
func (c *channel) awaitInit(r *rendition, s *segment) {
	c.log.Info("segment starts again where its rendition did: it waits for the encoder's init segment", "file", s.file, "start", s.start, "init", r.init)
	s.notFor = r
	if c.hold(s) {
		s.held()
	}
}

// release hands on the waiting segments that no longer leave a gap, and
// those whose wait ended by now (with every waiting one before them).
func (r *rendition) release(now time.Time) {
	cut := 0
	for i, s := range r.waiting {
		if !now.IsZero() && !now.Before(s.deadline) {
			cut = i + 1
		}
	}
	for len(r.waiting) > 0 {
		s := r.waiting[0]
		gap := r.hasNext && s.start > r.next+(s.end-s.start)/100
		if gap && cut == 0 {
			break
		}
		r.waiting = r.waiting[1:]
		cut = max(cut-1, 0)
		if gap {
			r.c.log.Debug("reorder wait over: segment stored after a gap", "file", s.file, "start", s.start, "stored_to", r.next)
		}
		r.dispatch(s)
	}
	r.armTimer()
}

// dispatch hands s to the worker.
func (r *rendition) dispatch(s *segment) {
	if r.inflight >= maxInflight {
		err := fmt.Errorf("channel %s: segment %s: %d segments of %s are being stored: %w", r.c.name, s.file, r.inflight, r.init, ErrBusy)
		if s.put == nil {
			r.c.log.Warn("held segment dropped", "err", err)
		}
		s.answer(err)
		return
	}
	if s.timed && !s.resend {
		s.was.newest, s.was.next, s.was.hasNext = r.newest, r.next, r.hasNext
		if len(r.dispatched) == 0 || s.start < r.first {
			r.first = s.start
		}
		r.dispatched = append(r.dispatched, s.start)
		r.sums = append(r.sums, crc32.ChecksumIEEE(s.body))
		if len(r.dispatched) > maxDispatched {
			r.dispatched, r.sums = r.dispatched[1:], r.sums[1:]
		}
		r.newest = max(r.newest, s.start)
		// A segment of no known duration says nothing of where the next
		// one starts.
		r.next, r.hasNext = max(r.next, s.end), s.end > s.start
	}
	if !s.resend {
		r.c.markDispatch(r, s)
	}
	r.inflight++
	r.stopTimer()
	r.jobs <- job{seg: s}
}

// fed: the worker has fed a segment.
func (c *channel) fed(m *fed) {
	r, s := m.r, m.seg
	r.inflight--
	if s.init && m.err != nil && !r.closed {
		// An init segment the session refuses: the rendition cannot be.
		c.end(r, false, m.err)
	}
	if s.init && m.err == nil && s.put != nil {
		c.record.add(c, r.init, s.body, s.put)
		s.put = nil
	}
	if r.ts && m.err != nil {
		r.forgetRefused(s)
	}
	s.answer(m.err)
	if !r.closed {
		r.armTimer()
	}
}

// armTimer sets r's one timer: its earliest reorder wait if a segment
// waits, else, when nothing is being stored, its idle time (or linger).
func (r *rendition) armTimer() {
	r.stopTimer()
	var d time.Duration
	switch {
	case r.closed:
		return
	case len(r.waiting) > 0:
		d = time.Until(slices.MinFunc(r.waiting, func(a, b *segment) int { return a.deadline.Compare(b.deadline) }).deadline)
	case r.inflight > 0:
		return // the last report in arms it
	case r.ending:
		d = r.c.u.cfg.Linger
	case r.c.u.cfg.Idle > 0:
		d = r.c.u.cfg.Idle
	default:
		return
	}
	gen := r.timerGen
	r.timer = time.AfterFunc(max(d, 0), func() { r.c.post(&timerFired{r, gen}) })
}

func (r *rendition) stopTimer() {
	r.timerGen++
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
}

// timer: a rendition's timer fired.
func (c *channel) timer(m *timerFired) {
	r := m.r
	if m.gen != r.timerGen || r.closed {
		return // stopped or re-armed since
	}
	r.timer = nil
	switch {
	case len(r.waiting) > 0:
		r.release(time.Now())
	case r.inflight > 0:
	case r.ending:
		c.end(r, true, nil)
	default:
		c.end(r, false, fmt.Errorf("%w: no segment for %v", ErrIdle, c.u.cfg.Idle))
	}
}

package upload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
)

// An uploading encoder sends its init segments once, when it starts
// (ffmpeg's dash and hls muxers), and the relay keeps its renditions in
// memory. So that a relay started again (a deploy, a crash) takes the
// encoder's next segments instead of holding and refusing them until the
// encoder is restarted, the relay records every init segment it takes in
// the store (layout.UploadsStateKey), and restores the renditions of a
// channel whose first upload (since the relay started, or since the
// channel's state was freed) is not an init segment, if the channel is
// still live (Config.Live). Only the init segments of the encoder's newest
// start are restored (those recorded within sessionSpread of the newest
// one); an encoder that starts (again) uploads its init segments, which
// replace anything restored.

// uploadRecord is the stored record of a channel's uploads.
type uploadRecord struct {
	Inits map[string]recordedInit `json:"inits"` // by file name
}

type recordedInit struct {
	Body []byte    `json:"body"`
	At   time.Time `json:"at"` // when it was uploaded
}

const (
	// maxRecordedInits bounds a channel's record: the newest are kept.
	maxRecordedInits = 16
	// maxRecordedInit is the largest init segment recorded: real ones
	// are a few kilobytes (a moov of one track); a larger one is used
	// but not recorded.
	maxRecordedInit = 256 << 10
	// sessionSpread is how far apart the init segments of one encoder
	// start may be recorded; older ones are another start's.
	sessionSpread = 5 * time.Minute
	// restoreTimeout bounds a restore: the channel's first uploads wait
	// for it.
	restoreTimeout = 5 * time.Second
	// restoreRetry is how long a restore that could not read the store
	// waits before the next upload tries again.
	restoreRetry = 30 * time.Second
	// recordTimeout bounds one write of the record.
	recordTimeout = 30 * time.Second
)

// recordState is the channel goroutine's: init segments to record, the
// one write in flight, and when the record was last written (as far as
// this relay knows): the record expires with the channel's state
// (layout.StateExpireTag) unless it is written again, so an encoder that
// keeps uploading has it written again every layout.StateRefresh.
type recordState struct {
	queue    []*recordJob
	inFlight []*recordJob // nil when no write is in flight
	touching bool         // a write with nothing new in flight
	written  time.Time
}

// recordJob is an init segment to record, and the put that waits for it.
type recordJob struct {
	file string
	body []byte
	put  *put
}

// recorded reports a write of the record (touch: one with nothing new).
type recorded struct {
	jobs  []*recordJob
	touch bool
	err   error
}

func (s *recordState) writing() bool { return s.inFlight != nil || len(s.queue) > 0 || s.touching }

// touch writes the record again, as it is, if it is older than
// layout.StateRefresh: an encoder uploads its init segments only when it
// starts, and the record must outlive a channel that goes on for longer
// than the state's lifetime.
func (s *recordState) touch(c *channel) {
	if s.written.IsZero() || c.u.now().Sub(s.written) < layout.StateRefresh || s.writing() {
		return
	}
	s.touching = true
	go func() {
		ctx, cancel := context.WithTimeout(c.u.ctx, recordTimeout)
		defer cancel()
		c.post(&recorded{touch: true, err: writeRecord(ctx, c.u.store, c.name, nil, time.Now().UTC())})
	}()
}

// add records an init segment and answers p once it is (a record that
// cannot be written is logged: the upload goes on, only a relay started
// again would miss the rendition). Init segments that come while a write
// is in flight go together in the next one. p is nil for what no request
// waits for (a TS rendition's packaged init segment, ts.go).
func (s *recordState) add(c *channel, file string, body []byte, p *put) {
	if len(body) > maxRecordedInit {
		c.log.Warn("init segment not recorded: a relay started again will not restore its rendition", "init", file, "bytes", len(body), "limit", maxRecordedInit)
		if p != nil {
			p.answer(Done, nil)
		}
		return
	}
	s.queue = append(s.queue, &recordJob{file: file, body: body, put: p})
	s.next(c)
}

// next starts the next write, unless one is in flight.
func (s *recordState) next(c *channel) {
	if s.inFlight != nil || s.touching || len(s.queue) == 0 {
		return
	}
	s.inFlight, s.queue = s.queue, nil
	jobs := s.inFlight
	go func() {
		ctx, cancel := context.WithTimeout(c.u.ctx, recordTimeout)
		defer cancel()
		c.post(&recorded{jobs: jobs, err: writeRecord(ctx, c.u.store, c.name, jobs, time.Now().UTC())})
	}()
}

// recorded: a write of the record is done.
func (c *channel) recorded(m *recorded) {
	switch {
	case m.err != nil && m.touch:
		c.log.Warn("uploads record not written again: it may expire while the channel is live", "err", m.err)
	case m.err != nil:
		c.log.Warn("init segments not recorded: a relay started again will not restore their renditions", "err", m.err)
	default:
		c.record.written = c.u.now()
	}
	for _, j := range m.jobs {
		if j.put != nil {
			j.put.answer(Done, nil)
		}
	}
	if m.touch {
		c.record.touching = false
	} else {
		c.record.inFlight = nil
	}
	c.record.next(c)
}

// writeRecord adds init segments to the channel's record, replacing those
// of the same names, with a conditional write (another relay may write it
// too).
func writeRecord(ctx context.Context, st Store, channel string, jobs []*recordJob, now time.Time) error {
	key := layout.UploadsStateKey(channel)
	for attempt := 0; ; attempt++ {
		rec := uploadRecord{Inits: map[string]recordedInit{}}
		etag := ""
		o, err := st.Get(ctx, key)
		switch {
		case err == nil:
			if json.Unmarshal(o.Body, &rec) != nil || rec.Inits == nil {
				rec = uploadRecord{Inits: map[string]recordedInit{}} // unreadable: start it again
			}
			etag = o.ETag
		case !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("channel %s: read the uploads record: %w", channel, err)
		}
		for _, j := range jobs {
			rec.Inits[j.file] = recordedInit{Body: j.body, At: now}
		}
		var newest time.Time
		for _, in := range rec.Inits {
			if in.At.After(newest) {
				newest = in.At
			}
		}
		for name, in := range rec.Inits {
			if newest.Sub(in.At) > 24*time.Hour {
				delete(rec.Inits, name) // an earlier event's
			}
		}
		for len(rec.Inits) > maxRecordedInits {
			oldest := slices.MinFunc(slices.Collect(maps.Keys(rec.Inits)), func(a, b string) int { return rec.Inits[a].At.Compare(rec.Inits[b].At) })
			delete(rec.Inits, oldest)
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		opts := store.PutOptions{ContentType: "application/json", CacheControl: store.CacheNone, IfMatch: etag, IfNoneMatch: etag == "",
			Tagging: layout.LifetimeOf(key).Tagging()}
		_, err = st.Put(ctx, key, b, opts)
		if errors.Is(err, store.ErrPreconditionFailed) && attempt < 8 {
			continue // another relay recorded first: add to it
		}
		if err != nil {
			return fmt.Errorf("channel %s: write the uploads record: %w", channel, err)
		}
		return nil
	}
}

// restoreState is the channel goroutine's: whether the channel's
// renditions were restored (or need not be), a restore in flight and the
// uploads that wait for it, and when a failed one may be tried again.
type restoreState struct {
	done    bool
	running bool
	parked  []*put
	after   time.Time
}

// restored reports a restore: the init segments of the encoder's newest
// start, if the channel is live, and when the newest was recorded.
type restored struct {
	inits  map[string][]byte
	newest time.Time
	err    error
}

// notNeeded: an init segment came first (an encoder starting), so there
// is nothing to restore; a restore in flight still lands.
func (s *restoreState) notNeeded() {
	if !s.running {
		s.done = true
	}
}

// park holds p while the channel's renditions are restored: it starts the
// restore at the channel's first upload that is not an init segment.
// It reports whether p waits.
func (s *restoreState) park(p *put, c *channel) bool {
	switch {
	case s.done:
		return false
	case s.running:
	case time.Now().Before(s.after):
		return false
	default:
		s.running = true
		go func() {
			ctx, cancel := context.WithTimeout(c.u.ctx, restoreTimeout)
			defer cancel()
			inits, newest, err := readRestore(ctx, c.u.store, c.u.cfg.Live, c.name, c.log)
			c.post(&restored{inits, newest, err})
		}()
	}
	s.parked = append(s.parked, p)
	return true
}

// restored: the restore is done; the renditions it found start (unless
// an init segment of the same name came meanwhile) and what waited for it
// goes on.
func (c *channel) restored(m *restored) {
	s := &c.restore
	s.running = false
	if m.err != nil {
		c.log.Warn("uploads not restored: the store does not answer; the next upload tries again", "err", m.err, "after", restoreRetry)
		s.after = time.Now().Add(restoreRetry)
	} else if len(c.closing) == 0 {
		s.done = true
		if c.record.written.IsZero() {
			c.record.written = m.newest // about when the record was last written
		}
		n := 0
		for _, file := range slices.Sorted(maps.Keys(m.inits)) {
			if c.restoreTS(file, m.inits[file]) || c.restoreVTT(file, m.inits[file]) {
				continue
			}
			if c.renditions[file] != nil {
				continue // uploaded meanwhile
			}
			if err := c.startRendition(file, m.inits[file], "restored", nil); err != nil {
				c.log.Warn("upload rendition not restored", "init", file, "err", err)
				continue
			}
			n++
		}
		if len(m.inits) > 0 {
			c.log.Info("upload renditions restored from the store", "renditions", n, "recorded", len(m.inits))
		}
	}
	// What waited goes on (after a failure, without a restore until
	// s.after): the manifests first, in the order they came, then the
	// media segments in media time per rendition (through the held
	// ones), not in the order they came.
	parked := s.parked
	s.parked = nil
	var media []*segment
	for _, p := range parked {
		if p.kind == mediaSegment && len(c.closing) == 0 {
			media = append(media, &segment{file: p.file.Name, body: p.file.Body, received: p.file.Received, put: p})
			continue
		}
		c.take(p)
	}
	for _, seg := range media {
		c.hold(seg)
	}
	c.placeHeld()
	for _, seg := range c.held {
		seg.held()
	}
}

// closeParked answers what waits for a restore: the relay is shutting
// down.
func (s *restoreState) closeParked(c *channel) {
	for _, p := range s.parked {
		p.answer(0, fmt.Errorf("channel %s: %s: %w", c.name, p.file.Name, ErrClosed))
	}
	s.parked = nil
}

// readRestore reads the init segments of the encoder's newest start from
// the channel's record, if the channel is live. An error says the store
// could not tell.
func readRestore(ctx context.Context, st Store, live func(context.Context, string) (bool, error), channel string, log *slog.Logger) (map[string][]byte, time.Time, error) {
	if live == nil {
		return nil, time.Time{}, nil
	}
	ok, err := live(ctx, channel)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("channel %s: read the channel's state: %w", channel, err)
	}
	if !ok {
		return nil, time.Time{}, nil
	}
	o, err := st.Get(ctx, layout.UploadsStateKey(channel))
	if errors.Is(err, store.ErrNotFound) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("channel %s: read the uploads record: %w", channel, err)
	}
	var rec uploadRecord
	if err := json.Unmarshal(o.Body, &rec); err != nil {
		log.Warn("uploads not restored: the record does not parse", "err", err)
		return nil, time.Time{}, nil
	}
	var newest time.Time
	for _, in := range rec.Inits {
		if in.At.After(newest) {
			newest = in.At
		}
	}
	out := map[string][]byte{}
	for file, in := range rec.Inits {
		if newest.Sub(in.At) <= sessionSpread {
			out[file] = in.Body
		}
	}
	return out, newest, nil
}

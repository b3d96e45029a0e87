// Package handler is the manifest function: it keeps each channel's
// timeline from S3 object-created events and renders the Smooth Streaming
// manifest, the HLS playlists and the DASH MPD on request (Lambda
// Function URL, or the local edge calling it the same way).
//
// Per fragment event it makes one ranged GET of the fragment (two for a
// moof over 64 KiB), one GET of the track's state and one conditional PUT
// of that state: the only billable write besides the fragment itself,
// but for the channel's index, written when a track appears and again
// every layout.StateRefresh so that the state's lifecycle rule spares a
// live channel. Manifests are not stored; they are rendered from the
// state when the CDN asks for them.
package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/aws/aws-lambda-go/events"

	"github.com/smoothcast/smoothcast/shared/emf"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// ObjectStore is what the handler needs of the store.
type ObjectStore interface {
	Get(ctx context.Context, key string) (store.Object, error)
	GetRange(ctx context.Context, key string, first, last int64) (store.Object, error)
	Put(ctx context.Context, key string, body []byte, o store.PutOptions) (string, error)
}

// Config holds the function's settings.
type Config struct {
	// DVRWindow bounds what live manifests list (and what a finished
	// stream's manifests keep listing, so that a playlist a player holds
	// only ever grows at its end).
	DVRWindow time.Duration
	// Archive is how much of each track's timeline the state keeps: what
	// time-shift and start-over requests can reach, a finished event's
	// whole archive among them. Zero means Retention minus
	// layout.RetentionMargin (everything still stored), or the DVR window when
	// nothing is ever deleted.
	Archive time.Duration
	// GapTimeout is how long a fragment that arrived early waits for the
	// ones before it before the missing media is declared a gap.
	GapTimeout time.Duration
	// ManifestMaxAge is the Cache-Control max-age of rendered manifests.
	ManifestMaxAge time.Duration
	// MaxRetries bounds conditional-write retries per event.
	MaxRetries int
	// Retention is how long fragments are kept (the bucket's lifecycle
	// rule, the local janitor): manifests leave out what is older than
	// Retention minus layout.RetentionMargin. Zero keeps everything listed.
	Retention time.Duration
}

// DefaultConfig returns the defaults: a 30 minute window, 10 s gap
// timeout, 1 s manifest max-age, 24 h retention.
func DefaultConfig() Config {
	return Config{DVRWindow: 30 * time.Minute, GapTimeout: 10 * time.Second, ManifestMaxAge: time.Second, MaxRetries: 20, Retention: 24 * time.Hour}
}

// Validate reports a configuration that would list what is gone.
func (c Config) Validate() error {
	if c.Retention > 0 && c.Retention < c.DVRWindow+layout.RetentionMargin {
		return fmt.Errorf("retention %v must be at least the DVR window (%v) plus %v, or manifests would list deleted fragments", c.Retention, c.DVRWindow, layout.RetentionMargin)
	}
	if c.Retention > 0 && c.Archive > c.Retention-layout.RetentionMargin {
		return fmt.Errorf("archive %v must be at most the retention (%v) less %v, or time-shift manifests would list deleted fragments", c.Archive, c.Retention, layout.RetentionMargin)
	}
	return nil
}

// ArchiveSpan is the span of a track's timeline that the state keeps (see
// Archive): never less than the DVR window.
func (c Config) ArchiveSpan() time.Duration {
	switch {
	case c.Archive > 0:
		return max(c.Archive, c.DVRWindow)
	case c.Retention > 0:
		return max(c.Retention-layout.RetentionMargin, c.DVRWindow)
	}
	return c.DVRWindow
}

// rules are the publication rules for track tr: its timescale sizes the
// window, and a sparse (text) track's pauses are no holes.
func (c Config) rules(tr timeline.Track) timeline.Rules {
	return timeline.Rules{GapTimeout: c.GapTimeout, Window: timeline.Ticks(c.ArchiveSpan(), tr.Timescale), Sparse: tr.Kind.Sparse()}
}

// Handler handles S3 events and manifest requests.
type Handler struct {
	Store ObjectStore
	Cfg   Config
	Log   *slog.Logger
	// Now is the clock that gap timeouts, the DVR window, retention, the
	// end of a stream and time-shift ranges are judged by, and the one
	// that stamps metrics and manifests (X-Smoothcast-Generated): time.Now
	// unless a test sets another before the first call.
	Now func() time.Time
	// Metrics receives one CloudWatch Embedded Metric Format document per
	// processed event and per manifest request that failed (see
	// metricname.Namespace). New leaves it nil, which writes none: the Lambda
	// sets it to stdout, where CloudWatch Logs extracts the metrics; the
	// local stack has no use for them.
	Metrics *emf.Writer

	mu       sync.Mutex
	channels map[string]*timeline.Channel // warm cache of channel indexes
}

// New returns a handler.
func New(st ObjectStore, cfg Config, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = DefaultConfig().MaxRetries
	}
	return &Handler{Store: st, Cfg: cfg, Log: log, Now: time.Now, channels: map[string]*timeline.Channel{}}
}

// Invoke is the Lambda entry point: it accepts an S3 event or a Function
// URL request and dispatches on its shape.
func (h *Handler) Invoke(ctx context.Context, payload json.RawMessage) (any, error) {
	var probe struct {
		Records        []json.RawMessage `json:"Records"`
		RequestContext *struct {
			HTTP *json.RawMessage `json:"http"`
		} `json:"requestContext"`
	}
	if err := json.Unmarshal(payload, &probe); err != nil {
		return nil, fmt.Errorf("decode invocation: %w", err)
	}
	switch {
	case probe.Records != nil:
		// Record by record: one that cannot be decoded (a key with a bad
		// escape is none of the layout's) is dropped with a warning rather
		// than failing the invocation, which Lambda would retry for ever.
		var ev events.S3Event
		for i, raw := range probe.Records {
			var rec events.S3EventRecord
			if err := json.Unmarshal(raw, &rec); err != nil {
				h.Log.Warn("ignoring an undecodable S3 event record", "record", i, "err", err)
				continue
			}
			ev.Records = append(ev.Records, rec)
		}
		return nil, h.HandleS3(ctx, ev)
	case probe.RequestContext != nil && probe.RequestContext.HTTP != nil:
		var req events.LambdaFunctionURLRequest
		if err := json.Unmarshal(payload, &req); err != nil {
			return nil, fmt.Errorf("decode Function URL request: %w", err)
		}
		return h.HandleURL(ctx, req)
	}
	return nil, errors.New("invocation is neither an S3 event nor a Function URL request")
}

// HandleS3 processes object-created records. Keys outside the layout and
// objects that are not fragments are ignored. An error makes Lambda retry
// the whole event, which is safe: processing is idempotent. An object
// whose own bytes can never be published from (unreadableError: a moof
// over fmp4.MaxMoof, say) is logged and counted as an error, not
// returned: every retry would fail the same way. Each record of the
// layout is logged with its channel, track, key and timings, and gives
// one metrics document (see Metrics).
func (h *Handler) HandleS3(ctx context.Context, ev events.S3Event) error {
	var errs []error
	for _, rec := range ev.Records {
		key, err := url.QueryUnescape(rec.S3.Object.Key)
		if err != nil {
			h.Log.Warn("ignoring event with undecodable key", "key", rec.S3.Object.Key)
			continue
		}
		obj, err := layout.Parse(key)
		if err != nil || obj.Kind != layout.KindFragment && obj.Kind != layout.KindEnd {
			h.Log.Debug("ignoring event", "key", key)
			continue
		}
		at := rec.EventTime
		if at.IsZero() {
			at = h.Now()
		}
		began := time.Now()
		log := h.Log.With("channel", obj.Channel, "track", obj.Track.String(), "key", key)
		var stats eventStats
		if obj.Kind == layout.KindEnd {
			err = h.end(ctx, obj, key, at, log, began, &stats)
		} else {
			err = h.fragment(ctx, obj, key, rec.S3.Object.Size, at, log, began, &stats)
		}
		var unreadable *unreadableError
		failed := err != nil
		switch {
		case errors.Is(err, store.ErrNotFound):
			// The object (or its init segment) is gone: nothing to publish,
			// and a retry would not change that.
			log.Warn("ignoring event for a missing object", "err", err, "ms", time.Since(began).Milliseconds())
			failed = false
		case errors.As(err, &unreadable):
			// What the object holds can never be published, and it never
			// changes: said once and counted (Errors), not retried.
			log.Error("event dropped: the object cannot be read", "reason", unreadable.err.Error(), "ms", time.Since(began).Milliseconds())
		case err != nil:
			log.Error("event failed", "err", err, "conflicts", stats.conflicts, "ms", time.Since(began).Milliseconds())
			errs = append(errs, fmt.Errorf("channel %s track %s fragment %d: %w", obj.Channel, obj.Track, obj.Start, err))
		}
		h.emitEvent(obj.Channel, &stats, failed, log)
	}
	return errors.Join(errs...)
}

// unreadableError is an event whose object the function can never publish
// from: its bytes are not a fragment (or an init segment, or an end
// marker) it can read. Retrying cannot help, since the relay writes these
// objects once (If-None-Match) and never changes them; so HandleS3 logs
// it, counts it and returns no error, where Lambda would retry the event
// and then park it in the failure queue. Only what the object's own bytes
// decide is unreadable: a failed or short read of the store stays an
// error, and is retried.
type unreadableError struct{ err error }

func (e *unreadableError) Error() string { return e.err.Error() }
func (e *unreadableError) Unwrap() error { return e.err }

func unreadable(format string, args ...any) error {
	return &unreadableError{fmt.Errorf(format, args...)}
}

// headBytes is how much of a fragment is read first to find its moof:
// enough for a few thousand samples' trun entries. A larger moof takes a
// second read, up to fmp4.MaxMoof.
const headBytes = 64 << 10

func (h *Handler) fragment(ctx context.Context, obj layout.Object, key string, size int64, at time.Time, log *slog.Logger, began time.Time, stats *eventStats) error {
	log = log.With("start", obj.Start)
	arr, emsgs, err := h.readArrival(ctx, key, obj, size)
	if err != nil {
		return err
	}
	tr, epoch, err := h.track(ctx, obj, arr, at, stats, log)
	if err != nil {
		return err
	}
	evs := h.events(emsgs, arr, tr, log)
	rules := h.Cfg.rules(tr)
	var out timeline.Outcome
	return h.updateTrack(ctx, obj, epoch, log, began, at, stats, func(st *timeline.TrackState) (string, bool, error) {
		var changed bool
		var err error
		out, changed, err = st.Apply(arr, at, rules)
		if err == nil && st.AddEvents(evs) {
			changed = true
		}
		return out.String(), changed, err
	})
}

// end applies an encoder connection's end marker to its track's state.
func (h *Handler) end(ctx context.Context, obj layout.Object, key string, at time.Time, log *slog.Logger, began time.Time, stats *eventStats) error {
	log = log.With("end", obj.Start)
	o, err := h.Store.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("read end marker: %w", err)
	}
	var m struct {
		Stream bool `json:"eos"`
	}
	if err := json.Unmarshal(o.Body, &m); err != nil {
		return unreadable("end marker: %w", err)
	}
	stats.ended = m.Stream
	// The marker may come before any fragment event of its track: register
	// the track as a fragment would (the marker's time anchors the epoch
	// as well as the last fragment's would).
	tr, epoch, err := h.track(ctx, obj, timeline.Arrival{Fragment: timeline.Fragment{Start: obj.Start}}, at, stats, log)
	if err != nil {
		return err
	}
	rules := h.Cfg.rules(tr)
	return h.updateTrack(ctx, obj, epoch, log, began, at, stats, func(st *timeline.TrackState) (string, bool, error) {
		changed := st.ApplyEnd(timeline.End{Time: obj.Start, Stream: m.Stream}, at, rules)
		if m.Stream {
			return "end of stream", changed, nil
		}
		return "connection dropped", changed, nil
	})
}

// updateTrack applies change to the track's state with a conditional
// write, retrying on conflict; change reports what it did (for the log)
// and whether the state must be written. epoch is the channel's: a state
// written under another (an earlier life of the channel, see
// timeline.TrackState.Belongs) is started anew. at is the event's time:
// stats gets the conflicts and, once the write succeeds, the delay from
// each newly published fragment's event to the write.
func (h *Handler) updateTrack(ctx context.Context, obj layout.Object, epoch time.Time, log *slog.Logger, began, at time.Time, stats *eventStats, change func(*timeline.TrackState) (string, bool, error)) error {
	stateKey := layout.TrackStateKey(obj.Channel, obj.Track)
	for attempt := 0; ; attempt++ {
		st, etag, err := h.loadTrackState(ctx, stateKey)
		if err != nil {
			return err
		}
		anew := !st.Belongs(epoch)
		if anew {
			log.Info("track state of an earlier life of the channel: starting it anew", "its_epoch", st.Epoch, "epoch", epoch)
			st = &timeline.TrackState{}
		}
		before := snapshot(st)
		what, changed, err := change(st)
		if err != nil {
			return err
		}
		if !changed && !anew {
			log.Debug("event", "outcome", what, "write", false, "ms", time.Since(began).Milliseconds())
			return nil
		}
		st.Epoch = epoch
		body, err := timeline.MarshalTrackState(st)
		if err != nil {
			return err
		}
		opts := store.PutOptions{ContentType: "application/json", CacheControl: store.CacheNone, Tagging: layout.LifetimeOf(stateKey).Tagging()}
		if etag == "" {
			opts.IfNoneMatch = true
		} else {
			opts.IfMatch = etag
		}
		_, err = h.Store.Put(ctx, stateKey, body, opts)
		if err == nil {
			written := h.Now()
			stats.delays = before.delays(st, at, written)
			log.Info("event", "outcome", what, "published", st.Timeline.Len(), "newly_published", len(stats.delays), "pending", len(st.Pending),
				"attempts", attempt+1, "delay_ms", max(written.Sub(at), 0).Milliseconds(), "ms", time.Since(began).Milliseconds())
			return nil
		}
		if !errors.Is(err, store.ErrPreconditionFailed) || attempt >= h.Cfg.MaxRetries {
			return fmt.Errorf("write track state: %w", err)
		}
		stats.conflicts++
		backoff(ctx, attempt)
	}
}

func backoff(ctx context.Context, attempt int) {
	d := time.Duration(rand.Int64N(int64(5*time.Millisecond) << min(attempt, 5)))
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// readArrival reads the head of the fragment object: its moof gives the
// duration, and its metadata the previous fragment on the encoder's
// connection. What the object's bytes get wrong is an unreadableError.
func (h *Handler) readArrival(ctx context.Context, key string, obj layout.Object, size int64) (timeline.Arrival, []*mp4.EmsgBox, error) {
	o, err := h.Store.GetRange(ctx, key, 0, headBytes-1)
	if err != nil {
		return timeline.Arrival{}, nil, fmt.Errorf("read fragment: %w", err)
	}
	if o.Size > 0 {
		size = o.Size
	}
	b := o.Body
	if len(b) < 8 {
		return timeline.Arrival{}, nil, unreadable("fragment object of %d bytes holds no moof", len(b))
	}
	// The moof, after the emsg boxes (in-band events) the relay may put
	// before it: a second read when they do not fit the first.
	emsgs, moofAt, need, err := fmp4.StoredHead(b)
	switch {
	case err != nil:
		return timeline.Arrival{}, nil, unreadable("fragment object: %w", err)
	case size > 0 && need > size:
		return timeline.Arrival{}, nil, unreadable("fragment object of %d bytes ends inside its moof (or the emsg boxes before it): %d bytes", size, need)
	case need > int64(len(b)):
		if o, err = h.Store.GetRange(ctx, key, 0, need-1); err != nil {
			return timeline.Arrival{}, nil, fmt.Errorf("read fragment moof: %w", err)
		}
		b = o.Body
		if int64(len(b)) < need {
			// The object holds the bytes (size says so): the read fell
			// short, which a retry may not.
			return timeline.Arrival{}, nil, fmt.Errorf("read fragment moof: %d of %d bytes", len(b), need)
		}
		if emsgs, moofAt, need, err = fmp4.StoredHead(b); err != nil || need > int64(len(b)) {
			return timeline.Arrival{}, nil, unreadable("fragment object: head of %d bytes: %v", need, err)
		}
	}
	moof, err := fmp4.DecodeMoof(b[moofAt:need])
	if err != nil {
		return timeline.Arrival{}, nil, unreadable("fragment object: %w", err)
	}
	startSigned, dur, ok := fmp4.Timing(moof, nil)
	if !ok || startSigned < 0 || uint64(startSigned) != obj.Start {
		return timeline.Arrival{}, nil, unreadable("fragment object's time %d does not match its key", startSigned)
	}
	if dur == 0 || dur > math.MaxUint64-obj.Start {
		return timeline.Arrival{}, nil, unreadable("fragment at %d lasts %d ticks: its end is not a time", obj.Start, dur)
	}
	a := timeline.Arrival{Fragment: timeline.Fragment{Start: obj.Start, Duration: dur}, Size: size}
	for _, trun := range moof.Traf.Truns {
		a.Samples += int(trun.SampleCount())
	}
	if p, ok := o.Metadata[layout.MetaPrev]; ok {
		v, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return timeline.Arrival{}, nil, unreadable("fragment metadata %s=%q: %w", layout.MetaPrev, p, err)
		}
		a.HasPrev, a.Prev = true, v
	}
	a.Disc = o.Metadata[layout.MetaDisc] == "1"
	if v, ok := o.Metadata[layout.MetaInit]; ok {
		if !layout.ValidName(v) {
			return timeline.Arrival{}, nil, unreadable("fragment metadata %s=%q: no init segment version", layout.MetaInit, v)
		}
		a.Init = v
	}
	return a, emsgs, nil
}

func (h *Handler) loadTrackState(ctx context.Context, key string) (*timeline.TrackState, string, error) {
	o, err := h.Store.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return &timeline.TrackState{}, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("read track state: %w", err)
	}
	st, err := timeline.UnmarshalTrackState(o.Body)
	if err != nil {
		return nil, "", err
	}
	return st, o.ETag, nil
}

func (h *Handler) loadChannel(ctx context.Context, name string) (*timeline.Channel, string, error) {
	o, err := h.Store.Get(ctx, layout.ChannelStateKey(name))
	if errors.Is(err, store.ErrNotFound) {
		return &timeline.Channel{Version: timeline.StateVersion, Name: name}, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("read channel %s: %w", name, err)
	}
	ch, err := timeline.UnmarshalChannel(o.Body)
	if err != nil {
		return nil, "", fmt.Errorf("channel %s: %w", name, err)
	}
	return ch, o.ETag, nil
}

// track returns the description of the fragment's track and its
// channel's epoch. The first time it registers the track in the channel
// index from its init segment, and the first track of a channel also
// fixes the channel's epoch (the wall-clock time of media time zero): the
// fragment ended about when its object was created. Both happen in one
// conditional write. It also writes the index again once it is
// layout.StateRefresh old, so that the state's lifecycle rule never
// removes a live channel's index, and starts a channel that nothing
// touched for longer than the retention anew (see forgotten).
func (h *Handler) track(ctx context.Context, obj layout.Object, arr timeline.Arrival, at time.Time, stats *eventStats, log *slog.Logger) (timeline.Track, time.Time, error) {
	now := h.Now()
	h.mu.Lock()
	cached := h.channels[obj.Channel]
	h.mu.Unlock()
	if cached != nil && !h.due(cached, now) {
		// Safe to trust: an index written less than StateRefresh ago is
		// neither expired nor started anew since.
		if t, ok := cached.Track(obj.Track); ok && hasInit(t, arr.Init) {
			return t, cached.Epoch, nil
		}
	}
	var desc, version *timeline.Track
	ch, err := h.updateChannel(ctx, obj.Channel, stats, func(ch *timeline.Channel) (bool, error) {
		changed := h.due(ch, now)
		if h.forgotten(ch, now) {
			log.Info("channel starts anew: nothing touched it for longer than the retention", "epoch", ch.Epoch, "touched", ch.Touched)
			*ch = timeline.Channel{Version: timeline.StateVersion, Name: ch.Name}
		}
		t, ok := ch.Track(obj.Track)
		if ok && hasInit(t, arr.Init) {
			return changed, nil
		}
		if !ok {
			if desc == nil {
				d, err := h.describeInit(ctx, obj, "")
				if err != nil {
					return false, err
				}
				desc = &d
			}
			if ch.Epoch.IsZero() {
				ch.Epoch = at.Add(-timeline.DurationOf(arr.End(), desc.Timescale)).Truncate(time.Millisecond).UTC()
			}
			t = *desc
		}
		if !hasInit(t, arr.Init) {
			// The track's protection changed: its fragments from here on
			// name the init segment of their version (layout.MetaInit),
			// whose protection the manifests signal from there.
			if version == nil {
				v, err := h.describeInit(ctx, obj, arr.Init)
				if err != nil {
					return false, err
				}
				version = &v
			}
			t.Inits = maps.Clone(t.Inits)
			if t.Inits == nil {
				t.Inits = map[string]*timeline.Protection{}
			}
			t.Inits[arr.Init] = version.Protection
			log.Info("track protection changes", "track", obj.Track.String(), "init_version", arr.Init, "encrypted", version.Protection != nil)
		}
		ch.AddTrack(t)
		return true, nil
	})
	if err != nil {
		return timeline.Track{}, time.Time{}, err
	}
	t, _ := ch.Track(obj.Track)
	return t, ch.Epoch, nil
}

// describeInit describes the fragment's track from its init segment of
// version v (layout.InitKeyOf).
func (h *Handler) describeInit(ctx context.Context, obj layout.Object, v string) (timeline.Track, error) {
	what := "init segment"
	if v != "" {
		what += " " + v
	}
	init, err := h.Store.Get(ctx, layout.InitKeyOf(obj.Channel, obj.Track, v))
	if err != nil {
		return timeline.Track{}, fmt.Errorf("read %s: %w", what, err)
	}
	t, err := fmp4.ParseInit(init.Body)
	if err != nil {
		return timeline.Track{}, unreadable("%s: %w", what, err)
	}
	t.ID = obj.Track
	return t, nil
}

// hasInit reports whether the channel index knows track t's init
// segment of version v ("": its first, always known).
func hasInit(t timeline.Track, v string) bool {
	_, ok := t.Inits[v]
	return v == "" || ok
}

// due reports whether the channel index must be written again to stay
// clear of the state's lifecycle rule: it is layout.StateRefresh old (or
// older than the field that says so). Never when nothing expires.
func (h *Handler) due(ch *timeline.Channel, now time.Time) bool {
	return h.Cfg.Retention > 0 && now.Sub(ch.Touched) >= layout.StateRefresh
}

// forgotten reports whether a channel index went unwritten for longer
// than the retention plus layout.StateRefresh: since events write it at
// least every StateRefresh, nothing happened on the channel for longer
// than the retention, and every fragment it had is past it. Its index
// and track states may be partly gone already (the lifecycle rule takes
// objects in no order): the channel starts anew, with a new epoch, as a
// channel never seen would (the relay places a returning encoder after
// an index it read, or as a new channel when it found none).
func (h *Handler) forgotten(ch *timeline.Channel, now time.Time) bool {
	return h.Cfg.Retention > 0 && !ch.Touched.IsZero() && now.Sub(ch.Touched) > h.Cfg.Retention+layout.StateRefresh
}

// updateChannel applies change to the channel index with a conditional
// write, retrying on conflict (counted in stats), and refreshes the warm
// cache.
func (h *Handler) updateChannel(ctx context.Context, name string, stats *eventStats, change func(*timeline.Channel) (bool, error)) (*timeline.Channel, error) {
	for attempt := 0; ; attempt++ {
		ch, etag, err := h.loadChannel(ctx, name)
		if err != nil {
			return nil, err
		}
		changed, err := change(ch)
		if err != nil {
			return nil, err
		}
		if changed {
			ch.Version = timeline.StateVersion
			ch.Touched = h.Now().UTC()
			body, err := timeline.MarshalChannel(ch)
			if err != nil {
				return nil, err
			}
			key := layout.ChannelStateKey(name)
			opts := store.PutOptions{ContentType: "application/json", CacheControl: store.CacheNone, IfMatch: etag, IfNoneMatch: etag == "",
				Tagging: layout.LifetimeOf(key).Tagging()}
			if _, err = h.Store.Put(ctx, key, body, opts); err != nil {
				if errors.Is(err, store.ErrPreconditionFailed) && attempt < h.Cfg.MaxRetries {
					stats.conflicts++
					backoff(ctx, attempt)
					continue
				}
				return nil, fmt.Errorf("write channel %s: %w", name, err)
			}
		}
		h.mu.Lock()
		h.channels[name] = ch
		h.mu.Unlock()
		return ch, nil
	}
}

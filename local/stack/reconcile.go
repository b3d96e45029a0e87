package stack

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// A stack that stops without draining its event queue (a crash: SIGKILL,
// a power cut) loses the events it had not handled, and the relay's
// pushes end without their end markers; on AWS, S3's events are durable
// and the relay's host outlives a process. What that leaves, stored
// fragments the state does not list and connections nothing ends, the
// next stack over the same data reconciles as it starts (reconcile).

// reconcileStore is what the reconciliation needs of the store.
type reconcileStore interface {
	List(ctx context.Context, prefix string, fn func([]store.Listed) error) error
	Get(ctx context.Context, key string) (store.Object, error)
	Put(ctx context.Context, key string, body []byte, o store.PutOptions) (string, error)
}

// missed is a fragment or end marker whose event may have been lost.
type missed struct {
	key      string
	time     uint64 // a fragment's start, a marker's end time
	end      bool
	size     int64
	modified time.Time
}

// trackBacklog is what the listing found of one track.
type trackBacklog struct {
	channel string
	track   layout.TrackID
	state   *timeline.TrackState // as the reconciliation found it
	missed  []missed
	// newest is the start of the newest fragment stored before the stack
	// started.
	newest uint64
	// end is where a drop ends the track (drop).
	end uint64
}

// reconciled counts what a reconciliation did.
type reconciled struct {
	events int // events sent to the handler
	ended  int // connections ended as drops
}

// reconcile makes the manifest handler's state what it would be had the
// stack that stored what is under live/ before the time before (an
// earlier process over the same data) handled every event and ended its
// pushes as drops. For each track with fragments stored before then, it
// sends notify the events (as S3 would have sent them, stamped with their
// objects' times) of the fragments its state does not list (at or after
// its published end, not pending) and of the end markers after its
// published end, in time order; then, when nothing ends what the track
// holds (no end at or after its newest fragment), it stores the end marker
// the relay writes for a dropped connection, whose event ends it as a
// drop would: the encoder's connection died with that process, and the
// gap timeout and the end rules take it from there. A track a newer
// connection (this process's relay) has gone on with is left to it.
//
// Events are idempotent, so running it again, or alongside new pushes,
// is harmless. It lists the bucket once (the serving path never does)
// and reads each track's state twice.
func reconcile(ctx context.Context, st reconcileStore, bucket string, before time.Time, notify s3local.Notify, log *slog.Logger) (reconciled, error) {
	var done reconciled
	tracks := map[string]*trackBacklog{}
	err := st.List(ctx, layout.LivePrefix, func(page []store.Listed) error {
		for _, o := range page {
			obj, err := layout.Parse(o.Key)
			if err != nil || obj.Kind != layout.KindFragment && obj.Kind != layout.KindEnd || !o.Modified.Before(before) {
				continue
			}
			id := layout.TrackStateKey(obj.Channel, obj.Track)
			tb := tracks[id]
			if tb == nil {
				s, err := trackState(ctx, st, id)
				if err != nil {
					return err
				}
				tb = &trackBacklog{channel: obj.Channel, track: obj.Track, state: s}
				tracks[id] = tb
			}
			if obj.Kind == layout.KindFragment {
				tb.newest = max(tb.newest, obj.Start)
			}
			if tb.lists(obj) {
				continue
			}
			tb.missed = append(tb.missed, missed{key: o.Key, time: obj.Start, end: obj.Kind == layout.KindEnd, size: o.Size, modified: o.Modified})
		}
		return nil
	})
	if err != nil {
		return done, fmt.Errorf("reconcile: %w", err)
	}
	// Every track's events first, then the markers: their events come
	// through the queue, once the reconciliation reads nothing more.
	var drops []*trackBacklog
	for _, id := range slices.Sorted(maps.Keys(tracks)) {
		tb := tracks[id]
		n, open, err := tb.replay(ctx, st, bucket, notify, log)
		done.events += n
		if err != nil {
			return done, err
		}
		if open {
			drops = append(drops, tb)
		}
	}
	for _, tb := range drops {
		if err := tb.drop(ctx, st, log); err != nil {
			return done, err
		}
		done.ended++
	}
	return done, nil
}

// lists reports whether the track's state, as found, already has what
// obj's event would have given it: a fragment published before its end
// or pending, an end it records; or something older than what it
// published, which an event would change nothing of.
func (tb *trackBacklog) lists(obj layout.Object) bool {
	s := tb.state
	published := !s.Timeline.Empty() && obj.Start < s.Timeline.End()
	if obj.Kind == layout.KindEnd {
		return published || slices.ContainsFunc(s.Ends, func(e timeline.Ending) bool { return e.Time == obj.Start })
	}
	return published || slices.ContainsFunc(s.Pending, func(p timeline.Pending) bool { return p.Start == obj.Start })
}

// replay sends the track's missed events in time order (an end marker
// before a fragment that starts at its time: it ended the connection
// before) and reports whether nothing ends what the track then holds: no
// end at or after its newest fragment, which the last run stored (a newer
// connection, this run's, ends itself).
func (tb *trackBacklog) replay(ctx context.Context, st reconcileStore, bucket string, notify s3local.Notify, log *slog.Logger) (sent int, open bool, err error) {
	log = log.With("channel", tb.channel, "track", tb.track.String())
	slices.SortFunc(tb.missed, func(a, b missed) int {
		if c := cmp.Compare(a.time, b.time); c != 0 {
			return c
		}
		if a.end != b.end {
			if a.end {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.key, b.key)
	})
	for i, m := range tb.missed {
		ev := s3local.Event(bucket, m.key, "ObjectCreated:Put", m.size, "", uint64(i), m.modified)
		if err := deliver(ctx, notify, ev); err != nil {
			log.Error("reconcile: event failed", "key", m.key, "err", err)
			continue // as the queue gives up on an event; the next start tries again
		}
		sent++
	}
	if sent > 0 {
		log.Info("reconcile: published what the last run stored and never listed", "events", sent)
	}
	s, err := trackState(ctx, st, layout.TrackStateKey(tb.channel, tb.track))
	if err != nil {
		return sent, false, err
	}
	last, ok := s.Timeline.Last()
	if p := len(s.Pending); p > 0 && (!ok || s.Pending[p-1].Start > last.Start) {
		last, ok = s.Pending[p-1].Fragment, true
	}
	if !ok || last.Start > tb.newest || slices.ContainsFunc(s.Ends, func(e timeline.Ending) bool { return e.Time >= last.End() }) {
		return sent, false, nil
	}
	tb.end = last.End()
	return sent, true, nil
}

// drop stores the end marker the relay writes when a connection drops,
// at the end of what the track holds: its event (the bucket notification)
// ends the connection in the track's state.
func (tb *trackBacklog) drop(ctx context.Context, st reconcileStore, log *slog.Logger) error {
	body, _ := json.Marshal(relay.EndMarker{Stream: false})
	key := layout.EndKey(tb.channel, tb.track, tb.end)
	if _, err := st.Put(ctx, key, body, store.PutOptions{ContentType: "application/json", CacheControl: store.CacheNone, Tagging: layout.ExpireTag}); err != nil {
		return fmt.Errorf("reconcile: channel %s track %s: end marker: %w", tb.channel, tb.track, err)
	}
	log.Info("reconcile: the last run's connection ended as a drop", "channel", tb.channel, "track", tb.track.String(), "end", tb.end)
	return nil
}

// deliver hands notify one event, retried twice on error as the event
// queue does.
func deliver(ctx context.Context, notify s3local.Notify, ev events.S3Event) error {
	var err error
	for attempt := range 3 {
		if err = notify(ctx, ev); err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
	return err
}

// trackState reads a track's state: empty when there is none.
func trackState(ctx context.Context, st reconcileStore, key string) (*timeline.TrackState, error) {
	o, err := st.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return &timeline.TrackState{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reconcile: read %s: %w", key, err)
	}
	s, err := timeline.UnmarshalTrackState(o.Body)
	if err != nil {
		return nil, fmt.Errorf("reconcile: %s: %w", key, err)
	}
	return s, nil
}

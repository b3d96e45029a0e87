package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// clockRecord is the stored offset of a rebased encoder (ClockStateKey):
// every connection of that encoder (one per track, or reconnects) finds it
// and applies the same offset, so its tracks stay in sync.
type clockRecord struct {
	Offset int64     `json:"offset"` // seconds
	At     time.Time `json:"at"`     // when it was decided
}

// channelClock is the relay's ingest.Clock for one channel. The channel's
// clock is its epoch (the manifest function's index): media time t plays
// at epoch+t. An encoder is on the channel's timeline when its fragment
// ends no more than maxDrift before what the channel has published (a
// reconnect resending its last fragments, however long the outage, or a
// redundant encoder) and no more than maxDrift after now. One that is off
// (it restarted from zero, or its clock jumped) gets a whole-second offset
// that puts the fragment's end at now, or later when it would otherwise
// start before what the channel has published (an encoder running ahead
// of the clock) or before the end of what its own session stored of the
// track (q.After: events, and with them the published state, may lag).
type channelClock struct {
	st       ObjectStore
	channel  string
	maxDrift time.Duration
	now      func() time.Time
	log      *slog.Logger
}

func (c *channelClock) Offset(ctx context.Context, q ingest.ClockQuery) (time.Duration, error) {
	encoderStart, encoderEnd := q.Start, q.End
	o, err := c.st.Get(ctx, layout.ChannelStateKey(c.channel))
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil // a new channel: its first fragments set the clock
	}
	if err != nil {
		return 0, &storeError{fmt.Errorf("channel %s: read clock: %w", c.channel, err)}
	}
	ch, err := timeline.UnmarshalChannel(o.Body)
	if err != nil || ch.Epoch.IsZero() {
		return 0, &storeError{fmt.Errorf("channel %s: read clock: %w", c.channel, errors.Join(err, errors.New("no epoch")))}
	}
	wall := c.now().Sub(ch.Epoch)
	states, err := trackStates(ctx, c.st, c.channel, ch)
	if err != nil {
		return 0, err
	}
	published := publishedEnd(ch, states)
	onClock := func(off time.Duration) bool {
		end := encoderEnd + off
		return end >= published-c.maxDrift && end <= wall+c.maxDrift
	}
	if onClock(0) {
		return 0, nil
	}
	// Where a new offset may put the fragment's start at the earliest.
	floor := max(published, q.After)
	key := layout.ClockStateKey(c.channel)
	for attempt := 0; ; attempt++ {
		var rec clockRecord
		etag := ""
		o, err := c.st.Get(ctx, key)
		switch {
		case err == nil:
			if json.Unmarshal(o.Body, &rec) == nil {
				etag = o.ETag
			}
		case !errors.Is(err, store.ErrNotFound):
			return 0, &storeError{fmt.Errorf("channel %s: read clock record: %w", c.channel, err)}
		}
		if recOff := time.Duration(rec.Offset) * time.Second; etag != "" && onClock(recOff) && encoderStart+recOff >= q.After {
			return recOff, nil
		}
		// Round up: the fragment ends at or just after now, and starts no
		// earlier than what the channel already played.
		off := time.Duration(math.Ceil(max(wall-encoderEnd, floor-encoderStart).Seconds())) * time.Second
		rec = clockRecord{Offset: int64(off / time.Second), At: c.now().UTC()}
		body, _ := json.Marshal(rec)
		opts := store.PutOptions{ContentType: "application/json", CacheControl: store.CacheNone, IfMatch: etag, IfNoneMatch: etag == "",
			Tagging: layout.LifetimeOf(key).Tagging()}
		_, err = c.st.PutParts(ctx, key, [][]byte{body}, opts)
		if errors.Is(err, store.ErrPreconditionFailed) && attempt < 5 {
			continue // another connection of the encoder decided first: use its offset if it fits
		}
		if err != nil {
			return 0, &storeError{fmt.Errorf("channel %s: write clock record: %w", c.channel, err)}
		}
		c.log.Warn("encoder is off the channel clock: rebasing", "encoder_start", encoderStart, "encoder_end", encoderEnd, "channel_time", wall, "published", floor, "offset", off)
		return off, nil
	}
}

// trackStates reads the published state of each of channel's tracks (ch); a track
// with none yet, or one that does not parse, is left out.
func trackStates(ctx context.Context, st ObjectStore, channel string, ch *timeline.Channel) (map[layout.TrackID]*timeline.TrackState, error) {
	out := map[layout.TrackID]*timeline.TrackState{}
	for _, tr := range ch.Tracks {
		o, err := st.Get(ctx, layout.TrackStateKey(channel, tr.ID))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, &storeError{fmt.Errorf("channel %s track %s: read state: %w", channel, tr.ID, err)}
		}
		// A state left from the channel's earlier life (its media expired
		// and it started anew) counts from another epoch: none.
		if s, err := timeline.UnmarshalTrackState(o.Body); err == nil && tr.Timescale != 0 && s.Belongs(ch.Epoch) {
			out[tr.ID] = s
		}
	}
	return out, nil
}

// publishedEnd is the latest end, as a media time, of what any track of
// the channel has published or holds pending.
func publishedEnd(ch *timeline.Channel, states map[layout.TrackID]*timeline.TrackState) time.Duration {
	var end time.Duration
	for _, tr := range ch.Tracks {
		st, ok := states[tr.ID]
		if !ok {
			continue
		}
		ticks := st.Timeline.End()
		for _, p := range st.Pending {
			ticks = max(ticks, p.End())
		}
		end = max(end, time.Duration(float64(ticks)/float64(tr.Timescale)*float64(time.Second)))
	}
	return end
}

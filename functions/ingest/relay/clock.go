package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

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

// channelClock is the relay's ism.Clock for one channel. The channel's
// clock is its epoch (the manifest function's index): media time t plays
// at epoch+t. An encoder whose fragment ends more than maxDrift away from
// now on that clock (it restarted from zero, or its clock jumped) gets a
// whole-second offset that puts the fragment's end at now; an encoder on
// the clock (a reconnect, a redundant encoder) gets none.
type channelClock struct {
	st       ObjectStore
	channel  string
	maxDrift time.Duration
	now      func() time.Time
	log      *slog.Logger
}

func (c *channelClock) Offset(ctx context.Context, encoderEnd time.Duration) (time.Duration, error) {
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
	onClock := func(off time.Duration) bool { return (wall - encoderEnd - off).Abs() <= c.maxDrift }
	if onClock(0) {
		return 0, nil
	}
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
		if etag != "" && onClock(time.Duration(rec.Offset)*time.Second) {
			return time.Duration(rec.Offset) * time.Second, nil
		}
		// Round up: the fragment ends at or just after now, never before
		// what the channel already played.
		off := time.Duration(math.Ceil((wall - encoderEnd).Seconds())) * time.Second
		rec = clockRecord{Offset: int64(off / time.Second), At: c.now().UTC()}
		body, _ := json.Marshal(rec)
		opts := store.PutOptions{ContentType: "application/json", CacheControl: store.CacheNone, IfMatch: etag, IfNoneMatch: etag == ""}
		_, err = c.st.Put(ctx, key, body, opts)
		if errors.Is(err, store.ErrPreconditionFailed) && attempt < 5 {
			continue // another connection of the encoder decided first: use its offset if it fits
		}
		if err != nil {
			return 0, &storeError{fmt.Errorf("channel %s: write clock record: %w", c.channel, err)}
		}
		c.log.Warn("encoder is off the channel clock: rebasing", "encoder_end", encoderEnd, "channel_time", wall, "offset", off)
		return off, nil
	}
}

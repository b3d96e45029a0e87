package relay

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
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// An uploading encoder sends its init segments once, when it starts
// (ffmpeg's dash and hls muxers), and the relay keeps its renditions in
// memory. So that a relay started again (a deploy, a crash) takes the
// encoder's next segments instead of holding and refusing them until the
// encoder is restarted, the relay records every init segment it takes in
// the store (layout.UploadsStateKey), and restores the renditions of a
// channel whose first upload after the start is not an init segment,
// if the channel is still live: not ended, and with media published
// within restoreWithin. Only the init segments of the encoder's newest
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
	// restoreWithin is how recent a channel's newest published media must
	// be for its uploads to be restored: longer than a relay takes to be
	// replaced (a new instance boots), shorter than a break between events.
	restoreWithin = 10 * time.Minute
)

// recordInit adds an init segment to the channel's record, replacing one
// of the same name. Several init segments come at once: this relay's
// writes of a record take turns (uc.recordMu), and the write is
// conditional for any other.
func (rl *Relay) recordInit(ctx context.Context, channel string, uc *uploadChannel, file string, body []byte) error {
	if len(body) > maxRecordedInit {
		return fmt.Errorf("channel %s: init segment %s is %d bytes, more than the %d recorded", channel, file, len(body), maxRecordedInit)
	}
	uc.recordMu.Lock()
	defer uc.recordMu.Unlock()
	key := layout.UploadsStateKey(channel)
	for attempt := 0; ; attempt++ {
		rec := uploadRecord{Inits: map[string]recordedInit{}}
		etag := ""
		o, err := rl.store.Get(ctx, key)
		switch {
		case err == nil:
			if json.Unmarshal(o.Body, &rec) != nil || rec.Inits == nil {
				rec = uploadRecord{Inits: map[string]recordedInit{}} // unreadable: start it again
			}
			etag = o.ETag
		case !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("channel %s: read the uploads record: %w", channel, err)
		}
		now := time.Now().UTC()
		rec.Inits[file] = recordedInit{Body: body, At: now}
		for name, in := range rec.Inits {
			if now.Sub(in.At) > 24*time.Hour {
				delete(rec.Inits, name) // an old event's
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
		opts := store.PutOptions{ContentType: "application/json", CacheControl: store.CacheNone, IfMatch: etag, IfNoneMatch: etag == ""}
		_, err = rl.store.Put(ctx, key, b, opts)
		if errors.Is(err, store.ErrPreconditionFailed) && attempt < 8 {
			continue // another relay recorded first: add to it
		}
		if err != nil {
			return fmt.Errorf("channel %s: write the uploads record: %w", channel, err)
		}
		return nil
	}
}

// restoreUploads starts the renditions the channel's record holds of the
// encoder's newest start, if the channel is still live, and reports how
// many it started. An error says the store could not tell: the next
// upload tries again.
func (rl *Relay) restoreUploads(ctx context.Context, channel string, uc *uploadChannel, log *slog.Logger) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, restoreTimeout)
	defer cancel()
	live, err := rl.channelLive(ctx, channel)
	if err != nil {
		return 0, fmt.Errorf("read the channel's state: %w", err)
	}
	if !live {
		return 0, nil
	}
	o, err := rl.store.Get(ctx, layout.UploadsStateKey(channel))
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the uploads record: %w", err)
	}
	var rec uploadRecord
	if err := json.Unmarshal(o.Body, &rec); err != nil {
		log.Warn("uploads not restored: the record does not parse", "err", err)
		return 0, nil
	}
	var newest time.Time
	for _, in := range rec.Inits {
		if in.At.After(newest) {
			newest = in.At
		}
	}
	n := 0
	for _, file := range slices.Sorted(maps.Keys(rec.Inits)) {
		if newest.Sub(rec.Inits[file].At) > sessionSpread {
			continue // an earlier start's
		}
		if err := rl.uploadInit(channel, uc, file, rec.Inits[file].Body, "restored", log.With("init", file)); err != nil {
			log.Warn("upload rendition not restored", "init", file, "err", err)
			continue
		}
		n++
	}
	log.Info("upload renditions restored from the store", "renditions", n, "recorded", len(rec.Inits))
	return n, nil
}

// restoreOnce runs the channel's restore at its first upload since the
// relay started, unless that is an init segment (an encoder starting),
// and makes the channel's other first uploads wait for it (an init
// segment does not wait). A restore the store could not answer is tried
// again by an upload restoreRetry later.
func (rl *Relay) restoreOnce(ctx context.Context, channel string, uc *uploadChannel, init bool, log *slog.Logger) {
	uc.mu.Lock()
	switch {
	case uc.restored:
		uc.mu.Unlock()
		return
	case init:
		if uc.restoring == nil {
			uc.restored = true
		}
		uc.mu.Unlock()
		return
	case uc.restoring != nil:
		wait := uc.restoring
		uc.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
		}
		return
	case time.Now().Before(uc.restoreAfter):
		uc.mu.Unlock()
		return
	}
	done := make(chan struct{})
	uc.restoring = done
	uc.mu.Unlock()
	_, err := rl.restoreUploads(ctx, channel, uc, log)
	if err != nil {
		log.Warn("uploads not restored: the store does not answer; the next upload tries again", "err", err, "after", restoreRetry)
	}
	uc.mu.Lock()
	uc.restoring = nil
	if err == nil {
		uc.restored = true
	} else {
		uc.restoreAfter = time.Now().Add(restoreRetry)
	}
	uc.mu.Unlock()
	close(done)
}

// channelLive reports whether a channel is live: its state exists, some
// track has not ended for good, and media was published within
// restoreWithin.
func (rl *Relay) channelLive(ctx context.Context, channel string) (bool, error) {
	o, err := rl.store.Get(ctx, layout.ChannelStateKey(channel))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ch, err := timeline.UnmarshalChannel(o.Body)
	if err != nil {
		return false, err
	}
	states, err := trackStates(ctx, rl.store, channel, ch)
	if err != nil {
		return false, err
	}
	now := time.Now()
	ended := true
	for _, tr := range ch.Tracks {
		if st, ok := states[tr.ID]; ok && !st.Finished(now, tr.Timescale) {
			ended = false
		}
	}
	return !ended && now.Sub(ch.Epoch.Add(publishedEnd(ch, states))) <= restoreWithin, nil
}

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
// within restoreWithin. An encoder that starts (again) uploads its init
// segments, which replace anything restored.

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
	maxRecordedInits = 32
	// restoreWithin is how recent a channel's newest published media must
	// be for its uploads to be restored: longer than a relay takes to be
	// replaced (a new instance boots), shorter than a break between events.
	restoreWithin = 10 * time.Minute
)

// recordInit adds an init segment to the channel's record, replacing one
// of the same name (a conditional write: several init segments come at
// once).
func (rl *Relay) recordInit(ctx context.Context, channel, file string, body []byte) error {
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
		if old, ok := rec.Inits[file]; ok && string(old.Body) == string(body) && time.Since(old.At) < time.Hour {
			return nil // the same init segment again (an encoder resending it)
		}
		rec.Inits[file] = recordedInit{Body: body, At: time.Now().UTC()}
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
			continue // another init segment was recorded first: add to it
		}
		if err != nil {
			return fmt.Errorf("channel %s: write the uploads record: %w", channel, err)
		}
		return nil
	}
}

// restoreUploads starts the renditions the channel's record holds, if the
// channel is still live, and reports how many it started.
func (rl *Relay) restoreUploads(ctx context.Context, channel string, uc *uploadChannel, log *slog.Logger) int {
	live, err := rl.channelLive(ctx, channel)
	if err != nil {
		log.Warn("uploads not restored: the channel's state does not read", "err", err)
		return 0
	}
	if !live {
		return 0
	}
	o, err := rl.store.Get(ctx, layout.UploadsStateKey(channel))
	if errors.Is(err, store.ErrNotFound) {
		return 0
	}
	var rec uploadRecord
	if err == nil {
		err = json.Unmarshal(o.Body, &rec)
	}
	if err != nil {
		log.Warn("uploads not restored: the record does not read", "err", err)
		return 0
	}
	n := 0
	for _, file := range slices.Sorted(maps.Keys(rec.Inits)) {
		if err := rl.uploadInit(channel, uc, file, rec.Inits[file].Body, "restored", log.With("init", file)); err != nil {
			log.Warn("upload rendition not restored", "init", file, "err", err)
			continue
		}
		n++
	}
	log.Info("upload renditions restored from the store", "renditions", n, "of", len(rec.Inits))
	return n
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
	now := time.Now()
	ended := true
	var newest time.Duration
	for _, tr := range ch.Tracks {
		o, err := rl.store.Get(ctx, layout.TrackStateKey(channel, tr.ID))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		st, err := timeline.UnmarshalTrackState(o.Body)
		if err != nil || tr.Timescale == 0 {
			continue
		}
		if !st.Finished(now, tr.Timescale) {
			ended = false
		}
		newest = max(newest, time.Duration(float64(st.Timeline.End())/float64(tr.Timescale)*float64(time.Second)))
	}
	return !ended && now.Sub(ch.Epoch.Add(newest)) <= restoreWithin, nil
}

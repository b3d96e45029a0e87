// Package janitor removes what is past its retention: the local stack's
// stand-in for the bucket's lifecycle rules, which delete media (tagged
// layout.ExpireTag) once the retention period is over, and a channel's
// state (layout.StateExpireTag) layout.StateGrace later. Manifests never
// list what it may remove: they leave out fragments older than the
// retention period minus layout.RetentionMargin
// (timeline.Presentation.Oldest), and the janitor removes only what is
// older than the whole period. A live channel's state is never old
// enough: the manifest function writes its track states at every event
// and its index at least every layout.StateRefresh.
package janitor

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
)

// Lister is what the janitor needs of the store.
type Lister interface {
	List(ctx context.Context, prefix string, fn func([]store.Listed) error) error
	Delete(ctx context.Context, keys []string) error
}

// Sweep deletes, at time now, what the lifecycle rules would have
// (layout.LifetimeOf): fragments and end markers written more than
// retention ago, and a channel's index and track states last written
// more than retention plus layout.StateGrace ago. Init segments stay (a
// live track still needs its own, however old), and so do the relay's
// records. It returns how many objects it deleted.
func Sweep(ctx context.Context, st Lister, now time.Time, retention time.Duration) (int, error) {
	cutoff := map[layout.Lifetime]time.Time{
		layout.ExpiresWithMedia: now.Add(-retention),
		layout.ExpiresWithState: now.Add(-retention - layout.StateGrace),
	}
	deleted := 0
	for _, prefix := range []string{layout.LivePrefix, layout.StatePrefix} {
		err := st.List(ctx, prefix, func(page []store.Listed) error {
			var keys []string
			for _, o := range page {
				if before, ok := cutoff[layout.LifetimeOf(o.Key)]; ok && o.Modified.Before(before) {
					keys = append(keys, o.Key)
				}
			}
			if err := st.Delete(ctx, keys); err != nil {
				return err
			}
			deleted += len(keys)
			return nil
		})
		if err != nil {
			return deleted, fmt.Errorf("retention sweep of %s: %w", prefix, err)
		}
	}
	return deleted, nil
}

// Run sweeps every interval what is older than retention, as the
// lifecycle rule does on AWS, until ctx ends. A failed sweep is logged
// and tried again at the next tick.
func Run(ctx context.Context, st Lister, retention, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := Sweep(ctx, st, time.Now(), retention)
		if err != nil {
			log.Warn("sweep failed", "err", err)
			continue
		}
		if n > 0 {
			log.Info("removed media and state past retention", "objects", n, "retention", retention)
		}
	}
}

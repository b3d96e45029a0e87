// Package janitor removes media past a channel's retention period: the
// local stack's stand-in for the bucket's lifecycle rule, which deletes
// what carries layout.ExpireTag once the retention period is over.
// Manifests never list what it may remove: they leave out fragments older
// than the retention period minus layout.RetentionMargin
// (timeline.Presentation.Oldest), and the janitor removes only what is
// older than the whole period.
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

// Sweep deletes the fragments and end markers under the live prefix that
// were written before cutoff. Init segments stay (a live track still needs
// its own, however old), and so does the state. It returns how many
// objects it deleted.
func Sweep(ctx context.Context, st Lister, cutoff time.Time) (int, error) {
	deleted := 0
	err := st.List(ctx, layout.LivePrefix, func(page []store.Listed) error {
		var keys []string
		for _, o := range page {
			if !o.Modified.Before(cutoff) {
				continue
			}
			obj, err := layout.Parse(o.Key)
			if err != nil || obj.Kind != layout.KindFragment && obj.Kind != layout.KindEnd {
				continue
			}
			keys = append(keys, o.Key)
		}
		if err := st.Delete(ctx, keys); err != nil {
			return err
		}
		deleted += len(keys)
		return nil
	})
	if err != nil {
		return deleted, fmt.Errorf("retention sweep: %w", err)
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
		n, err := Sweep(ctx, st, time.Now().Add(-retention))
		if err != nil {
			log.Warn("sweep failed", "err", err)
			continue
		}
		if n > 0 {
			log.Info("removed media past retention", "objects", n, "retention", retention)
		}
	}
}

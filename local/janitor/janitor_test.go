package janitor_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/janitor"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
)

func TestSweepRemovesOldMediaOnly(t *testing.T) {
	_, st := testtool.Store(t, "janitor-test")
	ctx := context.Background()
	v := layout.TrackID{Name: "video", Bitrate: 1000}
	keys := []string{
		layout.FragmentKey("ch", v, 0), layout.FragmentKey("ch", v, 20), layout.EndKey("ch", v, 40),
		layout.InitKey("ch", v), layout.TrackStateKey("ch", v), layout.ChannelStateKey("ch"),
		"live/not-in-the-layout",
	}
	for _, k := range keys {
		if _, err := st.Put(ctx, k, []byte("x"), store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing is old yet.
	if n, err := janitor.Sweep(ctx, st, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("sweep of fresh objects: %d, %v", n, err)
	}
	// Everything is: only fragments and end markers go.
	n, err := janitor.Sweep(ctx, st, time.Now().Add(time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("sweep: deleted %d, %v; want 3", n, err)
	}
	var left []string
	if err := st.List(ctx, "", func(page []store.Listed) error {
		for _, o := range page {
			left = append(left, o.Key)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := keys[3:]
	slices.Sort(want)
	slices.Sort(left)
	if !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
}

package stack_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
)

// The local stack calls the manifest handler for the objects AWS's bucket
// notification would (infra: keys under live/ ending in ")"): a push's
// fragments and end markers, not its init segments nor the state that the
// relay and the handler write.
func TestEventsAreTheBucketNotifications(t *testing.T) {
	body, err := os.ReadFile("../../shared/ingest/testdata/ffmpeg-isml.ismv")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var notified []string
	st, err := stack.Start(context.Background(), stack.Options{
		IngestAddr: "127.0.0.1:0", EdgeAddr: "127.0.0.1:0",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		EventTap: func(ev events.S3Event) {
			key, err := url.QueryUnescape(ev.Records[0].S3.Object.Key)
			if err != nil {
				t.Errorf("event key %q: %v", ev.Records[0].S3.Object.Key, err)
			}
			mu.Lock()
			notified = append(notified, key)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	resp, err := http.Post(st.IngestURL+"/live/notify.isml/Streams(enc1)", "video/mp4", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("push: %s", resp.Status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st.Settle(ctx)

	var want, silent []string
	kinds := map[string]int{}
	err = st.Store.List(ctx, "", func(page []store.Listed) error {
		for _, o := range page {
			obj, err := layout.Parse(o.Key)
			switch {
			case err == nil && obj.Kind == layout.KindFragment:
				kinds["fragment"]++
				want = append(want, o.Key)
			case err == nil && obj.Kind == layout.KindEnd:
				kinds["end marker"]++
				want = append(want, o.Key)
			case err == nil && obj.Kind == layout.KindInit:
				kinds["init segment"]++
				silent = append(silent, o.Key)
			case len(o.Key) > len(layout.StatePrefix) && o.Key[:len(layout.StatePrefix)] == layout.StatePrefix:
				kinds["state"]++
				silent = append(silent, o.Key)
			default:
				t.Errorf("stored %q, which is neither media nor state", o.Key)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The fixture: three tracks of two fragments, each ended by the push.
	if kinds["fragment"] != 6 || kinds["end marker"] != 3 || kinds["init segment"] != 3 || kinds["state"] == 0 {
		t.Fatalf("stored %v; want 6 fragments, 3 end markers, 3 init segments and the state", kinds)
	}
	mu.Lock()
	got := slices.Clone(notified)
	mu.Unlock()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("events for\n  %q\nwant one for each fragment and end marker\n  %q", got, want)
	}
	for _, k := range silent {
		if slices.Contains(got, k) {
			t.Errorf("an event for %q", k)
		}
	}
}

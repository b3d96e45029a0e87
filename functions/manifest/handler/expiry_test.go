package handler_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/internal/testtool/bucket"
	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/store/storetest"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// taggedPuts records the tag set of every write.
type taggedPuts struct {
	handler.ObjectStore
	mu   sync.Mutex
	tags map[string][]string // key: the tag set of each write, in order
}

func (p *taggedPuts) Put(ctx context.Context, key string, body []byte, o store.PutOptions) (string, error) {
	p.mu.Lock()
	p.tags[key] = append(p.tags[key], o.Tagging)
	p.mu.Unlock()
	return p.ObjectStore.Put(ctx, key, body, o)
}

// The function's state carries the tag of the state's lifecycle rule, and
// a channel's index, written when a track appears, is written again by
// the first event that finds it layout.StateRefresh old: over 36 hours of
// hourly events, three writes of the index (twice a day, about two PUTs
// a channel a day), against one track state write per event.
func TestStateIsTaggedAndTheIndexWrittenAgainWhileLive(t *testing.T) {
	ctx := context.Background()
	objs, err := bucket.Load(storedPush)
	if err != nil {
		t.Fatal(err)
	}
	mem := &storetest.Mem{}
	for _, o := range objs {
		if strings.HasSuffix(o.Key, ".mp4") {
			if _, err := mem.Put(ctx, layout.LivePrefix+"ch.isml/"+o.Key, o.Body, store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := &taggedPuts{ObjectStore: mem, tags: map[string][]string{}}
	cfg := handler.DefaultConfig()
	h := handler.New(st, cfg, quiet)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	h.Now = func() time.Time { return now }
	video := layout.TrackID{Name: "video", Bitrate: 60000}
	const hours = 36
	for i := range uint64(hours) {
		start := i * 20_000_000
		key := layout.FragmentKey("ch", video, start)
		o := store.PutOptions{}
		if i > 0 {
			o.Metadata = map[string]string{layout.MetaPrev: strconv.FormatUint(start-20_000_000, 10)}
		}
		body := paddedFragment(t, start, 4096)
		if _, err := mem.Put(ctx, key, body, o); err != nil {
			t.Fatal(err)
		}
		if err := h.HandleS3(ctx, s3local.Event("b", key, "ObjectCreated:Put", int64(len(body)), "", i, now)); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Hour)
	}
	index, tracks := st.tags[layout.ChannelStateKey("ch")], st.tags[layout.TrackStateKey("ch", video)]
	if len(index) != 3 || len(tracks) != hours {
		t.Errorf("%d writes of the index and %d of the track state over %d hourly events; want 3 (registered, then every %v) and %d",
			len(index), len(tracks), hours, layout.StateRefresh, hours)
	}
	for key, tags := range st.tags {
		for _, tag := range tags {
			if tag != layout.StateExpireTag || layout.LifetimeOf(key) != layout.ExpiresWithState {
				t.Errorf("%s written with tags %q (its lifetime: %v), want %q", key, tag, layout.LifetimeOf(key), layout.StateExpireTag)
				break
			}
		}
	}
}

// A channel nothing touched for longer than the retention has had all its
// media expire, and its state goes too, in no fixed order (the lifecycle
// rule takes objects when it gets to them). An encoder that comes back
// meanwhile starts the channel anew, whatever is left of the state: its
// first fragment is listed at once, at now, and nothing of the channel's
// earlier life is.
func TestChannelStartsAnewOnceItsStateExpires(t *testing.T) {
	video := layout.TrackID{Name: "video", Bitrate: 60000}
	for _, tc := range []struct {
		name string
		gone []string
	}{
		{"nothing removed yet", nil},
		{"the index kept, the track states gone", []string{
			layout.TrackStateKey("ch", video), layout.TrackStateKey("ch", layout.TrackID{Name: "video", Bitrate: 30000}), layout.TrackStateKey("ch", layout.TrackID{Name: "audio", Bitrate: 32000})}},
		{"the index gone, the track states kept", []string{layout.ChannelStateKey("ch")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			_, st := newStore(t)
			base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
			evs := liveOnly(pushFixture(t, st, "ch", base))
			h := handlerAt(st, handler.DefaultConfig(), evs)
			for _, fe := range evs {
				if err := h.HandleS3(ctx, fe.ev); err != nil {
					t.Fatal(err)
				}
			}
			if err := st.Delete(ctx, tc.gone); err != nil {
				t.Fatal(err)
			}
			// Two days on, the encoder comes back on a new connection at
			// its own time, 600 s (a fresh handler: no warm cache).
			now := base.Add(48 * time.Hour)
			h = handler.New(st, handler.DefaultConfig(), quiet)
			h.Now = func() time.Time { return now }
			const start = 6_000_000_000
			key := layout.FragmentKey("ch", video, start)
			body := paddedFragment(t, start, 4096)
			if _, err := st.Put(ctx, key, body, store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := h.HandleS3(ctx, s3local.Event("b", key, "ObjectCreated:Put", int64(len(body)), "", 1, now)); err != nil {
				t.Fatal(err)
			}
			resp, err := h.HandleURL(ctx, urlRequest("GET", "/"+layout.MediaPlaylistPath("ch", video)))
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("playlist: %d %v %s", resp.StatusCode, err, resp.Body)
			}
			if !strings.Contains(resp.Body, "Fragments(video=6000000000)") || strings.Contains(resp.Body, "Fragments(video=0)") {
				t.Errorf("the playlist lists the earlier life, or not the new fragment:\n%s", resp.Body)
			}
			if got := resp.Headers[handler.HeaderNewestFragment]; got != now.Format("2006-01-02T15:04:05.000Z07:00") {
				t.Errorf("newest fragment ends %s, want now (%s)", got, now)
			}
			p, err := h.Presentation(ctx, "ch")
			if err != nil {
				t.Fatal(err)
			}
			for _, tv := range p.Tracks {
				if tv.ID != video {
					t.Errorf("track %s of the earlier life is listed", tv.ID)
				}
			}
			var ts *timeline.TrackState
			if o, err := st.Get(ctx, layout.TrackStateKey("ch", video)); err != nil {
				t.Fatal(err)
			} else if ts, err = timeline.UnmarshalTrackState(o.Body); err != nil {
				t.Fatal(err)
			}
			if !ts.Epoch.Equal(p.Epoch) || ts.Timeline.Len() != 1 {
				t.Errorf("track state of epoch %v with %d fragments; want the channel's, %v, with the new fragment alone", ts.Epoch, ts.Timeline.Len(), p.Epoch)
			}
		})
	}
}

package integration_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// One bad push cannot poison a channel for everyone after it: into a
// channel live for a minute, a restarted encoder's push whose audio
// starts ten years after its video is refused (400, saying why), and the
// next good push, an encoder restarted from zero, is published at the
// channel's time now. Before, the bad push was taken: its audio published
// ten years ahead, and every later push was rebased onto that.
func TestABadPushCannotPoisonTheChannel(t *testing.T) {
	_, st := testtool.Store(t, "relay-test")
	const live = time.Minute
	base := time.Now().Add(-live)
	n := newNotifier(t, st, handler.DefaultConfig(), base)
	hs := httptest.NewServer(relay.New(n, relay.DefaultConfig(), quiet).Handler())
	t.Cleanup(hs.Close)
	tracks := []synth.Track{{Kind: timeline.Video, Bitrate: 100_000}, {Kind: timeline.Audio, Bitrate: 64_000}}
	stream := func(offset time.Duration) *synth.Stream {
		s, err := synth.New(synth.Config{Tracks: tracks, AudioOffset: offset})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	push := func(s *synth.Stream, ks []int) (int, string) {
		return testtool.Do(t, "POST", hs.URL+"/live/ch.isml/Streams(enc)", synthBody(t, s, ks, false), true)
	}
	if code, msg := push(stream(0), seq(0, int(live/(2*time.Second)))); code != 200 {
		t.Fatalf("the channel's first push: %d %s", code, msg)
	}
	year := 36525 * 24 * (time.Hour / 100)
	if code, msg := push(stream(10*year), seq(0, 3)); code != 400 || !strings.Contains(msg, "the tracks of a stream start within") {
		t.Fatalf("audio ten years after its video: %d %q, want 400 saying the tracks disagree", code, msg)
	}
	if code, msg := push(stream(0), seq(0, 3)); code != 200 {
		t.Fatalf("the next good push: %d %s", code, msg)
	}
	now := time.Since(base)
	o, err := st.Get(context.Background(), layout.ChannelStateKey("ch"))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := timeline.UnmarshalChannel(o.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Tracks) != 2 {
		t.Fatalf("%d tracks, want 2", len(ch.Tracks))
	}
	for _, tr := range ch.Tracks {
		end := fmp4.Duration(int64(trackState(t, st, "ch", tr.ID).Timeline.End()), uint32(tr.Timescale))
		// The good push ends 6 s after the channel's clock when it came.
		if end < live || end > now+10*time.Second {
			t.Errorf("track %s published up to %v, want about now (%v)", tr.ID, end, now)
		}
	}
}

package relay_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// liveChannel makes channel a channel that has played for the last
// played of wall-clock time, and published all of it, as the manifest
// function leaves its state: the relay's clock reads it. It returns the
// channel's epoch.
func liveChannel(t *testing.T, st *store.Store, channel string, played time.Duration) time.Time {
	t.Helper()
	ctx := context.Background()
	epoch := time.Now().Add(-played).UTC()
	video := layout.TrackID{Name: "video", Bitrate: 20_000}
	body, err := timeline.MarshalChannel(&timeline.Channel{Version: timeline.StateVersion, Name: channel, Epoch: epoch,
		Tracks: []timeline.Track{{ID: video, Kind: timeline.Video, Timescale: 10}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, layout.ChannelStateKey(channel), body, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	n := uint64(played / (2 * time.Second))
	body, err = timeline.MarshalTrackState(&timeline.TrackState{Timeline: timeline.Timeline{Runs: []timeline.Run{{Start: 0, Duration: 20, Count: n}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, layout.TrackStateKey(channel, video), body, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	return epoch
}

// synthPush is a push of three 2 s fragments of a small video and an
// audio track, made with cfg's timing.
func synthPush(t *testing.T, cfg synth.Config) []byte {
	t.Helper()
	return synthPushOf(t, cfg, synth.Range{Count: 3, End: true})
}

// synthPushOf is a push of the fragments r of a small video and an audio
// track, made with cfg's timing.
func synthPushOf(t *testing.T, cfg synth.Config, r synth.Range) []byte {
	t.Helper()
	cfg.Tracks = []synth.Track{{Kind: timeline.Video, Bitrate: 20_000, Width: 32, Height: 16}, {Kind: timeline.Audio, Bitrate: 8_000}}
	s, err := synth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := s.WriteTo(context.Background(), &b, r); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A push whose timing no encoder sends, into a live channel, is refused
// with 400 and the reason; it leaves the channel's store and clock as
// they were (refused at its moov or first fragment), or adds only its
// first track's first fragment, on the channel's clock (refused at a
// later track's first fragment: the first was on time, the clock put it
// there); and the next good push, an encoder restarted from zero, is
// stored at the channel's time now, not years away.
func TestABadPushPoisonsNoChannel(t *testing.T) {
	const played = 1000 * time.Second
	good := synthPush(t, synth.Config{AudioOffset: -21333 * time.Microsecond})
	for _, tc := range []struct {
		name, reason string
		body         []byte
		firstTrack   bool // the first track's first fragment is stored
	}{
		{"audio ten years after its video", "the tracks of a stream start within 10s",
			synthPush(t, synth.Config{AudioOffset: 10 * 36525 * 24 * (time.Hour / 100)}), true},
		{"audio a minute before its video", "before time zero", synthPush(t, synth.Config{AudioOffset: -time.Minute}), true},
		{"timescale 1", "timescale 1:", synthPush(t, synth.Config{Timescale: 1}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs, st, _, _ := newRelay(t, relay.DefaultConfig())
			epoch := liveChannel(t, st, "ch", played)
			before := snapshot(t, st)
			pushedAt := time.Since(epoch)
			code, msg := testtool.Do(t, "POST", hs.URL+"/live/ch.isml/Streams(enc)", tc.body, true)
			if code != 400 || !strings.Contains(msg, tc.reason) {
				t.Fatalf("%d %q, want 400 saying %q", code, msg, tc.reason)
			}
			after := snapshot(t, st)
			for k, v := range before {
				if after[k] != v {
					t.Errorf("%s changed", k)
				}
			}
			for k := range after {
				if _, ok := before[k]; ok {
					continue
				}
				obj, err := layout.Parse(k)
				switch {
				case !tc.firstTrack:
					t.Errorf("the refused push wrote %s", k)
				case k == layout.ClockStateKey("ch"):
					// The first track was off the clock (it starts at
					// zero): the offset that put it on is recorded.
				case err != nil || obj.Track.Name != "video":
					t.Errorf("the refused push wrote %s, not of its first track", k)
				case obj.Kind == layout.KindFragment:
					onTheClock(t, k, obj, pushedAt, time.Since(epoch))
				}
			}
			// The next push, from zero, is rebased onto the channel's
			// clock: its fragments start now.
			pushedAt = time.Since(epoch)
			if code, msg := testtool.Do(t, "POST", hs.URL+"/live/ch.isml/Streams(enc)", good, true); code != 200 {
				t.Fatalf("the good push after it: %d %q", code, msg)
			}
			done := time.Since(epoch)
			n := 0
			for k := range snapshot(t, st) {
				if obj, err := layout.Parse(k); err == nil && obj.Kind == layout.KindFragment && after[k] == "" {
					n++
					onTheClock(t, k, obj, pushedAt, done+4*time.Second) // three fragments: the last starts 4 s on
				}
			}
			want := 6
			if tc.firstTrack {
				want-- // its first video fragment is the one stored already
			}
			if n != want {
				t.Errorf("the good push stored %d new fragments, want %d", n, want)
			}
		})
	}
}

// onTheClock checks that the stored fragment k (obj) starts between from
// less a fragment (it ends at now, rounded to a second) and to: on the
// channel's clock.
func onTheClock(t *testing.T, k string, obj layout.Object, from, to time.Duration) {
	t.Helper()
	at := time.Duration(obj.Start) * 100 // 10 MHz ticks
	if at < from-3*time.Second || at > to+time.Second {
		t.Errorf("%s starts at %v on the channel's clock, want between %v and %v", k, at, from-3*time.Second, to+time.Second)
	}
}

// A live server manifest larger than any encoder's (a uuid box over
// ingest.MaxServerManifest) is refused with 413 once its header is read:
// a push that claims a 23 MB one and sends 4 KiB of it gets 413 at once
// (before, the relay read on, and parsed whole the one that came: 134 MB
// of heap per push), and nothing is stored.
func TestAnOversizeLiveServerManifestIs413(t *testing.T) {
	hs, st, rec, _ := newRelay(t, relay.DefaultConfig())
	push := synthPush(t, synth.Config{SMIL: true})
	uuid := nth(t, push, "uuid", 0)
	body := append(bytes.Clone(push[:uuid.at]), 0x01, 0x70, 0x00, 0x00) // 23 MiB
	body = append(append(body, push[uuid.at+4:uuid.at+uuid.size]...), make([]byte, 4096)...)
	code, msg := testtool.Do(t, "POST", hs.URL+"/live/ch.isml/Streams(enc)", body, true)
	if code != 413 || !strings.Contains(msg, "uuid box of 24117248 bytes at offset") {
		t.Fatalf("%d %q, want 413 naming the uuid box", code, msg)
	}
	rec.Wait(t, slog.LevelWarn, "push refused: box too large", map[string]string{"channel": "ch"})
	if ks := testtool.Keys(t, st); len(ks) != 0 {
		t.Errorf("the refused push stored %v", ks)
	}
}

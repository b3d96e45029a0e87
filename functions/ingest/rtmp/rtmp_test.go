package rtmp

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/message"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// checkWholeGOPs fails unless every stored video fragment is one whole
// group of pictures of the synthetic media (50 pictures: 2 s at 25 fps).
func checkWholeGOPs(t *testing.T, got stored) {
	t.Helper()
	for id, frags := range got.fragments {
		if !strings.HasPrefix(id, "video") {
			continue
		}
		for _, f := range frags {
			if f.Samples != 50 {
				t.Errorf("%s fragment at %d: %d pictures, want 50 (a whole 2 s GOP)", id, f.Start, f.Samples)
			}
		}
	}
}

// checkEnds fails unless every track has one end marker, an end of
// stream when eos, else a drop.
func checkEnds(t *testing.T, got stored, tracks int, eos bool) {
	t.Helper()
	want := `{"eos":false}`
	if eos {
		want = `{"eos":true}`
	}
	if len(got.ends) != tracks {
		t.Errorf("end markers %v, want one per track (%d)", got.ends, tracks)
	}
	for _, e := range got.ends {
		if !strings.HasSuffix(e, want) {
			t.Errorf("end marker %s, want %s", e, want)
		}
	}
}

// A publish that the encoder ends (FCUnpublish, deleteStream) stores every
// group of pictures as a fragment per track, ends each track with an end
// of stream, and shows on /status while it runs.
func TestPublishStoresFragmentsAndEnds(t *testing.T) {
	h := newHarness(t, relay.DefaultConfig(), Config{})
	m := newMedia(t, 8, 2*time.Second)
	e, err := dial(t, h.url("news"), m)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.send(0, len(m.samples)); err != nil {
		t.Fatal(err)
	}
	status := h.rl.Status()
	if len(status.Channels) != 1 || status.Channels[0].Channel != "news" || status.Channels[0].Streams[0].Kind != "rtmp" ||
		status.Channels[0].Streams[0].Stream != "rtmp" || status.Channels[0].Streams[0].Bytes == 0 {
		t.Errorf("status: %+v", status.Channels)
	}
	if err := e.end(); err != nil {
		t.Fatal(err)
	}
	e.waitClosed(t)
	h.waitIdle(t)
	got := h.st.channel(t, "news")
	if v, a := got.count(timeline.Video), got.count(timeline.Audio); v != 4 || a != 4 {
		t.Errorf("stored %d video and %d audio fragments, want 4 and 4: %v", v, a, got.fragments)
	}
	checkWholeGOPs(t, got)
	checkEnds(t, got, 2, true)
}

// A connection that breaks mid-GOP is a drop: the groups of pictures
// before the cut are stored, nothing of the one it was sending, and the
// tracks end with a drop marker (the channel stays live for a reconnect).
func TestDropStoresNothingOfTheCutGOP(t *testing.T) {
	h := newHarness(t, relay.DefaultConfig(), Config{})
	m := newMedia(t, 8, 2*time.Second)
	e, err := dial(t, h.url("news"), m)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.send(0, m.keyIndex(2)+30); err != nil { // GOP 2 cut after 30 samples
		t.Fatal(err)
	}
	e.c.Close()
	h.waitIdle(t)
	got := h.st.channel(t, "news")
	if v := got.count(timeline.Video); v != 2 {
		t.Errorf("stored %d video fragments, want 2 (GOPs 0 and 1): %v", v, got.fragments)
	}
	checkWholeGOPs(t, got)
	checkEnds(t, got, 2, false)
	if line := strings.Join(h.rec.Lines(), "\n"); !strings.Contains(line, "rtmp publish dropped") {
		t.Errorf("the drop is not logged:\n%s", line)
	}
}

// What the relay refuses it answers with an onStatus error that says why
// (ffmpeg prints it), logs, and never shows the secret.
func TestRefusalsSayWhy(t *testing.T) {
	const secret = "the-news-secret-0123"
	cfg := relay.DefaultConfig()
	cfg.Secrets = relay.Secrets{PerChannel: map[string]string{"news": secret}}
	m := newMedia(t, 3, 2*time.Second)
	cases := []struct {
		name   string
		url    string // after the host, with the stream key after #
		play   bool
		before func(t *testing.T, h *harness)
		want   []string // in the encoder's error
	}{
		{name: "a play request", url: "/live#news", play: true, want: []string{codePlayFailed, "publishing only"}},
		{name: "another application", url: "/app#news?secret=" + secret, want: []string{codeBadName, `application "app"`}},
		{name: "a stream key that does not parse", url: "/live#news?token=" + secret, want: []string{codeBadName, "secret={secret}"}},
		{name: "no secret", url: "/live#news", want: []string{codeUnauthorized, "authentication required"}},
		{name: "a wrong secret", url: "/live#news?secret=" + strings.ToUpper(secret), want: []string{codeUnauthorized, "wrong secret"}},
		{name: "a channel without a secret", url: "/live#other?secret=" + secret, want: []string{codeUnauthorized, "wrong secret"}},
		{name: "a second publish of a stream publishing", url: "/live#news?secret=" + secret, before: func(t *testing.T, h *harness) {
			e, err := dial(t, h.url("news?secret="+secret), m)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.send(0, 10); err != nil {
				t.Fatal(err)
			}
		}, want: []string{codeBadName, "stream key news?secret=(hidden) is publishing from 127.0.0.1:", "publishes as news/{name}"}},
		{name: "while the relay shuts down", url: "/live#news?secret=" + secret, before: func(t *testing.T, h *harness) {
			if err := h.rl.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		}, want: []string{codeFailed, "relay shutting down: publish to another relay"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, cfg, Config{})
			if tc.before != nil {
				tc.before(t, h)
			}
			var err error
			if tc.play {
				err = play(t, "rtmp://"+h.addr+tc.url)
			} else {
				_, err = dial(t, "rtmp://"+h.addr+tc.url, m)
			}
			if err == nil {
				t.Fatal("published")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the encoder's error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(strings.ToLower(err.Error()), strings.ToLower(secret)) {
				t.Errorf("the answer shows the secret: %v", err)
			}
			lines := strings.Join(h.rec.Lines(), "\n")
			if !strings.Contains(lines, "rtmp publish") {
				t.Errorf("the refusal is not logged:\n%s", lines)
			}
			if strings.Contains(strings.ToLower(lines), strings.ToLower(secret)) {
				t.Errorf("the log shows the secret:\n%s", lines)
			}
		})
	}
}

// A publisher silent for a while (its network path broke, the relay
// has not noticed yet) gives its stream key to the encoder's reconnect:
// the silent one ends as a drop, saying why, and the new one publishes.
func TestAReconnectTakesASilentPublishersPlace(t *testing.T) {
	h := newHarness(t, relay.DefaultConfig(), Config{})
	h.srv.staleAfter = 200 * time.Millisecond
	m := newMedia(t, 8, 2*time.Second)
	old, err := dial(t, h.url("news"), m)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.send(0, m.keyIndex(1)+5); err != nil {
		t.Fatal(err)
	}
	// Live: refused.
	if _, err := dial(t, h.url("news"), m); err == nil || !strings.Contains(err.Error(), "is publishing from") {
		t.Fatalf("a second publish while the first is live: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // the old one silent past staleAfter
	got := h.publishAll(t, "news", "news", m, 30*time.Second)
	if v := got.count(timeline.Video); v != 1+4 {
		t.Errorf("stored %d video fragments, want the old publish's GOP 0 and the new one's 4", v)
	}
	lines := strings.Join(h.rec.Lines(), "\n")
	for _, want := range []string{"rtmp publish takes the place of a silent connection", "its stream key taken by a new publish"} {
		if !strings.Contains(lines, want) {
			t.Errorf("the log does not say %q:\n%s", want, lines)
		}
	}
}

// play asks to play u (gortmplib's client, the stream key after #).
func play(t *testing.T, u string) error {
	t.Helper()
	return dialPlay(t, u)
}

// Redundant encoders publish the same media with the same timestamps as
// two streams of one channel (news/a, news/b): the channel's fragments are
// stored once, the second copy of each is found stored, and both end.
func TestRedundantEncodersAreDeduplicated(t *testing.T) {
	h := newHarness(t, relay.DefaultConfig(), Config{})
	m := newMedia(t, 8, 2*time.Second)
	var encs []*encoder
	for _, name := range []string{"a", "b"} {
		e, err := dial(t, h.url("news/"+name), m)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.metadata(300, 64); err != nil {
			t.Fatal(err)
		}
		encs = append(encs, e)
	}
	for k := 0; k <= 4; k++ { // GOP by GOP, each encoder in turn
		for _, e := range encs {
			if err := e.send(m.keyIndex(k), m.keyIndex(k+1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, e := range encs {
		if err := e.end(); err != nil {
			t.Fatal(err)
		}
		e.waitClosed(t)
	}
	h.waitIdle(t)
	got := h.st.channel(t, "news")
	if len(got.fragments) != 2 || got.count(timeline.Video) != 4 || got.count(timeline.Audio) != 4 {
		t.Errorf("stored %v; want one video and one audio track (bitrates 300000 and 64000, as declared), 4 fragments each", got.fragments)
	}
	if _, ok := got.fragments["video@300000"]; !ok {
		t.Errorf("no track video_300000: the declared bitrate was not used: %v", got.fragments)
	}
	dupes := 0
	for _, r := range h.rec.Records() {
		if r.Message == "rtmp publish ended" {
			r.Attrs(func(a slogAttr) bool {
				if a.Key == "duplicates" {
					dupes += int(a.Value.Int64())
				}
				return true
			})
		}
	}
	if dupes != 8 {
		t.Errorf("%d fragments found stored already, want 8 (the second copy of each)", dupes)
	}
}

// The relay's Shutdown stops a publish at once, even a silent one: what
// its packager holds is stored (the GOP in progress as a shorter
// fragment, from its key frame), the tracks end as drops (the encoder
// reconnects to another relay), and Shutdown returns once it has.
func TestShutdownStoresWhatThePublishHolds(t *testing.T) {
	h := newHarness(t, relay.DefaultConfig(), Config{})
	m := newMedia(t, 20, 2*time.Second)
	e, err := dial(t, h.url("news"), m)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.send(0, m.keyIndex(2)+10); err != nil {
		t.Fatal(err)
	}
	for h.st.channel(t, "news").count(timeline.Video) < 2 { // GOP 1 is out at key frame 2
		time.Sleep(time.Millisecond)
	}
	// The encoder sends nothing more: Shutdown must not wait for it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.rl.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	got := h.st.channel(t, "news")
	for id, frags := range got.fragments {
		if !strings.HasPrefix(id, "video") {
			continue
		}
		if len(frags) != 3 || frags[0].Samples != 50 || frags[1].Samples != 50 || frags[2].Samples < 1 || frags[2].Samples > 10 {
			t.Errorf("%s: %+v; want GOPs 0 and 1 whole, and GOP 2's first pictures (1 to 10)", id, frags)
		}
	}
	checkEnds(t, got, 2, false)
	if errs := h.rl.Status().RecentErrors; len(errs) != 0 {
		t.Errorf("a shutdown is not an error: %+v", errs)
	}
}

// Key frames further apart than MaxGOP end the stream with an error that
// says so on /status and in the log, and store nothing of the long GOP.
func TestKeyFramesTooFarApartEndTheStream(t *testing.T) {
	h := newHarness(t, relay.DefaultConfig(), Config{MaxGOP: 3 * time.Second})
	m := newMedia(t, 12, 4*time.Second)
	e, err := dial(t, h.url("news"), m)
	if err != nil {
		t.Fatal(err)
	}
	_ = e.send(0, len(m.samples))
	if told := e.waitClosed(t); !strings.Contains(told, "key frames too far apart") {
		t.Errorf("the encoder was told %q", told)
	}
	h.waitIdle(t)
	errs := h.rl.Status().RecentErrors
	if len(errs) != 1 || errs[0].Channel != "news" || errs[0].Kind != "protocol" || !strings.Contains(errs[0].Message, "key frames too far apart") ||
		!strings.Contains(errs[0].Message, "keyframe interval") {
		t.Fatalf("recent errors %+v; want the GOP's", errs)
	}
	if got := h.st.channel(t, "news"); got.count(timeline.Video) != 0 {
		t.Errorf("stored %v of a stream whose first GOP is too long", got.fragments)
	}
	if lines := strings.Join(h.rec.Lines(), "\n"); !strings.Contains(lines, "key frames too far apart") {
		t.Errorf("not in the log:\n%s", lines)
	}
}

// ffmpeg's 32-bit timestamps wrap after 49.7 days: the stream goes on
// across the wrap, its fragments' times still rising.
func TestTimestampsUnwrapAcrossTheWrap(t *testing.T) {
	h := newHarness(t, relay.DefaultConfig(), Config{})
	m := newMedia(t, 8, 2*time.Second)
	got := h.publishAll(t, "news", "news", m, time.Duration(1<<32-3000)*time.Millisecond) // the wrap 3 s in
	if v := got.count(timeline.Video); v != 4 {
		t.Fatalf("stored %d video fragments, want 4: %v", v, got.fragments)
	}
	for id, frags := range got.fragments {
		for i := 1; i < len(frags); i++ {
			if frags[i].Start <= frags[i-1].Start {
				t.Errorf("%s: fragment %d starts at %d, after %d", id, i, frags[i].Start, frags[i-1].Start)
			}
		}
	}
	checkEnds(t, got, 2, true)
}

var _ = fmp4.Inspect
var _ = errors.New
var _ = amf0.Object{}
var _ = message.CommandAMF0{}

package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	checkpkg "github.com/smoothcast/smoothcast/internal/check"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

func TestParseTracks(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []synth.Track
		err  bool
	}{
		{in: "video:800k,video:300k:320x180,audio:96k", want: []synth.Track{
			{Kind: timeline.Video, Bitrate: 800_000},
			{Kind: timeline.Video, Bitrate: 300_000, Width: 320, Height: 180},
			{Kind: timeline.Audio, Bitrate: 96_000},
		}},
		{in: "video:1.5M:1280x720", want: []synth.Track{{Kind: timeline.Video, Bitrate: 1_500_000, Width: 1280, Height: 720}}},
		{in: "audio:128000", want: []synth.Track{{Kind: timeline.Audio, Bitrate: 128_000}}},
		{in: "ladder", want: synth.Ladder()},
		{in: "text:100k", err: true},
		{in: "video", err: true},
		{in: "video:fast", err: true},
		{in: "video:10", err: true},
		{in: "audio:96k:640x360", err: true},
		{in: "video:800k:640", err: true},
		{in: "video:800k:641x360", err: true},
		{in: "video:800k:1:2:3", err: true},
	} {
		got, err := parseTracks(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("parseTracks(%q): %v", tc.in, err)
			continue
		}
		if !tc.err && !equalTracks(got, tc.want) {
			t.Errorf("parseTracks(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func equalTracks(a, b []synth.Track) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNewPushPlan(t *testing.T) {
	const secrets = "news=0123456789abcdef-news\n*=0123456789abcdef-any\n"
	for _, tc := range []struct {
		mode, channels, tracks string
		want                   []string // channel/stream
		wantSecret             map[string]string
	}{
		{mode: "smooth", channels: "demo,news", tracks: "video:800k,audio:96k",
			want:       []string{"demo/enc1", "news/enc1"},
			wantSecret: map[string]string{"demo": "0123456789abcdef-any", "news": "0123456789abcdef-news"}},
		{mode: "per-track", channels: "demo", tracks: "video:800k,video:800k:320x180,audio:96k",
			want: []string{"demo/video800k", "demo/video800k-2", "demo/audio96k"}},
		{mode: "cmaf", channels: "demo", tracks: "video:1.5M,audio:96500",
			want: []string{"demo/video1500k", "demo/audio96500"}},
	} {
		p, err := newPushPlan("http://relay:8080/", tc.channels, tc.tracks, tc.mode, secrets, 9*time.Second, 2*time.Second, true)
		if err != nil {
			t.Fatalf("%s: %v", tc.mode, err)
		}
		var got []string
		for _, s := range p.streams {
			got = append(got, s.channel+"/"+s.name)
			if s.cfg.CMAF != (tc.mode == "cmaf") || s.cfg.SMIL != (tc.mode != "cmaf") {
				t.Errorf("%s %s: CMAF %v SMIL %v", tc.mode, s.name, s.cfg.CMAF, s.cfg.SMIL)
			}
			if w, ok := tc.wantSecret[s.channel]; ok && s.secret != w {
				t.Errorf("%s %s: secret %q, want %q", tc.mode, s.channel, s.secret, w)
			}
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: streams %q, want %q", tc.mode, got, tc.want)
		}
		if p.count != 5 {
			t.Errorf("%s: %d fragments for 9 s of 2 s, want 5", tc.mode, p.count)
		}
		if u := p.streamURL(p.streams[0]); !strings.HasPrefix(u, "http://relay:8080/live/demo.isml/Streams(") {
			t.Errorf("stream URL %q", u)
		}
	}
	p, err := newPushPlan("http://relay", "demo", "audio:96k", "smooth", "plainsecret", 0, time.Second, true)
	if err != nil || p.count != math.MaxInt || p.streams[0].secret != "plainsecret" {
		t.Errorf("duration 0 / a secret ParseSecrets refuses: %v, count %d, secret %q", err, p.count, p.streams[0].secret)
	}
	for _, bad := range [][]string{
		{"ftp://x", "demo", "audio:96k", "smooth", "2s"},
		{"http://x", "de mo", "audio:96k", "smooth", "2s"},
		{"http://x", "demo", "audio:96k", "hls", "2s"},
		{"http://x", "demo", "audio:96k", "smooth", "30ms"},
		{"http://x", "demo", "video:800k", "smooth", "1010ms"}, // not whole frames
	} {
		frag, _ := time.ParseDuration(bad[4])
		if _, err := newPushPlan(bad[0], bad[1], bad[2], bad[3], "", time.Minute, frag, true); err == nil {
			t.Errorf("newPushPlan%q accepted", bad)
		}
	}
}

// boxes splits a push body into its top-level box types.
func boxes(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	for len(b) >= 8 {
		n := int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
		if n < 8 || n > len(b) {
			t.Fatalf("box %q of %d bytes in %d", b[4:8], n, len(b))
		}
		out = append(out, string(b[4:8]))
		b = b[n:]
	}
	if len(b) > 0 {
		t.Fatalf("%d trailing bytes", len(b))
	}
	return out
}

// receiver is a relay stand-in that keeps what each push sent.
type receiver struct {
	mu     sync.Mutex
	bodies map[string][]byte
	errs   map[string]error
	auth   map[string]string
}

func newReceiver(t *testing.T, answer func(w http.ResponseWriter, r *http.Request) bool) string {
	rc := &receiver{bodies: map[string][]byte{}, errs: map[string]error{}, auth: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if answer != nil && answer(w, r) {
			return
		}
		b, err := io.ReadAll(r.Body)
		_, pass, _ := r.BasicAuth()
		rc.mu.Lock()
		rc.bodies[r.URL.Path], rc.errs[r.URL.Path], rc.auth[r.URL.Path] = b, err, pass
		rc.mu.Unlock()
		if err == nil {
			w.WriteHeader(http.StatusOK)
		}
	}))
	t.Cleanup(srv.Close)
	receivers[srv.URL] = rc
	return srv.URL
}

var receivers = map[string]*receiver{}

// TestPushStopsCleanly stops an endless real-time push and expects each
// stream to end as an encoder ends it.
func TestPushStopsCleanly(t *testing.T) {
	for _, mode := range []string{"smooth", "cmaf"} {
		t.Run(mode, func(t *testing.T) {
			url := newReceiver(t, nil)
			p, err := newPushPlan(url, "demo,news", "video:300k,audio:64k", mode, "0123456789abcdef-any", 0, 200*time.Millisecond, true)
			if err != nil {
				t.Fatal(err)
			}
			var progress bytes.Buffer
			p.progress, p.tick = &progress, 100*time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
			defer cancel()
			if err := p.run(ctx, nil); err != nil {
				t.Fatal(err)
			}
			rc := receivers[url]
			if len(rc.bodies) != len(p.streams) {
				t.Fatalf("%d pushes received, want %d", len(rc.bodies), len(p.streams))
			}
			for path, b := range rc.bodies {
				if rc.errs[path] != nil {
					t.Errorf("%s: body ended with %v", path, rc.errs[path])
				}
				if rc.auth[path] != "0123456789abcdef-any" {
					t.Errorf("%s: Basic password %q", path, rc.auth[path])
				}
				bs := boxes(t, b)
				last := "mfra"
				if mode == "cmaf" {
					last = "mdat"
				}
				if bs[0] != "ftyp" || bs[len(bs)-1] != last || len(bs) < 6 {
					t.Errorf("%s: boxes %v (want ftyp first, %s last)", path, bs, last)
				}
			}
			out := progress.String()
			if !strings.Contains(out, "  demo ") || !strings.Contains(out, "  news ") || !strings.Contains(out, " frags ") || !strings.Contains(out, " Mbit/s") {
				t.Errorf("progress:\n%s", out)
			}
			if strings.Contains(out, "\r") {
				t.Errorf("progress rewrites in place off a terminal:\n%q", out)
			}
		})
	}
}

func TestPushRefused(t *testing.T) {
	url := newReceiver(t, func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/news.isml/") {
			w.Header().Set("Connection", "close") // as the relay refuses: at once, the body unread
			http.Error(w, "wrong secret for channel news", http.StatusForbidden)
			return true
		}
		return false
	})
	p, err := newPushPlan(url, "demo,news", "audio:64k", "smooth", "", 0, 200*time.Millisecond, true)
	if err != nil {
		t.Fatal(err)
	}
	p.progress = io.Discard
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = p.run(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), "403 Forbidden: wrong secret for channel news") {
		t.Fatalf("run: %v, want the relay's reason", err)
	}
	if ctx.Err() != nil {
		t.Error("the refusal did not end the other push")
	}
	if b := receivers[url].bodies["/live/demo.isml/Streams(enc1)"]; len(b) == 0 || boxes(t, b)[len(boxes(t, b))-1] != "mfra" {
		t.Error("the other push did not end cleanly")
	}
}

func TestProgressLine(t *testing.T) {
	p, err := newPushPlan("http://x", "demo", "video:800k,audio:96k", "cmaf", "", 10*time.Second, 2*time.Second, true)
	if err != nil {
		t.Fatal(err)
	}
	p.streams[0].frags.Store(3)
	p.streams[1].frags.Store(2)
	p.streams[0].bytes.Store(1_000_000)
	p.streams[1].bytes.Store(500_000)
	if got, want := p.line(4*time.Second), "00:00:04  demo 2/5 frags 1.5 MB 3.00 Mbit/s"; got != want {
		t.Errorf("line = %q, want %q", got, want)
	}
	var b bytes.Buffer
	p.progress, p.terminal = &b, true
	done := make(chan struct{})
	close(done)
	p.report(time.Now(), done)
	if !strings.HasPrefix(b.String(), "\r00:00:00  demo 2/5") || !strings.HasSuffix(b.String(), "\x1b[K\n") {
		t.Errorf("terminal progress %q", b.String())
	}
}

// TestPushThenCheck pushes with the command's code into the local stack
// and checks the channels with it.
func TestPushThenCheck(t *testing.T) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := stack.Start(context.Background(), stack.Options{
		IngestAddr: "127.0.0.1:0", EdgeAddr: "127.0.0.1:0",
		Handler: handler.DefaultConfig(), Relay: relay.DefaultConfig(), Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	for _, mode := range []string{"smooth", "per-track", "cmaf"} {
		t.Run(mode, func(t *testing.T) {
			ch := strings.ReplaceAll(mode, "-", "")
			p, err := newPushPlan(st.IngestURL, ch, "video:300k,audio:64k", mode, "", 3*time.Second, time.Second, false)
			if err != nil {
				t.Fatal(err)
			}
			p.progress = io.Discard
			if err := p.run(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				var out bytes.Buffer
				err := runCheck(context.Background(), &out, nil, st.EdgeURL, ch, checkpkg.Options{})
				if err == nil && strings.Contains(out.String(), "  video@300000  ") && strings.HasSuffix(out.String(), "\nOK\n") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("check: %v\n%s", err, out.String())
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
	var out bytes.Buffer
	if err := runCheck(context.Background(), &out, nil, st.EdgeURL, "nosuch", checkpkg.Options{}); err == nil || !strings.Contains(out.String(), "404") {
		t.Errorf("check of a channel that does not exist: %v\n%s", err, out.String())
	}
}

func TestCheckFlags(t *testing.T) {
	if err := check([]string{"-fetch", "some"}); !errors.Is(err, errUsage) {
		t.Errorf("check -fetch some: %v", err)
	}
	if err := check([]string{"-h"}); err != nil {
		t.Errorf("check -h: %v", err)
	}
	if err := push([]string{"-mode", "x"}); !errors.Is(err, errUsage) {
		t.Errorf("push -mode x: %v", err)
	}
}

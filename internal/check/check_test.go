package check

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// tracks are what the tests push: two video bitrates and audio.
var tracks = []synth.Track{
	{Kind: timeline.Video, Bitrate: 300_000},
	{Kind: timeline.Video, Bitrate: 100_000, Width: 320, Height: 180},
	{Kind: timeline.Audio, Bitrate: 64_000},
}

var trackIDs = []string{"audio@64000", "video@100000", "video@300000"}

var (
	stackOnce sync.Once
	stackURL  string
	stackErr  error
)

// finishedStack starts the local stack in-process (once for the package),
// pushes four fragments of every track to channel "smooth" in one Smooth
// push and to channel "cmaf" as one CMAF push per track, and waits until
// every manifest of both is final. It returns the edge's URL.
func finishedStack(t *testing.T) string {
	t.Helper()
	stackOnce.Do(func() { stackURL, stackErr = startAndPush() })
	if stackErr != nil {
		t.Fatal(stackErr)
	}
	return stackURL
}

func startAndPush() (string, error) {
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx := context.Background()
	st, err := stack.Start(ctx, stack.Options{
		IngestAddr: "127.0.0.1:0", EdgeAddr: "127.0.0.1:0",
		Handler: handler.DefaultConfig(), Relay: relay.DefaultConfig(), Log: log,
	})
	if err != nil {
		return "", err
	}
	// The stack lives as long as the test binary.
	cfg := synth.Config{Tracks: tracks, FragmentDuration: time.Second, SMIL: true}
	r := synth.Range{Count: 4, End: true}
	push := func(channel, stream string, cfg synth.Config) error {
		s, err := synth.New(cfg)
		if err != nil {
			return err
		}
		return synth.Push(ctx, nil, st.IngestURL+"/live/"+channel+".isml/Streams("+stream+")", s, r)
	}
	if err := push("smooth", "enc1", cfg); err != nil {
		return "", err
	}
	cfg.CMAF = true
	var wg sync.WaitGroup
	errs := make([]error, len(tracks))
	for i, c := range cfg.Split() {
		wg.Go(func() { errs[i] = push("cmaf", fmt.Sprintf("track%d", i), c) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return "", err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, ch := range []string{"smooth", "cmaf"} {
		for {
			rep, err := Run(ctx, nil, st.EdgeURL, ch, Options{Fetch: FetchHead})
			if err != nil {
				return "", err
			}
			final := len(rep.Manifests) > 0
			for _, m := range rep.Manifests {
				final = final && m.Status == http.StatusOK && !m.Live
			}
			if final {
				break
			}
			if time.Now().After(deadline) {
				var b bytes.Buffer
				_ = rep.WriteText(&b)
				return "", fmt.Errorf("channel %s not final after 30 s:\n%s", ch, b.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return st.EdgeURL, nil
}

func TestRunStack(t *testing.T) {
	edge := finishedStack(t)
	for _, tc := range []struct {
		channel string
		fetch   FetchMode
	}{
		{"smooth", FetchAll},
		{"smooth", FetchHead},
		{"cmaf", FetchAll},
		{"cmaf", FetchHead},
	} {
		t.Run(tc.channel+"/"+string(tc.fetch), func(t *testing.T) {
			rep, err := Run(context.Background(), nil, edge, tc.channel, Options{Fetch: tc.fetch})
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := rep.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			if !rep.OK() {
				t.Fatalf("check failed:\n%s", b.String())
			}
			if !strings.HasSuffix(b.String(), "\nOK\n") {
				t.Errorf("report does not end with OK:\n%s", b.String())
			}
			// Manifest, master, three media playlists, MPD.
			if len(rep.Manifests) != 6 {
				t.Errorf("%d manifests fetched, want 6:\n%s", len(rep.Manifests), b.String())
			}
			if len(rep.Tracks) != 3*len(trackIDs) {
				t.Fatalf("%d track reports, want %d:\n%s", len(rep.Tracks), 3*len(trackIDs), b.String())
			}
			for i, tr := range rep.Tracks {
				if want := trackIDs[i/3]; tr.Track != want || tr.Format != Formats[i%3] {
					t.Errorf("track report %d is %s %s, want %s %s", i, tr.Format, tr.Track, Formats[i%3], want)
				}
				if tr.Listed != 4 || tr.Checked != 4 || tr.Missing != 0 || tr.Bad != 0 {
					t.Errorf("%s %s: listed %d checked %d missing %d bad %d, want 4 4 0 0", tr.Format, tr.Track, tr.Listed, tr.Checked, tr.Missing, tr.Bad)
				}
				if tr.Format != Smooth && !tr.InitOK {
					t.Errorf("%s %s: init segment %q not found", tr.Format, tr.Track, tr.Init)
				}
			}
			// 4 fragments of 3 tracks and 3 init segments.
			if rep.Objects != 15 {
				t.Errorf("%d objects requested, want 15", rep.Objects)
			}
		})
	}
}

// proxy serves the edge's answers, changed by mutate.
func proxy(t *testing.T, edge string, mutate func(path string, status int, body []byte) (int, []byte)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), r.Method, edge+r.URL.RequestURI(), nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		status := resp.StatusCode
		if r.Method == http.MethodGet || status != http.StatusOK {
			status, body = mutate(r.URL.Path, status, body)
		} else if s, _ := mutate(r.URL.Path, status, nil); s != status {
			status = s // HEAD: the status only
		}
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(status)
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestRunFindsProblems(t *testing.T) {
	edge := finishedStack(t)
	const ch = "/live/smooth.isml/"
	const frag = ch + "QualityLevels(300000)/Fragments(video=10000000)"
	first := testtool.Get(t, edge+ch+"QualityLevels(300000)/Fragments(video=0)")
	type counts struct{ missing, bad int }
	for _, tc := range []struct {
		name   string
		fetch  FetchMode
		mutate func(path string, status int, body []byte) (int, []byte)
		// want are substrings of the problems, each in one at least.
		want []string
		// track's counts per format (formats left out: none wrong).
		track  string
		counts map[Format]counts
		initOK map[Format]bool
	}{
		{
			name: "a fragment answers 404", fetch: FetchAll,
			mutate: func(p string, s int, b []byte) (int, []byte) {
				if p == frag {
					return http.StatusNotFound, []byte("no such key")
				}
				return s, b
			},
			want:   []string{"smooth video@300000: fragment", "Fragments(video=10000000): 404", "hls video@300000", "dash video@300000"},
			track:  "video@300000",
			counts: map[Format]counts{Smooth: {1, 0}, HLS: {1, 0}, DASH: {1, 0}},
		},
		{
			name: "a fragment answers 404 to HEAD", fetch: FetchHead,
			mutate: func(p string, s int, b []byte) (int, []byte) {
				if p == frag {
					return http.StatusNotFound, nil
				}
				return s, b
			},
			want:   []string{"Fragments(video=10000000): 404"},
			track:  "video@300000",
			counts: map[Format]counts{Smooth: {1, 0}, HLS: {1, 0}, DASH: {1, 0}},
		},
		{
			name: "the HLS playlist lists a fragment the Smooth manifest does not", fetch: FetchAll,
			mutate: func(p string, s int, b []byte) (int, []byte) {
				if p == ch+"QualityLevels(300000)/video.m3u8" {
					b = bytes.Replace(b, []byte("Fragments(video=10000000)?.m4s\n"),
						[]byte("Fragments(video=10000000)?.m4s\n#EXTINF:0.5,\nFragments(video=15000000)?.m4s\n"), 1)
				}
				return s, b
			},
			want: []string{
				"smooth video@300000: timeline lacks fragment 15000000 (in hls)",
				"dash video@300000: timeline lacks fragment 15000000 (in hls)",
				"hls video@300000: fragment", "Fragments(video=15000000)?.m4s: 404",
			},
			track:  "video@300000",
			counts: map[Format]counts{HLS: {1, 0}},
		},
		{
			name: "the DASH timeline lacks a fragment", fetch: FetchHead,
			mutate: func(p string, s int, b []byte) (int, []byte) {
				if p == ch+"manifest.mpd" {
					// The video timelines: 4 fragments from 0 become 3 from 1 s.
					b = bytes.ReplaceAll(b, []byte(`<S t="0" d="10000000" r="3">`), []byte(`<S t="10000000" d="10000000" r="2">`))
				}
				return s, b
			},
			want: []string{
				"dash video@300000: timeline lacks fragment 0 (in smooth, hls)",
				"dash video@100000: timeline lacks fragment 0 (in smooth, hls)",
			},
		},
		{
			name: "an init segment answers 404", fetch: FetchAll,
			mutate: func(p string, s int, b []byte) (int, []byte) {
				if strings.HasSuffix(p, "/Init(audio).mp4") {
					return http.StatusNotFound, nil
				}
				return s, b
			},
			want:   []string{"hls audio@64000: init segment", "dash audio@64000: init segment", "Init(audio).mp4: 404"},
			track:  "audio@64000",
			initOK: map[Format]bool{HLS: false, DASH: false},
		},
		{
			name: "a fragment is cut short", fetch: FetchAll,
			mutate: func(p string, s int, b []byte) (int, []byte) {
				if p == frag {
					return s, b[:len(b)/2]
				}
				return s, b
			},
			want:   []string{"Fragments(video=10000000): not a stored fragment"},
			track:  "video@300000",
			counts: map[Format]counts{Smooth: {0, 1}, HLS: {0, 1}, DASH: {0, 1}},
		},
		{
			name: "a fragment is another one", fetch: FetchAll,
			mutate: func(p string, s int, b []byte) (int, []byte) {
				if p == frag {
					return s, first
				}
				return s, b
			},
			want:   []string{"Fragments(video=10000000) starts at 0, listed at 10000000"},
			track:  "video@300000",
			counts: map[Format]counts{Smooth: {0, 1}, HLS: {0, 1}, DASH: {0, 1}},
		},
		{
			name: "the MPD answers 500", fetch: FetchHead,
			mutate: func(p string, s int, b []byte) (int, []byte) {
				if p == ch+"manifest.mpd" {
					return http.StatusInternalServerError, []byte("boom")
				}
				return s, b
			},
			want: []string{"manifest.mpd: 500 Internal Server Error boom"},
		},
		{
			name: "the Smooth manifest is not XML", fetch: FetchHead,
			mutate: func(p string, s int, b []byte) (int, []byte) {
				if p == ch+"Manifest" {
					return s, []byte("<SmoothStreamingMedia")
				}
				return s, b
			},
			want: []string{"/Manifest: not a Smooth client manifest"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := proxy(t, edge, tc.mutate)
			rep, err := Run(context.Background(), nil, base, "smooth", Options{Fetch: tc.fetch})
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			_ = rep.WriteText(&b)
			if rep.OK() || !strings.HasSuffix(b.String(), "\nFAIL\n") {
				t.Fatalf("check passed:\n%s", b.String())
			}
			all := strings.Join(rep.Problems, "\n")
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("no problem says %q:\n%s", w, b.String())
				}
			}
			for _, tr := range rep.Tracks {
				want := counts{}
				if tr.Track == tc.track {
					want = tc.counts[tr.Format]
				}
				if tr.Missing != want.missing || tr.Bad != want.bad {
					t.Errorf("%s %s: missing %d bad %d, want %d %d", tr.Format, tr.Track, tr.Missing, tr.Bad, want.missing, want.bad)
				}
				wantInit := tr.Format != Smooth
				if ok, set := tc.initOK[tr.Format]; set && tr.Track == tc.track {
					wantInit = ok
				}
				if tr.InitOK != wantInit {
					t.Errorf("%s %s: init ok %v, want %v", tr.Format, tr.Track, tr.InitOK, wantInit)
				}
			}
			if testing.Verbose() {
				t.Log("\n" + b.String())
			}
		})
	}
}

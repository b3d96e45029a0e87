package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/check"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// pushSkipping pushes s to url in one chunked POST, paced like a live
// encoder (fragment i sent i+1 fragment durations after the start), the
// fragments from 0 to count-1 but skip: an encoder connection that loses
// some fragments of its track and goes on.
func pushSkipping(ctx context.Context, url string, s *synth.Stream, count int, skip ...int) error {
	pr, pw := io.Pipe()
	go func() {
		hdr, err := s.Header()
		if err == nil {
			_, err = pw.Write(hdr)
		}
		began, dur := time.Now(), s.Config().FragmentDuration
		var frag []byte
		for i := 0; i < count && err == nil; i++ {
			select {
			case <-ctx.Done():
				err = ctx.Err()
				continue
			case <-time.After(time.Until(began.Add(time.Duration(i+1) * dur))):
			}
			if slices.Contains(skip, i) {
				continue
			}
			if frag, err = s.AppendFragment(frag[:0], i); err == nil {
				_, err = pw.Write(frag)
			}
		}
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, pr)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s %s", url, resp.Status, body)
	}
	return nil
}

// livePushes are the CMAF pushes of one synthetic channel, a POST per
// track, running until the test ends; errors holds what they reported
// (other than the test's end), guarded by mu.
type livePushes struct {
	wg     sync.WaitGroup
	mu     sync.Mutex
	errors bytes.Buffer
	// Streams are the pushed streams, one per track of the config in its
	// order (synth.Config.Split).
	Streams []*synth.Stream
}

// Wait waits until every push has sent its fragments (or the test ended).
func (p *livePushes) Wait() { p.wg.Wait() }

// String is what the pushes reported so far.
func (p *livePushes) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errors.String()
}

// pushSplit pushes cfg to channel as a CMAF push per track, fragments
// fragments each, paced like a live encoder (pushSkipping); skip, if not
// nil, says which fragments a track leaves out. The pushes stop when the
// test ends, before its stack does.
func pushSplit(t *testing.T, st *stack.Stack, channel string, cfg synth.Config, fragments int, skip func(synth.Track) []int) *livePushes {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &livePushes{}
	t.Cleanup(func() { cancel(); p.wg.Wait() })
	for i, c := range cfg.Split() {
		s, err := synth.New(c)
		if err != nil {
			t.Fatal(err)
		}
		p.Streams = append(p.Streams, s)
		var lose []int
		if skip != nil {
			lose = skip(c.Tracks[0])
		}
		url := fmt.Sprintf("%s/live/%s.isml/Streams(track%d)", st.IngestURL, channel, i)
		p.wg.Go(func() {
			if err := pushSkipping(ctx, url, s, fragments, lose...); err != nil && ctx.Err() == nil {
				p.mu.Lock()
				fmt.Fprintf(&p.errors, "%s track %d: %v\n", channel, i, err)
				p.mu.Unlock()
			}
		})
	}
	return p
}

// hls.js plays a live channel one of whose kinds of track lost fragments
// the others have (what an SRT encoder gave when the relay fell behind and
// packets were lost): each track is a CMAF push of its own (synthetic
// H.264 at two bitrates, AAC), and the audio's, or both video ones, skip
// some fragments. hls.js starts, and plays 10 s across a hole. The media
// playlists keep one discontinuity sequence (a hole is EXT-X-GAP
// segments, not EXT-X-DISCONTINUITY): with a discontinuity in the audio
// playlist only, hls.js 1.7 loaded the video init segment and one
// fragment, then reloaded the playlists for ever, never requesting audio
// and reporting no error.
func TestHLSJSPlaysAChannelWithAHoleInOneTrack(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	node := testtool.Require(t, "node")
	chromium := testtool.Require(t, "chromium")
	players := requirePlayers(t)
	st := startStackWith(t, players)
	// The track loses every fifth fragment from the fourth on: the first
	// hole is in the playlists before the player starts, and any 10 s it
	// plays crosses one.
	const fragments, first, every = 40, 3, 5 // 80 s of push
	var lost []int
	for i := first; i < fragments; i += every {
		lost = append(lost, i)
	}
	for _, losing := range []timeline.Kind{timeline.Audio, timeline.Video} {
		t.Run(string(losing), func(t *testing.T) {
			t.Parallel() // a channel and a browser each
			channel := "hole-" + string(losing)
			cfg := synth.Config{CMAF: true, Tracks: []synth.Track{
				{Kind: timeline.Video, Bitrate: 400_000, Width: 640, Height: 360},
				{Kind: timeline.Video, Bitrate: 150_000, Width: 320, Height: 180},
				{Kind: timeline.Audio, Bitrate: 64_000},
			}}
			pushes := pushSplit(t, st, channel, cfg, fragments, func(tr synth.Track) []int {
				if tr.Kind == losing {
					return lost
				}
				return nil
			})
			base := st.EdgeURL + "/live/" + channel + ".isml/"
			waitForFragments(t, base+"Manifest", first+4, time.Minute)

			// The holes are in the losing tracks' playlists, as EXT-X-GAP
			// segments; no media playlist has a discontinuity.
			gaps := 0
			for uri, pl := range mediaPlaylists(t, base) {
				for _, s := range pl.Segments {
					if s.Gap {
						gaps++
						if !strings.Contains(uri, "/"+string(losing)+".m3u8") {
							t.Errorf("%s: a gap segment %s, want gaps in the %s only", uri, s.URI, losing)
						}
					}
				}
				if n := discontinuitiesOf(pl); n != 0 || pl.DiscontinuitySequence != 0 {
					t.Errorf("%s: %d discontinuities, sequence %d; want none", uri, n, pl.DiscontinuitySequence)
				}
			}
			if gaps == 0 {
				t.Errorf("no gap segment: the lost %s fragments are not listed as gaps", losing)
			}

			// The formats agree, and every object they list is there: the
			// gap segments are no objects.
			if rep, err := check.Run(context.Background(), nil, st.EdgeURL, channel, check.Options{}); err != nil || !rep.OK() {
				t.Errorf("smoothcast check: %v %v", err, rep.Problems)
			}

			playInBrowsers(t, node, chromium, players, st, channel, "hls")
			if t.Failed() {
				t.Logf("pushes: %s", pushes)
			}
		})
	}
}

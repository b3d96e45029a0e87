package integration_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/internal/testtool/logtest"
	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/manifest/hls"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// synthSecond is the synthetic encoder's timescale (ticks per second).
const synthSecond = 10_000_000

// notifier is the relay's store with S3's object-created events delivered
// at once, in the writer's goroutine, to a manifest handler: the relay's
// clock then reads the state those events left, as it would on AWS once
// the function has run. Each event's time is base plus the media time at
// which the object's fragment ends, as for an encoder running in real
// time with the channel's clock at base; the handler's clock is the newest
// event's time.
type notifier struct {
	*store.Store
	t    testing.TB
	h    *handler.Handler
	base time.Time
	seq  atomic.Uint64

	mu      sync.Mutex
	now     time.Time
	puts    map[string]int // successful PUTs by key (counted once the event is handled)
	refused map[string]int // PUTs refused because the object exists
}

func newNotifier(t testing.TB, st *store.Store, cfg handler.Config, base time.Time) *notifier {
	n := &notifier{Store: st, t: t, base: base, now: base, puts: map[string]int{}, refused: map[string]int{}}
	n.h = handler.New(st, cfg, quiet)
	n.h.Now = n.clock
	return n
}

func (n *notifier) clock() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.now
}

// handler returns another handler over the same store and clock, with cfg
// (another DVR window, say).
func (n *notifier) handler(cfg handler.Config) *handler.Handler {
	h := handler.New(n.Store, cfg, quiet)
	h.Now = n.clock
	return h
}

func (n *notifier) PutParts(ctx context.Context, key string, parts [][]byte, o store.PutOptions) (string, error) {
	etag, err := n.Store.PutParts(ctx, key, parts, o)
	if err != nil {
		if errors.Is(err, store.ErrPreconditionFailed) {
			n.mu.Lock()
			n.refused[key]++
			n.mu.Unlock()
		}
		return etag, err
	}
	// Counted once the event is handled: a test that sees the count sees
	// the state the event left.
	defer func() {
		n.mu.Lock()
		n.puts[key]++
		n.mu.Unlock()
	}()
	obj, perr := layout.Parse(key)
	if perr != nil || obj.Kind != layout.KindFragment && obj.Kind != layout.KindEnd {
		return etag, nil
	}
	end := obj.Start // an end marker's time
	if obj.Kind == layout.KindFragment {
		box, _ := mp4box.Find(parts[0], "moof")
		moof, err := fmp4.DecodeMoof(box.Data)
		if err != nil {
			n.t.Errorf("stored fragment %s: %v", key, err)
			return etag, nil
		}
		start, dur, _ := fmp4.Timing(moof, nil)
		end = uint64(start) + dur
	}
	at := n.base.Add(time.Duration(end) * time.Second / synthSecond)
	var size int64
	for _, p := range parts {
		size += int64(len(p))
	}
	n.mu.Lock()
	if at.After(n.now) {
		n.now = at
	}
	n.mu.Unlock()
	ev := s3local.Event(n.Bucket, key, "ObjectCreated:Put", size, etag, n.seq.Add(1), at)
	if err := n.h.HandleS3(context.WithoutCancel(ctx), ev); err != nil {
		n.t.Errorf("event for %s: %v", key, err)
	}
	return etag, nil
}

// advance moves the handler's clock on by d.
func (n *notifier) advance(d time.Duration) {
	n.mu.Lock()
	n.now = n.now.Add(d)
	n.mu.Unlock()
}

// synthBody is a push of s: its header, fragments ks in that order, and
// the mfra that ends the stream when end is set.
func synthBody(t testing.TB, s *synth.Stream, ks []int, end bool) []byte {
	t.Helper()
	body, err := s.Header()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range ks {
		if body, err = s.AppendFragment(body, k); err != nil {
			t.Fatal(err)
		}
	}
	if end {
		body = append(body, s.Trailer()...)
	}
	return body
}

func seq(from, count int) []int {
	out := make([]int, count)
	for i := range out {
		out[i] = from + i
	}
	return out
}

// playlist is an HLS media playlist, read back.
type playlist struct {
	mediaSeq, discSeq int
	starts            []uint64 // the fragments' start times, in order
	discBefore        []int    // indexes in starts that an EXT-X-DISCONTINUITY precedes
	gaps              int      // EXT-X-GAP segments (a hole), not in starts
	endList           bool
}

var fragmentRef = regexp.MustCompile(`^Fragments\([A-Za-z0-9_.-]+=(\d+)\)\?\.m4s$`)

func parsePlaylist(t *testing.T, text string) playlist {
	t.Helper()
	pl, err := hls.Parse([]byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if strings.Contains(text, "#EXT-X-DISCONTINUITY\n#EXT-X-DISCONTINUITY\n") {
		t.Errorf("two EXT-X-DISCONTINUITY in a row:\n%s", text)
	}
	p := playlist{mediaSeq: int(pl.MediaSequence), discSeq: int(pl.DiscontinuitySequence), endList: pl.Ended}
	for i, seg := range pl.Segments {
		m := fragmentRef.FindStringSubmatch(seg.URI)
		if m == nil {
			t.Fatalf("playlist URI %q is not a fragment's", seg.URI)
		}
		start, _ := strconv.ParseUint(m[1], 10, 64)
		if seg.Gap {
			p.gaps++
			continue
		}
		if seg.Discontinuity {
			p.discBefore = append(p.discBefore, i-p.gaps)
		}
		p.starts = append(p.starts, start)
	}
	return p
}

// get renders path through h's Function URL handler.
func get(t *testing.T, h *handler.Handler, path string) string {
	t.Helper()
	resp, err := h.HandleURL(context.Background(), urlRequest("/"+path))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %v %d %s", path, err, resp.StatusCode, resp.Body)
	}
	return resp.Body
}

func urlRequest(path string) events.LambdaFunctionURLRequest {
	return events.LambdaFunctionURLRequest{
		Version: "2.0", RawPath: path,
		RequestContext: events.LambdaFunctionURLRequestContext{HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: "GET", Path: path}},
	}
}

// trackState reads the handler's stored state of one track.
func trackState(t *testing.T, st *store.Store, channel string, id layout.TrackID) *timeline.TrackState {
	t.Helper()
	o, err := st.Get(context.Background(), layout.TrackStateKey(channel, id))
	if err != nil {
		t.Fatalf("state of %s: %v", id, err)
	}
	s, err := timeline.UnmarshalTrackState(o.Body)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fragmentsOf lists the stored fragments of one track of channel, in time
// order, with their metadata.
func fragmentsOf(t *testing.T, st *store.Store, channel, track string) (starts []uint64, meta []map[string]string) {
	t.Helper()
	for _, k := range testtool.Keys(t, st) {
		obj, err := layout.Parse(k)
		if err != nil || obj.Kind != layout.KindFragment || obj.Channel != channel || obj.Track.Name != track {
			continue
		}
		starts = append(starts, obj.Start)
	}
	slices.Sort(starts)
	for _, s := range starts {
		var key string
		for _, k := range testtool.Keys(t, st) {
			if obj, err := layout.Parse(k); err == nil && obj.Kind == layout.KindFragment && obj.Channel == channel && obj.Track.Name == track && obj.Start == s {
				key = k
			}
		}
		o, err := st.GetRange(context.Background(), key, 0, 7)
		if err != nil {
			t.Fatal(err)
		}
		meta = append(meta, o.Metadata)
	}
	return starts, meta
}

// A jump in the encoder's timestamps inside one connection, pushed
// through the relay into the manifest function. Before the jump the
// encoder sends fragments 0..7 (16 s, 2 s each, video and audio); lead is
// how far the channel's clock is past the end of fragment 7 when the jump
// comes (2 s: a live encoder, whose next fragment is due; 60 s: one that
// fell behind during an outage and skips ahead to catch up; -3 s: one
// running ahead of the clock, within -max-drift). A jump backwards or
// forwards by more than -max-drift is a discontinuity: the first fragment
// of each track after it carries x-amz-meta-disc; it is rebased onto the
// channel's clock when it would end too far from it, never over what was
// already stored; nothing is lost; the HLS media playlists show one
// EXT-X-DISCONTINUITY before it, then, once the DVR window has slid past
// it, none and EXT-X-DISCONTINUITY-SEQUENCE:1; DASH starts a new Period
// there. A forward skip within -max-drift is a gap, not a rebase: the
// fragments keep the encoder's times and carry no marker, and the
// playlists show the hole as EXT-X-GAP segments, counted in the media
// sequence, not as a discontinuity (no new Period).
func TestTimestampJumpsInsideAConnection(t *testing.T) {
	const before = 8 // fragments 0..7 before the jump
	const after = 7  // fragments after it: the 10 s window slides past the jump on every track
	for _, tc := range []struct {
		name    string
		next    int // index of the first fragment after the jump
		lead    time.Duration
		rebased bool // the fragments after the jump are moved onto the clock
		disc    bool // the first after the jump is marked (x-amz-meta-disc, a new Period)
		hlsDisc bool // the playlists show a discontinuity before it
		hlsGaps int  // the playlists show the hole before it as this many EXT-X-GAP segments
		// knownBug skips the manifest checks (the relay's are made).
		knownBug string
	}{
		{name: "forward beyond max-drift, live encoder: rebased to now", next: 20, lead: 2 * time.Second, rebased: true, disc: true, hlsDisc: true},
		{name: "forward beyond max-drift, encoder behind the clock catches up: kept", next: 20, lead: 60 * time.Second, disc: true, hlsDisc: true},
		{name: "forward beyond max-drift, encoder ahead of the clock: rebased after what it stored", next: 20, lead: -3 * time.Second, rebased: true, disc: true, hlsDisc: true},
		{name: "backward to zero, live encoder: rebased", next: 0, lead: 2 * time.Second, rebased: true, disc: true, hlsDisc: true},
		{name: "forward skip of 4 s, within max-drift: a gap, kept", next: 10, lead: 2 * time.Second, hlsGaps: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, st := testtool.Store(t, "relay-test")
			hcfg := handler.DefaultConfig()
			hcfg.DVRWindow, hcfg.Archive, hcfg.Retention = 10*time.Second, time.Hour, 0
			base := time.Now().Add(-(before*2*time.Second + tc.lead))
			n := newNotifier(t, st, hcfg, base)
			rec := logtest.New()
			cfg := relay.DefaultConfig() // -max-drift 10 s
			hs := httptest.NewServer(relay.New(n, cfg, slog.New(rec)).Handler())
			t.Cleanup(hs.Close)

			s, err := synth.New(synth.Config{FragmentDuration: 2 * time.Second,
				Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 200_000}, {Kind: timeline.Audio, Bitrate: 64_000}}})
			if err != nil {
				t.Fatal(err)
			}
			ks := append(seq(0, before), seq(tc.next, after)...)
			if code, msg := testtool.Do(t, "POST", hs.URL+"/live/jump.isml/Streams(enc1)", synthBody(t, s, ks, true), true); code != 200 {
				t.Fatalf("push: %d %s", code, msg)
			}
			pushed := time.Since(base) // the channel's clock when the push ended

			_, rebaseLogged := rec.Find(slog.LevelWarn, "encoder is off the channel clock: rebasing", nil)
			if rebaseLogged != tc.rebased {
				t.Errorf("rebase logged %v, want %v", rebaseLogged, tc.rebased)
			}
			_, err = st.Get(context.Background(), layout.ClockStateKey("jump"))
			if hasRecord := err == nil; hasRecord != tc.rebased {
				t.Errorf("clock record stored %v (%v), want %v", hasRecord, err, tc.rebased)
			}
			if _, jumpLogged := rec.Find(slog.LevelWarn, "encoder timestamps jump", nil); jumpLogged != tc.disc {
				t.Errorf("jump logged %v, want %v", jumpLogged, tc.disc)
			}

			wide := n.handler(handler.Config{DVRWindow: time.Hour, Archive: time.Hour, GapTimeout: hcfg.GapTimeout})
			p, err := n.h.Presentation(context.Background(), "jump")
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Tracks) != 2 {
				t.Fatalf("%d tracks, want 2", len(p.Tracks))
			}
			for _, tv := range p.Tracks {
				t.Run(tv.ID.Name, func(t *testing.T) {
					ti := slices.Index([]string{"video", "audio"}, tv.ID.Name)
					if ti < 0 {
						t.Fatalf("track %s", tv.ID)
					}
					// What the relay stored: every fragment (none refused
					// as colliding with another), the first after the jump
					// marked when it is a discontinuity.
					starts, meta := fragmentsOf(t, st, "jump", tv.ID.Name)
					if len(starts) != before+after {
						t.Fatalf("%d fragments stored, want %d: %v", len(starts), before+after, starts)
					}
					for j, m := range meta {
						if want := tc.disc && j == before; (m[layout.MetaDisc] == "1") != want {
							t.Errorf("fragment %d at %d: metadata %v, want disc %v", j, starts[j], m, want)
						}
					}
					raw := uint64(max(s.Start(ti, tc.next), 0))
					published := uint64(s.Start(ti, before)) // where fragment 7 ends
					first, dur := starts[before], starts[before+1]-starts[before]
					latest := max(pushed, time.Duration(published+dur)*time.Second/synthSecond) + time.Second
					switch {
					case !tc.rebased && first != raw:
						t.Errorf("first fragment after the jump at %d, want the encoder's %d", first, raw)
					case tc.rebased && first < published:
						t.Errorf("first fragment after the jump at %.3f s overlaps what was stored (to %.3f s)",
							float64(first)/synthSecond, float64(published)/synthSecond)
					case tc.rebased && first+dur > uint64(latest)*synthSecond/uint64(time.Second):
						// Rebased to end now (rounded up to a second), or
						// right after what was stored if that is later.
						t.Errorf("first fragment after the jump ends at %.3f s, later than the channel's clock (%.3f s when the push ended) or what was stored (to %.3f s) requires",
							float64(first+dur)/synthSecond, pushed.Seconds(), float64(published)/synthSecond)
					}
					for j := before + 1; j < len(starts); j++ {
						if got, want := starts[j]-starts[before], uint64(s.Start(ti, tc.next+j-before)-s.Start(ti, tc.next)); got != want {
							t.Errorf("fragment %d is %d after the first after the jump, want %d", j, got, want)
						}
					}
					if tc.knownBug != "" {
						t.Skip("known bug: " + tc.knownBug)
					}

					state := trackState(t, st, "jump", tv.ID)
					if state.Timeline.Len() != before+after || len(state.Pending) != 0 {
						t.Errorf("state lists %d fragments (%d pending), want all %d: %+v", state.Timeline.Len(), len(state.Pending), before+after, state.Timeline)
					}

					// The whole event: every fragment once, in order, one
					// discontinuity where the timestamps jumped.
					all := parsePlaylist(t, get(t, wide, layout.MediaPlaylistPath("jump", tv.ID)))
					if !slices.Equal(all.starts, starts) {
						t.Errorf("the playlist lists %v, want what is stored: %v", all.starts, starts)
					}
					wantDisc, wantSeq := []int(nil), 0
					if tc.hlsDisc {
						wantDisc, wantSeq = []int{before}, 1
					}
					if !slices.Equal(all.discBefore, wantDisc) || all.discSeq != 0 || all.mediaSeq != 0 || all.gaps != tc.hlsGaps {
						t.Errorf("whole playlist: discontinuities before fragments %v, sequence %d, media sequence %d, %d gap segments; want %v, 0, 0, %d",
							all.discBefore, all.discSeq, all.mediaSeq, all.gaps, wantDisc, tc.hlsGaps)
					}

					// The DVR window (10 s) has slid past the jump: the
					// discontinuity is counted, not shown.
					win := parsePlaylist(t, get(t, n.h, layout.MediaPlaylistPath("jump", tv.ID)))
					if len(win.discBefore) != 0 || win.discSeq != wantSeq {
						t.Errorf("windowed playlist: discontinuities before %v, sequence %d; want none, %d", win.discBefore, win.discSeq, wantSeq)
					}
					if skipped := win.mediaSeq - tc.hlsGaps; len(win.starts) == 0 || len(win.starts) > 6 || win.gaps != 0 || skipped+len(win.starts) != before+after ||
						!slices.Equal(win.starts, starts[skipped:]) || win.starts[0] <= starts[before] {
						t.Errorf("windowed playlist: media sequence %d, %v; want the fragments after the first after the jump, numbered on",
							win.mediaSeq, win.starts)
					}
				})
			}
			if tc.knownBug != "" {
				return
			}
			periods := strings.Count(get(t, wide, layout.DASHManifestPath("jump")), "<Period ")
			if want := map[bool]int{false: 1, true: 2}[tc.disc]; periods != want {
				t.Errorf("%d DASH Periods, want %d", periods, want)
			}
		})
	}
}

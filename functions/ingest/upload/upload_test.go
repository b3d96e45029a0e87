package upload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/store/storetest"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// media is a rendition as an encoder uploads it: its init segment and its
// media segments (styp, moof with tfdt, mdat), 2 s each.
type media struct {
	init     []byte
	segments [][]byte
}

// muxedRendition is a rendition of several tracks (muxed fMP4, as
// ffmpeg's HLS muxer writes it without -var_stream_map): one init segment
// declaring audio then video, and segments whose one moof carries a traf
// of each.
func muxedRendition(t testing.TB, n int) media {
	t.Helper()
	s, err := synth.New(synth.Config{CMAF: true, Muxed: true, Tracks: []synth.Track{
		{Kind: timeline.Audio, Bitrate: 64_000},
		{Kind: timeline.Video, Bitrate: 200_000, Width: 320, Height: 180},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return mediaOf(t, s, n)
}

// mediaOf is s as an encoder uploads it: its init segment and n media
// segments.
func mediaOf(t testing.TB, s *synth.Stream, n int) media {
	t.Helper()
	var m media
	var err error
	if m.init, err = s.Header(); err != nil {
		t.Fatal(err)
	}
	for k := range n {
		seg, err := s.AppendFragment(nil, k)
		if err != nil {
			t.Fatal(err)
		}
		m.segments = append(m.segments, seg)
	}
	return m
}

// renditions are the ladder as CMAF tracks.
func renditions(t testing.TB, n int) []media {
	t.Helper()
	cfg := synth.Config{CMAF: true, Tracks: []synth.Track{
		{Kind: timeline.Video, Bitrate: 200_000, Width: 320, Height: 180},
		{Kind: timeline.Audio, Bitrate: 64_000},
	}}
	var out []media
	for _, c := range cfg.Split() {
		s, err := synth.New(c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, mediaOf(t, s, n))
	}
	return out
}

// fakeSessions opens sessions that record what they are fed, in order,
// and check that each is fed its init segment first.
type fakeSessions struct {
	mu       sync.Mutex
	opened   []*fakeSession
	failOpen error
	// gate, when set, holds every Feed of a media segment until it is
	// closed (a slow store).
	gate chan struct{}
}

type fakeSession struct {
	fs        *fakeSessions
	rendition string
	mu        sync.Mutex
	fed       []uint64 // tfdt of each media segment fed
	files     []string
	bodies    [][]byte // each media segment fed
	init      bool
	initBody  []byte // the last init segment fed
	closed    bool
	clean     bool
	why       error
	feeding   bool
}

func (f *fakeSessions) Open(channel, rendition, remote string) (Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failOpen != nil {
		return nil, f.failOpen
	}
	s := &fakeSession{fs: f, rendition: rendition}
	f.opened = append(f.opened, s)
	return s, nil
}

func (s *fakeSession) Feed(_ context.Context, seg Segment) error {
	s.mu.Lock()
	if s.feeding || s.closed {
		s.mu.Unlock()
		panic("fed at once by two goroutines, or after Close")
	}
	s.feeding = true
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.feeding = false; s.mu.Unlock() }()
	if _, ok := mp4box.Find(seg.Body, "moov"); ok {
		s.mu.Lock()
		s.init, s.initBody = true, slices.Clone(seg.Body)
		s.mu.Unlock()
		return nil
	}
	if g := s.fs.gate; g != nil {
		<-g
	}
	moof, _ := mp4box.Find(seg.Body, "moof")
	m, err := fmp4.DecodeMoofTracks(moof.Data, 16)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.init {
		return errors.New("media before the init segment")
	}
	s.fed = append(s.fed, m.Traf.Tfdt.BaseMediaDecodeTime())
	s.files = append(s.files, seg.File)
	s.bodies = append(s.bodies, slices.Clone(seg.Body))
	return nil
}

func (s *fakeSession) Close(clean bool, why error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed, s.clean, s.why = true, clean, why
}

func (s *fakeSession) state() (fed []uint64, files []string, closed, clean bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.fed), slices.Clone(s.files), s.closed, s.clean
}

// sessions returns the sessions opened, in order.
func (f *fakeSessions) sessions() []*fakeSession {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.opened)
}

// harness is one Uploads over fake sessions, whose channel goroutines say
// each file they take.
type harness struct {
	t        *testing.T
	u        *Uploads
	sessions *fakeSessions
	store    *storetest.Mem
	taken    chan string
	// Uploads put, their bodies given back, and given back twice.
	issued, released, twice atomic.Int64
}

func newHarness(t *testing.T, cfg Config) *harness {
	h := &harness{t: t, sessions: &fakeSessions{}, store: &storetest.Mem{}, taken: make(chan string, 1024)}
	if cfg.Log == nil {
		cfg.Log = quiet
	}
	h.u = New(h.sessions, h.store, cfg)
	h.u.onTake = func(f File) { h.taken <- f.Name }
	t.Cleanup(func() {
		h.u.Close()
		// Every upload's body is given back exactly once, whatever became
		// of it: stored, refused, held then stored or dropped.
		waitFor(t, "every upload's body given back", func() bool { return h.released.Load() == h.issued.Load() })
		if r, i := h.released.Load(), h.issued.Load(); r != i || h.twice.Load() != 0 {
			t.Errorf("%d bodies given back (%d twice), of %d uploads", r, h.twice.Load(), i)
		}
	})
	return h
}

type answer struct {
	file   string
	result Result
	err    error
}

// put uploads a file and returns its answer.
func (h *harness) put(channel, file string, body []byte) answer {
	h.issued.Add(1)
	var once atomic.Bool
	release := func() {
		if once.Swap(true) {
			h.twice.Add(1)
			return
		}
		h.released.Add(1)
	}
	r, err := h.u.Put(File{Channel: channel, Name: file, Body: body, Release: release})
	return answer{file, r, err}
}

// send uploads a file without waiting for its answer, but until the
// channel has taken it: files sent one after the other reach the channel
// in that order.
func (h *harness) send(channel, file string, body []byte) <-chan answer {
	out := make(chan answer, 1)
	go func() { out <- h.put(channel, file, body) }()
	select {
	case got := <-h.taken:
		if got != file {
			h.t.Fatalf("taken %s, want %s", got, file)
		}
	case <-time.After(10 * time.Second):
		h.t.Fatalf("%s not taken", file)
	}
	return out
}

func segName(k int) string { return fmt.Sprintf("chunk-stream0-%05d.m4s", k+1) }

// An encoder uploads on parallel connections, so a rendition's segments
// reach the relay in other orders than it sent them; whatever the order,
// each segment is fed once, in media time, and none is refused, long
// before a reorder wait would end; the same for segments held for their
// init segment, and for the one that comes while they are fed.
func TestSegmentsAreFedInMediaTime(t *testing.T) {
	for _, r := range []struct {
		name string
		m    media
	}{{"one track", renditions(t, 6)[0]}, {"muxed", muxedRendition(t, 6)}} {
		t.Run(r.name, func(t *testing.T) { segmentsAreFedInMediaTime(t, r.m) })
	}
}

func segmentsAreFedInMediaTime(t *testing.T, m media) {
	for _, tc := range []struct {
		name  string
		order []int // -1: the init segment
	}{
		{"in order", []int{-1, 0, 1, 2, 3, 4, 5}},
		{"the last two swapped", []int{-1, 0, 1, 2, 3, 5, 4}},
		{"three reversed", []int{-1, 0, 3, 2, 1, 4, 5}},
		{"every segment before the init segment, reversed", []int{5, 4, 3, 2, 1, 0, -1}},
		{"held segments and the one between them", []int{0, 2, -1, 1, 3, 4, 5}},
		{"a gap filled while it waits, twice", []int{-1, 0, 2, 4, 1, 3, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{ReorderWait: time.Minute})
			var answers []<-chan answer
			for _, k := range tc.order {
				if k < 0 {
					answers = append(answers, h.send("c", "init-stream0.m4s", m.init))
					continue
				}
				answers = append(answers, h.send("c", segName(k), m.segments[k]))
			}
			for _, a := range answers {
				select {
				case got := <-a:
					if got.err != nil {
						t.Errorf("%s: %v", got.file, got.err)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("no answer: a reorder wait ran out?")
				}
			}
			ss := h.sessions.sessions()
			if len(ss) != 1 {
				t.Fatalf("%d sessions, want 1", len(ss))
			}
			// Held segments are answered (202) before they are fed.
			var fed []uint64
			waitFor(t, "6 segments fed", func() bool { fed, _, _, _ = ss[0].state(); return len(fed) >= 6 })
			if len(fed) != 6 || !slices.IsSorted(fed) || len(slices.Compact(slices.Clone(fed))) != 6 {
				t.Errorf("fed %v, want the 6 segments once each in media time", fed)
			}
		})
	}
}

// The rules a segment meets: a resend of one fed (or being fed) is
// answered with its outcome and fed nothing; one older than the newest is
// refused; one that leaves a gap waits ReorderWait, then is fed.
func TestOrderRules(t *testing.T) {
	m := renditions(t, 5)[0]
	const wait = 100 * time.Millisecond
	h := newHarness(t, Config{ReorderWait: wait})
	steps := []struct {
		k       int // -1: the init segment
		err     error
		waitsAt bool // answered after the reorder wait, not before
	}{
		{-1, nil, false},
		{0, nil, false},
		{2, nil, true},          // a gap: fed after the wait
		{1, ErrConflict, false}, // older than the newest
		{2, nil, false},         // a resend
		{0, nil, false},         // a resend of an older one
		{3, nil, false},         // in order again
	}
	for _, s := range steps {
		file, body := "init-stream0.m4s", m.init
		if s.k >= 0 {
			file, body = segName(s.k), m.segments[s.k]
		}
		began := time.Now()
		a := h.put("o", file, body)
		<-h.taken
		took := time.Since(began)
		if !errors.Is(a.err, s.err) || (s.err == nil) != (a.err == nil) {
			t.Fatalf("%s: %v, want %v", file, a.err, s.err)
		}
		if s.waitsAt != (took >= wait) {
			t.Errorf("%s: answered in %v; want a reorder wait of %v: %v", file, took, wait, s.waitsAt)
		}
	}
	fed, _, _, _ := h.sessions.sessions()[0].state()
	if want := 3; len(fed) != want {
		t.Errorf("fed %v, want %d segments (0, 2, 3 and none twice)", fed, want)
	}
}

// An init segment and a segment of its rendition uploaded at the same
// moment, or the same init segment twice at once: no segment reaches a
// session before its init segment, one rendition per name is current,
// and the segment is fed exactly once. 500 rounds (under -race in make
// test).
func TestConcurrentUploadsOfOneRendition(t *testing.T) {
	m := renditions(t, 1)[0]
	h := newHarness(t, Config{ReorderWait: time.Second})
	rounds := 500
	if testing.Short() {
		rounds = 50
	}
	for i := range rounds {
		ch := fmt.Sprintf("c%d", i)
		var wg sync.WaitGroup
		answers := make([]answer, 3)
		wg.Go(func() { answers[0] = h.put(ch, "init-stream0.m4s", m.init) })
		wg.Go(func() { answers[1] = h.put(ch, "init-stream0.m4s", m.init) })
		wg.Go(func() { answers[2] = h.put(ch, segName(0), m.segments[0]) })
		wg.Wait()
		for range 3 {
			<-h.taken
		}
		for j, a := range answers {
			// A held segment is answered 202, and fed when its init
			// segment's rendition starts.
			if a.err != nil {
				t.Fatalf("round %d, upload %d: %v", i, j, a.err)
			}
		}
	}
	// Every round: the segment fed once, after its init segment.
	fedOnce := map[string]int{}
	deadline := time.Now().Add(10 * time.Second)
	for {
		clear(fedOnce)
		for _, s := range h.sessions.sessions() {
			fed, _, _, _ := s.state()
			fedOnce[fmt.Sprintf("%p", s)] = len(fed)
		}
		total := 0
		for _, n := range fedOnce {
			total += n
		}
		if total == rounds || time.Now().After(deadline) {
			if total != rounds {
				t.Fatalf("segments fed %d, want %d (one per round)", total, rounds)
			}
			break
		}
		time.Sleep(10 * time.Millisecond) // polling the condition
	}
}

// A channel's renditions end when the encoder's manifest says so (after
// the linger), or as drops when it goes silent; then the channel, with
// nothing left, frees all its state.
func TestChannelStateIsFreed(t *testing.T) {
	rs := renditions(t, 2)
	for _, tc := range []struct {
		name  string
		end   func(h *harness)
		clean bool
	}{
		{"the playlist ends", func(h *harness) {
			for r := range rs {
				h.put("f", fmt.Sprintf("stream_%d.m3u8", r), fmt.Appendf(nil, "#EXTM3U\n#EXT-X-MAP:URI=\"init-stream%d.m4s\"\n#EXTINF:2,\nchunk-stream%d-00001.m4s\n#EXT-X-ENDLIST\n", r, r))
			}
		}, true},
		{"the encoder goes silent", func(h *harness) {}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{Idle: 50 * time.Millisecond, Linger: 20 * time.Millisecond, Forget: 30 * time.Millisecond})
			for r, m := range rs {
				for k := range m.segments {
					if k == 0 {
						h.put("f", fmt.Sprintf("init-stream%d.m4s", r), m.init)
					}
					if a := h.put("f", fmt.Sprintf("chunk-stream%d-%05d.m4s", r, k+1), m.segments[k]); a.err != nil {
						t.Fatal(a.err)
					}
				}
			}
			tc.end(h)
			waitFor(t, "the channel's state freed", func() bool { return h.u.Channels() == 0 })
			for _, s := range h.sessions.sessions() {
				fed, _, closed, clean := s.state()
				if !closed || clean != tc.clean || len(fed) != 2 {
					t.Errorf("session %s: closed %v clean %v fed %v; want closed, clean %v, 2 fed", s.rendition, closed, clean, fed, tc.clean)
				}
			}
		})
	}
}

// waitFor polls a condition until it holds (10 s at most).
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Segments that nothing places wait, a few at most and for Hold at most;
// more are refused as busy.
func TestHeldSegmentsAreBounded(t *testing.T) {
	m := renditions(t, 1)[0]
	h := newHarness(t, Config{MaxHeld: 3, Hold: 50 * time.Millisecond, Forget: 10 * time.Millisecond})
	for i := range 5 {
		a := h.put("h", fmt.Sprintf("x%d.m4s", i), m.segments[0])
		if want := i >= 3; errors.Is(a.err, ErrBusy) != want || !want && a.result != Held {
			t.Fatalf("segment %d: %v %v, want busy %v", i, a.result, a.err, want)
		}
	}
	waitFor(t, "held segments dropped and the channel freed", func() bool { return h.u.Channels() == 0 })
}

// Close answers every request still waiting (a reorder wait, a restore)
// and ends every session as a drop; puts after it are refused.
func TestCloseAnswersWhatWaits(t *testing.T) {
	m := renditions(t, 3)[0]
	h := newHarness(t, Config{ReorderWait: time.Hour})
	h.put("w", "init-stream0.m4s", m.init)
	<-h.taken
	h.put("w", segName(0), m.segments[0])
	<-h.taken
	waiting := h.send("w", segName(2), m.segments[2])
	h.u.Close()
	if a := <-waiting; !errors.Is(a.err, ErrConflict) {
		t.Errorf("the segment that waited: %v, want a refusal", a.err)
	}
	for _, s := range h.sessions.sessions() {
		if _, _, closed, clean := s.state(); !closed || clean {
			t.Errorf("session closed %v clean %v, want a drop", closed, clean)
		}
	}
	if a := h.put("w", segName(1), m.segments[1]); !errors.Is(a.err, ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", a.err)
	}
}

// What is not media is refused before any state is made for it.
func TestWhatIsRefused(t *testing.T) {
	m := renditions(t, 1)[0]
	h := newHarness(t, Config{})
	for _, tc := range []struct {
		file string
		body []byte
		want error
	}{
		{"junk.m4s", []byte("hello, world, this is not an MP4 file"), ErrNotMedia},
		{"cut.m4s", m.segments[0][:len(m.segments[0])-10], ErrMalformed},
		{"manifest.mpd", []byte("<MPD><Period>"), ErrMalformed},
		{"big.m3u8", append([]byte("#EXTM3U\n"), strings.Repeat("#", maxManifest)...), ErrTooLarge},
	} {
		if a := h.put("r", tc.file, tc.body); !errors.Is(a.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.file, a.err, tc.want)
		}
	}
	if n := h.u.Channels(); n > 1 {
		t.Errorf("%d channels of state for refused uploads", n)
	}
}

// An encoder uploads its init segments once, when it starts: the record of
// them expires with the channel's state unless it is written again, so
// while the encoder uploads, it is written again every StateRefresh, with
// what it held.
func TestUploadsRecordIsWrittenAgainWhileLive(t *testing.T) {
	m := renditions(t, 3)[0]
	var mu sync.Mutex
	now := time.Now()
	h := newHarness(t, Config{})
	h.u.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	key := layout.UploadsStateKey("rec")
	etag := func() string {
		o, err := h.store.Get(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		return o.ETag
	}
	for _, u := range []struct {
		file string
		body []byte
	}{{"init-stream0.m4s", m.init}, {segName(0), m.segments[0]}} {
		if a := h.put("rec", u.file, u.body); a.err != nil {
			t.Fatal(a.err)
		}
	}
	first := etag()
	advance(time.Hour)
	h.put("rec", segName(1), m.segments[1])
	if etag() != first {
		t.Error("the record was written again an hour after it was")
	}
	advance(layout.StateRefresh)
	h.put("rec", segName(2), m.segments[2])
	waitFor(t, "the record written again", func() bool { return etag() != first })
	o, _ := h.store.Get(context.Background(), key)
	if !bytes.Contains(o.Body, []byte(`"init-stream0.m4s"`)) {
		t.Errorf("the record written again lost its init segment: %s", o.Body)
	}
}

// A muxed segment is placed in its rendition's order by the times of one
// of its tracks, the init segment's first video track, whatever track its
// moof lists first; a segment of one track by that track's.
func TestSegmentSpanIsOneTracks(t *testing.T) {
	const second = 10_000_000 // synth's timescale
	for _, tc := range []struct {
		name string
		m    media
		ref  uint32
	}{
		{"muxed: the video's, listed second", muxedRendition(t, 3), 2},
		{"one track", renditions(t, 3)[0], 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trexs, ref := trackDefaults(tc.m.init)
			if ref != tc.ref || len(trexs) == 0 {
				t.Fatalf("timing track %d (%d trex), want %d", ref, len(trexs), tc.ref)
			}
			for k, seg := range tc.m.segments {
				start, end, timed := span(seg, trexs, ref)
				if want := uint64(k) * 2 * second; !timed || start != want || end != want+2*second {
					t.Errorf("segment %d: %d to %d (timed %v), want the video's %d to %d", k, start, end, timed, want, want+2*second)
				}
			}
		})
	}
}

// An encoder started again under the same file names (ffmpeg restarted)
// sends its init segment first, on a connection of its own, and its first
// segment right after it without waiting for the answer: the relay may
// take the segment first, while the rendition of the encoder's first start
// is still current. The segment starts where one that rendition stored did
// (or where its first did), but is not that segment: it waits (202) for
// the init segment, and goes to the new rendition, first; it is neither
// lost as a resend nor refused as out of order. An encoder whose output
// is the same bytes each start (a file looped, a test pattern) is told by
// its first segment coming again after later ones.
func TestAnEncoderStartedAgainUnderTheSameNames(t *testing.T) {
	before := renditions(t, 12)[0]
	// The same times, other bytes: a new start of the encoder.
	other := muxedRendition(t, 3)
	for _, tc := range []struct {
		name   string
		stored int  // segments of the first start
		same   bool // the new start sends the first's bytes
	}{
		{"after a short first start: the segment's time was stored", 3, false},
		{"after a long first start: only the rendition's first segment started there", 12, false},
		{"the same bytes as the first start", 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			after := other
			if tc.same {
				after = before
			}
			h := newHarness(t, Config{ReorderWait: time.Minute})
			if a := h.put("c", "init.mp4", before.init); a.err != nil {
				t.Fatal(a.err)
			}
			<-h.taken
			for k := range tc.stored {
				if a := h.put("c", fmt.Sprintf("index%d.m4s", k), before.segments[k]); a.err != nil {
					t.Fatal(a.err)
				}
				<-h.taken
			}
			// The new start: its first segment taken before its init.
			if a := h.put("c", "index0.m4s", after.segments[0]); a.err != nil || a.result != Held {
				t.Fatalf("the new start's first segment: %v %v, want held", a.result, a.err)
			}
			<-h.taken
			for _, u := range []struct {
				file string
				body []byte
			}{{"init.mp4", after.init}, {"index1.m4s", after.segments[1]}} {
				if a := h.put("c", u.file, u.body); a.err != nil || a.result != Done {
					t.Fatalf("%s: %v %v", u.file, a.result, a.err)
				}
				<-h.taken
			}
			ss := h.sessions.sessions()
			if len(ss) != 2 {
				t.Fatalf("%d sessions, want 2 (one per start)", len(ss))
			}
			// The first start's session ends in its worker, after the
			// answer to the init segment that replaced it.
			waitFor(t, "the first start's session closed", func() bool { _, _, closed, _ := ss[0].state(); return closed })
			fed, _, closed, _ := ss[0].state()
			if len(fed) != tc.stored || !closed {
				t.Errorf("first start: fed %d segments (closed %v), want %d and closed", len(fed), closed, tc.stored)
			}
			var files []string
			waitFor(t, "the new start's two segments fed", func() bool { _, files, _, _ = ss[1].state(); return len(files) >= 2 })
			if !slices.Equal(files, []string{"index0.m4s", "index1.m4s"}) {
				t.Errorf("new start: fed %v, want index0.m4s then index1.m4s", files)
			}
		})
	}
}

// The only rendition there is, before any manifest says anything, takes
// a segment that no manifest and no name place only when nothing else
// could claim it: its init segment names no rendition, or the segment is
// named as the init segment but for a number. Another variant's segment
// waits for its own init segment and playlist.
func TestTheOnlyRenditionTakesWhatNothingElseCouldClaim(t *testing.T) {
	for _, tc := range []struct {
		init, file string
		want       bool
	}{
		{"init.mp4", "index0.m4s", true},                       // ffmpeg -f hls, one variant
		{"file-0.m4s", "file-1.m4s", true},                     // one numbered sequence
		{"init_0.mp4", "stream_10.m4s", false},                 // -var_stream_map: variant 1's segment 0
		{"init_0.mp4", "stream_00.m4s", false},                 // its own, told by its playlist
		{"init-stream0.m4s", "chunk-stream1-00001.m4s", false}, // ffmpeg -f dash: representation 1's
		{"init_0.mp4", "00001.m4s", false},                     // a name that names nothing
		{"video.mp4", "whatever-12.m4s", false},
	} {
		if got := unclaimed(tc.file, tc.init); got != tc.want {
			t.Errorf("only %s: %s unclaimed %v, want %v", tc.init, tc.file, got, tc.want)
		}
	}
}

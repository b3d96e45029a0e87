package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/manifest/hls"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// chaosFragments is the length of the chaos run in fragments of 1 s;
// SMOOTHCAST_CHAOS_FRAGMENTS overrides it (make chaos runs a long one).
func chaosFragments(t *testing.T) int {
	if v := os.Getenv("SMOOTHCAST_CHAOS_FRAGMENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 12 {
			t.Fatalf("SMOOTHCAST_CHAOS_FRAGMENTS=%q: want a number of at least 12", v)
		}
		return n
	}
	return 16
}

// The chaos suite: live synthetic encoders push six channels through
// relay processes (the production binary) into the local stack while S3
// fails 5 % of requests (503 SlowDown, 500), stalls 1 % of them for 1.5 s,
// and delivers events late, out of order and 30 % of them twice.
//
//   - steady: one encoder, start to end.
//   - redundant: two encoders with identical timestamps, each through its
//     own relay (the two share the bucket); one ends the stream halfway,
//     the other goes on.
//   - reconnect: the connection drops inside a fragment a third of the way
//     in; the encoder reconnects and resends that fragment.
//   - restart: the encoder ends the stream halfway and starts again from
//     timestamp zero (the relay rebases it).
//   - zone-ahead, zone-behind: a zone goes away for good mid-event (zoneCase).
//
// Meanwhile the relay is killed with SIGKILL and started again; every
// encoder reconnects and resends what the origin lacks (resumeAt). When
// all have ended, every channel must be VOD, and nothing may be lost,
// listed but missing, or listed twice; a channel that fails says, per
// track, which fragments, and what its encoders did and the store held
// when the relay was killed.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	n := chaosFragments(t)
	// A failed run is replayed with the seed it logged: the same
	// sequence of fault decisions (RELIABILITY.md, "Replay a chaos run").
	seed := testtool.FaultSeed(t, "SMOOTHCAST_CHAOS_SEED")
	st := startStackWith(t, "", func(o *stack.Options) { o.FaultSeed = seed })
	relayBin := buildRelay(t)
	rp := startRelay(t, relayBin, st)
	// The redundant encoders' second relay, sharing the bucket (its
	// /status says which relay stored the zone cases' fragments first),
	// and the relay of the zone that goes away.
	rp2Admin := freeTCPAddr(t)
	rp2 := startRelay(t, relayBin, st, "-admin-addr", rp2Admin)
	rp3 := startRelay(t, relayBin, st)
	st.S3.SetFaults(s3local.Faults{ErrorRate: 0.05, StallRate: 0.01, Stall: 1500 * time.Millisecond,
		DuplicateRate: 0.3, EventDelay: 300 * time.Millisecond})

	cfg := synth.Config{
		FragmentDuration: time.Second, SMIL: true,
		Tracks: []synth.Track{
			{Kind: timeline.Video, Bitrate: 300_000, Name: "video"},
			{Kind: timeline.Video, Bitrate: 100_000, Name: "video", Width: 320, Height: 180},
			{Kind: timeline.Audio, Bitrate: 64_000, Name: "audio"},
		},
	}
	t0 := time.Now().Add(500 * time.Millisecond)
	var reconnects, deeper atomic.Int64
	journal := &chaosJournal{t0: t0}
	encOn := func(rp *relayProcess, channel, stream string) *chaosEncoder {
		s, err := synth.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return &chaosEncoder{t: t, url: rp.url(channel, stream), s: s, relay: rp, reconnects: &reconnects, deeper: &deeper,
			note: journal.by(channel, stream), origin: st.EdgeURL, channel: channel}
	}
	enc := func(channel, stream string) *chaosEncoder { return encOn(rp, channel, stream) }
	// A zone goes away for good mid-event: rp3 is killed once
	// zone-ahead's encoder through it has written half of fragment
	// n*4/10 (loss: the fragment in the relay's hands or its socket's,
	// never stored), and never started again. Its encoders keep
	// reconnecting, refused, until the event is over.
	loss := &chaosHold{at: n * 4 / 10, reached: make(chan struct{}), gone: make(chan struct{})}
	var zoneTries atomic.Int64 // connections of the lost zone's encoders that failed
	// zoneCase is a redundant pair whose first encoder, through ahead,
	// writes each fragment half a fragment before the second, through
	// behind, with the same timestamps: ahead's relay stores each
	// fragment first and behind's finds it stored (412). Which way the
	// loss goes matters, so the suite runs both, with one loss: in
	// zone-ahead rp3 is ahead and dies with half a fragment in hand
	// (loss), which only the copy behind can make good, the survivor's
	// PUTs turning from refused to written mid-connection; in
	// zone-behind rp3 is behind, and its copies were refused. A stalled
	// store can swap the roles for a fragment or two; the survivor's
	// /status just before the loss says they held (roles, below).
	zoneCase := func(channel string, ahead, behind *relayProcess) func() {
		return func() {
			encs := []*chaosEncoder{encOn(ahead, channel, "enc1"), encOn(behind, channel, "enc2")}
			over := make(chan struct{}) // the survivor's push is through
			var wg sync.WaitGroup
			for i, e := range encs {
				if e.relay == rp3 {
					e.eventOver, e.reconnects = over, &zoneTries
					if e == encs[0] {
						e.hold = loss
					}
				}
				wg.Go(func() {
					e.push(0, n, t0.Add(time.Duration(i)*cfg.FragmentDuration/2), true, -1)
					if e.relay != rp3 {
						close(over)
					}
				})
			}
			wg.Wait()
			for _, e := range encs {
				if e.relay == rp3 && e.refused == 0 {
					t.Errorf("%s: the lost zone's encoder was never refused: its relay did not go away", channel)
				}
			}
		}
	}
	type plan struct {
		channel string
		pushed  int // distinct fragments per track the encoders produce
		discs   int // discontinuities the timeline must have
		run     func()
	}
	plans := []plan{
		{"steady", n, 0, func() { enc("steady", "enc1").push(0, n, t0, true, -1) }},
		{"redundant", n, 0, func() {
			var wg sync.WaitGroup
			wg.Go(func() { enc("redundant", "enc1").push(0, n, t0, true, -1) })
			wg.Go(func() { encOn(rp2, "redundant", "enc2").push(0, n/2, t0, true, -1) })
			wg.Wait()
		}},
		{"reconnect", n, 0, func() {
			e := enc("reconnect", "enc1")
			e.push(0, n, t0, true, n/3)
		}},
		{"restart", n/2 + n/2, 1, func() {
			e := enc("restart", "enc1")
			e.push(0, n/2, t0, true, -1)
			time.Sleep(2 * time.Second)
			e.push(0, n/2, time.Now(), true, -1) // timestamps from zero again
		}},
		{"zone-ahead", n, 0, zoneCase("zone-ahead", rp3, rp2)},
		{"zone-behind", n, 0, zoneCase("zone-behind", rp2, rp3)},
	}
	var wg sync.WaitGroup
	for _, p := range plans {
		wg.Go(p.run)
	}
	// Kill the relay with SIGKILL 60 % of the way in, and start it again.
	killAt := t0.Add(time.Duration(n*6/10) * time.Second)
	wg.Go(func() {
		time.Sleep(time.Until(killAt))
		rp.kill9()
		for _, p := range plans {
			journal.storeAt(st, p.channel, "relay killed")
		}
		time.Sleep(time.Second)
		rp.restart()
	})
	var roles map[string]streamCounts // the survivor's streams, just before the loss
	var lostAt time.Duration
	wg.Go(func() {
		defer close(loss.gone)
		select {
		case <-loss.reached:
		case <-time.After(time.Until(t0.Add(time.Duration(loss.at+30) * time.Second))):
			t.Errorf("zone-ahead's encoder never wrote fragment %d through the zone to lose", loss.at)
			return
		}
		lostAt = time.Since(t0)
		roles = relayCounts(t, rp2Admin)
		rp3.kill9()
		for _, ch := range []string{"zone-ahead", "zone-behind"} {
			journal.storeAt(st, ch, "zone lost")
		}
	})
	wg.Wait()
	st.S3.SetFaults(s3local.Faults{})

	report(t, "fault seed %d (replay: make chaos CHAOS_FRAGMENTS=%d SMOOTHCAST_CHAOS_SEED=%d)", seed, n, seed)
	totals := map[string]int{}
	for _, p := range plans {
		f := journal.figures(t, st, p.channel, p.pushed)
		report(t, "%-11s pushed %d, stored %d, listed %d (fewest of any track), lost %d, listed but missing %d, stored but unlisted %d, corrupt %d, duplicates %d, discontinuities %d (%d tracks)",
			p.channel, f.pushed, f.stored, f.listed, f.lost, f.missing, f.unlisted, f.corrupt, f.duplicates, f.discs, len(cfg.Tracks))
		wrongDiscs := f.discs != p.discs*len(cfg.Tracks)
		lossy := f.lost != 0 || f.missing != 0 || f.unlisted != 0 || f.corrupt != 0 || f.duplicates != 0
		if wrongDiscs || lossy {
			t.Logf("%s:%s%s", p.channel, f.detail, journal.of(p.channel))
		}
		if wrongDiscs {
			t.Errorf("%s: %d discontinuities over %d media playlists, want %d each", p.channel, f.discs, len(cfg.Tracks), p.discs)
		}
		for k, v := range map[string]int{"pushed": f.pushed, "stored": f.stored, "listed": f.listed, "lost": f.lost, "missing": f.missing, "unlisted": f.unlisted, "corrupt": f.corrupt, "duplicates": f.duplicates} {
			totals[k] += v
		}
		if lossy {
			t.Errorf("%s: lost %d, listed but missing %d, stored but unlisted %d, corrupt %d, duplicates %d; want none", p.channel, f.lost, f.missing, f.unlisted, f.corrupt, f.duplicates)
		}
	}
	// The zone cases ran as planned: before the loss, the survivor found
	// stored already fragments of zone-ahead (the relay lost had stored
	// them first), and stored fragments of zone-behind first.
	ahead, behind := roles["zone-ahead/enc2"], roles["zone-behind/enc1"]
	report(t, "zone lost %.1fs in: the surviving relay had found %d of its %d track fragments of zone-ahead stored already (by the relay lost), and written %d of its %d of zone-behind first; the lost zone's encoders had %d connections fail after it (the ones it cut, then refusals)",
		lostAt.Seconds(), ahead.duplicates, ahead.fragments, behind.fragments-behind.duplicates, behind.fragments, zoneTries.Load())
	if ahead.duplicates == 0 {
		t.Errorf("zone-ahead: the relay lost had stored none of the fragments first (the survivor's %d all written): not the case planned", ahead.fragments)
	}
	if behind.fragments-behind.duplicates == 0 {
		t.Errorf("zone-behind: the surviving relay had stored none of the fragments first (its %d all found stored): not the case planned", behind.fragments)
	}
	req := st.S3.Requests()
	report(t, "TOTAL: %d fragments pushed per track, %d stored, %d listed, %d lost, %d listed but missing, %d stored but unlisted, %d corrupt, %d duplicates; relay peak RSS %.1f MiB (the busiest relay, across the kill); S3 %d requests, %d failed by injection; a relay killed once and restarted, another lost for good; %d reconnections, %d of them resending more than the last three fragments (the origin lacked more)",
		totals["pushed"], totals["stored"], totals["listed"], totals["lost"], totals["missing"], totals["unlisted"], totals["corrupt"], totals["duplicates"],
		float64(max(rp.peakRSS(), rp2.peakRSS(), rp3.peakRSS()))/(1<<20), req["PUT"]+req["GET"]+req["HEAD"], req["PUT 503"]+req["PUT 500"]+req["GET 503"]+req["GET 500"], reconnects.Load(), deeper.Load())
	// One planned drop, and one per encoder connected when the relay died
	// (the lost zone's encoders count apart).
	if reconnects.Load() < 4 {
		t.Errorf("%d reconnections: the relay's death did not reach the encoders", reconnects.Load())
	}
}

// chaosJournal notes, per channel, what its encoders did and what the
// store held when the relay was killed: a failed run says how it came
// to lose what it lost.
type chaosJournal struct {
	t0    time.Time
	mu    sync.Mutex
	notes map[string][]string
}

func (j *chaosJournal) add(channel, line string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.notes == nil {
		j.notes = map[string][]string{}
	}
	j.notes[channel] = append(j.notes[channel], fmt.Sprintf("%+.2fs %s", time.Since(j.t0).Seconds(), line))
}

// by is what an encoder of channel (stream) notes with.
func (j *chaosJournal) by(channel, stream string) func(string, ...any) {
	return func(format string, args ...any) { j.add(channel, stream+": "+fmt.Sprintf(format, args...)) }
}

// storeAt notes the newest fragment the store holds of each of channel's
// tracks, and how many.
func (j *chaosJournal) storeAt(st *stack.Stack, channel, when string) {
	newest, count := map[string]uint64{}, map[string]int{}
	err := st.Store.List(context.Background(), layout.LivePrefix+channel+".isml/", func(page []store.Listed) error {
		for _, o := range page {
			if obj, err := layout.Parse(o.Key); err == nil && obj.Kind == layout.KindFragment {
				tr := obj.Track.String()
				newest[tr], count[tr] = max(newest[tr], obj.Start), count[tr]+1
			}
		}
		return nil
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%s: the store holds", when)
	for _, tr := range slices.Sorted(maps.Keys(newest)) {
		fmt.Fprintf(&b, "; %s: %d, newest at %gs", tr, count[tr], float64(newest[tr])/1e7)
	}
	if err != nil {
		fmt.Fprintf(&b, " (listing failed: %v)", err)
	}
	j.add(channel, b.String())
}

// figures are channel's chaosFigures; a channel that never turns VOD (a
// loss with nothing after it, as when a relay's twin does not take over)
// ends the test, and the journal says which channel and what happened.
func (j *chaosJournal) figures(t *testing.T, st *stack.Stack, channel string, pushed int) figures {
	t.Helper()
	counted := false
	defer func() {
		if !counted {
			t.Logf("%s: not counted%s", channel, j.of(channel))
		}
	}()
	f := chaosFigures(t, st, channel, pushed)
	counted = true
	return f
}

// of is channel's journal, a line each.
func (j *chaosJournal) of(channel string) string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var b strings.Builder
	for _, l := range j.notes[channel] {
		b.WriteString("\n\t" + l)
	}
	return b.String()
}

// chaosEncoder is a live encoder that reconnects when the relay goes away.
type chaosEncoder struct {
	t          *testing.T
	url        string
	s          *synth.Stream
	relay      *relayProcess
	reconnects *atomic.Int64
	deeper     *atomic.Int64                    // reconnections that resent more than the last three fragments
	note       func(format string, args ...any) // to the channel's journal
	// origin is the edge's URL and channel the encoder's channel: where
	// it asks which of its fragments the origin has (resumeAt).
	origin, channel string
	// eventOver, when set, is closed when the event is over: until then
	// the encoder reconnects however often it is refused (its relay's
	// zone is gone), once a second. Without it, it gives up after 60
	// connections.
	eventOver <-chan struct{}
	refused   int        // connections refused (nothing listened)
	hold      *chaosHold // where to wait for the relay to go (once)
}

// chaosHold stops an encoder inside a fragment until its relay is gone:
// what the relay had of it is lost for certain.
type chaosHold struct {
	at      int           // the fragment
	reached chan struct{} // closed when half of it is written
	gone    chan struct{} // closed when the relay is gone
}

// write writes the first half of frag, says so, and writes the rest
// once the relay is gone.
func (h *chaosHold) write(w io.Writer, frag []byte) error {
	_, err := w.Write(frag[:len(frag)/2])
	close(h.reached)
	<-h.gone
	if err == nil {
		_, err = w.Write(frag[len(frag)/2:])
	}
	return err
}

// chaosKeep is how many of the fragments it wrote last an encoder keeps
// to resend.
const chaosKeep = 10

// resumeAt is the fragment an encoder resends from when a connection
// that started at fragment next broke after writing fragments up to sent
// (of a push that started at from).
//
// What the relay had read but not stored when it died is gone, and a
// push acknowledges nothing per fragment: the encoder cannot tell what
// was still in the socket buffers or the relay's hands. Resending a fixed
// number of its last fragments is what encoders do (Azure's ingest
// specification says two), and is not enough: a relay that a stalled or
// throttled store keeps on one fragment for seconds, while the encoder
// goes on writing into the buffers, is further behind than any fixed
// number when it is killed (the suite, on a loaded machine, saw it four
// behind with three resent). Nor can an encoder resend as far back as it
// likes: a fragment that ends more than the relay's -max-drift (3 s
// here) behind what the channel published looks like a restarted
// encoder, and is rebased (an encoder its relay held back behind a
// redundant one that resent its last three was). Both bounds are
// measured from what the origin has, so this encoder asks the origin, as
// a player would, which of the fragments it keeps it serves, and resends
// from the one before the first it lacks (one it has, refused as
// existing, so that the new connection's fragments continue its chain),
// but not from before the broken connection's first (an earlier
// connection's failure decided that). Where the origin serves none of the
// encoder's times (nothing stored yet, or a rebased encoder's, which are
// stored moved), its last three. (A rebased encoder whose own times an
// earlier session stored is told they are all there: it resends one.)
func (e *chaosEncoder) resumeAt(from, next, sent int) int {
	lo := max(from, sent-chaosKeep)
	lacks, ok := e.firstLacking(lo, sent)
	if !ok {
		resume := max(next, sent-3)
		e.note("reconnecting: the origin serves none of fragments %d to %d: resending from %d", lo, sent-1, resume)
		return resume
	}
	resume := max(next, lacks-1)
	if resume < max(next, sent-3) {
		e.deeper.Add(1)
	}
	e.note("reconnecting: the origin lacks fragment %d of fragments up to %d written: resending from %d", lacks, sent, resume)
	return resume
}

// firstLacking is the fragment after the last of [lo, sent) that the
// origin serves for every track (sent if it serves sent-1); ok is false
// when it serves none of them.
func (e *chaosEncoder) firstLacking(lo, sent int) (int, bool) {
	for k := sent - 1; k >= lo; k-- {
		if e.originHas(k) {
			return k + 1, true
		}
	}
	return lo, false
}

// probeClient asks the edge what it serves (originHas): a stalled
// request is given up rather than waited for.
var probeClient = &http.Client{Timeout: 10 * time.Second}

// originHas reports whether the edge serves fragment k of every track; a
// fragment it cannot say of (an error after three tries) counts as
// lacking.
func (e *chaosEncoder) originHas(k int) bool {
	for i, tr := range e.s.Config().Tracks {
		start := e.s.Start(i, k)
		if start < 0 {
			continue // dropped by the relay: nothing to ask for
		}
		key := layout.FragmentKey(e.channel, layout.TrackID{Name: tr.Name, Bitrate: tr.Bitrate}, uint64(start))
		status := 0
		for try := 0; try < 3 && status != http.StatusOK && status != http.StatusNotFound; try++ {
			status = 0
			if resp, err := probeClient.Head(e.origin + "/" + key); err == nil {
				resp.Body.Close()
				status = resp.StatusCode
			}
		}
		if status != http.StatusOK {
			return false
		}
	}
	return true
}

// push sends fragments [from, to), fragment k when it is due (due0 plus
// k-from+1 fragment durations), then the mfra when end is set. cut, when
// in range, breaks the connection inside fragment cut (once). On any
// failure it reconnects and resends from the fragment it was sending.
//
// A connection refused wrote nothing: the encoder tries again from the
// same fragment (resumeAt, which asks only about fragments written,
// would say the same).
func (e *chaosEncoder) push(from, to int, due0 time.Time, end bool, cut int) {
	next := from
	for attempt := 0; next < to || attempt == 0; attempt++ {
		if attempt > 60 && e.eventOver == nil {
			e.t.Errorf("%s: gave up after %d connections", e.url, attempt)
			return
		}
		sent, dropped, err := e.connection(next, to, due0.Add(time.Duration(next-from)*e.s.Config().FragmentDuration), end, cut)
		refused := errors.Is(err, syscall.ECONNREFUSED)
		if refused {
			e.refused++
		}
		if !refused || e.eventOver == nil || e.refused == 1 {
			e.note("connection from fragment %d wrote fragments up to %d: %v", next, sent, err)
		}
		if err == nil {
			return
		}
		if dropped {
			cut = -1 // once, as planned
		}
		e.reconnects.Add(1)
		if !refused {
			next = e.resumeAt(from, next, sent)
		}
		pause := 200 * time.Millisecond
		if refused && e.eventOver != nil {
			pause = time.Second
		}
		select {
		case <-e.eventOver: // nil: never
			e.note("the event is over: %d connections refused", e.refused)
			return
		case <-time.After(pause):
		}
	}
}

// connection is one POST; it returns the index of the first fragment not
// wholly written, whether it dropped on purpose, and the error that ended
// it (nil: the server took all).
func (e *chaosEncoder) connection(from, to int, due0 time.Time, end bool, cut int) (int, bool, error) {
	pr, pw := io.Pipe()
	sent, dropped := from, false
	var mu sync.Mutex
	// The writer uses the stream, which is not safe for concurrent use:
	// the next connection starts only after this one's writer has stopped.
	over, writerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(writerDone)
		hdr, err := e.s.Header()
		if err == nil {
			_, err = pw.Write(hdr)
		}
		var frag []byte
		for k := from; k < to && err == nil; k++ {
			select {
			case <-time.After(time.Until(due0.Add(time.Duration(k-from+1) * e.s.Config().FragmentDuration))):
			case <-over:
				err = errors.New("request over")
				continue
			}
			if frag, err = e.s.AppendFragment(frag[:0], k); err != nil {
				break
			}
			if k == cut {
				_, _ = pw.Write(frag[:len(frag)/2])
				mu.Lock()
				dropped = true
				mu.Unlock()
				err = errors.New("connection dropped on purpose")
				break
			}
			if h := e.hold; h != nil && k == h.at {
				e.hold = nil
				err = h.write(pw, frag)
			} else {
				_, err = pw.Write(frag)
			}
			if err == nil {
				mu.Lock()
				sent = k + 1
				mu.Unlock()
			}
		}
		if err == nil && end {
			_, err = pw.Write(e.s.Trailer())
		}
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequest(http.MethodPost, e.url, pr)
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		}
	}
	close(over)
	pr.CloseWithError(errors.New("request over"))
	<-writerDone
	mu.Lock()
	defer mu.Unlock()
	return sent, dropped, err
}

// figures are one channel's outcome, in fragments per track. Duplicates
// count a Smooth time that does not rise and a segment listed twice by an
// HLS media playlist or a DASH Representation.
type figures struct {
	pushed, stored, listed, lost, missing, duplicates int
	unlisted                                          int // stored fragments no manifest lists
	corrupt                                           int // listed fragments that are not whole, or not at their time
	discs                                             int // EXT-X-DISCONTINUITY tags, all media playlists
	// detail says, when a fragment is lost, missing, unlisted or broken
	// by a discontinuity, which track and which times: CI's output is
	// all one has of a run that failed under load.
	detail string
}

func chaosFigures(t *testing.T, st *stack.Stack, channel string, pushed int) figures {
	t.Helper()
	base := st.EdgeURL + "/live/" + channel + ".isml/"
	m := waitForVOD(t, st, base)
	f := figures{pushed: pushed}
	// Per track: what the Smooth manifest lists, and what the bucket holds.
	listed, stored := map[string]int{}, map[string]int{}
	listedKeys := map[string]bool{}
	var diag chaosDiag
	for _, si := range m.Streams {
		times := fragmentStarts(t, &si)
		for i := 1; i < len(times); i++ {
			if times[i] <= times[i-1] {
				f.duplicates++
			}
		}
		for _, ql := range si.Levels {
			for _, tm := range times {
				path := si.FragmentURL(ql.Bitrate, tm)
				listed[strings.SplitN(path, "=", 2)[0]]++ // QualityLevels(b)/Fragments(name: one track
				key := layout.LivePrefix + channel + ".isml/" + path
				listedKeys[key] = true
				diag.add("listed", key)
				resp, body := get(t, base+path)
				if resp.StatusCode != 200 {
					f.missing++
					diag.add("missing", key)
					continue
				}
				if info, err := fmp4.Inspect(body); err != nil || info.Start != tm {
					f.corrupt++
				}
			}
		}
	}
	// DASH: no Representation lists a segment twice.
	_, body := get(t, base+"manifest.mpd")
	refs, err := dashReferences(body)
	if err != nil {
		t.Fatalf("%s MPD: %v", channel, err)
	}
	seenDASH := map[string]bool{}
	for _, ref := range refs {
		if seenDASH[ref] {
			f.duplicates++
		}
		seenDASH[ref] = true
	}
	// HLS: no media playlist lists a segment twice.
	for uri, pl := range mediaPlaylists(t, base) {
		f.discs += discontinuitiesOf(pl)
		diag.discontinuities(uri, pl)
		seen := map[string]bool{}
		for _, s := range pl.Segments {
			if s.Gap {
				// A hole (EXT-X-GAP) names a fragment never stored: the
				// lost-fragment count tells of it.
				continue
			}
			if seen[s.URI] {
				f.duplicates++
			}
			seen[s.URI] = true
			// Segment URIs are relative to the media playlist's.
			diag.add("hls", layout.LivePrefix+channel+".isml/"+path.Join(path.Dir(uri), strings.SplitN(s.URI, "?", 2)[0]))
		}
	}
	err = st.Store.List(context.Background(), layout.LivePrefix+channel+".isml/", func(page []store.Listed) error {
		for _, o := range page {
			if obj, err := layout.Parse(o.Key); err == nil && obj.Kind == layout.KindFragment {
				stored[obj.Track.String()]++
				diag.add("stored", o.Key)
				if !listedKeys[o.Key] {
					f.unlisted++
					diag.add("unlisted", o.Key)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The worst track counts: a fragment lost on one track is lost.
	f.listed, f.stored = minCount(listed), minCount(stored)
	if len(listed) == 0 {
		f.listed = 0
	}
	f.lost = f.pushed - f.listed
	f.detail = diag.String()
	return f
}

// chaosDiag collects, per track, the start times (seconds) of a chaos
// channel's fragments by what became of them.
type chaosDiag struct {
	times map[string]map[string][]float64 // track, then listed, stored, missing, unlisted, hls
	discs []string                        // media playlist: where its discontinuities are
}

func (d *chaosDiag) add(what, key string) {
	obj, err := layout.Parse(key)
	if err != nil {
		return
	}
	if d.times == nil {
		d.times = map[string]map[string][]float64{}
	}
	tr := obj.Track.String()
	if d.times[tr] == nil {
		d.times[tr] = map[string][]float64{}
	}
	d.times[tr][what] = append(d.times[tr][what], float64(obj.Start)/1e7) // synth's timescale
}

func (d *chaosDiag) discontinuities(uri string, pl *hls.Playlist) {
	for i, s := range pl.Segments {
		if s.Discontinuity {
			d.discs = append(d.discs, fmt.Sprintf("%s before segment %d (%s)", uri, i, s.URI))
		}
	}
}

// String says per track at which seconds, from the first to the last
// any track lists, it lists nothing (lost, or a break between sessions:
// the discontinuities say which), which fragments it stores and does
// not list, and which it lists and cannot serve; then where the
// discontinuities are.
func (d *chaosDiag) String() string {
	// A fragment's slot is its start rounded to the second (fragments
	// last 1 s; audio starts on AAC frames, off the second by a little).
	slot := func(s float64) int64 { return int64(math.Round(s)) }
	first, last := int64(math.MaxInt64), int64(math.MinInt64)
	for _, w := range d.times {
		for _, s := range w["listed"] {
			first, last = min(first, slot(s)), max(last, slot(s))
		}
	}
	var b strings.Builder
	for _, tr := range slices.Sorted(maps.Keys(d.times)) {
		w := d.times[tr]
		has := map[int64]bool{}
		for _, s := range w["listed"] {
			has[slot(s)] = true
		}
		var holes []int64
		for s := first; s <= last; s++ {
			if !has[s] {
				holes = append(holes, s)
			}
		}
		if len(holes) == 0 && len(w["unlisted"]) == 0 && len(w["missing"]) == 0 {
			continue
		}
		// The Smooth manifest lists, per StreamIndex, what every rendition
		// of it has: one that lacks a fragment unlists its siblings'.
		var inHLS []float64
		for _, s := range w["unlisted"] {
			if slices.Contains(w["hls"], s) {
				inHLS = append(inHLS, s)
			}
		}
		slices.Sort(w["stored"])
		fmt.Fprintf(&b, "\n\ttrack %s: nothing listed at ~%vs; stored but unlisted %vs (of which its HLS playlist lists %vs); listed but missing %vs; stored %vs",
			tr, holes, w["unlisted"], inHLS, w["missing"], w["stored"])
	}
	for _, s := range d.discs {
		fmt.Fprintf(&b, "\n\tdiscontinuity: %s", s)
	}
	return b.String()
}

// minCount is the smallest value of counts (0 for none).
func minCount(counts map[string]int) int {
	low := -1
	for _, n := range counts {
		if low < 0 || n < low {
			low = n
		}
	}
	return max(low, 0)
}

// buildRelay builds the relay binary (functions/ingest) for this machine.
func buildRelay(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "smoothcast-ingest")
	cmd := exec.Command("go", "build", "-o", bin, "./functions/ingest")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the relay: %v\n%s", err, out)
	}
	return bin
}

// relayProcess runs the relay binary against the stack's store.
type relayProcess struct {
	t    *testing.T
	bin  string
	addr string
	st   *stack.Stack

	extra []string // more flags
	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{} // closed when cmd is killed
	peak  int64         // highest VmHWM of any run, bytes
}

func startRelay(t *testing.T, bin string, st *stack.Stack, flags ...string) *relayProcess {
	t.Helper()
	rp := &relayProcess{t: t, bin: bin, addr: freeTCPAddr(t), st: st, extra: flags}
	rp.restart()
	t.Cleanup(func() { rp.kill9() })
	return rp
}

// freeTCPAddr returns a loopback TCP address nothing listens on: a port
// the system just gave and took back (for a relay the test starts).
func freeTCPAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// streamCounts are a push's track fragments as its relay's /status
// counts them: stored, of which found stored already (duplicates).
type streamCounts struct{ fragments, duplicates int }

// relayCounts reads the /status of the relay whose admin listener is at
// admin: the counts of each push in progress, by "channel/stream". An
// error fails the test (it may run on any goroutine) and gives nil.
func relayCounts(t *testing.T, admin string) map[string]streamCounts {
	resp, err := http.Get("http://" + admin + "/status")
	if err != nil {
		t.Errorf("relay status: %v", err)
		return nil
	}
	defer resp.Body.Close()
	var status relay.Status
	if err := json.NewDecoder(resp.Body).Decode(&status); err != nil {
		t.Errorf("relay status: %s: %v", resp.Status, err)
		return nil
	}
	counts := map[string]streamCounts{}
	for _, ch := range status.Channels {
		for _, s := range ch.Streams {
			c := counts[ch.Channel+"/"+s.Stream]
			for _, tr := range s.Tracks {
				c.fragments += tr.Fragments
				c.duplicates += tr.Duplicates
			}
			counts[ch.Channel+"/"+s.Stream] = c
		}
	}
	return counts
}

func (rp *relayProcess) url(channel, stream string) string {
	return "http://" + rp.addr + "/live/" + channel + ".isml/Streams(" + stream + ")"
}

// restart starts the relay and waits until it answers.
func (rp *relayProcess) restart() {
	// -admin-addr "", -rtmp-addr "", -srt-addr "": several relays run at
	// once; their admin, RTMP and SRT ports are not under test here (extra
	// may set them).
	cmd := exec.Command(rp.bin, append([]string{"-addr", rp.addr, "-admin-addr", "", "-rtmp-addr", "", "-srt-addr", "", "-bucket", rp.st.Store.Bucket, "-endpoint", rp.st.S3.URL, "-max-drift", "3s"}, rp.extra...)...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+s3local.AccessKey, "AWS_SECRET_ACCESS_KEY="+s3local.SecretKey, "AWS_REGION=us-east-1")
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		rp.t.Fatalf("start the relay: %v", err)
	}
	done := make(chan struct{})
	rp.mu.Lock()
	rp.cmd, rp.done = cmd, done
	rp.mu.Unlock()
	go func() {
		for {
			rp.sampleMemory(cmd.Process.Pid)
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	for range 100 {
		if c, err := net.Dial("tcp", rp.addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	rp.t.Fatalf("the relay does not listen on %s", rp.addr)
}

// kill9 kills the relay as the kernel's OOM killer or a pulled plug would.
func (rp *relayProcess) kill9() {
	rp.mu.Lock()
	cmd, done := rp.cmd, rp.done
	rp.cmd = nil
	rp.mu.Unlock()
	if cmd == nil {
		return
	}
	rp.sampleMemory(cmd.Process.Pid)
	close(done)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
}

// sampleMemory reads the process's peak resident set (VmHWM).
func (rp *relayProcess) sampleMemory(pid int) {
	if hwm := procStatusBytes(pid, "VmHWM"); hwm > 0 {
		rp.mu.Lock()
		rp.peak = max(rp.peak, hwm)
		rp.mu.Unlock()
	}
}

// procStatusBytes reads a kB field of /proc/{pid}/status, in bytes (0 if
// unknown).
func procStatusBytes(pid int, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func (rp *relayProcess) peakRSS() int64 {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.peak
}

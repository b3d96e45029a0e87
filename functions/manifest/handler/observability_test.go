package handler_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/shared/emf"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/manifest/dash"
	"github.com/smoothcast/smoothcast/shared/manifest/hls"
	"github.com/smoothcast/smoothcast/shared/manifest/smooth"
	"github.com/smoothcast/smoothcast/shared/metricname"
	"github.com/smoothcast/smoothcast/shared/store"
)

// syncBuffer is a bytes.Buffer safe for the handler's concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns what was written, one entry per line, and empties it.
func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	sc := bufio.NewScanner(&s.b)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	s.b.Reset()
	return out
}

// metricsOf parses each line as an EMF document, as CloudWatch Logs
// would.
func metricsOf(t *testing.T, lines []string) []emf.Document {
	t.Helper()
	var docs []emf.Document
	for _, l := range lines {
		d, err := emf.Parse([]byte(l))
		if err != nil {
			t.Fatalf("not an EMF document: %v\n%s", err, l)
		}
		docs = append(docs, d)
	}
	return docs
}

// value is the one value of metric name in d (NaN when d lacks it), and
// values all of them.
func value(d emf.Document, name string) float64 {
	v := values(d, name)
	if len(v) != 1 {
		return math.NaN()
	}
	return v[0]
}

func values(d emf.Document, name string) []float64 {
	for _, m := range d.Metrics {
		if m.Name == name {
			return m.Values
		}
	}
	return nil
}

// conflictingStore answers the first conditional write of each state
// document with a precondition failure (a concurrent writer won), or
// every write with err when err is set.
type conflictingStore struct {
	handler.ObjectStore
	mu   sync.Mutex
	seen map[string]bool
	err  error
}

func (c *conflictingStore) Put(ctx context.Context, key string, body []byte, o store.PutOptions) (string, error) {
	c.mu.Lock()
	first := !c.seen[key]
	c.seen[key] = true
	c.mu.Unlock()
	if c.err != nil {
		return "", c.err
	}
	if first && (o.IfMatch != "" || o.IfNoneMatch) {
		return "", store.ErrPreconditionFailed
	}
	return c.ObjectStore.Put(ctx, key, body, o)
}

// Every processed event prints one EMF document: namespace Smoothcast,
// per channel and in total, the events, fragments published with each
// one's delay from its S3 event to the state write, conflicts retried,
// errors and stream ends, stamped with the handler's clock.
func TestEveryEventGivesOneMetricsDocument(t *testing.T) {
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	const lag = 250 * time.Millisecond

	t.Run("in order", func(t *testing.T) {
		_, st := newStore(t)
		evs := pushFixture(t, st, "ch", base)
		h := handler.New(st, handler.DefaultConfig(), quiet)
		var out syncBuffer
		h.Metrics = emf.NewWriter(&out)
		for _, fe := range evs {
			at := fe.ev.Records[0].EventTime
			h.Now = func() time.Time { return at.Add(lag) }
			if err := h.HandleS3(context.Background(), fe.ev); err != nil {
				t.Fatal(err)
			}
			docs := metricsOf(t, out.lines())
			if len(docs) != 1 {
				t.Fatalf("%s: %d documents, want 1", fe.key, len(docs))
			}
			d := docs[0]
			if d.Namespace != metricname.Namespace || !slices.EqualFunc(d.Dimensions, [][]string{{"Channel"}, {}}, slices.Equal) ||
				d.DimensionValues["Channel"] != "ch" || !d.Timestamp.Equal(at.Add(lag)) {
				t.Errorf("%s: namespace %q, dimensions %q = %v, at %v", fe.key, d.Namespace, d.Dimensions, d.DimensionValues, d.Timestamp)
			}
			obj, _ := layout.Parse(fe.key)
			wantPublished, wantEnded, wantDelay := 1.0, 0.0, []float64{250}
			if obj.Kind == layout.KindEnd {
				wantPublished, wantEnded, wantDelay = 0, 1, nil // the push ended the stream
			}
			for name, want := range map[string]float64{
				metricname.EventsProcessed: 1, metricname.FragmentsPublished: wantPublished, metricname.ConflictsRetried: 0,
				metricname.Errors: 0, metricname.StreamsEnded: wantEnded,
			} {
				if got := value(d, name); got != want {
					t.Errorf("%s: %s = %v, want %v", fe.key, name, got, want)
				}
			}
			if got := values(d, metricname.FragmentToManifestDelay); !slices.Equal(got, wantDelay) {
				t.Errorf("%s: delay %v ms, want %v", fe.key, got, wantDelay)
			}
		}
	})

	t.Run("a late fragment lets the waiting one through", func(t *testing.T) {
		_, st := newStore(t)
		evs := liveOnly(pushFixture(t, st, "ch", base))
		first, second := evs[4], evs[5] // QualityLevels(60000) video 0 and 20000000
		if !strings.HasSuffix(first.key, "(video=0)") || !strings.HasSuffix(second.key, "(video=20000000)") {
			t.Fatalf("fixture order: %s, %s", first.key, second.key)
		}
		h := handler.New(st, handler.DefaultConfig(), quiet)
		var out syncBuffer
		h.Metrics = emf.NewWriter(&out)
		now := second.ev.Records[0].EventTime.Add(time.Second)
		h.Now = func() time.Time { return now }
		for _, fe := range []fragmentEvent{second, first} {
			if err := h.HandleS3(context.Background(), fe.ev); err != nil {
				t.Fatal(err)
			}
		}
		docs := metricsOf(t, out.lines())
		if len(docs) != 2 {
			t.Fatalf("%d documents, want 2", len(docs))
		}
		if got := value(docs[0], metricname.FragmentsPublished); got != 0 || values(docs[0], metricname.FragmentToManifestDelay) != nil {
			t.Errorf("the early fragment: published %v, delays %v; want 0 and none", got, values(docs[0], metricname.FragmentToManifestDelay))
		}
		// Each from its own event: the first 3 s before the write, the
		// waiting one 1 s.
		wantDelays := []float64{float64(now.Sub(first.ev.Records[0].EventTime).Milliseconds()), 1000}
		if got := value(docs[1], metricname.FragmentsPublished); got != 2 || !slices.Equal(values(docs[1], metricname.FragmentToManifestDelay), wantDelays) {
			t.Errorf("the late fragment: published %v, delays %v; want 2, %v", got, values(docs[1], metricname.FragmentToManifestDelay), wantDelays)
		}
	})

	t.Run("conflicts are counted", func(t *testing.T) {
		_, st := newStore(t)
		evs := liveOnly(pushFixture(t, st, "ch", base))
		cs := &conflictingStore{ObjectStore: st, seen: map[string]bool{}}
		h := handlerAt(cs, handler.DefaultConfig(), evs)
		var out syncBuffer
		h.Metrics = emf.NewWriter(&out)
		if err := h.HandleS3(context.Background(), evs[0].ev); err != nil {
			t.Fatal(err)
		}
		// The channel index and the track state each lost once.
		docs := metricsOf(t, out.lines())
		if len(docs) != 1 || value(docs[0], metricname.ConflictsRetried) != 2 || value(docs[0], metricname.FragmentsPublished) != 1 {
			t.Errorf("documents %+v, want one with 2 conflicts and 1 fragment", docs)
		}
	})

	t.Run("errors are counted", func(t *testing.T) {
		_, st := newStore(t)
		evs := liveOnly(pushFixture(t, st, "ch", base))
		h := handlerAt(&conflictingStore{ObjectStore: st, seen: map[string]bool{}, err: errors.New("disk on fire")}, handler.DefaultConfig(), evs)
		var out syncBuffer
		h.Metrics = emf.NewWriter(&out)
		if err := h.HandleS3(context.Background(), evs[0].ev); err == nil {
			t.Fatal("no error")
		}
		docs := metricsOf(t, out.lines())
		if len(docs) != 1 || value(docs[0], metricname.Errors) != 1 || value(docs[0], metricname.EventsProcessed) != 1 ||
			value(docs[0], metricname.FragmentsPublished) != 0 {
			t.Errorf("documents %+v, want one with an error", docs)
		}
	})

	t.Run("a manifest request that fails is an error", func(t *testing.T) {
		srv, st := newStore(t)
		h := handler.New(st, handler.DefaultConfig(), quiet)
		var out syncBuffer
		h.Metrics = emf.NewWriter(&out)
		srv.SetFaults(s3local.Faults{ErrorRate: 1})
		defer srv.SetFaults(s3local.Faults{})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		resp, _ := h.HandleURL(ctx, urlRequest("GET", "/live/ch.isml/Manifest"))
		docs := metricsOf(t, out.lines())
		if resp.StatusCode != 503 || len(docs) != 1 || value(docs[0], metricname.Errors) != 1 || docs[0].DimensionValues["Channel"] != "ch" {
			t.Errorf("status %d, documents %+v; want 503 and one error of channel ch", resp.StatusCode, docs)
		}
	})

	t.Run("off unless set", func(t *testing.T) {
		_, st := newStore(t)
		if h := handler.New(st, handler.DefaultConfig(), quiet); h.Metrics != nil {
			t.Error("New turns metrics on: the local stack would print them")
		}
	})
}

// Every log line about an event of the layout names its channel, track
// and key and says how long it took (ms); a write also says how late it
// came after the event (delay_ms).
func TestEventLogLinesCarryChannelTrackKeyAndTimings(t *testing.T) {
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	_, st := newStore(t)
	evs := pushFixture(t, st, "ch", base)
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := handlerAt(st, handler.DefaultConfig(), evs)
	h.Log = log
	// Each event once (writes), again (no write), and with the store
	// failing (an error).
	for _, fe := range evs {
		_ = h.HandleS3(context.Background(), fe.ev)
	}
	for _, fe := range evs {
		_ = h.HandleS3(context.Background(), fe.ev)
	}
	_, other := newStore(t)
	failedEvents := liveOnly(pushFixture(t, other, "ch2", base))
	failing := handlerAt(&conflictingStore{ObjectStore: other, seen: map[string]bool{}, err: errors.New("disk on fire")}, handler.DefaultConfig(), evs)
	failing.Log = log
	_ = failing.HandleS3(context.Background(), failedEvents[0].ev)
	// And one whose object is gone.
	gone := failedEvents[1].ev
	gone.Records = slices.Clone(gone.Records)
	gone.Records[0].S3.Object.Key = strings.Replace(gone.Records[0].S3.Object.Key, "ch2.isml", "gone.isml", 1)
	_ = h.HandleS3(context.Background(), gone)

	seen := map[string]int{}
	for _, l := range logs.lines() {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("not JSON: %s", l)
		}
		msg, _ := rec["msg"].(string)
		if msg != "event" && msg != "event failed" && msg != "ignoring event for a missing object" {
			continue
		}
		kind := msg
		if rec["write"] == false {
			kind += " (no write)"
		}
		seen[kind]++
		for _, k := range []string{"channel", "track", "key", "ms"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("%s lacks %s: %s", kind, k, l)
			}
		}
		if kind == "event" {
			if _, ok := rec["delay_ms"]; !ok {
				t.Errorf("a write's line lacks delay_ms: %s", l)
			}
		}
	}
	if seen["event"] != len(evs) || seen["event (no write)"] != len(evs) || seen["event failed"] != 1 || seen["ignoring event for a missing object"] != 1 {
		t.Errorf("log lines %v, want %d writes, %d without, 1 failure, 1 missing object", seen, len(evs), len(evs))
	}
}

// smoothEnd is the wall-clock end of the newest fragment a Smooth manifest
// lists, read from its chunks.
func smoothEnd(t *testing.T, body string, epoch time.Time) (time.Time, bool) {
	t.Helper()
	m, err := smooth.Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	var newest time.Time
	for _, si := range m.Streams {
		frags, err := si.Fragments()
		if err != nil {
			t.Fatal(err)
		}
		if len(frags) > 0 {
			newest = later(newest, wallclock(epoch, frags[len(frags)-1].End(), m.Timescale(&si)))
		}
	}
	return newest, !newest.IsZero()
}

// dashEnd reads the newest segment's end from an MPD's segment timelines
// (media times, from the channel's epoch: a dynamic MPD's
// availabilityStartTime).
func dashEnd(t *testing.T, body string, epoch time.Time) (time.Time, bool) {
	t.Helper()
	m, err := dash.Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if m.AvailabilityStartTime != "" {
		if ast, err := time.Parse(time.RFC3339Nano, string(m.AvailabilityStartTime)); err != nil || !ast.Equal(epoch) {
			t.Fatalf("availabilityStartTime %s (%v), want the epoch %v", m.AvailabilityStartTime, err, epoch)
		}
	}
	var newest time.Time
	for rep, tmpl := range dash.Representations(m) {
		if tmpl == nil {
			t.Fatalf("Representation %s has no SegmentTemplate", rep.Id)
		}
		segs, err := tmpl.Segments()
		if err != nil {
			t.Fatal(err)
		}
		if n := len(segs); n > 0 {
			newest = later(newest, wallclock(epoch, segs[n-1].Time+segs[n-1].Duration, tmpl.Timescale))
		}
	}
	return newest, !newest.IsZero()
}

// hlsEnd reads the newest segment's end from a media playlist: its last
// program date-time plus the durations after it.
func hlsEnd(t *testing.T, body string) (time.Time, bool) {
	t.Helper()
	pl, err := hls.Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	var at time.Time
	var since time.Duration
	for _, s := range pl.Segments {
		if !s.ProgramDateTime.IsZero() {
			at, since = s.ProgramDateTime, 0
		}
		since += s.Duration
	}
	if at.IsZero() {
		return time.Time{}, false
	}
	return at.Add(since), true
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func wallclock(epoch time.Time, t, timescale uint64) time.Time {
	return epoch.Add(time.Duration(float64(t) / float64(timescale) * float64(time.Second)))
}

// Every manifest says when it was generated (the handler's clock) and
// when the newest fragment it lists ends, as read from the manifest
// itself; a multivariant playlist gives the newest of its media
// playlists'. Time-shift ranges, HEAD and a channel with nothing
// published yet included.
func TestManifestsTellWhenGeneratedAndTheirNewestFragment(t *testing.T) {
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	_, st := newStore(t)
	evs := liveOnly(pushFixture(t, st, "ch", base))
	h := handlerAt(st, handler.DefaultConfig(), evs)
	for _, fe := range evs {
		if err := h.HandleS3(context.Background(), fe.ev); err != nil {
			t.Fatal(err)
		}
	}
	generated := h.Now().Add(1500 * time.Millisecond)
	h.Now = func() time.Time { return generated }
	p, err := h.Presentation(context.Background(), "ch")
	if err != nil {
		t.Fatal(err)
	}

	// A channel whose only event is an end marker: tracks, no fragments.
	_, empty := newStore(t)
	all := pushFixture(t, empty, "none", base)
	he := handlerAt(empty, handler.DefaultConfig(), all)
	if err := he.HandleS3(context.Background(), all[len(all)-1].ev); err != nil {
		t.Fatal(err)
	}
	he.Now = h.Now

	get := func(h *handler.Handler, method, path string, query map[string]string) events.LambdaFunctionURLResponse {
		t.Helper()
		req := urlRequest(method, path)
		req.QueryStringParameters = query
		resp, err := h.HandleURL(context.Background(), req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s %s %v: %v %d %s", method, path, query, err, resp.StatusCode, resp.Body)
		}
		return resp
	}
	media := func(query map[string]string) (time.Time, bool) {
		var newest time.Time
		for _, tv := range p.Tracks {
			if e, ok := hlsEnd(t, get(h, "GET", "/"+layout.MediaPlaylistPath("ch", tv.ID), query).Body); ok {
				newest = later(newest, e)
			}
		}
		return newest, !newest.IsZero()
	}
	past := map[string]string{handler.QueryStart: "0", handler.QueryEnd: "1"} // a finished range: the first fragments
	for _, tc := range []struct {
		name   string
		h      *handler.Handler
		method string
		path   string
		query  map[string]string
		want   func(body string) (time.Time, bool) // from the manifest itself
	}{
		{"Smooth", h, "GET", "/live/ch.isml/Manifest", nil, func(b string) (time.Time, bool) { return smoothEnd(t, b, p.Epoch) }},
		{"Smooth, HEAD", h, "HEAD", "/live/ch.isml/Manifest", nil, func(string) (time.Time, bool) {
			return smoothEnd(t, get(h, "GET", "/live/ch.isml/Manifest", nil).Body, p.Epoch)
		}},
		{"Smooth, a finished range", h, "GET", "/live/ch.isml/Manifest", past, func(b string) (time.Time, bool) { return smoothEnd(t, b, p.Epoch) }},
		{"DASH", h, "GET", "/live/ch.isml/manifest.mpd", nil, func(b string) (time.Time, bool) { return dashEnd(t, b, p.Epoch) }},
		{"DASH, a finished range", h, "GET", "/live/ch.isml/manifest.mpd", past, func(b string) (time.Time, bool) { return dashEnd(t, b, p.Epoch) }},
		{"HLS video", h, "GET", "/live/ch.isml/QualityLevels(60000)/video.m3u8", nil, func(b string) (time.Time, bool) { return hlsEnd(t, b) }},
		{"HLS audio", h, "GET", "/live/ch.isml/QualityLevels(32000)/audio.m3u8", nil, func(b string) (time.Time, bool) { return hlsEnd(t, b) }},
		{"HLS audio, a finished range", h, "GET", "/live/ch.isml/QualityLevels(32000)/audio.m3u8", past, func(b string) (time.Time, bool) { return hlsEnd(t, b) }},
		{"HLS multivariant", h, "GET", "/live/ch.isml/master.m3u8", nil, func(string) (time.Time, bool) { return media(nil) }},
		{"HLS multivariant, a finished range", h, "GET", "/live/ch.isml/master.m3u8", past, func(string) (time.Time, bool) { return media(past) }},
		{"nothing published: Smooth", he, "GET", "/live/none.isml/Manifest", nil, func(string) (time.Time, bool) { return time.Time{}, false }},
		{"nothing published: HLS", he, "GET", "/live/none.isml/master.m3u8", nil, func(string) (time.Time, bool) { return time.Time{}, false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := get(tc.h, tc.method, tc.path, tc.query)
			if g := resp.Headers[handler.HeaderGenerated]; g != "2026-11-25T12:00:05.500Z" {
				t.Errorf("%s: %q, want the handler's clock, 2026-11-25T12:00:05.500Z", handler.HeaderGenerated, g)
			}
			want, listed := tc.want(resp.Body)
			got, has := resp.Headers[handler.HeaderNewestFragment]
			switch {
			case !listed && has:
				t.Errorf("%s: %q for a manifest that lists no fragment", handler.HeaderNewestFragment, got)
			case listed && got != want.UTC().Format("2006-01-02T15:04:05.000Z07:00"):
				t.Errorf("%s: %q, want %s", handler.HeaderNewestFragment, got, want.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
			}
			if _, err := time.Parse(time.RFC3339, got); has && err != nil {
				t.Errorf("not RFC 3339: %v", err)
			}
		})
	}
	// The live Smooth manifest holds its newest fragment back; the range
	// ends earlier than live: the cases differ, so the header follows
	// what each lists rather than the state.
	live := get(h, "GET", "/live/ch.isml/Manifest", nil).Headers[handler.HeaderNewestFragment]
	hls := get(h, "GET", "/live/ch.isml/master.m3u8", nil).Headers[handler.HeaderNewestFragment]
	ranged := get(h, "GET", "/live/ch.isml/master.m3u8", past).Headers[handler.HeaderNewestFragment]
	if live == hls || hls == ranged {
		t.Errorf("Smooth %s, HLS %s, HLS range %s: want three different ends", live, hls, ranged)
	}
}

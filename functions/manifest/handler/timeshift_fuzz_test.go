package handler_test

import (
	"context"
	"math"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/internal/testtool/bucket"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/store/storetest"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// timeShiftFixture is a live channel ("ch": the recorded push, 4 s per
// track) in an in-memory store, and a handler whose clock stands at the
// moment its newest fragment landed.
type timeShiftFixture struct {
	h *handler.Handler
	p *timeline.Presentation
	// keptStart and keptEnd are the extent of what the state lists, in
	// nanoseconds since 1970, exactly.
	keptStart, keptEnd *big.Int
	now                *big.Int
}

func newTimeShiftFixture(t testing.TB) *timeShiftFixture {
	t.Helper()
	_, st := testtool.Store(t, "timeshift")
	evs := liveOnly(pushFixture(t, st, "ch", time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)))
	h := handlerAt(st, handler.DefaultConfig(), evs)
	for _, fe := range evs {
		if err := h.HandleS3(context.Background(), fe.ev); err != nil {
			t.Fatal(err)
		}
	}
	// Requests read the state only: an in-memory copy keeps the fuzzer
	// off the network.
	objs, err := bucket.Read(context.Background(), st, "")
	if err != nil {
		t.Fatal(err)
	}
	mem := &storetest.Mem{}
	for _, o := range objs {
		if _, err := mem.Put(context.Background(), o.Key, o.Body, store.PutOptions{ContentType: o.ContentType, Metadata: o.Metadata}); err != nil {
			t.Fatal(err)
		}
	}
	f := &timeShiftFixture{h: handler.New(mem, handler.DefaultConfig(), quiet)}
	f.h.Now = h.Now
	if f.p, err = f.h.Presentation(context.Background(), "ch"); err != nil {
		t.Fatal(err)
	}
	epoch := nanos(f.p.Epoch)
	for _, tv := range f.p.Tracks {
		tl := tv.State.Timeline
		if tl.Empty() {
			t.Fatalf("track %s has published nothing", tv.ID)
		}
		at := func(ticks uint64) *big.Int {
			ns := new(big.Int).Mul(new(big.Int).SetUint64(ticks), big.NewInt(int64(time.Second)))
			return ns.Add(epoch, ns.Quo(ns, new(big.Int).SetUint64(tv.Timescale)))
		}
		if s := at(tl.Start()); f.keptStart == nil || s.Cmp(f.keptStart) < 0 {
			f.keptStart = s
		}
		if e := at(tl.End()); f.keptEnd == nil || e.Cmp(f.keptEnd) > 0 {
			f.keptEnd = e
		}
	}
	f.now = nanos(h.Now())
	return f
}

// nanos is t in nanoseconds since 1970, for any year (UnixNano wraps
// outside 1678-2262).
func nanos(t time.Time) *big.Int {
	ns := new(big.Int).Mul(big.NewInt(t.Unix()), big.NewInt(int64(time.Second)))
	return ns.Add(ns, big.NewInt(int64(t.Nanosecond())))
}

// instant is what a start or end parameter names, in nanoseconds since
// 1970 (rounded down), computed exactly (docs/playback.md: an RFC 3339
// time, or seconds since the stream's start, up to 1e10); ok is false
// for a value neither spells.
func (f *timeShiftFixture) instant(raw string) (ns *big.Int, ok bool) {
	if t, err := time.Parse(time.RFC3339Nano, strings.Replace(raw, " ", "+", 1)); err == nil {
		return nanos(t), true
	}
	sec, err := strconv.ParseFloat(raw, 64)
	if err != nil || math.IsNaN(sec) || math.IsInf(sec, 0) || sec < 0 || sec > 1e10 {
		return nil, false
	}
	r := new(big.Rat).SetFloat64(sec)
	r.Mul(r, new(big.Rat).SetInt64(int64(time.Second)))
	ns = new(big.Int).Quo(r.Num(), r.Denom()) // not negative: rounds down
	return ns.Add(ns, nanos(f.p.Epoch)), true
}

// timeShiftPaths are the manifests a time-shift query applies to.
var timeShiftPaths = []string{
	"/" + layout.SmoothManifestPath("ch"),
	"/" + layout.MasterPlaylistPath("ch"),
	"/" + layout.MediaPlaylistPath("ch", layout.TrackID{Name: "video", Bitrate: 60000}),
	"/" + layout.DASHManifestPath("ch"),
}

// check asks for path with the query (a parameter absent when its has
// flag is false) and holds the answer to the documented rules
// (docs/playback.md, time-shift): 400 for an unparsable time, an end not
// after the start, a start at or after the newest fragment's end (the live
// edge) or an end at or before the oldest fragment kept; otherwise 200,
// final (VOD) exactly when the range ends before now, live otherwise.
func (f *timeShiftFixture) check(t *testing.T, path, start, end string, hasStart, hasEnd bool) {
	t.Helper()
	q := map[string]string{}
	from, okFrom := f.instant(start)
	to, okTo := f.instant(end)
	if hasStart {
		q[handler.QueryStart] = start
	} else {
		from, okFrom = nil, true
	}
	if hasEnd {
		q[handler.QueryEnd] = end
	} else {
		to, okTo = nil, true
	}
	if !hasStart && !hasEnd {
		return // no time-shift request
	}
	var want int
	var why string
	switch {
	case !okFrom || !okTo:
		want, why = http.StatusBadRequest, "an unparsable time"
	case from != nil && to != nil && to.Cmp(from) <= 0:
		want, why = http.StatusBadRequest, "an end not after the start"
	case from != nil && from.Cmp(f.keptEnd) >= 0:
		want, why = http.StatusBadRequest, "a start after the live edge"
	case to != nil && to.Cmp(f.keptStart) <= 0:
		want, why = http.StatusBadRequest, "an end before the oldest fragment"
	default:
		want, why = http.StatusOK, "a range the archive serves"
	}
	req := urlRequest("GET", path)
	req.QueryStringParameters = q
	resp, err := f.h.HandleURL(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s?start=%q (%v) end=%q (%v): %d, want %d for %s (live edge %s, oldest %s): %s",
			path, start, hasStart, end, hasEnd, resp.StatusCode, want, why, f.keptEnd, f.keptStart, resp.Body)
	}
	if want != http.StatusOK {
		return
	}
	vod := to != nil && to.Cmp(f.now) <= 0
	final := map[bool]string{true: `IsLive="FALSE"`, false: `IsLive="TRUE"`}
	switch {
	case strings.HasSuffix(path, "/manifest.mpd"):
		final = map[bool]string{true: `type="static"`, false: `type="dynamic"`}
	case strings.HasSuffix(path, "/video.m3u8"):
		final = map[bool]string{true: "#EXT-X-ENDLIST", false: "#EXT-X-MEDIA-SEQUENCE"}
		if !vod && strings.Contains(resp.Body, "#EXT-X-ENDLIST") {
			t.Fatalf("%s?%v: a final playlist for a range that goes on past now:\n%s", path, q, resp.Body)
		}
	case strings.HasSuffix(path, "/master.m3u8"):
		return // lists no fragment: its media playlists say
	}
	if !strings.Contains(resp.Body, final[vod]) {
		t.Fatalf("%s?%v: want %q (the range ends before now: %v):\n%s", path, q, final[vod], vod, resp.Body)
	}
}

// A start after the live edge is refused in every format, however far:
// the examples, each past what a time.Duration of seconds holds.
func TestStartAfterTheLiveEdgeIsRefusedInEveryFormat(t *testing.T) {
	f := newTimeShiftFixture(t)
	for _, start := range []string{"3600", "1e10", "9223372037", "9300000000", "9223372036.854775807", "9999-12-31T23:59:59Z"} {
		for _, path := range timeShiftPaths {
			t.Run(start+path, func(t *testing.T) {
				f.check(t, path, start, "", true, false)
			})
		}
	}
	// And an end that far leaves the range open: live from the start.
	for _, path := range timeShiftPaths {
		f.check(t, path, "0", "9300000000", true, true)
	}
}

// FuzzTimeShiftQuery holds every manifest's answer to any start and end
// to the documented rules (see check): never a 200 for a range the
// archive cannot serve, never a live manifest for a range that ended.
func FuzzTimeShiftQuery(f *testing.F) {
	fx := newTimeShiftFixture(f)
	iso := func(d time.Duration) string { return fx.p.Epoch.Add(d).Format(time.RFC3339Nano) }
	for _, s := range []struct {
		start, end string
		which      uint8
	}{
		{"1e10", "", 1}, {"9223372037", "", 1}, {"9300000000", "", 1}, {"0", "4", 3}, {"2", "", 1},
		{"", "1.5", 2}, {"3", "1", 3}, {"-0", "0x1p33", 3}, {"9223372036.854775807", "", 5},
		{"1e-9", "9223372036.854775808", 7}, {iso(2 * time.Second), iso(time.Hour), 3},
		{"9999-12-31T23:59:59Z", "0000-01-01T00:00:00Z", 13}, {iso(-time.Hour), "", 9}, {"4", "", 13},
		{"3.9999999999", "", 1}, {"0", iso(4 * time.Second), 15},
	} {
		f.Add(s.start, s.end, s.which)
	}
	f.Fuzz(func(t *testing.T, start, end string, which uint8) {
		fx.check(t, timeShiftPaths[int(which>>2)%len(timeShiftPaths)], start, end, which&1 != 0, which&2 != 0)
	})
}

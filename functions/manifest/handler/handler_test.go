package handler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/internal/testtool/bucket"
	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// storedPush is what the relay stores for a recorded ffmpeg push
// (shared/ingest/testdata/ffmpeg-isml.ismv): its objects, keys relative to
// live/{channel}.isml/. integration's TestRelayStoresTheHandlersFixture
// checks that it still is.
const storedPush = "testdata/stored-push.json"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newStore starts an embedded S3 server without notifications: the tests
// deliver the events themselves, in the order they choose.
func newStore(t *testing.T) (*s3local.Server, *store.Store) {
	t.Helper()
	srv, st := testtool.Store(t, "test-bucket")
	return srv, st
}

// fragmentEvent is one fragment object and the event S3 would send for it.
type fragmentEvent struct {
	key string
	ev  events.S3Event
}

// pushFixture stores into st, for channel, what the relay stores for a
// recorded ffmpeg push (storedPush) and returns one event per stored
// fragment, in stream order, then one per end marker (the push ends the
// stream). Each event's time is base plus the fragment's end time, as if
// the encoder ran in real time.
func pushFixture(t testing.TB, st *store.Store, channel string, base time.Time) []fragmentEvent {
	t.Helper()
	objs, err := bucket.Load(storedPush)
	if err != nil {
		t.Fatal(err)
	}
	if err := bucket.Write(context.Background(), st, layout.LivePrefix+channel+".isml/", objs); err != nil {
		t.Fatal(err)
	}
	out, err := st.Client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(st.Bucket), Prefix: aws.String("live/")})
	if err != nil {
		t.Fatal(err)
	}
	var evs, ends []fragmentEvent
	for i, o := range out.Contents {
		key := aws.ToString(o.Key)
		obj, err := layout.Parse(key)
		if err != nil || obj.Kind != layout.KindFragment && obj.Kind != layout.KindEnd {
			continue
		}
		if obj.Kind == layout.KindEnd {
			// Written as the push ended: at its end time (ismv's timescale
			// is 10 MHz), which implies the same epoch as the fragments.
			at := base.Add(time.Duration(obj.Start/10) * time.Microsecond)
			ends = append(ends, fragmentEvent{key, s3local.Event(st.Bucket, key, "ObjectCreated:Put", aws.ToInt64(o.Size), "", uint64(i), at)})
			continue
		}
		// Read the fragment's end so that every fragment implies the same
		// epoch, whichever event the handler sees first.
		head, err := st.GetRange(context.Background(), key, 0, 4095)
		if err != nil {
			t.Fatal(err)
		}
		end := fragmentEnd(t, head.Body)
		at := base.Add(time.Duration(end/10) * time.Microsecond)
		evs = append(evs, fragmentEvent{key, s3local.Event(st.Bucket, key, "ObjectCreated:Put", aws.ToInt64(o.Size), "", uint64(i), at)})
	}
	if len(evs) < 6 || len(ends) != 3 {
		t.Fatalf("fixture stored %d fragments and %d end markers", len(evs), len(ends))
	}
	return append(evs, ends...)
}

// liveOnly drops the end markers: the channel stays live.
func liveOnly(evs []fragmentEvent) []fragmentEvent {
	return slices.DeleteFunc(evs, func(fe fragmentEvent) bool {
		obj, _ := layout.Parse(fe.key)
		return obj.Kind == layout.KindEnd
	})
}

// handlerAt returns a handler whose clock stands still at the newest of
// evs' event times: the moment the last object of a fixture pushed at a
// fixed base time landed, whatever today's date.
func handlerAt(st handler.ObjectStore, cfg handler.Config, evs []fragmentEvent) *handler.Handler {
	var now time.Time
	for _, fe := range evs {
		for _, rec := range fe.ev.Records {
			if rec.EventTime.After(now) {
				now = rec.EventTime
			}
		}
	}
	h := handler.New(st, cfg, quiet)
	h.Now = func() time.Time { return now }
	return h
}

func fragmentEnd(t testing.TB, b []byte) uint64 {
	t.Helper()
	n := int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
	moof, err := fmp4.DecodeMoof(b[:n])
	if err != nil {
		t.Fatal(err)
	}
	start, dur, _ := fmp4.Timing(moof, nil)
	return uint64(start) + dur
}

func render(t *testing.T, h *handler.Handler, channel string) map[string]string {
	t.Helper()
	out := map[string]string{}
	p, err := h.Presentation(context.Background(), channel)
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{layout.SmoothManifestPath(channel), layout.MasterPlaylistPath(channel), layout.DASHManifestPath(channel)}
	for _, tr := range p.Tracks {
		paths = append(paths, layout.MediaPlaylistPath(channel, tr.ID))
	}
	for _, path := range paths {
		resp, err := h.HandleURL(context.Background(), urlRequest("GET", "/"+path))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %d %s", path, err, resp.StatusCode, resp.Body)
		}
		out[path] = resp.Body
	}
	return out
}

func urlRequest(method, path string) events.LambdaFunctionURLRequest {
	return events.LambdaFunctionURLRequest{
		Version: "2.0", RawPath: path,
		RequestContext: events.LambdaFunctionURLRequestContext{HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: method, Path: path}},
	}
}

func TestEventsInAnyOrderDuplicatedAndConcurrentGiveTheInOrderManifests(t *testing.T) {
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	cfg := handler.DefaultConfig()

	_, refStore := newStore(t)
	refEvents := pushFixture(t, refStore, "ch", base)
	ref := handlerAt(refStore, cfg, refEvents)
	for _, fe := range refEvents {
		if err := ref.HandleS3(context.Background(), fe.ev); err != nil {
			t.Fatal(err)
		}
	}
	want := render(t, ref, "ch")
	// The fixture's video fragments but the newest, which live Smooth
	// manifests hold back until its successor is stored.
	if !strings.Contains(want[layout.SmoothManifestPath("ch")], `<c t="0" d="20000000"></c>`) || !strings.Contains(want[layout.MasterPlaylistPath("ch")], "BANDWIDTH") {
		t.Fatalf("reference manifest lacks the fixture's fragments:\n%s", want[layout.SmoothManifestPath("ch")])
	}

	for seed := uint64(1); seed <= 5; seed++ {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			srv, st := newStore(t)
			evs := pushFixture(t, st, "ch", base)
			putsBefore := srv.Requests()[http.MethodPut]
			all := handleShuffled(t, st, cfg, evs, rand.New(rand.NewPCG(seed, 42)))
			sameManifests(t, render(t, handlerAt(st, cfg, evs), "ch"), want)
			t.Logf("%d events (%d distinct) → %d state writes", all, len(evs), srv.Requests()[http.MethodPut]-putsBefore)
		})
	}
}

// handleShuffled hands every event of evs two or three times, shuffled by
// rng, to 8 concurrent "invocations", each a separate handler (no shared
// warm cache), and returns how many events it handed.
func handleShuffled(t *testing.T, st *store.Store, cfg handler.Config, evs []fragmentEvent, rng *rand.Rand) int {
	t.Helper()
	var all []events.S3Event
	for _, fe := range evs {
		for range 2 + rng.IntN(2) {
			all = append(all, fe.ev)
		}
	}
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	work := make(chan events.S3Event)
	var wg sync.WaitGroup
	errs := make(chan error, len(all))
	for range 8 {
		h := handlerAt(st, cfg, evs)
		wg.Go(func() {
			for ev := range work {
				if err := h.HandleS3(context.Background(), ev); err != nil {
					errs <- err
				}
			}
		})
	}
	for _, ev := range all {
		work <- ev
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	return len(all)
}

// sameManifests fails t for each manifest of got that is not want's.
func sameManifests(t *testing.T, got, want map[string]string) {
	t.Helper()
	for path, w := range want {
		if got[path] != w {
			t.Errorf("%s differs from in-order processing:\ngot:\n%s\nwant:\n%s", path, got[path], w)
		}
	}
}

func TestSampleEventsDispatch(t *testing.T) {
	_, st := newStore(t)
	h := handler.New(st, handler.DefaultConfig(), quiet)
	for _, tc := range []struct {
		file    string
		wantErr string
		status  int
	}{
		{"fragment-created.json", "", 0},
		{"manifest-request.json", "", 404},
		{"playlist-request.json", "", 404},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile("../../../events/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			out, err := h.Invoke(context.Background(), json.RawMessage(b))
			if tc.status == 0 {
				// A fragment event for an object that is not there is dropped
				// (logged), not retried.
				if err != nil || out != nil {
					t.Fatalf("got %v, %v; want the event dropped without error", out, err)
				}
				return
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp := out.(events.LambdaFunctionURLResponse); resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
	if _, err := h.Invoke(context.Background(), json.RawMessage(`{"hello":1}`)); err == nil {
		t.Error("an invocation of unknown shape was accepted")
	}
}

func TestManifestRequests(t *testing.T) {
	_, st := newStore(t)
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	evs := pushFixture(t, st, "ch", base)
	h := handlerAt(st, handler.DefaultConfig(), evs)
	for _, fe := range evs {
		if err := h.HandleS3(context.Background(), fe.ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, method, path string
		status             int
		ctype              string
	}{
		{"smooth manifest", "GET", "/live/ch.isml/Manifest", 200, handler.ContentTypeSmooth},
		{"master playlist", "GET", "/live/ch.isml/master.m3u8", 200, handler.ContentTypeHLS},
		{"media playlist", "GET", "/live/ch.isml/QualityLevels(60000)/video.m3u8", 200, handler.ContentTypeHLS},
		{"DASH MPD", "GET", "/live/ch.isml/manifest.mpd", 200, handler.ContentTypeDASH},
		{"head has no body", "HEAD", "/live/ch.isml/Manifest", 200, handler.ContentTypeSmooth},
		{"unknown track", "GET", "/live/ch.isml/QualityLevels(1)/video.m3u8", 404, ""},
		{"unknown channel", "GET", "/live/nope.isml/Manifest", 404, ""},
		{"state is never served", "GET", "/state/ch/channel.json", 404, ""},
		{"fragments are not the function's", "GET", "/live/ch.isml/QualityLevels(60000)/Fragments(video=0)", 404, ""},
		{"wrong method", "POST", "/live/ch.isml/Manifest", 405, ""},
		{"time for DASH clients", "GET", "/time", 200, "text/plain; charset=utf-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := h.HandleURL(context.Background(), urlRequest(tc.method, tc.path))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, resp.Body)
			}
			if tc.ctype != "" && resp.Headers["Content-Type"] != tc.ctype {
				t.Errorf("Content-Type %q, want %q", resp.Headers["Content-Type"], tc.ctype)
			}
			if cc := resp.Headers["Cache-Control"]; !strings.Contains(cc, "max-age=1") && !(tc.path == "/time" && cc == "no-store") {
				t.Errorf("Cache-Control %q: manifests and errors must expire within a second", cc)
			}
			if tc.method == "HEAD" && resp.Body != "" {
				t.Error("HEAD answered with a body")
			}
		})
	}
}

func TestMPDTellsTheTimeOnTheViewersHost(t *testing.T) {
	_, st := newStore(t)
	evs := liveOnly(pushFixture(t, st, "ch", time.Now().Add(-time.Minute)))
	h := handler.New(st, handler.DefaultConfig(), quiet)
	for _, fe := range evs {
		if err := h.HandleS3(context.Background(), fe.ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{"no viewer host: relative", nil, `value="/time"`},
		{"CloudFront: https by default", map[string]string{layout.ViewerHostHeader: "d111.cloudfront.net"}, `value="https://d111.cloudfront.net/time"`},
		{"local edge over http", map[string]string{layout.ViewerHostHeader: "127.0.0.1:8081", "x-forwarded-proto": "http"}, `value="http://127.0.0.1:8081/time"`},
		{"a host that is not one stays out", map[string]string{layout.ViewerHostHeader: "evil.example/x?"}, `value="/time"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := urlRequest("GET", "/live/ch.isml/manifest.mpd")
			req.Headers = tc.headers
			resp, err := h.HandleURL(context.Background(), req)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("status %d, err %v: %s", resp.StatusCode, err, resp.Body)
			}
			if !strings.Contains(resp.Body, `<UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" `+tc.want) {
				t.Errorf("UTCTiming is not %s:\n%s", tc.want, resp.Body)
			}
		})
	}
}

func TestEventKeyIsURLDecoded(t *testing.T) {
	// S3 encodes keys in events: '(' ')' '=' arrive as %28 %29 %3D.
	key := layout.FragmentKey("ch", layout.TrackID{Name: "video", Bitrate: 800000}, 20000000)
	enc := s3local.EncodeKey(key)
	if !strings.Contains(enc, "%28") || !strings.Contains(enc, "%3D") {
		t.Fatalf("EncodeKey(%q) = %q, want S3's encoding", key, enc)
	}
	dec, err := url.QueryUnescape(enc)
	if err != nil || dec != key {
		t.Fatalf("decode %q = %q, %v", enc, dec, err)
	}
}

func TestStateIsOneDocumentPerTrack(t *testing.T) {
	_, st := newStore(t)
	evs := liveOnly(pushFixture(t, st, "ch", time.Now()))
	h := handler.New(st, handler.DefaultConfig(), quiet)
	for _, fe := range evs {
		if err := h.HandleS3(context.Background(), fe.ev); err != nil {
			t.Fatal(err)
		}
	}
	o, err := st.Get(context.Background(), layout.ChannelStateKey("ch"))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := timeline.UnmarshalChannel(o.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Tracks) != 3 || ch.Epoch.IsZero() {
		t.Fatalf("channel index: %d tracks, epoch %v", len(ch.Tracks), ch.Epoch)
	}
	for _, tr := range ch.Tracks {
		o, err := st.Get(context.Background(), layout.TrackStateKey("ch", tr.ID))
		if err != nil {
			t.Fatal(err)
		}
		ts, err := timeline.UnmarshalTrackState(o.Body)
		if err != nil {
			t.Fatal(err)
		}
		if ts.Timeline.Len() != 2 || len(ts.Pending) != 0 {
			t.Errorf("track %s: %d published, %d pending; want 2 and 0", tr.ID, ts.Timeline.Len(), len(ts.Pending))
		}
	}
}

func TestTimeShiftQueries(t *testing.T) {
	_, st := newStore(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	evs := liveOnly(pushFixture(t, st, "ch", base))
	h := handler.New(st, handler.DefaultConfig(), quiet)
	for _, fe := range evs {
		if err := h.HandleS3(context.Background(), fe.ev); err != nil {
			t.Fatal(err)
		}
	}
	p, err := h.Presentation(context.Background(), "ch")
	if err != nil {
		t.Fatal(err)
	}
	iso := func(sec float64) string {
		return p.Epoch.Add(time.Duration(sec * float64(time.Second))).Format(time.RFC3339Nano)
	}
	get := func(path string, q map[string]string) events.LambdaFunctionURLResponse {
		req := urlRequest("GET", path)
		req.QueryStringParameters = q
		resp, err := h.HandleURL(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	const media = "/live/ch.isml/QualityLevels(60000)/video.m3u8"
	for _, tc := range []struct {
		name   string
		path   string
		q      map[string]string
		status int
		has    []string
		hasNot []string
	}{
		{"closed past range: HLS VOD", media, map[string]string{"start": "0", "end": "4"}, 200,
			[]string{"#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-ENDLIST", "Fragments(video=0)", "Fragments(video=20000000)"}, nil},
		{"closed past range: master carries the query", "/live/ch.isml/master.m3u8", map[string]string{"start": "0", "end": "4"}, 200,
			[]string{"video.m3u8?start=0&end=4"}, nil},
		{"closed past range: static MPD", "/live/ch.isml/manifest.mpd", map[string]string{"start": "0", "end": "4"}, 200,
			[]string{`type="static"`, `mediaPresentationDuration="PT`}, []string{"availabilityStartTime", "minimumUpdatePeriod"}},
		{"closed past range: Smooth not live", "/live/ch.isml/Manifest", map[string]string{"end": "4"}, 200,
			[]string{`IsLive="FALSE"`}, []string{`Duration="0"`}},
		{"start-over in seconds", media, map[string]string{"start": "2"}, 200,
			[]string{"Fragments(video=20000000)"}, []string{"Fragments(video=0)", "#EXT-X-ENDLIST"}},
		{"start-over in ISO 8601", media, map[string]string{"start": iso(2)}, 200,
			[]string{"Fragments(video=20000000)"}, []string{"Fragments(video=0)", "#EXT-X-ENDLIST"}},
		{"a range ending in the first fragment", media, map[string]string{"end": "1.5"}, 200,
			[]string{"Fragments(video=0)", "#EXT-X-ENDLIST"}, []string{"Fragments(video=20000000)"}},
		{"unparsable start", media, map[string]string{"start": "yesterday"}, 400, []string{"ISO 8601"}, nil},
		{"negative seconds", media, map[string]string{"start": "-5"}, 400, []string{"seconds since"}, nil},
		{"end before start", media, map[string]string{"start": "3", "end": "1"}, 400, []string{"not after start"}, nil},
		{"start after the live edge", media, map[string]string{"start": "3600"}, 400, []string{"newest fragment"}, nil},
		{"end before what is kept", media, map[string]string{"end": iso(-3600)}, 400, []string{"oldest fragment"}, nil},
		{"other parameters are ignored", media, map[string]string{"_": "123"}, 200, nil, []string{"#EXT-X-ENDLIST"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := get(tc.path, tc.q)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, resp.Body)
			}
			for _, s := range tc.has {
				if !strings.Contains(resp.Body, s) {
					t.Errorf("no %q in:\n%s", s, resp.Body)
				}
			}
			for _, s := range tc.hasNot {
				if strings.Contains(resp.Body, s) {
					t.Errorf("%q in:\n%s", s, resp.Body)
				}
			}
		})
	}
}

// A push that ended (its end markers processed, and two fragment durations
// passed with nothing after them) has final manifests in every format.
func TestEndedStreamHasFinalManifests(t *testing.T) {
	_, st := newStore(t)
	evs := pushFixture(t, st, "ch", time.Now().Add(-time.Minute))
	h := handler.New(st, handler.DefaultConfig(), quiet)
	for _, fe := range evs {
		if err := h.HandleS3(context.Background(), fe.ev); err != nil {
			t.Fatal(err)
		}
	}
	got := render(t, h, "ch")
	for path, want := range map[string]string{
		layout.SmoothManifestPath("ch"): `IsLive="FALSE"`,
		layout.DASHManifestPath("ch"):   `type="static"`,
		layout.MediaPlaylistPath("ch", layout.TrackID{Name: "video", Bitrate: 60000}): "#EXT-X-ENDLIST",
	} {
		if !strings.Contains(got[path], want) {
			t.Errorf("%s lacks %s:\n%s", path, want, got[path])
		}
	}
}

// When the store fails, the handler returns the error, so that Lambda
// retries the event; once the store is back, the retried event publishes.
func TestStoreFailuresAreReturnedForRetry(t *testing.T) {
	srv, st := newStore(t)
	evs := liveOnly(pushFixture(t, st, "ch", time.Now().Add(-time.Minute)))
	h := handler.New(st, handler.DefaultConfig(), quiet)
	srv.SetFaults(s3local.Faults{ErrorRate: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.HandleS3(ctx, evs[0].ev); err == nil {
		t.Fatal("HandleS3 succeeded with the store down")
	}
	srv.SetFaults(s3local.Faults{})
	for _, fe := range evs {
		if err := h.HandleS3(ctx, fe.ev); err != nil {
			t.Fatalf("retry with the store back: %v", err)
		}
	}
	if p, err := h.Presentation(ctx, "ch"); err != nil || p.Tracks[0].State.Timeline.Len() == 0 {
		t.Fatalf("nothing published after the retries: %v", err)
	}
}

// Events for keys outside the layout, or for objects that are not
// fragments, are ignored: no error (Lambda would retry them forever) and
// nothing written.
func TestEventsOutsideTheLayoutAreIgnored(t *testing.T) {
	srv, st := newStore(t)
	h := handler.New(st, handler.DefaultConfig(), quiet)
	before := srv.Requests()["PUT"]
	for _, key := range []string{
		"state/ch/channel.json",
		"live/../state/ch/channel.json",
		"live/ch.isml/QualityLevels(800000)/Init(video).mp4",
		"live/ch.isml/QualityLevels(800000)/Fragments(video=007)",
		"live/ch.isml/Manifest",
		"elsewhere/x",
		"%ZZ",
	} {
		ev := s3local.Event(st.Bucket, key, "ObjectCreated:Put", 10, "", 1, time.Now())
		ev.Records[0].S3.Object.Key = key // as given, even undecodable
		if err := h.HandleS3(context.Background(), ev); err != nil {
			t.Errorf("%s: %v", key, err)
		}
		// The same through the Lambda entry point, as JSON: an undecodable
		// key must not fail the invocation (Lambda would retry it).
		payload, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Invoke(context.Background(), payload); err != nil {
			t.Errorf("%s through Invoke: %v", key, err)
		}
	}
	if puts := srv.Requests()["PUT"] - before; puts != 0 {
		t.Errorf("%d writes for events outside the layout", puts)
	}
}

// The DVR window bounds what live and finished manifests list; the archive
// (by default everything still stored) is what time-shift requests reach:
// a finished event plays from its start with start=0.
func TestArchiveReachesBeyondTheDVRWindow(t *testing.T) {
	const media = "/live/ch.isml/QualityLevels(60000)/video.m3u8"
	for _, tc := range []struct {
		name    string
		archive time.Duration
		ended   bool
		q       map[string]string
		has     []string
		hasNot  []string
	}{
		{"live: the window only", 0, false, nil,
			[]string{"Fragments(video=20000000)"}, []string{"Fragments(video=0)", "#EXT-X-ENDLIST"}},
		{"live start-over: the archive", 0, false, map[string]string{"start": "0"},
			[]string{"Fragments(video=0)", "Fragments(video=20000000)"}, []string{"#EXT-X-ENDLIST"}},
		{"finished: the window, with an end", 0, true, nil,
			[]string{"Fragments(video=20000000)", "#EXT-X-ENDLIST"}, []string{"Fragments(video=0)"}},
		{"finished from the start: the whole event", 0, true, map[string]string{"start": "0"},
			[]string{"#EXT-X-PLAYLIST-TYPE:VOD", "Fragments(video=0)", "Fragments(video=20000000)", "#EXT-X-ENDLIST"}, nil},
		{"an archive no longer than the window", 2 * time.Second, true, map[string]string{"start": "0"},
			[]string{"Fragments(video=20000000)", "#EXT-X-ENDLIST"}, []string{"Fragments(video=0)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, st := newStore(t)
			evs := pushFixture(t, st, "ch", time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
			if !tc.ended {
				evs = liveOnly(evs)
			}
			cfg := handler.DefaultConfig()
			cfg.DVRWindow, cfg.Archive = 2*time.Second, tc.archive
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			h := handlerAt(st, cfg, evs)
			for _, fe := range evs {
				if err := h.HandleS3(context.Background(), fe.ev); err != nil {
					t.Fatal(err)
				}
			}
			if tc.ended {
				// Two fragment durations after the end, nothing came.
				now := h.Now().Add(5 * time.Second)
				h.Now = func() time.Time { return now }
			}
			req := urlRequest("GET", media)
			req.QueryStringParameters = tc.q
			resp, err := h.HandleURL(context.Background(), req)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("%v %d %s", err, resp.StatusCode, resp.Body)
			}
			for _, s := range tc.has {
				if !strings.Contains(resp.Body, s) {
					t.Errorf("no %q in:\n%s", s, resp.Body)
				}
			}
			for _, s := range tc.hasNot {
				if strings.Contains(resp.Body, s) {
					t.Errorf("%q in:\n%s", s, resp.Body)
				}
			}
		})
	}
}

func TestArchiveMustFitTheRetention(t *testing.T) {
	cfg := handler.DefaultConfig()
	cfg.Archive = cfg.Retention
	if err := cfg.Validate(); err == nil {
		t.Error("an archive as long as the retention was accepted: its oldest fragments may be deleted while listed")
	}
}

// A range wholly past the retention is refused, not answered with an
// empty manifest: its fragments may already be gone.
func TestRangePastRetentionIsRefused(t *testing.T) {
	_, st := newStore(t)
	evs := pushFixture(t, st, "ch", time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	h := handlerAt(st, handler.DefaultConfig(), evs)
	for _, fe := range evs {
		if err := h.HandleS3(context.Background(), fe.ev); err != nil {
			t.Fatal(err)
		}
	}
	later := h.Now().Add(48 * time.Hour)
	h.Now = func() time.Time { return later }
	req := urlRequest("GET", "/live/ch.isml/QualityLevels(60000)/video.m3u8")
	req.QueryStringParameters = map[string]string{"start": "0", "end": "4"}
	resp, err := h.HandleURL(context.Background(), req)
	if err != nil || resp.StatusCode != 400 || !strings.Contains(resp.Body, "past the retention") {
		t.Fatalf("%v %d %s, want 400: past the retention", err, resp.StatusCode, resp.Body)
	}
}

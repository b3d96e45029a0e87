package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/internal/testtool/logtest"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// cmafRenditions are the ladder as CMAF tracks, each an init segment and
// its media segments (styp, moof with tfdt, mdat), as an encoder uploads
// them.
func cmafRenditions(t testing.TB, n int) (inits [][]byte, segments [][][]byte) {
	t.Helper()
	cfg := synth.Config{CMAF: true, Tracks: []synth.Track{
		{Kind: timeline.Video, Bitrate: 800_000},
		{Kind: timeline.Video, Bitrate: 300_000, Width: 320, Height: 180},
		{Kind: timeline.Audio, Bitrate: 96_000},
	}}
	for _, c := range cfg.Split() {
		s, err := synth.New(c)
		if err != nil {
			t.Fatal(err)
		}
		hdr, err := s.Header()
		if err != nil {
			t.Fatal(err)
		}
		inits = append(inits, hdr)
		var segs [][]byte
		for k := range n {
			seg, err := s.AppendFragment(nil, k)
			if err != nil {
				t.Fatal(err)
			}
			segs = append(segs, seg)
		}
		segments = append(segments, segs)
	}
	return inits, segments
}

// stored counts a channel's fragments per track and its end markers that
// say the stream ended.
func stored(t *testing.T, st *store.Store, channel string) (map[string]int, int) {
	t.Helper()
	frags, eos := map[string]int{}, 0
	for _, k := range testtool.Keys(t, st) {
		obj, err := layout.Parse(k)
		if err != nil || obj.Channel != channel {
			continue
		}
		switch obj.Kind {
		case layout.KindFragment:
			frags[obj.Track.String()]++
		case layout.KindEnd:
			o, err := st.Get(context.Background(), k)
			if err != nil {
				t.Fatal(err)
			}
			var m relay.EndMarker
			if json.Unmarshal(o.Body, &m) == nil && m.Stream {
				eos++
			}
		}
	}
	return frags, eos
}

type upload struct {
	file   string
	body   []byte
	status int
}

// An encoder's uploads, in the orders ffmpeg's dash and hls muxers send
// them, are stored as a push is: every segment once, under the layout's
// keys, and the stream ends when the encoder's manifest says so.
func TestUploadsAreStoredAsPushesAre(t *testing.T) {
	const n = 3
	inits, segs := cmafRenditions(t, n)
	dashName := func(r, k int) string { return fmt.Sprintf("chunk-stream%d-%05d.m4s", r, k+1) }
	hlsPlaylist := func(r, upTo int, end bool) []byte {
		var b strings.Builder
		fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init_%d.mp4\"\n", r)
		for k := range upTo {
			fmt.Fprintf(&b, "#EXTINF:2.000000,\nstream_%d%d.m4s\n", r, k)
		}
		if end {
			b.WriteString("#EXT-X-ENDLIST\n")
		}
		return []byte(b.String())
	}
	for _, tc := range []struct {
		name    string
		uploads func() []upload
	}{
		{"ffmpeg -f dash: inits, segments, then a static MPD", func() []upload {
			var ups []upload
			for r, b := range inits {
				ups = append(ups, upload{fmt.Sprintf("init-stream%d.m4s", r), b, 200})
			}
			for k := range n {
				for r := range inits {
					ups = append(ups, upload{dashName(r, k), segs[r][k], 200})
				}
				ups = append(ups, upload{"manifest.mpd", []byte(mpd("dynamic")), 200})
			}
			return append(ups, upload{"manifest.mpd", []byte(mpd("static")), 200})
		}},
		{"ffmpeg -f hls: a playlist before its init, a segment before its init", func() []upload {
			var ups []upload
			for r, b := range inits {
				ups = append(ups, upload{fmt.Sprintf("stream_%d.m3u8", r), hlsPlaylist(r, 0, false), 200})
				// The first segment comes before its init segment: it waits.
				ups = append(ups, upload{fmt.Sprintf("stream_%d0.m4s", r), segs[r][0], http.StatusAccepted})
				ups = append(ups, upload{fmt.Sprintf("init_%d.mp4", r), b, 200})
			}
			for k := 1; k < n; k++ {
				for r := range inits {
					ups = append(ups, upload{fmt.Sprintf("stream_%d%d.m4s", r, k), segs[r][k], 200})
					ups = append(ups, upload{fmt.Sprintf("stream_%d.m3u8", r), hlsPlaylist(r, k+1, false), 200})
				}
			}
			for r := range inits {
				ups = append(ups, upload{fmt.Sprintf("stream_%d.m3u8", r), hlsPlaylist(r, n, true), 200})
			}
			return append(ups, upload{"master.m3u8", []byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nstream_0.m3u8\n"), 200})
		}},
		// Each variant's init segment, first segment and playlist come on
		// connections of their own: another variant's first segment may
		// come before its init segment and before any playlist, while the
		// channel has one rendition; it waits (202) for its own.
		{"ffmpeg -f hls -var_stream_map: other variants' first segments before their init segments and any playlist", func() []upload {
			ups := []upload{
				{"init_0.mp4", inits[0], 200},
				{"stream_20.m4s", segs[2][0], http.StatusAccepted}, // the audio's
				{"stream_10.m4s", segs[1][0], http.StatusAccepted}, // the other video's
				{"stream_00.m4s", segs[0][0], http.StatusAccepted},
				{"stream_0.m3u8", hlsPlaylist(0, 1, false), 200},
			}
			for _, r := range []int{2, 1} {
				ups = append(ups, upload{fmt.Sprintf("init_%d.mp4", r), inits[r], 200}, upload{fmt.Sprintf("stream_%d.m3u8", r), hlsPlaylist(r, 1, false), 200})
			}
			for k := 1; k < n; k++ {
				for r := range inits {
					ups = append(ups, upload{fmt.Sprintf("stream_%d%d.m4s", r, k), segs[r][k], 200}, upload{fmt.Sprintf("stream_%d.m3u8", r), hlsPlaylist(r, k+1, k == n-1), 200})
				}
			}
			return ups
		}},
		{"ffmpeg -f dash: other representations' first segments before their init segments and the MPD", func() []upload {
			ups := []upload{
				{"init-stream0.m4s", inits[0], 200},
				{dashName(2, 0), segs[2][0], http.StatusAccepted},
				{dashName(1, 0), segs[1][0], http.StatusAccepted},
				{dashName(0, 0), segs[0][0], 200},
				{"init-stream2.m4s", inits[2], 200},
				{"init-stream1.m4s", inits[1], 200},
			}
			for k := 1; k < n; k++ {
				for r := range inits {
					ups = append(ups, upload{dashName(r, k), segs[r][k], 200})
				}
				ups = append(ups, upload{"manifest.mpd", []byte(mpd("dynamic")), 200})
			}
			return append(ups, upload{"manifest.mpd", []byte(mpd("static")), 200})
		}},
		{"names no rule places wait for the MPD", func() []upload {
			var ups []upload
			for r, b := range inits {
				ups = append(ups, upload{fmt.Sprintf("r%d.mp4", r), b, 200})
			}
			for r := range inits {
				ups = append(ups, upload{fmt.Sprintf("x%d-1.m4s", r), segs[r][0], http.StatusAccepted})
			}
			ups = append(ups, upload{"manifest.mpd", []byte(strings.NewReplacer("init-stream$RepresentationID$.m4s", "r$RepresentationID$.mp4",
				"chunk-stream$RepresentationID$-$Number%05d$.m4s", "x$RepresentationID$-$Number$.m4s").Replace(mpd("dynamic"))), 200})
			for k := 1; k < n; k++ {
				for r := range inits {
					ups = append(ups, upload{fmt.Sprintf("x%d-%d.m4s", r, k+1), segs[r][k], 200})
				}
			}
			return append(ups, upload{"x.m4s", nil, 200}, upload{"old.m4s", nil, 0}, upload{"manifest.mpd", []byte(strings.NewReplacer("init-stream$RepresentationID$.m4s", "r$RepresentationID$.mp4",
				"chunk-stream$RepresentationID$-$Number%05d$.m4s", "x$RepresentationID$-$Number$.m4s").Replace(mpd("static"))), 200})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs, st, _ := setup(t)
			for _, u := range tc.uploads() {
				method := http.MethodPut
				if u.status == 0 {
					method, u.status = http.MethodDelete, http.StatusNoContent
				}
				if code, msg := testtool.Do(t, method, hs.URL+"/live/up.isml/"+u.file, u.body, true); code != u.status {
					t.Fatalf("%s %s: %d %s, want %d", method, u.file, code, msg, u.status)
				}
			}
			// The manifest's end takes effect once no segment came for a moment.
			var frags map[string]int
			var eos int
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if frags, eos = stored(t, st, "up"); eos == len(inits) || time.Now().After(deadline) {
					break
				}
			}
			for _, track := range []string{"video@800000", "video@300000", "audio@96000"} {
				if frags[track] != n {
					t.Errorf("%s: %d fragments stored, want %d (%v)", track, frags[track], n, frags)
				}
			}
			if eos != len(inits) {
				t.Errorf("%d end-of-stream markers, want one per rendition", eos)
			}
		})
	}
}

// mpd is an MPD as ffmpeg's dash muxer writes it for the three renditions.
func mpd(typ string) string {
	return `<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="` + typ + `" profiles="urn:mpeg:dash:profile:isoff-live:2011">
 <Period id="0" start="PT0.0S">
  <AdaptationSet id="0" contentType="video">
   <Representation id="0" bandwidth="800000"><SegmentTemplate timescale="10000000" initialization="init-stream$RepresentationID$.m4s" media="chunk-stream$RepresentationID$-$Number%05d$.m4s" startNumber="1"/></Representation>
   <Representation id="1" bandwidth="300000"><SegmentTemplate timescale="10000000" initialization="init-stream$RepresentationID$.m4s" media="chunk-stream$RepresentationID$-$Number%05d$.m4s" startNumber="1"/></Representation>
  </AdaptationSet>
  <AdaptationSet id="1" contentType="audio">
   <SegmentTemplate timescale="10000000" initialization="init-stream$RepresentationID$.m4s" media="chunk-stream$RepresentationID$-$Number%05d$.m4s" startNumber="1"/>
   <Representation id="2" bandwidth="96000"/>
  </AdaptationSet>
 </Period>
</MPD>`
}

// Bad uploads are refused with a reason and store nothing; the channel's
// renditions go on.
func TestBadUploadsAreRefused(t *testing.T) {
	inits, segs := cmafRenditions(t, 3)
	hs, st, _ := setup(t)
	put := func(file string, body []byte) (int, string) {
		return testtool.Do(t, http.MethodPut, hs.URL+"/live/bad.isml/"+file, body, true)
	}
	if code, msg := put("init-stream0.m4s", inits[0]); code != 200 {
		t.Fatalf("init: %d %s", code, msg)
	}
	if code, msg := put("chunk-stream0-00001.m4s", segs[0][0]); code != 200 {
		t.Fatalf("segment: %d %s", code, msg)
	}
	truncated := segs[0][1][:len(segs[0][1])-100]
	for _, tc := range []struct {
		name, file string
		body       []byte
		status     int
		reason     string
	}{
		{"not media", "junk.m4s", []byte("hello, world, this is not an MP4 file"), 400, "not an init segment"},
		{"a segment cut short", "chunk-stream0-00002.m4s", truncated, 400, "not whole"},
		{"an MPD that does not parse", "manifest.mpd", []byte("<MPD><Period>"), 400, "MPD"},
		{"a path outside the layout", "sub/x.m4s", segs[0][1], 404, ""},
		{"a method an upload does not take", "chunk-stream0-00002.m4s", nil, 405, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := http.MethodPut
			if tc.status == 405 {
				method = http.MethodPatch
			}
			code, msg := testtool.Do(t, method, hs.URL+"/live/bad.isml/"+tc.file, tc.body, true)
			if code != tc.status || !strings.Contains(msg, tc.reason) {
				t.Fatalf("%d %q, want %d with %q", code, msg, tc.status, tc.reason)
			}
		})
	}
	frags, _ := stored(t, st, "bad")
	if frags["video@800000"] != 1 {
		t.Errorf("fragments stored %v, want the one whole segment", frags)
	}
}

// A segment that belongs to no init segment the relay knows waits, a few at
// most; more are refused with 503 (after a relay restart, until the
// encoder sends its init segments again).
func TestUnplacedSegmentsAreBounded(t *testing.T) {
	_, segs := cmafRenditions(t, 1)
	hs, _, _ := setup(t)
	for i := range 20 {
		code, msg := testtool.Do(t, http.MethodPut, fmt.Sprintf("%s/live/orphan.isml/seg%d.m4s", hs.URL, i), segs[0][0], true)
		want := http.StatusAccepted
		if i >= 16 {
			want = http.StatusServiceUnavailable
		}
		if code != want {
			t.Fatalf("segment %d: %d %s, want %d", i, code, msg, want)
		}
	}
}

// A rendition whose encoder goes silent ends as a drop (no end of stream).
func TestSilentUploadEndsAsADrop(t *testing.T) {
	inits, segs := cmafRenditions(t, 1)
	_, st := testtool.Store(t, "relay-test")
	cfg := relay.DefaultConfig()
	cfg.ReadTimeout = 300 * time.Millisecond
	hs := httptest.NewServer(relay.New(st, cfg, quiet).Handler())
	defer hs.Close()
	testtool.Do(t, http.MethodPut, hs.URL+"/live/quiet.isml/init-stream0.m4s", inits[0], true)
	if code, msg := testtool.Do(t, http.MethodPut, hs.URL+"/live/quiet.isml/chunk-stream0-00001.m4s", segs[0][0], true); code != 200 {
		t.Fatalf("%d %s", code, msg)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var ends int
		for _, k := range testtool.Keys(t, st) {
			if obj, err := layout.Parse(k); err == nil && obj.Kind == layout.KindEnd {
				ends++
			}
		}
		if _, eos := stored(t, st, "quiet"); ends == 1 && eos == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no drop marker after the encoder went silent: %v", testtool.Keys(t, st))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The next segment needs its init segment again.
	if code, _ := testtool.Do(t, http.MethodPut, hs.URL+"/live/quiet.isml/chunk-stream0-00002.m4s", segs[0][0], true); code != http.StatusConflict {
		t.Errorf("a segment after the drop: %d, want 409", code)
	}
}

// Segments of a rendition come in order: one that leaves a gap waits
// Config.ReorderWait for the segments before it, then is stored; a resend
// of a stored segment is answered and stored nothing new; one older than
// the newest stored is refused with the reason. An init segment uploaded
// again starts a new session, as a new connection does for a push.
func TestUploadOrder(t *testing.T) {
	inits, segs := cmafRenditions(t, 4)
	srv, st := testtool.Store(t, "relay-test")
	cfg := relay.DefaultConfig()
	cfg.ReorderWait = 300 * time.Millisecond
	rec := logtest.New()
	hs := httptest.NewServer(relay.New(st, cfg, slog.New(rec)).Handler())
	defer hs.Close()
	gapWaits := func() (n int) {
		for _, r := range rec.Records() {
			if strings.HasPrefix(r.Message, "segment leaves a gap") {
				n++
			}
		}
		return n
	}
	put := func(file string, body []byte) (int, string) {
		return testtool.Do(t, http.MethodPut, hs.URL+"/live/o.isml/"+file, body, true)
	}
	steps := []struct {
		file     string
		body     []byte
		status   int
		reason   string
		waitsFor bool // the reorder wait
	}{
		{"init-stream0.m4s", inits[0], 200, "", false},
		{"chunk-stream0-00001.m4s", segs[0][0], 200, "", false},
		{"chunk-stream0-00003.m4s", segs[0][2], 200, "", true}, // a gap: stored after the wait
		{"chunk-stream0-00002.m4s", segs[0][1], 409, "out of order", false},
		{"chunk-stream0-00003.m4s", segs[0][2], 200, "", false}, // a resend
		{"chunk-stream0-00004.m4s", segs[0][3], 200, "", false},
	}
	for _, s := range steps {
		before, waitsBefore := srv.Requests()["PUT"], gapWaits()
		began := time.Now()
		code, msg := put(s.file, s.body)
		took := time.Since(began)
		if code != s.status || !strings.Contains(msg, s.reason) {
			t.Fatalf("%s: %d %q, want %d with %q", s.file, code, msg, s.status, s.reason)
		}
		if s.status == 409 && srv.Requests()["PUT"] != before {
			t.Errorf("%s: refused, yet written", s.file)
		}
		if waited := gapWaits() > waitsBefore; waited != s.waitsFor || (waited && took < cfg.ReorderWait) {
			t.Errorf("%s: waited for a gap %v, answered in %v; want a wait of %v: %v", s.file, waited, took, cfg.ReorderWait, s.waitsFor)
		}
	}
	frags, _ := stored(t, st, "o")
	if frags["video@800000"] != 3 {
		t.Errorf("fragments %v, want 3 (0, 2 and 3)", frags)
	}
	// The init segment again: a new session, which takes the segments
	// (a reconnecting encoder's resend is refused by the store as
	// existing, as for a push).
	if code, msg := put("init-stream0.m4s", inits[0]); code != 200 {
		t.Fatalf("init again: %d %s", code, msg)
	}
	if code, msg := put("chunk-stream0-00004.m4s", segs[0][3]); code != 200 {
		t.Fatalf("a segment of the new session: %d %s", code, msg)
	}
	if frags, _ := stored(t, st, "o"); frags["video@800000"] != 3 {
		t.Errorf("fragments %v after the resend, want still 3", frags)
	}
}

// Uploads are authenticated as pushes are: 401 without credentials, 403
// with the wrong ones, before the body is read; nothing is stored.
func TestUploadsNeedCredentials(t *testing.T) {
	inits, segs := cmafRenditions(t, 1)
	_, st := testtool.Store(t, "relay-test")
	cfg := relay.DefaultConfig()
	var err error
	if cfg.Secrets, err = relay.ParseSecrets("*=default-secret-0123456789\n"); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(relay.New(st, cfg, quiet).Handler())
	defer hs.Close()
	for _, tc := range []struct {
		name, url string
		want      int
	}{
		{"no credentials", hs.URL + "/live/a.isml/init-stream0.m4s", http.StatusUnauthorized},
		{"wrong token", hs.URL + "/token/wrong-secret-0123456789/live/a.isml/init-stream0.m4s", http.StatusForbidden},
		{"right token", hs.URL + "/token/default-secret-0123456789/live/a.isml/init-stream0.m4s", http.StatusOK},
		{"delete without credentials", hs.URL + "/live/a.isml/chunk-stream0-00001.m4s", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := http.MethodPut
			if strings.HasPrefix(tc.name, "delete") {
				method = http.MethodDelete
			}
			if code, msg := testtool.Do(t, method, tc.url, inits[0], false); code != tc.want {
				t.Fatalf("%d %s, want %d", code, msg, tc.want)
			}
		})
	}
	// Only the authenticated init segment's record (for a relay started
	// again), no media.
	if got := testtool.Keys(t, st); !slices.Equal(got, []string{layout.UploadsStateKey("a")}) {
		t.Fatalf("stored before any segment: %v", got)
	}
	// The authenticated rendition's first segment: its init and fragment.
	for _, url := range []string{hs.URL + "/live/a.isml/chunk-stream0-00001.m4s", hs.URL + "/token/default-secret-0123456789/live/a.isml/chunk-stream0-00001.m4s"} {
		testtool.Do(t, http.MethodPut, url, segs[0][0], false)
	}
	if got := testtool.Keys(t, st); len(got) != 3 {
		t.Errorf("stored %v, want the record, and the authenticated init segment and fragment only", got)
	}
}

// An init segment and a segment of its rendition uploaded at the same
// moment, or the same init segment twice at once: no segment reaches the
// session before its init segment, one session per name survives, and
// the segment is stored, even when it was held and the first session,
// replaced as it fed it, puts it back to wait after the successor's own
// drain (1 round in about 40 lost it before).
func TestConcurrentUploadsOfOneRendition(t *testing.T) {
	inits, segs := cmafRenditions(t, 1)
	for i := range 50 {
		hs, st, _ := setup(t)
		ch := fmt.Sprintf("%s/live/c%d.isml/", hs.URL, i)
		var wg sync.WaitGroup
		codes := make([]int, 3)
		msgs := make([]string, 3)
		wg.Go(func() { codes[0], msgs[0] = testtool.Do(t, http.MethodPut, ch+"init-stream0.m4s", inits[0], true) })
		wg.Go(func() { codes[1], msgs[1] = testtool.Do(t, http.MethodPut, ch+"init-stream0.m4s", inits[0], true) })
		wg.Go(func() {
			codes[2], msgs[2] = testtool.Do(t, http.MethodPut, ch+"chunk-stream0-00001.m4s", segs[0][0], true)
		})
		wg.Wait()
		for j, c := range codes {
			// 409: an init segment replaced by its twin while being fed.
			if c != 200 && c != http.StatusAccepted && !(j < 2 && c == http.StatusConflict) {
				t.Fatalf("round %d, upload %d: %d %s", i, j, c, msgs[j])
			}
		}
		// A held segment is fed when the init segment's session starts.
		deadline := time.Now().Add(5 * time.Second)
		for {
			frags, _ := stored(t, st, fmt.Sprintf("c%d", i))
			if frags["video@800000"] == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: fragments %v (answers %v %v)", i, frags, codes, msgs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

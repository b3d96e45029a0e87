package relay

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/timeline"
	"github.com/smoothcast/smoothcast/shared/webvtt"
)

// orderStore records the keys written, in order, and fails the writes of
// keys with the suffix fail.
type orderStore struct {
	ObjectStore
	mu   sync.Mutex
	keys []string
	fail string
}

func (o *orderStore) PutParts(ctx context.Context, key string, parts [][]byte, opts store.PutOptions) (string, error) {
	if o.fail != "" && strings.HasSuffix(key, o.fail) {
		return "", errors.New("injected failure")
	}
	o.mu.Lock()
	o.keys = append(o.keys, key)
	o.mu.Unlock()
	return o.ObjectStore.PutParts(ctx, key, parts, opts)
}

// wvttSink is a storeSink of channel "ch" over st, as a run makes it.
func wvttSink(t *testing.T, st ObjectStore) *storeSink {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rl := New(st, Config{StoreTimeout: 300 * time.Millisecond, AttemptTimeout: 100 * time.Millisecond}, quiet)
	s := &stream{channel: "ch", name: "test", kind: kindUpload, started: time.Now()}
	return &storeSink{rl: rl, st: s, received: time.Now, store: rl.store.forStream(s), channel: "ch", log: quiet}
}

// wvttFragment is a wvtt fragment of track 1 for [start, end) ms with
// cues, as the session hands it to its sink.
func wvttFragment(t *testing.T, id layout.TrackID, start, end uint64, cues []webvtt.Cue) ingest.Fragment {
	t.Helper()
	b, err := webvtt.Fragment(1, 1, webvtt.Samples(cues, start, end, 1000))
	if err != nil {
		t.Fatal(err)
	}
	mdat, ok := mp4box.Find(b, "mdat")
	if !ok {
		t.Fatal("no mdat")
	}
	head := int(mdat.Pos) + mdat.HeaderSize
	return ingest.Fragment{ID: id, TrackID: 1, Kind: timeline.Text, Start: start, Duration: end - start, Head: b[:head], Payload: b[head:]}
}

// Each wvtt fragment's cues are stored as a WebVTT file (cue times media
// times, LOCAL the fragment's start) before the fragment; an
// empty fragment (vtte) has a file without cues; other tracks have none.
func TestSinkStoresAWebVTTFileBeforeEachWvttFragment(t *testing.T) {
	_, st := testtool.Store(t, "vtt-sink")
	rec := &orderStore{ObjectStore: st}
	sink := wvttSink(t, rec)
	ctx := context.Background()
	id := layout.TrackID{Name: "text_eng", Bitrate: 1000}
	init, err := webvtt.Init(webvtt.Track{Language: "eng"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Init(ctx, ingest.TrackHeader{ID: id, TrackID: 1, Kind: timeline.Text, Init: init}); err != nil {
		t.Fatal(err)
	}
	cues := []webvtt.Cue{{ID: "1", Start: 10500 * time.Millisecond, End: 13 * time.Second, Settings: "line:0", Text: "across\ntwo fragments"}}
	for _, f := range []ingest.Fragment{wvttFragment(t, id, 10000, 12000, cues), wvttFragment(t, id, 12000, 14000, cues), wvttFragment(t, id, 14000, 16000, cues)} {
		if err := sink.Fragment(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{layout.InitKey("ch", id)}
	for _, start := range []uint64{10000, 12000, 14000} {
		want = append(want, layout.WebVTTKey("ch", id, start), layout.FragmentKey("ch", id, start))
	}
	if strings.Join(rec.keys, " ") != strings.Join(want, " ") {
		t.Fatalf("written\n%s\nwant\n%s", strings.Join(rec.keys, "\n"), strings.Join(want, "\n"))
	}
	wantFiles := map[uint64]string{
		10000: "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:10.000\n\n1\n00:00:10.500 --> 00:00:12.000 line:0\nacross\ntwo fragments\n\n",
		12000: "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:1080000,LOCAL:00:00:12.000\n\n1\n00:00:12.000 --> 00:00:13.000 line:0\nacross\ntwo fragments\n\n",
		14000: "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:1260000,LOCAL:00:00:14.000\n\n",
	}
	for start, body := range wantFiles {
		o, err := st.Get(ctx, layout.WebVTTKey("ch", id, start))
		if err != nil {
			t.Fatal(err)
		}
		if string(o.Body) != body || o.ContentType != "text/vtt" {
			t.Errorf("%d: %s\n%s\nwant\n%s", start, o.ContentType, o.Body, body)
		}
	}

	// A video track has no WebVTT file.
	rec.keys = nil
	vid := layout.TrackID{Name: "video", Bitrate: 1000}
	vinit, _ := webvtt.Init(webvtt.Track{})
	vinit = []byte(strings.Replace(string(vinit), "wvtt", "avc1", 1)) // no longer a wvtt sample entry
	if err := sink.Init(ctx, ingest.TrackHeader{ID: vid, TrackID: 1, Kind: timeline.Video, Init: vinit}); err != nil {
		t.Fatal(err)
	}
	f := wvttFragment(t, vid, 0, 2000, nil)
	f.Kind = timeline.Video
	if err := sink.Fragment(ctx, f); err != nil {
		t.Fatal(err)
	}
	for _, k := range rec.keys {
		if strings.HasSuffix(k, ".vtt") {
			t.Errorf("a video fragment got a WebVTT file: %s", k)
		}
	}
}

// A WebVTT file that cannot be written fails its fragment, which is not
// stored (the session's retry of the fragment writes both).
func TestSinkFailsTheFragmentWhoseWebVTTFileFails(t *testing.T) {
	_, st := testtool.Store(t, "vtt-sink-fail")
	rec := &orderStore{ObjectStore: st, fail: ".vtt"}
	sink := wvttSink(t, rec)
	ctx := context.Background()
	id := layout.TrackID{Name: "text_eng", Bitrate: 1000}
	init, _ := webvtt.Init(webvtt.Track{Language: "eng"})
	if err := sink.Init(ctx, ingest.TrackHeader{ID: id, TrackID: 1, Kind: timeline.Text, Init: init}); err != nil {
		t.Fatal(err)
	}
	err := sink.Fragment(ctx, wvttFragment(t, id, 0, 2000, nil))
	var se *storeError
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want a store error", err)
	}
	if _, err := st.Get(ctx, layout.FragmentKey("ch", id, 0)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the fragment was stored without its WebVTT file: %v", err)
	}
	rec.fail = ""
	if err := sink.Fragment(ctx, wvttFragment(t, id, 0, 2000, nil)); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{layout.WebVTTKey("ch", id, 0), layout.FragmentKey("ch", id, 0)} {
		if _, err := st.Get(ctx, k); err != nil {
			t.Errorf("%s after the retry: %v", k, err)
		}
	}
}

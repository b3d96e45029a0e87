package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/internal/testtool/logtest"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// putState writes the manifest function's state of a channel with one
// published track: its newest fragment ended ago, and, if ended, its
// encoder ended the stream then.
func putState(t *testing.T, st *store.Store, channel string, id layout.TrackID, ago time.Duration, ended bool) {
	t.Helper()
	const ts = 10_000_000
	now := time.Now()
	epoch := now.Add(-ago - 4*time.Second)
	ch := &timeline.Channel{Version: timeline.StateVersion, Name: channel, Epoch: epoch,
		Tracks: []timeline.Track{{ID: id, Kind: timeline.Video, Timescale: ts}}}
	var tr timeline.TrackState
	tr.Version = timeline.StateVersion
	tr.Timeline.Append(timeline.Fragment{Start: 0, Duration: 4 * ts}, false)
	tr.MaxDuration = 4 * ts
	if ended {
		tr.Ends = []timeline.Ending{{Time: 4 * ts, Stream: true, At: now.Add(-ago)}}
	}
	cb, err := timeline.MarshalChannel(ch)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := timeline.MarshalTrackState(&tr)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := st.Put(ctx, layout.ChannelStateKey(channel), cb, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, layout.TrackStateKey(channel, id), tb, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// A relay started again (a deploy, a crash) takes an uploading encoder's
// next segment at once, from the init segment its predecessor recorded,
// when the channel is still live; an ended or long-idle channel, or one
// whose first upload is an init segment (an encoder starting), restores
// nothing, and its segments wait for their init segment as before. An
// init segment an earlier start of the encoder recorded is not restored.
func TestUploadsSurviveARelayRestart(t *testing.T) {
	inits, segs := cmafRenditions(t, 3)
	video := layout.TrackID{Name: "video", Bitrate: 800_000}
	for _, tc := range []struct {
		name         string
		ago          time.Duration // since the channel's newest media
		ended        bool          // the encoder ended the stream
		forget       bool          // no record of the init segments
		earlierStart bool          // the record also holds an earlier start's init segment
		initFirst    bool          // the first upload to the new relay is the init segment again
		want         int           // the new relay's answer to the next segment
		restored     int           // renditions restored (-1: no restore)
	}{
		{"live channel", 30 * time.Second, false, false, false, false, http.StatusOK, 1},
		{"an earlier start's init segment", 30 * time.Second, false, false, true, false, http.StatusOK, 1},
		{"ended channel", 30 * time.Second, true, false, false, false, http.StatusAccepted, -1},
		{"idle for an hour", time.Hour, false, false, false, false, http.StatusAccepted, -1},
		{"nothing recorded", 30 * time.Second, false, true, false, false, http.StatusAccepted, -1},
		{"an encoder starting", 30 * time.Second, false, false, false, true, http.StatusOK, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first, st, _, rl := newRelay(t, relay.DefaultConfig())
			ch := "/live/r.isml/"
			for _, u := range []struct {
				file string
				body []byte
			}{{"init-stream0.m4s", inits[0]}, {"chunk-stream0-00001.m4s", segs[0][0]}, {"chunk-stream0-00002.m4s", segs[0][1]}} {
				if code, msg := testtool.Do(t, http.MethodPut, first.URL+ch+u.file, u.body, true); code != 200 {
					t.Fatalf("%s: %d %s", u.file, code, msg)
				}
			}
			rl.CloseUploads()
			first.Close()
			putState(t, st, "r", video, tc.ago, tc.ended)
			if tc.forget {
				if err := st.Delete(context.Background(), []string{layout.UploadsStateKey("r")}); err != nil {
					t.Fatal(err)
				}
			}
			if tc.earlierStart {
				addRecorded(t, st, "r", "init-stream9.m4s", inits[1], time.Now().Add(-time.Hour))
			}
			second, rec := relayOn(t, st)
			if tc.initFirst {
				if code, msg := testtool.Do(t, http.MethodPut, second.URL+ch+"init-stream0.m4s", inits[0], true); code != 200 {
					t.Fatalf("init-stream0.m4s: %d %s", code, msg)
				}
			}
			code, msg := testtool.Do(t, http.MethodPut, second.URL+ch+"chunk-stream0-00003.m4s", segs[0][2], true)
			if code != tc.want {
				t.Fatalf("the next segment: %d %s, want %d", code, msg, tc.want)
			}
			frags, _ := stored(t, st, "r")
			if want := map[int]int{http.StatusOK: 3, http.StatusAccepted: 2}[tc.want]; frags[video.String()] != want {
				t.Errorf("fragments %v, want %d of %s", frags, want, video)
			}
			restored := -1
			for _, r := range rec.Records() {
				if r.Message == "upload renditions restored from the store" {
					restored, _ = strconv.Atoi(logtest.Attrs(r)["renditions"])
				}
			}
			if restored != tc.restored {
				t.Errorf("restored %d renditions, want %d (-1: no restore)", restored, tc.restored)
			}
		})
	}
}

// relayOn starts a relay over st, its log to a recorder.
func relayOn(t *testing.T, st *store.Store) (*httptest.Server, *logtest.Recorder) {
	t.Helper()
	rec := logtest.New()
	hs := httptest.NewServer(relay.New(st, relay.DefaultConfig(), slog.New(rec)).Handler())
	t.Cleanup(hs.Close)
	return hs, rec
}

// addRecorded adds an init segment to a channel's uploads record as if it
// had been uploaded at.
func addRecorded(t *testing.T, st *store.Store, channel, file string, body []byte, at time.Time) {
	t.Helper()
	ctx := context.Background()
	o, err := st.Get(ctx, layout.UploadsStateKey(channel))
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]map[string]json.RawMessage
	if err := json.Unmarshal(o.Body, &rec); err != nil {
		t.Fatal(err)
	}
	entry, _ := json.Marshal(map[string]any{"body": body, "at": at})
	rec["inits"][file] = entry
	b, _ := json.Marshal(rec)
	if _, err := st.Put(ctx, layout.UploadsStateKey(channel), b, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// Init segments uploaded at once are all recorded (the record is written
// conditionally, each adding to what the others wrote).
func TestInitSegmentsUploadedAtOnceAreAllRecorded(t *testing.T) {
	inits, _ := cmafRenditions(t, 1)
	hs, st, _, _ := newRelay(t, relay.DefaultConfig())
	var wg sync.WaitGroup
	for i, b := range inits {
		wg.Go(func() {
			if code, msg := put(hs.URL+fmt.Sprintf("/live/r.isml/init-stream%d.m4s", i), b); code != 200 {
				t.Errorf("init %d: %d %s", i, code, msg)
			}
		})
	}
	wg.Wait()
	o, err := st.Get(context.Background(), layout.UploadsStateKey("r"))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Inits map[string]struct {
			Body []byte `json:"body"`
		} `json:"inits"`
	}
	if err := json.Unmarshal(o.Body, &rec); err != nil {
		t.Fatal(err)
	}
	for i, b := range inits {
		if got := rec.Inits[fmt.Sprintf("init-stream%d.m4s", i)].Body; !bytes.Equal(got, b) {
			t.Errorf("init-stream%d.m4s recorded as %d bytes, want the %d uploaded", i, len(got), len(b))
		}
	}
}

// put uploads body to url, for use in goroutines (no t.Fatal).
func put(url string, body []byte) (int, string) {
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(msg)
}

package relay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// A CMAF push (DASH-IF ingest interface 1: a POST per track) of video,
// a WebVTT track and an IMSC1 track is stored as the contract between
// the ingest and the manifests says: each text track's init segment
// (application/mp4) describes as wvtt or stpp, with its language, role,
// label and default flag as the encoder wrote them; its fragments are
// stored, none in its gap; every track gets its end of stream.
func TestCMAFPushWithTextTracks(t *testing.T) {
	const n = 8
	video := synth.Track{Kind: timeline.Video, Bitrate: 300_000, Width: 320, Height: 180}
	wvtt := synth.Track{Kind: timeline.Text, Language: "eng", Label: "English",
		TextOptions: synth.TextOptions{Codec: "wvtt", Default: true, CueEvery: 2, Gap: synth.Gap{From: 2, Count: 4}}}
	stpp := synth.Track{Kind: timeline.Text, Language: "deu", Role: "caption", Bitrate: 2000,
		TextOptions: synth.TextOptions{Codec: "stpp", Gap: synth.Gap{From: 1, Count: -1}}}
	cfg := synth.Config{CMAF: true, Tracks: []synth.Track{video, wvtt, stpp}}
	hs, st, _ := setup(t)
	for i, c := range cfg.Split() {
		s, err := synth.New(c)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		if _, err := s.WriteTo(context.Background(), &body, synth.Range{Count: n}); err != nil {
			t.Fatal(err)
		}
		if code, msg := testtool.Do(t, http.MethodPost, fmt.Sprintf("%s/live/tx.isml/Streams(track%d)", hs.URL, i), body.Bytes(), true); code != http.StatusOK {
			t.Fatalf("push of track %d: %d %s", i, code, msg)
		}
	}
	want := map[string]struct {
		desc  timeline.Track
		frags int
	}{
		"text_eng@": {timeline.Track{Kind: timeline.Text, Timescale: 10_000_000, Codecs: "wvtt", Language: "eng", Label: "English", Default: true}, n - 4},
		"text_deu_caption@2000": {timeline.Track{Kind: timeline.Text, Timescale: 10_000_000, Codecs: "stpp.ttml.im1t", FourCC: "TTML",
			Language: "deu", Role: "caption"}, 1},
	}
	frags, eos := stored(t, st, "tx")
	inits := 0
	for _, k := range testtool.Keys(t, st) {
		obj, err := layout.Parse(k)
		if err != nil || obj.Kind != layout.KindInit || obj.Track.Name == "video" {
			continue
		}
		inits++
		o, err := st.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		id := obj.Track.String()
		if obj.Track.Name == "text_eng" {
			id = "text_eng@" // measured: whatever it is
		}
		w, ok := want[id]
		if !ok {
			t.Errorf("unexpected text track %s", obj.Track)
			continue
		}
		got, err := fmp4.ParseInit(o.Body)
		if err != nil || !got.Equal(w.desc) {
			t.Errorf("%s: described\n%+v, %v; want\n%+v", obj.Track, got, err, w.desc)
		}
		if o.ContentType != "application/mp4" {
			t.Errorf("%s: init segment's Content-Type %q, want application/mp4", obj.Track, o.ContentType)
		}
		if frags[obj.Track.String()] != w.frags {
			t.Errorf("%s: %d fragments, want %d (%v)", obj.Track, frags[obj.Track.String()], w.frags, frags)
		}
	}
	if inits != 2 || eos != 3 {
		t.Errorf("%d text init segments, %d end-of-stream markers; want 2 and one per track", inits, eos)
	}
}

// A push of text tracks alone (a DASH-IF ingest text track on its own
// connection) may send nothing for longer than ReadTimeout, and less than
// the rate floor, between cues: it is kept (up to SparseReadTimeout) and
// what it sends after is stored. A video push as quiet is dropped.
func TestQuietTextPushIsKept(t *testing.T) {
	const quietFor = time.Second
	for _, tc := range []struct {
		name string
		tr   synth.Track
		kept bool
	}{
		{"text", synth.Track{Kind: timeline.Text, Language: "eng"}, true},
		{"video", synth.Track{Kind: timeline.Video, Bitrate: 100_000, Width: 160, Height: 90}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := relay.DefaultConfig()
			cfg.ReadTimeout, cfg.SparseReadTimeout = 200*time.Millisecond, time.Minute
			cfg.MinRate, cfg.RateWindow = 1000, 100*time.Millisecond
			hs, st, _, _ := newRelay(t, cfg)
			s, err := synth.New(synth.Config{CMAF: true, Tracks: []synth.Track{tc.tr}})
			if err != nil {
				t.Fatal(err)
			}
			first, err := s.Header()
			if err != nil {
				t.Fatal(err)
			}
			if first, err = s.AppendFragment(first, 0); err != nil {
				t.Fatal(err)
			}
			push := testtool.OpenPush(t, hs.URL, "/live/q.isml/Streams("+tc.name+")")
			push.Send(t, first)
			if !tc.kept {
				if code, msg := push.Answer(t, 5*time.Second); code != http.StatusRequestTimeout {
					t.Fatalf("quiet video push: %d %s, want 408", code, msg)
				}
				return
			}
			// Nothing comes back while the push is quiet.
			_ = push.Conn().SetReadDeadline(time.Now().Add(quietFor))
			if n, err := push.Conn().Read(make([]byte, 1)); n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the relay answered a push quiet for %v: %d bytes, %v", quietFor, n, err)
			}
			_ = push.Conn().SetReadDeadline(time.Time{})
			next, err := s.AppendFragment(nil, 1)
			if err != nil {
				t.Fatal(err)
			}
			push.Send(t, next)
			if code, msg := push.Finish(t); code != http.StatusOK {
				t.Fatalf("text push after a quiet second: %d %s", code, msg)
			}
			if frags, eos := stored(t, st, "q"); len(frags) != 1 || eos != 1 {
				t.Errorf("fragments %v, %d ends; want both fragments of the text track and its end", frags, eos)
			} else {
				for id, n := range frags {
					if n != 2 {
						t.Errorf("%s: %d fragments, want 2", id, n)
					}
				}
			}
		})
	}
}

package handler_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/scte35"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// withMarkers puts, at the head of every video fragment of the fixture in
// st, an SCTE-35 ad marker half a second into it (the same in both video
// renditions, as an encoder sends it in each), as the relay stores them,
// and updates the events' sizes. It returns the markers' times.
func withMarkers(t *testing.T, st *store.Store, evs []fragmentEvent) []uint64 {
	t.Helper()
	ctx := context.Background()
	var times []uint64
	for i, fe := range evs {
		obj, err := layout.Parse(fe.key)
		if err != nil || obj.Kind != layout.KindFragment || obj.Track.Name != "video" {
			continue
		}
		o, err := st.Get(ctx, fe.key)
		if err != nil {
			t.Fatal(err)
		}
		at := obj.Start + 5_000_000
		ev := timeline.Event{Scheme: scte35.Scheme, ID: uint32(obj.Start / 10_000_000), Time: at, Data: scte35.Insert(uint32(at/10_000_000), true, 0)}
		body := append(fmp4.AppendEmsg(nil, ev, 10_000_000), o.Body...)
		if _, err := st.Put(ctx, fe.key, body, store.PutOptions{ContentType: o.ContentType, Metadata: o.Metadata}); err != nil {
			t.Fatal(err)
		}
		evs[i].ev.Records[0].S3.Object.Size = int64(len(body))
		if obj.Track.Bitrate == 60000 {
			times = append(times, at)
		}
	}
	if len(times) < 2 {
		t.Fatalf("the fixture has %d video fragments", len(times))
	}
	return times
}

// The ad markers in the fragments' heads end in the manifests as if each
// event came once, in order, whatever the order, the repeats and the
// concurrency of the events: each marker once (both video renditions
// carry it), at its time, in HLS and DASH.
func TestMarkersInAnyOrderDuplicatedAndConcurrentGiveTheInOrderManifests(t *testing.T) {
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	cfg := handler.DefaultConfig()
	_, refStore := newStore(t)
	refEvents := pushFixture(t, refStore, "ch", base)
	times := withMarkers(t, refStore, refEvents)
	ref := handlerAt(refStore, cfg, refEvents)
	for _, fe := range refEvents {
		if err := ref.HandleS3(context.Background(), fe.ev); err != nil {
			t.Fatal(err)
		}
	}
	want := render(t, ref, "ch")
	mpd := want[layout.DASHManifestPath("ch")]
	for _, at := range times {
		if strings.Count(mpd, fmt.Sprintf(`<Event presentationTime="%d" id=`, at)) != 1 {
			t.Errorf("the in-order MPD does not list the marker at %d once:\n%s", at, mpd)
		}
	}
	for path, body := range want {
		if strings.HasSuffix(path, ".m3u8") && !strings.HasSuffix(path, "master.m3u8") && strings.Count(body, "#EXT-X-DATERANGE") != len(times) {
			t.Errorf("%s: want %d DATERANGE tags:\n%s", path, len(times), body)
		}
	}
	// ?markers=cue: the breaks as CUE tags, carried on to the media
	// playlists; any other value is refused.
	for q, status := range map[string]int{"cue": 200, "daterange": 400} {
		req := urlRequest("GET", "/"+layout.MasterPlaylistPath("ch"))
		req.QueryStringParameters = map[string]string{"markers": q}
		resp, err := ref.HandleURL(context.Background(), req)
		if err != nil || resp.StatusCode != status {
			t.Errorf("markers=%s: %v %d %s, want %d", q, err, resp.StatusCode, resp.Body, status)
		}
		if status == 200 && !strings.Contains(resp.Body, ".m3u8?markers=cue\n") {
			t.Errorf("markers=cue: the multivariant playlist does not carry it on:\n%s", resp.Body)
		}
	}
	req := urlRequest("GET", "/"+layout.MediaPlaylistPath("ch", layout.TrackID{Name: "video", Bitrate: 60000}))
	req.QueryStringParameters = map[string]string{"markers": "cue"}
	// Both markers start a break of no said duration: the second falls
	// in the first, which no IN ends.
	if resp, err := ref.HandleURL(context.Background(), req); err != nil || strings.Count(resp.Body, "#EXT-X-CUE-OUT\n") != 1 ||
		!strings.Contains(resp.Body, "#EXT-X-CUE-OUT-CONT:ElapsedTime=1.500\n") || strings.Contains(resp.Body, "DATERANGE") {
		t.Errorf("markers=cue: want a CUE-OUT, its CONT and no DATERANGE: %v\n%s", err, resp.Body)
	}
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			_, st := newStore(t)
			evs := pushFixture(t, st, "ch", base)
			withMarkers(t, st, evs)
			handleShuffled(t, st, cfg, evs, rand.New(rand.NewPCG(seed, 35)))
			sameManifests(t, render(t, handlerAt(st, cfg, evs), "ch"), want)
		})
	}
}

package edge

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
)

// The edge's routing of the playback URL space: media from the bucket
// (FragmentInfo answered with the fragment), manifests from the function,
// markers, state and anything outside the layout 404, CORS on every answer.
func TestRouting(t *testing.T) {
	_, st := testtool.Store(t, "edge-test")
	ctx := context.Background()
	v := layout.TrackID{Name: "video", Bitrate: 800000}
	fragment := []byte("moof+mdat")
	put := func(key string, body []byte) {
		t.Helper()
		if _, err := st.Put(ctx, key, body, store.PutOptions{ContentType: "video/mp4", CacheControl: "public, max-age=31536000, immutable"}); err != nil {
			t.Fatal(err)
		}
	}
	put(layout.FragmentKey("ch", v, 20000000), fragment)
	text := layout.TrackID{Name: "text_eng", Bitrate: 1000}
	vtt := []byte("WEBVTT\n")
	if _, err := st.Put(ctx, layout.WebVTTKey("ch", text, 2000), vtt, store.PutOptions{ContentType: "text/vtt", CacheControl: "public, max-age=31536000, immutable"}); err != nil {
		t.Fatal(err)
	}
	put(layout.EndKey("ch", v, 40000000), []byte(`{"eos":true}`))
	put(layout.ChannelStateKey("ch"), []byte(`{}`))
	var asked []string
	e := &Edge{Store: st, Log: slog.New(slog.DiscardHandler),
		Manifest: func(_ context.Context, req events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error) {
			asked = append(asked, req.RawPath)
			return events.LambdaFunctionURLResponse{StatusCode: 200, Body: "manifest", Headers: map[string]string{"Cache-Control": "max-age=1"}}, nil
		}}
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{
		{"/" + layout.FragmentKey("ch", v, 20000000), 200, string(fragment)},
		{"/" + layout.FragmentInfoPath("ch", v, 20000000), 200, string(fragment)},
		{"/" + layout.FragmentInfoPath("ch", v, 22000000), 404, ""},
		{"/" + layout.FragmentKey("ch", v, 22000000), 404, ""},
		{"/" + layout.WebVTTKey("ch", text, 2000), 200, string(vtt)},
		{"/" + layout.WebVTTKey("ch", text, 4000), 404, ""},
		{"/" + layout.SmoothManifestPath("ch") + ".vtt", 404, ""},
		{"/" + layout.EndKey("ch", v, 40000000), 404, ""},
		{"/" + layout.ChannelStateKey("ch"), 404, ""},
		{"/live/ch.isml/QualityLevels(800000)/../../../state/ch/channel.json", 404, ""},
		{"/" + layout.SmoothManifestPath("ch"), 200, "manifest"},
		{"/" + layout.MediaPlaylistPath("ch", v), 200, "manifest"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := http.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || tc.body != "" && string(b) != tc.body {
				t.Errorf("%d %q, want %d %q", resp.StatusCode, b, tc.status, tc.body)
			}
			if strings.HasSuffix(tc.path, ".vtt") && tc.status == 200 && resp.Header.Get("Content-Type") != "text/vtt" {
				t.Errorf("Content-Type %q, want text/vtt", resp.Header.Get("Content-Type"))
			}
			if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Errorf("no CORS header: %v", resp.Header)
			}
			if resp.StatusCode == 404 && resp.Header.Get("Cache-Control") != "max-age=1" {
				t.Errorf("404 cached as %q, want max-age=1", resp.Header.Get("Cache-Control"))
			}
		})
	}
	if len(asked) != 2 {
		t.Errorf("the manifest function was asked for %v, want the two manifests only", asked)
	}
}

// The manifest function gets the query parameters CloudFront's origin
// request policy forwards (layout.ManifestQueries), and no other: a
// parameter left out of the policy is left out locally too.
func TestManifestGetsOnlyTheForwardedQuery(t *testing.T) {
	var got events.LambdaFunctionURLRequest
	e := &Edge{Log: slog.New(slog.DiscardHandler),
		Manifest: func(_ context.Context, req events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error) {
			got = req
			return events.LambdaFunctionURLResponse{StatusCode: 200}, nil
		}}
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/" + layout.SmoothManifestPath("ch") + "?start=10&cb=123&markers=cue&end=20")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := map[string]string{"start": "10", "end": "20", "markers": "cue"}
	if !maps.Equal(got.QueryStringParameters, want) {
		t.Errorf("query parameters %v, want %v", got.QueryStringParameters, want)
	}
	if got.RawQueryString != "end=20&markers=cue&start=10" {
		t.Errorf("raw query %q", got.RawQueryString)
	}
}

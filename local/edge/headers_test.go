package edge

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/layout"
)

// The manifest function's forensic headers (when the manifest was
// generated, when its newest fragment ends) reach the viewer through the
// edge, as CloudFront passes an origin's custom headers on, for GET and
// HEAD of every manifest kind.
func TestManifestHeadersPassThrough(t *testing.T) {
	_, st := testtool.Store(t, "edge-headers")
	want := map[string]string{
		handler.HeaderGenerated:      "2026-11-25T12:00:05.500Z",
		handler.HeaderNewestFragment: "2026-11-25T12:00:04.000Z",
	}
	e := &Edge{Store: st, Log: slog.New(slog.DiscardHandler),
		Manifest: func(_ context.Context, req events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error) {
			h := map[string]string{"Cache-Control": "max-age=1", "Content-Type": "text/plain"}
			for k, v := range want {
				h[k] = v
			}
			return events.LambdaFunctionURLResponse{StatusCode: 200, Body: "manifest", Headers: h}, nil
		}}
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	v := layout.TrackID{Name: "video", Bitrate: 800000}
	for _, path := range []string{layout.SmoothManifestPath("ch"), layout.MasterPlaylistPath("ch"), layout.MediaPlaylistPath("ch", v), layout.DASHManifestPath("ch")} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			t.Run(method+" "+path, func(t *testing.T) {
				req, _ := http.NewRequest(method, srv.URL+"/"+path+"?start=0", nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				for k, v := range want {
					if got := resp.Header.Get(k); got != v {
						t.Errorf("%s: %q, want %q", k, got, v)
					}
				}
			})
		}
	}
}

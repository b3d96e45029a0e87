// Package edge is the local stand-in for the CloudFront distribution: it
// serves the playback URL space with the same behaviours. Manifests and
// playlists go to the manifest function exactly as CloudFront calls its
// Function URL (a payload 2.0 request), with a short max-age; fragments and
// init segments come from the bucket and are immutable; CORS headers go on
// every playback answer; anything outside the layout, internal state
// included, is 404.
package edge

import (
	"context"
	_ "embed"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
)

// ManifestFunc is the manifest function's Function URL handler.
type ManifestFunc func(ctx context.Context, req events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error)

// Edge serves playback.
type Edge struct {
	Store    *store.Store
	Manifest ManifestFunc
	Log      *slog.Logger
	// Players is the players/ folder of the source tree, whose npm packages
	// (dash.js, hls.js) the player page at /player/ loads; empty serves the
	// page without them.
	Players string
}

// Handler returns the edge's HTTP handler.
func (e *Edge) Handler() http.Handler {
	return http.HandlerFunc(e.serve)
}

func setCORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Range, Origin, Accept")
	h.Set("Access-Control-Expose-Headers", "Content-Length, Content-Range, Date, Age")
	h.Add("Vary", "Origin")
}

func notFound(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "max-age=1")
	http.Error(w, "not found", http.StatusNotFound)
}

func (e *Edge) serve(w http.ResponseWriter, r *http.Request) {
	setCORS(w.Header())
	switch r.Method {
	case http.MethodOptions:
		w.Header().Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodGet, http.MethodHead:
	default:
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/" || r.URL.Path == "/player" || strings.HasPrefix(r.URL.Path, "/player/") {
		e.servePlayer(w, r)
		return
	}
	if r.URL.Path == layout.TimePath {
		e.serveManifest(w, r) // the function tells the time (DASH UTCTiming)
		return
	}
	if base, ok := strings.CutSuffix(r.URL.Path, ".vtt"); ok {
		// A wvtt fragment's cues as a WebVTT file (layout.WebVTTKey),
		// text/vtt as stored.
		if obj, err := layout.Parse(base); err == nil && obj.Kind == layout.KindFragment {
			e.serveObject(w, r, strings.TrimPrefix(r.URL.Path, "/"))
			return
		}
	}
	obj, err := layout.Parse(r.URL.Path)
	if err != nil {
		notFound(w)
		return
	}
	switch obj.Kind {
	case layout.KindFragment, layout.KindInit:
		e.serveObject(w, r, strings.TrimPrefix(r.URL.Path, "/"))
	case layout.KindFragmentInfo:
		// As CloudFront's FragmentInfo behaviour: the fragment itself.
		e.serveObject(w, r, layout.FragmentKey(obj.Channel, obj.Track, obj.Start))
	case layout.KindEnd:
		notFound(w) // markers are for the manifest function only
	default:
		e.serveManifest(w, r)
	}
}

func (e *Edge) serveObject(w http.ResponseWriter, r *http.Request, key string) {
	out, err := e.Store.Open(r.Context(), key)
	if errors.Is(err, store.ErrNotFound) {
		notFound(w)
		return
	}
	if err != nil {
		e.Log.Error("edge: read object", "key", key, "err", err)
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "origin error", http.StatusBadGateway)
		return
	}
	defer out.Body.Close()
	h := w.Header()
	h.Set("Content-Type", aws.ToString(out.ContentType))
	h.Set("Cache-Control", aws.ToString(out.CacheControl))
	if out.ContentLength != nil {
		h.Set("Content-Length", strconv.FormatInt(*out.ContentLength, 10))
	}
	if out.ETag != nil {
		h.Set("ETag", *out.ETag)
	}
	if out.LastModified != nil {
		h.Set("Last-Modified", out.LastModified.UTC().Format(http.TimeFormat))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = io.Copy(w, out.Body)
	}
}

// serveManifest calls the manifest function the way CloudFront calls a
// Function URL origin, with the query parameters CloudFront forwards.
func (e *Edge) serveManifest(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	// CloudFront forwards only the query parameters its origin request
	// policy allows.
	forwarded := url.Values{}
	for _, k := range layout.ManifestQueries() {
		if v, ok := r.URL.Query()[k]; ok {
			forwarded[k] = v
		}
	}
	req := events.LambdaFunctionURLRequest{
		Version:        "2.0",
		RawPath:        r.URL.Path,
		RawQueryString: forwarded.Encode(),
		Headers:        map[string]string{},
		RequestContext: events.LambdaFunctionURLRequestContext{
			HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{
				Method: r.Method, Path: r.URL.Path, Protocol: r.Proto, SourceIP: r.RemoteAddr, UserAgent: r.UserAgent(),
			},
			RequestID: strconv.FormatInt(now.UnixNano(), 36),
			Time:      now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch: now.UnixMilli(),
		},
	}
	for k := range r.Header {
		req.Headers[strings.ToLower(k)] = r.Header.Get(k)
	}
	// What CloudFront's viewer-request function and the Function URL front
	// end add: the host and scheme the viewer used.
	req.Headers[layout.ViewerHostHeader] = r.Host
	req.Headers["x-forwarded-proto"] = "http"
	if r.TLS != nil {
		req.Headers["x-forwarded-proto"] = "https"
	}
	if len(forwarded) > 0 {
		req.QueryStringParameters = map[string]string{}
		for k := range forwarded {
			req.QueryStringParameters[k] = forwarded.Get(k)
		}
	}
	resp, err := e.Manifest(r.Context(), req)
	if err != nil {
		e.Log.Error("edge: manifest function", "path", r.URL.Path, "err", err)
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "origin error", http.StatusBadGateway)
		return
	}
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodGet {
		_, _ = io.WriteString(w, resp.Body)
	}
}

//go:embed player/index.html
var playerPage []byte

// playerLibs maps the player page's script names to the files of the npm
// packages in players/node_modules.
var playerLibs = map[string]string{
	"dash.all.min.js": "dashjs/dist/modern/umd/dash.all.min.js",
	"dash.mss.min.js": "dashjs/dist/modern/umd/dash.mss.min.js",
	"hls.min.js":      "hls.js/dist/hls.min.js",
}

// servePlayer serves the player page at /player/ and its libraries.
func (e *Edge) servePlayer(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == "/" || p == "/player":
		http.Redirect(w, r, "/player/", http.StatusFound)
	case p == "/player/":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(playerPage)
	case strings.HasPrefix(p, "/player/lib/") && playerLibs[strings.TrimPrefix(p, "/player/lib/")] != "" && e.Players != "":
		file := filepath.Join(e.Players, "node_modules", playerLibs[strings.TrimPrefix(p, "/player/lib/")])
		if _, err := os.Stat(file); err != nil {
			e.Log.Warn("edge: player library missing; run make players (npm ci in players/)", "file", file)
			notFound(w)
			return
		}
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		http.ServeFile(w, r, file)
	default:
		notFound(w)
	}
}

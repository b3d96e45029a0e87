package handler

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/manifest/hls"
	"github.com/smoothcast/smoothcast/shared/manifest/smooth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// Content types of the rendered manifests.
const (
	ContentTypeSmooth = "text/xml; charset=utf-8"
	ContentTypeHLS    = "application/vnd.apple.mpegurl"
)

// HandleURL answers a manifest request (Lambda Function URL payload 2.0):
// GET or HEAD of a Smooth manifest, an HLS multivariant or media playlist.
// Anything else is 404 (405 for other methods). Errors reading the state
// are 503, so that the CDN retries rather than caches them.
func (h *Handler) HandleURL(ctx context.Context, req events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error) {
	method := req.RequestContext.HTTP.Method
	path := req.RawPath
	if path == "" {
		path = req.RequestContext.HTTP.Path
	}
	if method != http.MethodGet && method != http.MethodHead {
		return textResponse(http.StatusMethodNotAllowed, "method not allowed\n"), nil
	}
	obj, err := layout.Parse(path)
	if err != nil {
		return textResponse(http.StatusNotFound, "not found\n"), nil
	}
	switch obj.Kind {
	case layout.KindSmoothManifest, layout.KindMasterPlaylist, layout.KindMediaPlaylist:
	default:
		return textResponse(http.StatusNotFound, "not found\n"), nil
	}
	p, err := h.Presentation(ctx, obj.Channel)
	if errors.Is(err, errNoChannel) {
		return textResponse(http.StatusNotFound, "no such channel\n"), nil
	}
	if err != nil {
		h.Log.Error("load presentation", "channel", obj.Channel, "err", err)
		return textResponse(http.StatusServiceUnavailable, "state unavailable\n"), nil
	}
	var body []byte
	var ctype string
	switch obj.Kind {
	case layout.KindSmoothManifest:
		body, err = smooth.Render(p)
		ctype = ContentTypeSmooth
	case layout.KindMasterPlaylist:
		body, ctype = hls.Master(p), ContentTypeHLS
	case layout.KindMediaPlaylist:
		var ok bool
		if body, ok = hls.Media(p, obj.Track); !ok {
			return textResponse(http.StatusNotFound, "no such track\n"), nil
		}
		ctype = ContentTypeHLS
	}
	if err != nil {
		h.Log.Error("render", "channel", obj.Channel, "path", path, "err", err)
		return textResponse(http.StatusInternalServerError, "render failed\n"), nil
	}
	resp := events.LambdaFunctionURLResponse{
		StatusCode: http.StatusOK,
		Headers: map[string]string{
			"Content-Type":  ctype,
			"Cache-Control": "public, max-age=" + strconv.Itoa(int(max(h.Cfg.ManifestMaxAge/time.Second, 1))),
		},
	}
	if method == http.MethodGet {
		resp.Body = string(body)
	}
	resp.Headers["Content-Length"] = strconv.Itoa(len(body))
	return resp, nil
}

func textResponse(code int, msg string) events.LambdaFunctionURLResponse {
	return events.LambdaFunctionURLResponse{
		StatusCode: code,
		Headers:    map[string]string{"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "max-age=1"},
		Body:       msg,
	}
}

var errNoChannel = errors.New("no such channel")

// Presentation loads a channel's index and every track's state (in
// parallel): what the renderers need.
func (h *Handler) Presentation(ctx context.Context, channel string) (*timeline.Presentation, error) {
	ch, etag, err := h.loadChannel(ctx, channel)
	if err != nil {
		return nil, err
	}
	if etag == "" {
		return nil, errNoChannel
	}
	p := &timeline.Presentation{Channel: channel, Epoch: ch.Epoch, DVRWindow: h.Cfg.DVRWindow, Tracks: make([]timeline.TrackView, len(ch.Tracks))}
	var wg sync.WaitGroup
	errs := make([]error, len(ch.Tracks))
	for i, t := range ch.Tracks {
		p.Tracks[i].Track = t
		wg.Go(func() {
			st, _, err := h.loadTrackState(ctx, layout.TrackStateKey(channel, t.ID))
			if err != nil {
				errs[i] = fmt.Errorf("track %s: %w", t.ID, err)
				return
			}
			p.Tracks[i].State = *st
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

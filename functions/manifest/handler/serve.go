package handler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/manifest/dash"
	"github.com/smoothcast/smoothcast/shared/manifest/hls"
	"github.com/smoothcast/smoothcast/shared/manifest/smooth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// Response headers of every rendered manifest, for telling a stale CDN
// copy from a stalled encoder: the time the function rendered it, and the
// wall-clock time at which the newest fragment it lists ends (absent when
// it lists none). Both are RFC 3339 in UTC with milliseconds. A copy whose
// Generated is old is the cache's doing; a fresh one whose newest fragment
// is old means nothing new was published.
const (
	HeaderGenerated      = "X-Smoothcast-Generated"
	HeaderNewestFragment = "X-Smoothcast-Newest-Fragment"
)

// timeFormat is RFC 3339 with milliseconds.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// Content types of the rendered manifests.
const (
	ContentTypeSmooth = "text/xml; charset=utf-8"
	ContentTypeHLS    = "application/vnd.apple.mpegurl"
	ContentTypeDASH   = "application/dash+xml"
)

// HandleURL answers a manifest request (Lambda Function URL payload 2.0):
// GET or HEAD of a Smooth manifest, an HLS multivariant or media playlist,
// a DASH MPD, or the time (TimePath).
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
	if path == layout.TimePath {
		// DASH UTCTiming (http-iso): never cached, the clock is the point.
		resp := textResponse(http.StatusOK, h.Now().UTC().Format(timeFormat))
		resp.Headers["Cache-Control"] = "no-store"
		return resp, nil
	}
	obj, err := layout.Parse(path)
	if err != nil {
		return textResponse(http.StatusNotFound, "not found\n"), nil
	}
	switch obj.Kind {
	case layout.KindSmoothManifest, layout.KindMasterPlaylist, layout.KindMediaPlaylist, layout.KindDASHManifest:
	default:
		return textResponse(http.StatusNotFound, "not found\n"), nil
	}
	p, err := h.Presentation(ctx, obj.Channel)
	if errors.Is(err, errNoChannel) {
		return textResponse(http.StatusNotFound, "no such channel\n"), nil
	}
	if err != nil {
		h.Log.Error("load presentation", "channel", obj.Channel, "err", err)
		h.emitRequestError(obj.Channel)
		return textResponse(http.StatusServiceUnavailable, "state unavailable\n"), nil
	}
	maxAge := max(h.Cfg.ManifestMaxAge/time.Second, 1)
	if len(req.QueryStringParameters) > 0 {
		now := h.Now()
		rng, err := ParseRange(req.QueryStringParameters, p.Epoch, now)
		if err == nil && rng != nil {
			err = available(p, rng)
		}
		if err == nil {
			p.CueMarkers, err = cueMarkers(req.QueryStringParameters)
		}
		if err != nil {
			return textResponse(http.StatusBadRequest, err.Error()+"\n"), nil
		}
		p.Range = rng
		if rng != nil && rng.VOD && now.Sub(rng.To) > time.Minute {
			maxAge = layout.FinishedRangeMaxAge / time.Second // a range long finished does not change
		}
	}
	var body []byte
	var ctype string
	switch obj.Kind {
	case layout.KindSmoothManifest:
		body, err = smooth.Render(p)
		ctype = ContentTypeSmooth
	case layout.KindMasterPlaylist:
		body, ctype = hls.Master(p), ContentTypeHLS
	case layout.KindDASHManifest:
		body, err = dash.Render(p, dash.Options{UTCTimingURL: viewerURL(req.Headers, layout.TimePath)})
		ctype = ContentTypeDASH
	case layout.KindMediaPlaylist:
		var ok bool
		if body, ok = hls.Media(p, obj.Track); !ok {
			return textResponse(http.StatusNotFound, "no such track\n"), nil
		}
		ctype = ContentTypeHLS
	}
	if err != nil {
		h.Log.Error("render", "channel", obj.Channel, "path", path, "err", err)
		h.emitRequestError(obj.Channel)
		return textResponse(http.StatusInternalServerError, "render failed\n"), nil
	}
	resp := events.LambdaFunctionURLResponse{
		StatusCode: http.StatusOK,
		Headers: map[string]string{
			"Content-Type":  ctype,
			"Cache-Control": "public, max-age=" + strconv.Itoa(int(maxAge)),
			HeaderGenerated: h.Now().UTC().Format(timeFormat),
		},
	}
	if newest, ok := newestListed(p, obj); ok {
		resp.Headers[HeaderNewestFragment] = newest.UTC().Format(timeFormat)
	}
	if method == http.MethodGet {
		resp.Body = string(body)
	}
	resp.Headers["Content-Length"] = strconv.Itoa(len(body))
	return resp, nil
}

// newestListed is the wall-clock end of the newest fragment that the
// manifest obj names, rendered from p, lists: what the media playlist of
// a track lists; for the multivariant playlist, which lists no fragment,
// what its media playlists do; for Smooth and DASH, what their stream
// indexes and adaptation sets list (the fragments every track of a group
// has; a live Smooth manifest holds the newest back until its successor
// is stored). ok is false when it lists none.
func newestListed(p *timeline.Presentation, obj layout.Object) (newest time.Time, ok bool) {
	var e timeline.Extent
	switch obj.Kind {
	case layout.KindMediaPlaylist:
		if tv, found := p.Track(obj.Track); found {
			tl := p.Windowed(tv)
			e.Add(p, &tl, tv.Timescale)
		}
	case layout.KindMasterPlaylist:
		for i := range p.Tracks {
			tv := &p.Tracks[i]
			if tv.Kind != timeline.Video && tv.Kind != timeline.Audio {
				continue // hls.Master leads to video and audio playlists only
			}
			tl := p.Windowed(tv)
			e.Add(p, &tl, tv.Timescale)
		}
	case layout.KindSmoothManifest, layout.KindDASHManifest:
		for _, g := range p.Groups() {
			if obj.Kind == layout.KindDASHManifest && g.Kind != timeline.Video && g.Kind != timeline.Audio {
				continue // dash.Render lists video and audio only
			}
			common := p.Common(g)
			if last, found := common.Last(); found && obj.Kind == layout.KindSmoothManifest && !p.VOD() {
				common.TrimAfter(last.Start) // as smooth.Render does
			}
			e.Add(p, &common, g.Views[0].Timescale)
		}
	}
	return e.End, !e.Empty()
}

// viewerURL makes path absolute on the host the viewer used, when the
// request says which (layout.ViewerHostHeader, with x-forwarded-proto or https).
// Clients resolve a relative UTCTiming URL inconsistently: dash.js against
// the page, GStreamer not at all; an absolute one works for all of them.
// Without the header the path stays relative.
func viewerURL(headers map[string]string, path string) string {
	host := headers[layout.ViewerHostHeader]
	notHost := func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune(".-:[]", r))
	}
	if host == "" || strings.ContainsFunc(host, notHost) {
		return path // absent, or not a host[:port]
	}
	proto := headers["x-forwarded-proto"]
	if proto != "http" {
		proto = "https"
	}
	return proto + "://" + host + path
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
	now := h.Now()
	p := &timeline.Presentation{Channel: channel, Epoch: ch.Epoch, DVRWindow: h.Cfg.DVRWindow, Archive: h.Cfg.ArchiveSpan(), Tracks: make([]timeline.TrackView, len(ch.Tracks))}
	if h.Cfg.Retention > 0 {
		p.Oldest = now.Add(-(h.Cfg.Retention - layout.RetentionMargin))
	}
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
			if !st.Belongs(ch.Epoch) {
				st = &timeline.TrackState{} // left from an earlier life of the channel
			}
			// What waited out the gap timeout since the last event is
			// listed now, not at the next event (there may be none).
			st.Settle(now, timeline.Rules{GapTimeout: h.Cfg.GapTimeout, Sparse: t.Kind.Sparse()})
			p.Tracks[i].State = *st
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p.Ended = p.Finished(now)
	return p, nil
}

// Time-shift query parameters. Each takes a wall-clock time in ISO 8601
// (RFC 3339: 2026-11-25T12:00:00Z, fractions and offsets allowed) or a
// number of seconds since the stream's start (media time zero: 90, 12.5).
const (
	QueryStart = layout.QueryStart
	QueryEnd   = layout.QueryEnd
)

// ParseRange reads a time-shift request from query parameters: nil when
// there is none. A closed range that ended before now is VOD.
func ParseRange(q map[string]string, epoch, now time.Time) (*timeline.Range, error) {
	rawFrom, hasFrom := q[QueryStart]
	rawTo, hasTo := q[QueryEnd]
	if !hasFrom && !hasTo {
		return nil, nil
	}
	var r timeline.Range
	var err error
	var parts []string
	if hasFrom {
		if r.From, err = parseInstant(QueryStart, rawFrom, epoch); err != nil {
			return nil, err
		}
		parts = append(parts, QueryStart+"="+url.QueryEscape(rawFrom))
	}
	if hasTo {
		if r.To, err = parseInstant(QueryEnd, rawTo, epoch); err != nil {
			return nil, err
		}
		parts = append(parts, QueryEnd+"="+url.QueryEscape(rawTo))
	}
	if hasFrom && hasTo && !r.To.After(r.From) {
		return nil, fmt.Errorf("bad range: end (%s) is not after start (%s)", rawTo, rawFrom)
	}
	r.VOD = hasTo && !r.To.After(now)
	r.Query = strings.Join(parts, "&")
	return &r, nil
}

// parseInstant reads a start or end (see QueryStart). A time before the
// epoch is the epoch: the stream has nothing earlier, and a bound must
// never be the zero time.Time (0001-01-01T00:00:00Z parses to it), which
// timeline.Range reads as no bound at all: an end that far back would
// have asked for the live manifest.
func parseInstant(name, raw string, epoch time.Time) (time.Time, error) {
	// An unescaped '+' of a UTC offset arrives as a space.
	if t, err := time.Parse(time.RFC3339Nano, strings.Replace(raw, " ", "+", 1)); err == nil {
		if t.Before(epoch) {
			return epoch, nil
		}
		return t, nil
	}
	sec, err := strconv.ParseFloat(raw, 64)
	if err != nil || math.IsNaN(sec) || math.IsInf(sec, 0) || sec < 0 || sec > maxQuerySeconds {
		return time.Time{}, fmt.Errorf("bad %s %q: want an ISO 8601 time such as 2026-11-25T12:00:00Z, or seconds since the stream's start such as 90", name, raw)
	}
	return epoch.Add(secondsDuration(sec)), nil
}

// maxQuerySeconds bounds a time-shift query in seconds (about 317 years):
// beyond what a time.Duration holds, which secondsDuration saturates at.
const maxQuerySeconds = 1e10

// secondsDuration is sec seconds (finite, not negative) as a duration,
// exact to the nanosecond (rounded down), and saturated at the largest
// time.Duration (about 292 years) rather than wrapped: a start that far
// is after the live edge (400), an end that far leaves the range open.
// (Go's float-to-integer conversion of an out-of-range value is
// undefined: on amd64 it gave the most negative duration, a start before
// the stream, hence a live manifest from its start.)
func secondsDuration(sec float64) time.Duration {
	ns, _ := new(big.Float).SetPrec(128).Mul(big.NewFloat(sec), big.NewFloat(float64(time.Second))).Int64()
	return time.Duration(max(ns, 0))
}

// available refuses a range that lies wholly outside what the state still
// lists (older than the archive, or beyond the live edge).
func available(p *timeline.Presentation, r *timeline.Range) error {
	var kept timeline.Extent
	stored := false
	for i := range p.Tracks {
		tv := &p.Tracks[i]
		stored = stored || !tv.State.Timeline.Empty()
		tl := tv.State.Timeline.Window(0) // a copy
		if !p.Oldest.IsZero() {
			tl.TrimBefore(p.MediaTime(p.Oldest, tv.Timescale)) // past retention: not kept
		}
		kept.Add(p, &tl, tv.Timescale)
	}
	const layoutTime = timeFormat
	switch {
	case kept.Empty() && stored:
		return fmt.Errorf("bad range: every fragment the channel had is past the retention (the archive keeps %s)", p.Archive)
	case kept.Empty():
		return errors.New("bad range: the channel has no fragments yet")
	case !r.From.IsZero() && !r.From.Before(kept.End):
		return fmt.Errorf("bad range: start %s is at or after the newest fragment's end, %s", r.From.UTC().Format(layoutTime), kept.End.UTC().Format(layoutTime))
	case !r.To.IsZero() && !r.To.After(kept.Start):
		return fmt.Errorf("bad range: end %s is at or before the oldest fragment kept, %s (the archive keeps %s)", r.To.UTC().Format(layoutTime), kept.Start.UTC().Format(layoutTime), p.Archive)
	}
	return nil
}

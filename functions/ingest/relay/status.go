package relay

import (
	"cmp"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// maxRecentErrors bounds the errors /status keeps.
const maxRecentErrors = 50

// stream is one push or upload rendition in progress, as /status shows it.
type stream struct {
	channel, name, kind, remote string
	started                     time.Time
	bytes                       atomic.Int64

	mu      sync.Mutex
	tracks  []*trackInfo
	lastErr *ErrorStatus
}

type trackInfo struct {
	id         layout.TrackID
	kind       timeline.Kind
	protection string // "{scheme} {default KID}" of an encrypted track
	fragments  int
	duplicates int
	last       time.Time // the last fragment's PUT answered
}

func (s *stream) track(id layout.TrackID, kind timeline.Kind) *trackInfo {
	for _, t := range s.tracks {
		if t.id == id {
			return t
		}
	}
	t := &trackInfo{id: id, kind: kind}
	s.tracks = append(s.tracks, t)
	return t
}

// announced notes a track, before its first fragment.
func (s *stream) announced(id layout.TrackID, kind timeline.Kind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.track(id, kind)
}

// protected notes a track encrypted: its scheme and default KID.
func (s *stream) protected(id layout.TrackID, protection string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tracks {
		if t.id == id {
			t.protection = protection
		}
	}
}

// stored notes a fragment stored (or found stored: duplicate).
func (s *stream) stored(id layout.TrackID, kind timeline.Kind, duplicate bool, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.track(id, kind)
	t.fragments++
	if duplicate {
		t.duplicates++
	}
	t.last = at
}

// failed notes an error that did not end the stream (a store request
// retried, a segment refused).
func (s *stream) failed(kind string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = &ErrorStatus{Time: time.Now().UTC(), Kind: kind, Channel: s.channel, Stream: s.name, Remote: s.remote, Message: withoutTokens(err.Error())}
}

// tokenInPath is an ingest secret sent in a path (tokenPrefix), in any
// text that quotes a path.
var tokenInPath = regexp.MustCompile(`(?i)/token/[^/\s]*`)

// withoutTokens is msg with the secret of every /token/{secret}/ path in
// it hidden: what /status shows (and the log, where a path reaches it)
// never carries a secret.
func withoutTokens(msg string) string {
	return tokenInPath.ReplaceAllLiteralString(msg, tokenPrefix+"(hidden)")
}

// Status is what the relay is doing, as /status serves it.
type Status struct {
	Time         time.Time       `json:"time"`
	ShuttingDown bool            `json:"shutting_down"`
	Channels     []ChannelStatus `json:"channels"`
	// RecentErrors are the latest errors, newest first (at most 50).
	RecentErrors []ErrorStatus `json:"recent_errors"`
}

// ChannelStatus is one channel's streams in progress.
type ChannelStatus struct {
	Channel string         `json:"channel"`
	Streams []StreamStatus `json:"streams"`
}

// StreamStatus is one push (Kind "push", Stream its Streams(name)) or
// upload rendition (Kind "upload", Stream "upload:" and its init
// segment's file name) in progress.
type StreamStatus struct {
	Kind    string        `json:"kind"`
	Stream  string        `json:"stream"`
	Remote  string        `json:"remote"` // the encoder's address
	Started time.Time     `json:"started"`
	Seconds float64       `json:"seconds"` // since it started
	Bytes   int64         `json:"bytes"`
	Tracks  []TrackStatus `json:"tracks"`
	// LastError is the latest error that did not end the stream.
	LastError *ErrorStatus `json:"last_error,omitempty"`
}

// TrackStatus is one track of a stream.
type TrackStatus struct {
	Name      string `json:"name"`
	Bitrate   int    `json:"bitrate"` // bits per second
	Kind      string `json:"kind"`    // video, audio or text
	Fragments int    `json:"fragments"`
	// Duplicates are the fragments found stored already (counted in
	// Fragments too).
	Duplicates int `json:"duplicates"`
	// Protection is an encrypted track's scheme and default key ID
	// ("cbcs 0011…"); absent for a clear one.
	Protection string `json:"protection,omitempty"`
	// LastFragmentAge is the time since the last fragment was stored, in
	// seconds; absent before the first.
	LastFragmentAge *float64 `json:"last_fragment_age_seconds,omitempty"`
}

// ErrorStatus is one error: a request refused, a stream ended by an
// error, or one that went on.
type ErrorStatus struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"` // as smoothcast_errors_total's kind label
	Channel string    `json:"channel,omitempty"`
	Stream  string    `json:"stream,omitempty"`
	Remote  string    `json:"remote,omitempty"`
	Message string    `json:"message"`
}

// noteError counts an error of kind and keeps it among the recent ones.
func (rl *Relay) noteError(kind, channel, streamName, remote string, err error) {
	rl.metrics.errors.WithLabelValues(kind).Inc()
	e := ErrorStatus{Time: time.Now().UTC(), Kind: kind, Channel: channel, Stream: streamName, Remote: remote, Message: withoutTokens(err.Error())}
	rl.errMu.Lock()
	defer rl.errMu.Unlock()
	if rl.recent = append(rl.recent, e); len(rl.recent) > maxRecentErrors {
		rl.recent = slices.Delete(rl.recent, 0, 1)
	}
}

// streamError is noteError for an error of a stream in progress or that
// it ended with.
func (rl *Relay) streamError(st *stream, kind string, err error) {
	rl.noteError(kind, st.channel, st.name, st.remote, err)
}

// stopper is how Shutdown stops a stream: a push's reader, a live
// stream. stop(now) stops it at its next boundary between fragments, or
// at once, and reports whether it was still going. It is called with
// Relay.mu held.
type stopper interface{ stop(now bool) bool }

// register shows a stream in /status and counts it in
// smoothcast_active_streams; unregister undoes it. sp (nil for an upload
// rendition, which the uploads end) is how Shutdown stops it.
func (rl *Relay) register(st *stream, sp stopper) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.streams == nil {
		rl.streams = map[*stream]stopper{}
	}
	rl.streams[st] = sp
	if rl.closing && sp != nil {
		sp.stop(false) // it came in just as the relay began to shut down
	}
	rl.metrics.active.WithLabelValues(st.channel, st.kind).Inc()
}

func (rl *Relay) unregister(st *stream) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	delete(rl.streams, st)
	for o := range rl.streams {
		if o.channel == st.channel && o.kind == st.kind {
			rl.metrics.active.WithLabelValues(st.channel, st.kind).Dec()
			return
		}
	}
	// The channel's last stream of the kind: its series goes, so that
	// channels that come and go do not pile up series.
	rl.metrics.active.DeleteLabelValues(st.channel, st.kind)
}

// Status returns what the relay is doing: the streams in progress by
// channel, and the recent errors.
func (rl *Relay) Status() Status {
	now := time.Now()
	rl.mu.Lock()
	streams := make([]*stream, 0, len(rl.streams))
	for st := range rl.streams {
		streams = append(streams, st)
	}
	closing := rl.closing
	rl.mu.Unlock()
	slices.SortFunc(streams, func(a, b *stream) int {
		return cmp.Or(cmp.Compare(a.channel, b.channel), a.started.Compare(b.started), cmp.Compare(a.name, b.name))
	})
	s := Status{Time: now.UTC(), ShuttingDown: closing, Channels: []ChannelStatus{}}
	for _, st := range streams {
		if len(s.Channels) == 0 || s.Channels[len(s.Channels)-1].Channel != st.channel {
			s.Channels = append(s.Channels, ChannelStatus{Channel: st.channel})
		}
		ss := StreamStatus{Kind: st.kind, Stream: st.name, Remote: st.remote, Started: st.started.UTC(),
			Seconds: now.Sub(st.started).Seconds(), Bytes: st.bytes.Load(), Tracks: []TrackStatus{}}
		st.mu.Lock()
		for _, t := range st.tracks {
			ts := TrackStatus{Name: t.id.Name, Bitrate: t.id.Bitrate, Kind: string(t.kind), Fragments: t.fragments, Duplicates: t.duplicates, Protection: t.protection}
			if !t.last.IsZero() {
				age := now.Sub(t.last).Seconds()
				ts.LastFragmentAge = &age
			}
			ss.Tracks = append(ss.Tracks, ts)
		}
		if st.lastErr != nil {
			e := *st.lastErr
			ss.LastError = &e
		}
		st.mu.Unlock()
		c := &s.Channels[len(s.Channels)-1]
		c.Streams = append(c.Streams, ss)
	}
	rl.errMu.Lock()
	s.RecentErrors = slices.Clone(rl.recent)
	rl.errMu.Unlock()
	if s.RecentErrors == nil {
		s.RecentErrors = []ErrorStatus{}
	}
	slices.Reverse(s.RecentErrors) // newest first
	return s
}

func (rl *Relay) serveStatus(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rl.Status())
}

func (rl *Relay) serveStatusHTML(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// Nothing from elsewhere, no script: only the inline style.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err := statusPage.Execute(w, rl.Status()); err != nil {
		rl.Log.Warn("status page", "err", err)
	}
}

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"kbps": func(b int) string { return fmt.Sprintf("%d kbit/s", (b+500)/1000) },
	"secs": func(s float64) string { return fmt.Sprintf("%.1f s", s) },
	"age": func(s *float64) string {
		if s == nil {
			return "–"
		}
		return fmt.Sprintf("%.1f s", *s)
	},
	"when": func(t time.Time) string { return t.Format("15:04:05") },
	"size": func(b int64) string {
		if b < 1<<20 {
			return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
		}
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>smoothcast relay</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.err{color:#a00}
.muted{color:#777}
</style></head><body>
<h1>smoothcast relay</h1>
<p class="muted">{{.Time.Format "2006-01-02 15:04:05 UTC"}}{{if .ShuttingDown}} · <strong class="err">shutting down</strong>{{end}} · refreshes every 2 s · <a href="status">JSON</a> · <a href="metrics">metrics</a></p>
{{range .Channels}}<h2>{{.Channel}}</h2>
<table><tr><th>stream</th><th>kind</th><th>encoder</th><th>for</th><th>received</th><th>track</th><th>type</th><th>bitrate</th><th>fragments</th><th>last fragment</th><th>last error</th></tr>
{{range .Streams}}{{$s := .}}{{$n := len .Tracks}}{{if eq $n 0}}<tr><td>{{.Stream}}</td><td>{{.Kind}}</td><td>{{.Remote}}</td><td class="n">{{secs .Seconds}}</td><td class="n">{{size .Bytes}}</td><td colspan="5" class="muted">no track yet</td><td class="err">{{with .LastError}}{{when .Time}} {{.Kind}}: {{.Message}}{{end}}</td></tr>
{{end}}{{range $i, $t := .Tracks}}<tr>{{if eq $i 0}}<td rowspan="{{$n}}">{{$s.Stream}}</td><td rowspan="{{$n}}">{{$s.Kind}}</td><td rowspan="{{$n}}">{{$s.Remote}}</td><td rowspan="{{$n}}" class="n">{{secs $s.Seconds}}</td><td rowspan="{{$n}}" class="n">{{size $s.Bytes}}</td>{{end}}<td>{{$t.Name}}</td><td>{{$t.Kind}}{{with $t.Protection}} <span class="muted">encrypted {{.}}</span>{{end}}</td><td class="n">{{kbps $t.Bitrate}}</td><td class="n">{{$t.Fragments}}</td><td class="n">{{age $t.LastFragmentAge}}</td>{{if eq $i 0}}<td rowspan="{{$n}}" class="err">{{with $s.LastError}}{{when .Time}} {{.Kind}}: {{.Message}}{{end}}</td>{{end}}</tr>
{{end}}{{end}}</table>
{{else}}<p class="muted">No stream in progress.</p>
{{end}}<h2>Recent errors</h2>
{{if .RecentErrors}}<table><tr><th>time</th><th>kind</th><th>channel</th><th>stream</th><th>encoder</th><th>message</th></tr>
{{range .RecentErrors}}<tr><td>{{when .Time}}</td><td>{{.Kind}}</td><td>{{.Channel}}</td><td>{{.Stream}}</td><td>{{.Remote}}</td><td class="err">{{.Message}}</td></tr>
{{end}}</table>{{else}}<p class="muted">None.</p>{{end}}
</body></html>
`))

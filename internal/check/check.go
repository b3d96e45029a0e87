// Package check verifies a channel as a viewer sees it, from any base URL
// (the local edge or a CloudFront distribution): it fetches the Smooth
// Streaming client manifest, the HLS multivariant and media playlists and
// the DASH MPD, expands every timeline into the objects it references,
// checks that each of them answers 200 (and, fetched whole, that a fragment
// is a whole moof+mdat at the time its manifest gives it), and that the
// three formats list the same fragments per track. `smoothcast check` is
// its command line.
package check

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/mp4box"
)

// FetchMode says how referenced objects are checked.
type FetchMode string

const (
	// FetchAll GETs every object: fragments must be whole stored
	// fragments (fmp4.Inspect) starting at their listed time, init
	// segments an ftyp followed by a moov.
	FetchAll FetchMode = "all"
	// FetchHead only asks for each object's headers (HEAD).
	FetchHead FetchMode = "head"
)

// Format is a viewer format.
type Format string

// The formats a channel is served in, in the order Run fetches them.
const (
	Smooth Format = "smooth"
	HLS    Format = "hls"
	DASH   Format = "dash"
)

// Formats lists every format, in the order Run fetches them.
var Formats = []Format{Smooth, HLS, DASH}

// Options tune a check. The zero value is the defaults.
type Options struct {
	// Fetch is FetchAll (the default when empty) or FetchHead.
	Fetch FetchMode
	// EdgeSlack is how many of a track's newest (and, as the DVR window
	// slides, oldest) fragments a live format may lack while the others
	// list them: Smooth holds back the newest fragment, and the manifests
	// are fetched one after the other. 0 means 2; negative means none.
	// Manifests that are all final (VOD) must agree exactly.
	EdgeSlack int
	// Concurrency is how many objects are fetched at once; 0 means 8.
	Concurrency int
}

// ManifestResult is the outcome of fetching one manifest or playlist.
type ManifestResult struct {
	Format Format
	URL    string
	Status int  // HTTP status; 0 when the request failed
	Live   bool // a live manifest (Smooth IsLive, no EXT-X-ENDLIST, a dynamic MPD)
	Err    string
}

// TrackReport counts the references of one track in one format.
type TrackReport struct {
	Format Format
	// Track is "name@bitrate" when the URLs follow the smoothcast layout,
	// else a name the format gives it.
	Track string
	// Listed is how many fragments the format lists; Checked how many of
	// them got an answer; Missing how many did not answer 200; Bad how many
	// answered 200 with something other than the fragment listed.
	Listed, Checked, Missing, Bad int
	// Init is the init segment's URL ("" for Smooth, which has none);
	// InitOK says it was found (and, fetched whole, is an init segment).
	Init   string
	InitOK bool
}

// Report is the outcome of a check.
type Report struct {
	Base, Channel string
	Fetch         FetchMode
	Manifests     []ManifestResult
	Tracks        []TrackReport // by track, then format
	Objects       int           // distinct objects requested
	// Problems lists everything wrong, in words; a channel passes when
	// there is none.
	Problems []string
	// Notes are things that were not checked, and why.
	Notes []string
}

// OK reports whether the check found no problem.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// maxManifest bounds a manifest's size, maxObject a fetched object's.
const (
	maxManifest = 32 << 20
	maxObject   = 256 << 20
)

// ref is one object a manifest references.
type ref struct {
	url   string
	key   string // url without its query: what is requested once
	time  uint64 // the fragment's start in the track's timescale
	timed bool   // time is known
	vtt   bool   // a WebVTT file (.vtt: HLS subtitles), not a fragment
}

// listedTrack is what one format lists for one track.
type listedTrack struct {
	id     string
	init   *ref
	frags  []ref
	codecs string // the track's codec, where the format says it (DASH)
}

// listing is what one format lists.
type listing struct {
	format Format
	ok     bool // its manifests were fetched and parsed
	live   bool
	tracks map[string]*listedTrack
	order  []string
}

func newListing(f Format) *listing {
	return &listing{format: f, tracks: map[string]*listedTrack{}}
}

func (l *listing) track(id string) *listedTrack {
	t := l.tracks[id]
	if t == nil {
		t = &listedTrack{id: id}
		l.tracks[id] = t
		l.order = append(l.order, id)
	}
	return t
}

// Run checks channel as served under base (for example
// http://127.0.0.1:8081 or https://d111111abcdef8.cloudfront.net). Every
// problem it finds, a manifest that does not answer included, is in the
// report; the error is for a check that could not run to its end (a bad
// base URL or channel name, ctx ending), and comes with what was found so
// far. client nil uses http.DefaultClient.
func Run(ctx context.Context, client *http.Client, base, channel string, opts Options) (Report, error) {
	if client == nil {
		client = http.DefaultClient
	}
	if opts.Fetch == "" {
		opts.Fetch = FetchAll
	}
	switch {
	case opts.EdgeSlack == 0:
		opts.EdgeSlack = 2
	case opts.EdgeSlack < 0:
		opts.EdgeSlack = 0
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	rep := Report{Base: base, Channel: channel, Fetch: opts.Fetch}
	if opts.Fetch != FetchAll && opts.Fetch != FetchHead {
		return rep, fmt.Errorf("check: fetch mode %q (want all or head)", opts.Fetch)
	}
	if !layout.ValidName(channel) {
		return rep, fmt.Errorf("check: channel %q: %w", channel, layout.ErrInvalidName)
	}
	u, err := url.Parse(strings.TrimRight(base, "/") + "/")
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return rep, fmt.Errorf("check: base URL %q: want http(s)://host[/path]", base)
	}
	c := &checker{client: client, opts: opts, rep: &rep, base: u}
	listings := []*listing{
		c.smooth(ctx, c.resolve(layout.SmoothManifestPath(channel))),
		c.hls(ctx, c.resolve(layout.MasterPlaylistPath(channel))),
		c.dash(ctx, c.resolve(layout.DASHManifestPath(channel))),
	}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("check: %w", err)
	}
	results, err := c.fetchAll(ctx, listings)
	c.tally(listings, results)
	c.compare(listings)
	return rep, err
}

type checker struct {
	client *http.Client
	opts   Options
	rep    *Report
	base   *url.URL
}

func (c *checker) problem(format string, args ...any) {
	c.rep.Problems = append(c.rep.Problems, fmt.Sprintf(format, args...))
}

func (c *checker) note(format string, args ...any) {
	c.rep.Notes = append(c.rep.Notes, fmt.Sprintf(format, args...))
}

// resolve is the URL of a path (layout's, without a leading slash) under
// the base.
func (c *checker) resolve(p string) *url.URL {
	return c.base.ResolveReference(&url.URL{Path: p})
}

// getManifest fetches one manifest, recording the result; nil when it is
// not there to parse.
func (c *checker) getManifest(ctx context.Context, f Format, u *url.URL) []byte {
	res := ManifestResult{Format: f, URL: u.String()}
	defer func() { c.rep.Manifests = append(c.rep.Manifests, res) }()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		res.Err = err.Error()
		c.problem("%s %s: %v", f, u, err)
		return nil
	}
	resp, err := c.client.Do(req)
	if err != nil {
		res.Err = err.Error()
		c.problem("%s %s: %v", f, u, err)
		return nil
	}
	defer resp.Body.Close()
	res.Status = resp.StatusCode
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxManifest+1))
	switch {
	case resp.StatusCode != http.StatusOK:
		res.Err = strings.TrimSpace(string(body[:min(len(body), 200)]))
		c.problem("%s %s: %s %s", f, u, resp.Status, res.Err)
		return nil
	case err != nil:
		res.Err = err.Error()
		c.problem("%s %s: reading: %v", f, u, err)
		return nil
	case len(body) > maxManifest:
		res.Err = "too large"
		c.problem("%s %s: larger than %d bytes", f, u, maxManifest)
		return nil
	}
	return body
}

// setLive records whether the manifest just fetched is live.
func (c *checker) setLive(live bool) {
	c.rep.Manifests[len(c.rep.Manifests)-1].Live = live
}

// fail records a manifest that could not be parsed.
func (c *checker) fail(f Format, u *url.URL, err error) {
	m := &c.rep.Manifests[len(c.rep.Manifests)-1]
	m.Err = err.Error()
	c.problem("%s %s: %v", f, u, err)
}

// objectRe picks the track and time out of a smoothcast object path.
var objectRe = regexp.MustCompile(`QualityLevels\((\d+)\)/(?:Fragments\(([^=()/]+)=(\d+)\)(?:\.vtt)?|Init\(([^()/]+)\)\.mp4)$`)

// parseObject reads an object URL the smoothcast way: its track
// ("name@bitrate") and, for a fragment (or a wvtt fragment's cues as a
// WebVTT file, layout.WebVTTKey), its start time.
func parseObject(u *url.URL) (track string, time uint64, timed, ok bool) {
	m := objectRe.FindStringSubmatch(u.Path)
	if m == nil {
		return "", 0, false, false
	}
	if m[4] != "" {
		return m[4] + "@" + m[1], 0, false, true
	}
	t, err := strconv.ParseUint(m[3], 10, 64)
	return m[2] + "@" + m[1], t, err == nil, true
}

func newRef(u *url.URL, time uint64, timed bool) ref {
	k := *u
	k.RawQuery, k.ForceQuery, k.Fragment = "", false, ""
	return ref{url: u.String(), key: k.String(), time: time, timed: timed, vtt: strings.HasSuffix(u.Path, ".vtt")}
}

// result is the answer for one object.
type result struct {
	status int
	err    string // request failed, or the body is not what it should be
	bad    bool   // answered 200 with the wrong thing
	start  uint64 // a fragment's tfdt, fetched whole
	inited bool   // start is set
}

type job struct {
	r    ref
	init bool
}

// fetchAll requests every distinct object the listings reference.
func (c *checker) fetchAll(ctx context.Context, listings []*listing) (map[string]result, error) {
	var jobs []job
	seen := map[string]bool{}
	add := func(r ref, init bool) {
		if !seen[r.key] {
			seen[r.key] = true
			jobs = append(jobs, job{r, init})
		}
	}
	for _, l := range listings {
		for _, id := range l.order {
			t := l.tracks[id]
			if t.init != nil {
				add(*t.init, true)
			}
			for _, f := range t.frags {
				add(f, false)
			}
		}
	}
	c.rep.Objects = len(jobs)
	results := make(map[string]result, len(jobs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan job)
	for range min(c.opts.Concurrency, max(1, len(jobs))) {
		wg.Go(func() {
			for j := range next {
				res := c.fetch(ctx, j)
				if ctx.Err() != nil {
					continue // not answered: not counted
				}
				mu.Lock()
				results[j.r.key] = res
				mu.Unlock()
			}
		})
	}
	var err error
feed:
	for _, j := range jobs {
		select {
		case next <- j:
		case <-ctx.Done():
			err = fmt.Errorf("check: %d of %d objects requested: %w", len(results), len(jobs), ctx.Err())
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("check: %w", ctx.Err())
	}
	return results, err
}

// fetch requests one object and judges what comes back.
func (c *checker) fetch(ctx context.Context, j job) result {
	method := http.MethodGet
	if c.opts.Fetch == FetchHead {
		method = http.MethodHead
	}
	req, err := http.NewRequestWithContext(ctx, method, j.r.key, nil)
	if err != nil {
		return result{err: err.Error()}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return result{err: err.Error()}
	}
	defer resp.Body.Close()
	res := result{status: resp.StatusCode}
	if resp.StatusCode != http.StatusOK || method == http.MethodHead {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return res
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxObject+1))
	switch {
	case err != nil:
		res.err = fmt.Sprintf("reading: %v", err)
		return res
	case len(body) > maxObject:
		res.bad, res.err = true, fmt.Sprintf("larger than %d bytes", maxObject)
		return res
	}
	if j.init {
		if err := isInit(body); err != nil {
			res.bad, res.err = true, err.Error()
		}
		return res
	}
	if j.r.vtt {
		// Its cue times say nothing of the fragment's start in the
		// track's timescale: only what it is is checked.
		if !bytes.HasPrefix(bytes.TrimPrefix(body, []byte("\uFEFF")), []byte("WEBVTT")) {
			res.bad, res.err = true, "not a WebVTT file (no WEBVTT header)"
		}
		return res
	}
	info, err := fmp4.Inspect(body)
	if err != nil {
		res.bad, res.err = true, err.Error()
		return res
	}
	res.start, res.inited = info.Start, true
	return res
}

// isInit checks that b is an init segment: top-level boxes, an ftyp first
// and a moov among them.
func isInit(b []byte) error {
	var types []string
	for box, err := range mp4box.All(b) {
		if err != nil {
			return fmt.Errorf("not an init segment: %w", err)
		}
		types = append(types, box.Type)
	}
	if len(types) == 0 || types[0] != "ftyp" || !slices.Contains(types, "moov") {
		return fmt.Errorf("not an init segment: boxes %v (want ftyp, then moov)", types)
	}
	return nil
}

// tally fills the per-track counts and reports missing and bad objects.
func (c *checker) tally(listings []*listing, results map[string]result) {
	for _, l := range listings {
		for _, id := range l.order {
			t := l.tracks[id]
			tr := TrackReport{Format: l.format, Track: id, Listed: len(t.frags)}
			if t.init != nil {
				tr.Init = t.init.url
				if res, ok := results[t.init.key]; ok {
					tr.InitOK = res.status == http.StatusOK && !res.bad && res.err == ""
					if !tr.InitOK {
						c.problem("%s %s: init segment %s: %s", l.format, id, t.init.url, res.describe())
					}
				}
			} else if l.format != Smooth && !allVTT(t.frags) {
				c.problem("%s %s: no init segment listed", l.format, id)
			}
			for _, f := range t.frags {
				res, ok := results[f.key]
				if !ok {
					continue
				}
				tr.Checked++
				switch {
				case res.status != http.StatusOK || (!res.bad && res.err != ""):
					tr.Missing++
					c.problem("%s %s: fragment %s: %s", l.format, id, f.url, res.describe())
				case res.bad:
					tr.Bad++
					c.problem("%s %s: fragment %s: %s", l.format, id, f.url, res.describe())
				case res.inited && f.timed && res.start != f.time:
					tr.Bad++
					c.problem("%s %s: fragment %s starts at %d, listed at %d", l.format, id, f.url, res.start, f.time)
				}
			}
			c.rep.Tracks = append(c.rep.Tracks, tr)
		}
	}
	order := map[Format]int{Smooth: 0, HLS: 1, DASH: 2}
	sort.SliceStable(c.rep.Tracks, func(i, j int) bool {
		a, b := c.rep.Tracks[i], c.rep.Tracks[j]
		if a.Track != b.Track {
			return a.Track < b.Track
		}
		return order[a.Format] < order[b.Format]
	})
}

// allVTT reports whether frags are WebVTT files, which need no init
// segment (and there are some).
func allVTT(frags []ref) bool {
	return len(frags) > 0 && !slices.ContainsFunc(frags, func(r ref) bool { return !r.vtt })
}

func (r result) describe() string {
	switch {
	case r.status == 0:
		return r.err
	case r.status != http.StatusOK:
		return fmt.Sprintf("%d %s", r.status, http.StatusText(r.status))
	default:
		return r.err
	}
}

// compare checks that every format lists the same tracks and, per track,
// the same fragment start times, but for what a live edge explains.
func (c *checker) compare(listings []*listing) {
	var ok []*listing
	for _, l := range listings {
		if l.ok {
			ok = append(ok, l)
		}
	}
	if len(ok) < 2 {
		return
	}
	var ids []string
	has := map[string]bool{}
	for _, l := range ok {
		for _, id := range l.order {
			if !has[id] {
				has[id] = true
				ids = append(ids, id)
			}
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		var in []*listing
		var out []string
		for _, l := range ok {
			if l.tracks[id] != nil {
				in = append(in, l)
			} else {
				out = append(out, string(l.format))
			}
		}
		switch {
		case len(out) == 1 && out[0] == string(Smooth) && uncarried(id, in) != "":
			// fmp4.Describe gives AV1 and WebVTT no FourCC and the Smooth
			// manifest leaves them out: no Smooth client could play them.
			c.note("track %s is %s, which Smooth cannot carry: not in smooth", id, uncarried(id, in))
		case len(out) == 1 && out[0] == string(HLS) && imscBesideWebVTT(id, in, ok):
			// HLS's subtitle group holds one format, WebVTT when there is
			// some (hls.subtitleTracks).
			c.note("track %s is IMSC1 beside WebVTT tracks, which HLS lists alone: not in hls", id)
		case len(out) > 0:
			c.problem("track %s is not in %s", id, strings.Join(out, ", "))
		}
		c.compareTrack(id, in)
	}
}

// imscBesideWebVTT reports whether a format says track id is IMSC1
// (stpp) and the HLS listing among all has WebVTT files.
func imscBesideWebVTT(id string, in, all []*listing) bool {
	imsc := slices.ContainsFunc(in, func(l *listing) bool { return strings.HasPrefix(l.tracks[id].codecs, "stpp") })
	vtt := slices.ContainsFunc(all, func(l *listing) bool {
		return l.format == HLS && slices.ContainsFunc(l.order, func(t string) bool {
			return slices.ContainsFunc(l.tracks[t].frags, func(f ref) bool { return f.vtt })
		})
	})
	return imsc && vtt
}

// uncarried names what a format says track id is when Smooth cannot
// carry it (AV1, WebVTT), "" otherwise.
func uncarried(id string, in []*listing) string {
	for _, l := range in {
		switch c := l.tracks[id].codecs; {
		case strings.HasPrefix(c, "av01"):
			return "AV1"
		case c == "wvtt":
			return "WebVTT"
		}
	}
	return ""
}

func (c *checker) compareTrack(id string, in []*listing) {
	sets := make([]map[uint64]bool, len(in))
	first := make([]uint64, len(in))
	last := make([]uint64, len(in))
	union := map[uint64]bool{}
	var timedFormats []int
	for i, l := range in {
		sets[i] = map[uint64]bool{}
		timed := false
		for _, f := range l.tracks[id].frags {
			if !f.timed {
				continue
			}
			timed = true
			sets[i][f.time] = true
			union[f.time] = true
		}
		if !timed && len(l.tracks[id].frags) > 0 {
			c.note("%s %s: fragment URLs carry no time; its timeline is not compared", l.format, id)
			continue
		}
		timedFormats = append(timedFormats, i)
	}
	if len(timedFormats) < 2 {
		return
	}
	all := make([]uint64, 0, len(union))
	for t := range union {
		all = append(all, t)
	}
	slices.Sort(all)
	for _, i := range timedFormats {
		ts := make([]uint64, 0, len(sets[i]))
		for t := range sets[i] {
			ts = append(ts, t)
		}
		slices.Sort(ts)
		if len(ts) > 0 {
			first[i], last[i] = ts[0], ts[len(ts)-1]
		}
	}
	slack := c.opts.EdgeSlack
	for _, i := range timedFormats {
		l := in[i]
		var lacks []string
		for k, t := range all {
			if sets[i][t] {
				continue
			}
			if l.live && len(sets[i]) > 0 &&
				((t > last[i] && k >= len(all)-slack) || (t < first[i] && k < slack)) {
				continue // the live edge, or the DVR window sliding between fetches
			}
			var where []string
			for _, j := range timedFormats {
				if sets[j][t] {
					where = append(where, string(in[j].format))
				}
			}
			lacks = append(lacks, fmt.Sprintf("%d (in %s)", t, strings.Join(where, ", ")))
		}
		if len(lacks) > 0 {
			const show = 5
			more := ""
			if len(lacks) > show {
				more = fmt.Sprintf(" and %d more", len(lacks)-show)
				lacks = lacks[:show]
			}
			c.problem("%s %s: timeline lacks fragment %s%s", l.format, id, strings.Join(lacks, ", "), more)
		}
	}
}

// WriteText prints the report for a person: the manifests, a table of
// tracks, the problems and a verdict.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "check %s channel %s (fetch %s)\n", r.Base, r.Channel, r.Fetch)
	for _, m := range r.Manifests {
		state := "final"
		if m.Live {
			state = "live"
		}
		switch {
		case m.Status == 0:
			state = "failed: " + m.Err
		case m.Status != http.StatusOK || m.Err != "":
			state = fmt.Sprintf("%d %s", m.Status, m.Err)
		}
		fmt.Fprintf(&b, "  %-6s  %s  %s\n", m.Format, m.URL, state)
	}
	if len(r.Tracks) > 0 {
		fmt.Fprintf(&b, "\n  %-6s  %-24s %7s %8s %8s %5s  %s\n", "format", "track", "listed", "checked", "missing", "bad", "init")
		for _, t := range r.Tracks {
			init := "-"
			switch {
			case t.Init != "" && t.InitOK:
				init = "ok"
			case t.Init != "":
				init = "MISSING/BAD"
			case t.Format != Smooth:
				init = "none listed"
			}
			fmt.Fprintf(&b, "  %-6s  %-24s %7d %8d %8d %5d  %s\n", t.Format, t.Track, t.Listed, t.Checked, t.Missing, t.Bad, init)
		}
		fmt.Fprintf(&b, "  %d distinct objects requested\n", r.Objects)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\nnote: %s", n)
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n")
	}
	if len(r.Problems) > 0 {
		fmt.Fprintf(&b, "\n%d problem(s):\n", len(r.Problems))
		const show = 50
		for i, p := range r.Problems {
			if i == show {
				fmt.Fprintf(&b, "  ... and %d more\n", len(r.Problems)-show)
				break
			}
			fmt.Fprintf(&b, "  %s\n", p)
		}
		b.WriteString("\nFAIL\n")
	} else {
		b.WriteString("\nOK\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

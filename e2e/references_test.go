package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/manifest/hls"
	"github.com/smoothcast/smoothcast/shared/manifest/smooth"
)

// referenceWatch polls a live channel's Smooth manifest, HLS media
// playlists and MPD while it plays and fetches, at once, every fragment
// each newly lists: a manifest must never point at a fragment that is not
// yet whole in the store. Stop it to get the figures.
type referenceWatch struct {
	base   string
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	checked map[string]bool
	bad     []string
	polls   int
	listed  map[string]int // the most references one poll found, per manifest kind
}

// watchReferences starts a referenceWatch of the channel at base (the
// edge's /live/{ch}.isml/), polling every 250 ms.
func watchReferences(base string) *referenceWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &referenceWatch{base: base, cancel: cancel, done: make(chan struct{}), checked: map[string]bool{}, listed: map[string]int{}}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			w.poll(ctx)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// stop ends the watch and fails t for every bad reference seen.
func (w *referenceWatch) stop(t *testing.T) {
	t.Helper()
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("reference watch: %d polls, %d distinct fragments fetched the moment they were listed (at most %d by Smooth, %d by HLS, %d by DASH in one poll)",
		w.polls, len(w.checked), w.listed["smooth"], w.listed["hls"], w.listed["dash"])
	for _, kind := range []string{"smooth", "hls", "dash"} {
		if w.listed[kind] == 0 {
			t.Errorf("reference watch: the %s manifest never listed a fragment", kind)
		}
	}
	for _, b := range w.bad {
		t.Error("listed before it was whole: " + b)
	}
}

func (w *referenceWatch) poll(ctx context.Context) {
	// refs are relative to base, as each manifest names them; a manifest
	// that does not answer or parse lists none this time.
	refs := smoothReferences(ctx, w.base)
	nSmooth := len(refs)
	refs = append(refs, hlsReferences(ctx, w.base)...)
	nHLS := len(refs) - nSmooth
	if more, ok := fetchParsed(ctx, w.base+"manifest.mpd", dashReferences); ok {
		refs = append(refs, more...)
	}
	nDASH := len(refs) - nSmooth - nHLS
	for _, ref := range refs {
		w.mu.Lock()
		seen := w.checked[ref]
		w.checked[ref] = true
		w.mu.Unlock()
		if seen {
			continue
		}
		if err := fetchFragment(ctx, w.base+ref); err != nil && ctx.Err() == nil {
			w.mu.Lock()
			w.bad = append(w.bad, ref+": "+err.Error())
			w.mu.Unlock()
		}
	}
	w.mu.Lock()
	w.polls++
	w.listed["smooth"] = max(w.listed["smooth"], nSmooth)
	w.listed["hls"] = max(w.listed["hls"], nHLS)
	w.listed["dash"] = max(w.listed["dash"], nDASH)
	w.mu.Unlock()
}

// smoothReferences are the fragment URLs of every quality level the
// Smooth manifest at base lists.
func smoothReferences(ctx context.Context, base string) []string {
	m, ok := fetchParsed(ctx, base+"Manifest", smooth.Parse)
	if !ok {
		return nil
	}
	var refs []string
	for _, si := range m.Streams {
		frags, err := si.Fragments()
		if err != nil {
			continue
		}
		for _, ql := range si.Levels {
			for _, f := range frags {
				refs = append(refs, si.FragmentURL(ql.Bitrate, f.Start))
			}
		}
	}
	return refs
}

// hlsReferences are the segment URLs (relative to base) of every media
// playlist the multivariant playlist at base names.
func hlsReferences(ctx context.Context, base string) []string {
	master, ok := fetchParsed(ctx, base+"master.m3u8", hls.Parse)
	if !ok {
		return nil
	}
	var refs []string
	for _, uri := range master.MediaURIs() {
		dir := uri[:strings.LastIndex(uri, "/")+1]
		if pl, ok := fetchParsed(ctx, base+uri, hls.Parse); ok {
			for _, s := range pl.Segments {
				if s.Gap {
					continue // EXT-X-GAP: a hole, no object to fetch
				}
				refs = append(refs, dir+strings.TrimSuffix(s.URI, "?.m4s"))
			}
		}
	}
	return refs
}

func fetch(ctx context.Context, url string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// fetchParsed is what parse makes of the body of url, if it answers 200
// and parses.
func fetchParsed[T any](ctx context.Context, url string, parse func([]byte) (T, error)) (T, bool) {
	var v T
	code, body, err := fetch(ctx, url)
	if err != nil || code != http.StatusOK {
		return v, false
	}
	v, err = parse(body)
	return v, err == nil
}

// fetchFragment fetches a fragment and checks that it is whole.
func fetchFragment(ctx context.Context, url string) error {
	code, body, err := fetch(ctx, url)
	switch {
	case err != nil:
		return err
	case code != http.StatusOK:
		return fmt.Errorf("status %d", code)
	}
	_, err = fmp4.Inspect(body)
	return err
}

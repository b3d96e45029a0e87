package e2e

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/shared/fmp4"
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
	var refs []string // relative to base, as each manifest names them
	if m, ok := fetchXML[smoothManifest](ctx, w.base+"Manifest"); ok {
		for _, si := range m.Streams {
			for _, ql := range si.Levels {
				for _, tm := range chunkTimes(si) {
					refs = append(refs, fragmentURL(si, ql.Bitrate, tm))
				}
			}
		}
	}
	nSmooth := len(refs)
	if master, ok := fetchText(ctx, w.base+"master.m3u8"); ok {
		for line := range strings.Lines(master) {
			pl := strings.TrimSpace(line)
			if pl == "" || strings.HasPrefix(pl, "#") {
				continue
			}
			dir := pl[:strings.LastIndex(pl, "/")+1]
			text, ok := fetchText(ctx, w.base+pl)
			if !ok {
				continue
			}
			for seg := range strings.Lines(text) {
				if seg = strings.TrimSpace(seg); seg != "" && !strings.HasPrefix(seg, "#") {
					refs = append(refs, dir+strings.TrimSuffix(seg, "?.m4s"))
				}
			}
		}
	}
	nHLS := len(refs) - nSmooth
	if mpd, ok := fetchXML[dashMPD](ctx, w.base+"manifest.mpd"); ok {
		refs = append(refs, mpd.references()...)
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

// dashMPD is as much of an MPD as its segment references need.
type dashMPD struct {
	Periods []struct {
		Sets []struct {
			Template *dashTemplate `xml:"SegmentTemplate"`
			Reps     []struct {
				ID       string        `xml:"id,attr"`
				Template *dashTemplate `xml:"SegmentTemplate"`
			} `xml:"Representation"`
		} `xml:"AdaptationSet"`
	} `xml:"Period"`
}

type dashTemplate struct {
	Media    string `xml:"media,attr"`
	Timeline []struct {
		T *uint64 `xml:"t,attr"`
		D uint64  `xml:"d,attr"`
		R int     `xml:"r,attr"`
	} `xml:"SegmentTimeline>S"`
}

// references expands every Representation's SegmentTimeline into media
// URLs.
func (m dashMPD) references() []string {
	var out []string
	for _, p := range m.Periods {
		for _, as := range p.Sets {
			for _, rep := range as.Reps {
				tpl := rep.Template
				if tpl == nil {
					tpl = as.Template
				}
				if tpl == nil {
					continue
				}
				var at uint64
				for _, s := range tpl.Timeline {
					if s.T != nil {
						at = *s.T
					}
					for range s.R + 1 {
						out = append(out, strings.NewReplacer("$RepresentationID$", rep.ID, "$Time$", strconv.FormatUint(at, 10)).Replace(tpl.Media))
						at += s.D
					}
				}
			}
		}
	}
	return out
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

func fetchText(ctx context.Context, url string) (string, bool) {
	code, body, err := fetch(ctx, url)
	return string(body), err == nil && code == http.StatusOK
}

func fetchXML[T any](ctx context.Context, url string) (T, bool) {
	var v T
	code, body, err := fetch(ctx, url)
	if err != nil || code != http.StatusOK {
		return v, false
	}
	return v, xml.Unmarshal(body, &v) == nil
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

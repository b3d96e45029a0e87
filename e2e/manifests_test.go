package e2e

// Reading the channel's manifests as a client does, with each format's
// one parser: smooth.Parse, hls.Parse and dash.Parse (dash-mpd).

import (
	"iter"
	"testing"

	"github.com/smoothcast/smoothcast/shared/manifest/dash"
	"github.com/smoothcast/smoothcast/shared/manifest/hls"
	"github.com/smoothcast/smoothcast/shared/manifest/smooth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// getSmooth fetches and parses the Smooth manifest at url.
func getSmooth(t *testing.T, url string) *smooth.Manifest {
	t.Helper()
	resp, body := get(t, url)
	m, err := smooth.Parse(body)
	if resp.StatusCode != 200 || err != nil {
		t.Fatalf("%s: %d, %v\n%s", url, resp.StatusCode, err, body)
	}
	return m
}

// fragments expands a StreamIndex's c elements; one that does not expand
// fails t.
func fragments(t *testing.T, si *smooth.StreamIndex) []timeline.Fragment {
	t.Helper()
	frags, err := si.Fragments()
	if err != nil {
		t.Errorf("Smooth StreamIndex %s: %v", si.Name, err)
	}
	return frags
}

// fragmentStarts are the start times of the fragments a StreamIndex
// lists.
func fragmentStarts(t *testing.T, si *smooth.StreamIndex) []uint64 {
	t.Helper()
	return starts(fragments(t, si))
}

func starts(frags []timeline.Fragment) []uint64 {
	out := make([]uint64, len(frags))
	for i, f := range frags {
		out[i] = f.Start
	}
	return out
}

// mediaPlaylists yields the URI and the parsed playlist of every media
// playlist the multivariant playlist names (its variants and its
// renditions); one that does not parse fails t.
func mediaPlaylists(t *testing.T, base string) iter.Seq2[string, *hls.Playlist] {
	return func(yield func(string, *hls.Playlist) bool) {
		_, b := get(t, base+"master.m3u8")
		master, err := hls.Parse(b)
		if err != nil {
			t.Errorf("master.m3u8: %v\n%s", err, b)
			return
		}
		for _, uri := range master.MediaURIs() {
			_, b := get(t, base+uri)
			pl, err := hls.Parse(b)
			if err != nil {
				t.Errorf("%s: %v\n%s", uri, err, b)
				continue
			}
			if !yield(uri, pl) {
				return
			}
		}
	}
}

// discontinuitiesOf counts a media playlist's EXT-X-DISCONTINUITY tags.
func discontinuitiesOf(pl *hls.Playlist) int {
	n := 0
	for _, s := range pl.Segments {
		if s.Discontinuity {
			n++
		}
	}
	return n
}

// dashReferences are the media segment URLs (relative to the MPD) of
// every Representation of an MPD, expanded from the SegmentTemplate in
// force for each.
func dashReferences(b []byte) ([]string, error) {
	m, err := dash.Parse(b)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, tmpl := range dash.Representations(m) {
		if tmpl == nil {
			continue
		}
		segs, err := tmpl.Segments()
		if err != nil {
			return nil, err
		}
		for _, s := range segs {
			u, err := tmpl.MediaURL(s)
			if err != nil {
				return nil, err
			}
			out = append(out, u)
		}
	}
	return out, nil
}

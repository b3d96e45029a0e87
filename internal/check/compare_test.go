package check

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// listed builds a listing of one track with fragments at times (in 10 MHz
// ticks of whole seconds).
func listed(f Format, live bool, seconds ...uint64) *listing {
	l := newListing(f)
	l.ok, l.live = true, live
	tr := l.track("video@300000")
	for _, s := range seconds {
		tr.frags = append(tr.frags, ref{time: s * 10_000_000, timed: true})
	}
	return l
}

// withCodecs is l with its track's codec set, as DASH says it.
func withCodecs(l *listing, codecs string) *listing {
	l.tracks["video@300000"].codecs = codecs
	return l
}

// withWebVTT is l with a WebVTT text track too, as HLS lists one (WebVTT
// files) or DASH (codecs wvtt).
func withWebVTT(l *listing) *listing {
	t := l.track("text_eng@1000")
	t.frags = []ref{{time: 0, timed: true, vtt: l.format == HLS}}
	if l.format == DASH {
		t.codecs = "wvtt"
	}
	return l
}

func TestCompare(t *testing.T) {
	for _, tc := range []struct {
		name     string
		slack    int
		listings []*listing
		want     []string // substrings, one problem each
	}{
		{
			name:  "live: Smooth holds back the newest",
			slack: 2,
			listings: []*listing{
				listed(Smooth, true, 0, 1, 2),
				listed(HLS, true, 0, 1, 2, 3),
				listed(DASH, true, 0, 1, 2, 3),
			},
		},
		{
			name:  "live: two newer between fetches, DVR window slid",
			slack: 2,
			listings: []*listing{
				listed(Smooth, true, 0, 1, 2),
				listed(HLS, true, 1, 2, 3),
				listed(DASH, true, 1, 2, 3, 4),
			},
		},
		{
			name:  "live: three behind is too many",
			slack: 2,
			listings: []*listing{
				listed(Smooth, true, 0, 1),
				listed(HLS, true, 0, 1, 2, 3, 4),
				listed(DASH, true, 0, 1, 2, 3, 4),
			},
			want: []string{"smooth video@300000: timeline lacks fragment 20000000 (in hls, dash)"},
		},
		{
			name:  "live: no slack",
			slack: 0,
			listings: []*listing{
				listed(Smooth, true, 0, 1, 2),
				listed(HLS, true, 0, 1, 2, 3),
			},
			want: []string{"smooth video@300000: timeline lacks fragment 30000000 (in hls)"},
		},
		{
			name:  "final manifests must agree exactly",
			slack: 2,
			listings: []*listing{
				listed(Smooth, false, 0, 1, 2),
				listed(HLS, false, 0, 1, 2, 3),
				listed(DASH, false, 0, 1, 2, 3),
			},
			want: []string{"smooth video@300000: timeline lacks fragment 30000000 (in hls, dash)"},
		},
		{
			name:  "live: a hole in the middle",
			slack: 2,
			listings: []*listing{
				listed(Smooth, true, 0, 1, 2, 3),
				listed(HLS, true, 0, 2, 3),
				listed(DASH, true, 0, 1, 2, 3),
			},
			want: []string{"hls video@300000: timeline lacks fragment 10000000 (in smooth, dash)"},
		},
		{
			name:  "a track missing from a format",
			slack: 2,
			listings: []*listing{
				listed(Smooth, false, 0, 1),
				listed(HLS, false, 0, 1),
				func() *listing { l := newListing(DASH); l.ok = true; return l }(),
			},
			want: []string{"track video@300000 is not in dash"},
		},
		{
			name:  "an AV1 track is not in Smooth, which cannot carry it",
			slack: 2,
			listings: []*listing{
				func() *listing { l := newListing(Smooth); l.ok = true; return l }(),
				listed(HLS, false, 0, 1),
				withCodecs(listed(DASH, false, 0, 1), "av01.0.04M.08"),
			},
		},
		{
			name:  "a WebVTT track is not in Smooth, which cannot carry it",
			slack: 2,
			listings: []*listing{
				func() *listing { l := newListing(Smooth); l.ok = true; return l }(),
				listed(HLS, false, 0, 1),
				withCodecs(listed(DASH, false, 0, 1), "wvtt"),
			},
		},
		{
			name:  "an IMSC1 track beside WebVTT ones is not in HLS, which lists one format",
			slack: 2,
			listings: []*listing{
				listed(Smooth, false, 0, 1),
				withWebVTT(func() *listing { l := newListing(HLS); l.ok = true; return l }()),
				withWebVTT(withCodecs(listed(DASH, false, 0, 1), "stpp.ttml.im1t")),
			},
		},
		{
			name:  "an IMSC1 track missing from HLS without WebVTT beside it is a problem",
			slack: 2,
			listings: []*listing{
				listed(Smooth, false, 0, 1),
				func() *listing { l := newListing(HLS); l.ok = true; return l }(),
				withCodecs(listed(DASH, false, 0, 1), "stpp.ttml.im1t"),
			},
			want: []string{"track video@300000 is not in hls"},
		},
		{
			name:  "an HEVC track missing from Smooth is a problem",
			slack: 2,
			listings: []*listing{
				func() *listing { l := newListing(Smooth); l.ok = true; return l }(),
				listed(HLS, false, 0, 1),
				withCodecs(listed(DASH, false, 0, 1), "hvc1.1.6.L93.90"),
			},
			want: []string{"track video@300000 is not in smooth"},
		},
		{
			name:  "a format that failed is not compared",
			slack: 2,
			listings: []*listing{
				listed(Smooth, false, 0, 1),
				listed(HLS, false, 0, 1),
				newListing(DASH),
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &checker{opts: Options{EdgeSlack: tc.slack}, rep: &Report{}}
			c.compare(tc.listings)
			if len(c.rep.Problems) != len(tc.want) {
				t.Fatalf("problems %q, want %d", c.rep.Problems, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(c.rep.Problems[i], w) {
					t.Errorf("problem %q, want %q", c.rep.Problems[i], w)
				}
			}
		})
	}
}

// Object URLs name their track and time; the manifests' own timelines,
// templates and attribute lists are the parsers' (smooth, hls and dash
// packages) and tested there.
func TestParseObject(t *testing.T) {
	for _, tc := range []struct {
		url, id string
		time    uint64
		vtt     bool
	}{
		{"http://h/live/c.isml/QualityLevels(300000)/Fragments(video=20000000)?.m4s", "video@300000", 20000000, false},
		{"http://h/live/c.isml/QualityLevels(1000)/Fragments(text_eng=40000000).vtt", "text_eng@1000", 40000000, true},
	} {
		u, _ := url.Parse(tc.url)
		if id, tm, timed, ok := parseObject(u); id != tc.id || tm != tc.time || !timed || !ok {
			t.Errorf("parseObject(%s) = %q %d %v %v", tc.url, id, tm, timed, ok)
		}
		if r := newRef(u, tc.time, true); r.vtt != tc.vtt {
			t.Errorf("%s: WebVTT %v, want %v", tc.url, r.vtt, tc.vtt)
		}
	}
}

// An HLS subtitle playlist of WebVTT files lists no init segment, and
// needs none; a WebVTT file must be one. A playlist of fragments without
// an init segment is still a problem.
func TestWebVTTSegments(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "=0).vtt"):
			_, _ = io.WriteString(w, "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n00:00:00.000 --> 00:00:01.000\nHello\n")
		default:
			_, _ = io.WriteString(w, "<html>not a cue</html>")
		}
	}))
	defer srv.Close()
	track := func(paths ...string) *listing {
		l := newListing(HLS)
		l.ok = true
		tr := l.track("text_eng@1000")
		for _, p := range paths {
			u, _ := url.Parse(srv.URL + p)
			_, tm, timed, _ := parseObject(u)
			tr.frags = append(tr.frags, newRef(u, tm, timed))
		}
		return l
	}
	for _, tc := range []struct {
		name string
		l    *listing
		want []string
	}{
		{"WebVTT files", track("/live/c.isml/QualityLevels(1000)/Fragments(text_eng=0).vtt"), nil},
		{"not a WebVTT file", track("/live/c.isml/QualityLevels(1000)/Fragments(text_eng=10000000).vtt"), []string{"not a WebVTT file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &checker{client: srv.Client(), opts: Options{Concurrency: 1}, rep: &Report{}}
			results, err := c.fetchAll(t.Context(), []*listing{tc.l})
			if err != nil {
				t.Fatal(err)
			}
			c.tally([]*listing{tc.l}, results)
			if len(c.rep.Problems) != len(tc.want) {
				t.Fatalf("problems %q, want %q", c.rep.Problems, tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(c.rep.Problems[i], w) {
					t.Errorf("problem %q, want %q", c.rep.Problems[i], w)
				}
			}
		})
	}
	c := &checker{rep: &Report{}}
	l := newListing(HLS)
	l.track("video@1").frags = []ref{{url: "x", key: "x"}}
	c.tally([]*listing{l}, nil)
	if len(c.rep.Problems) != 1 || !strings.Contains(c.rep.Problems[0], "no init segment listed") {
		t.Errorf("problems %q, want one: no init segment listed", c.rep.Problems)
	}
}

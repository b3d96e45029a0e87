package upload

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
)

// ffmpegMPD is an MPD as ffmpeg's dash muxer writes it for two video
// renditions and an audio one (the audio's template on its AdaptationSet).
const ffmpegMPD = `<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" profiles="urn:mpeg:dash:profile:isoff-live:2011">
 <Period id="0" start="PT0.0S">
  <AdaptationSet id="0" contentType="video">
   <Representation id="0" bandwidth="800000"><SegmentTemplate timescale="10000000" initialization="init-stream$RepresentationID$.m4s" media="chunk-stream$RepresentationID$-$Number%05d$.m4s" startNumber="1"/></Representation>
   <Representation id="1" bandwidth="300000"><SegmentTemplate timescale="10000000" initialization="init-stream$RepresentationID$.m4s" media="chunk-stream$RepresentationID$-$Number%05d$.m4s" startNumber="1"/></Representation>
  </AdaptationSet>
  <AdaptationSet id="1" contentType="audio">
   <SegmentTemplate timescale="10000000" initialization="a-$RepresentationID$.mp4" media="a-$RepresentationID$-$Time$.m4s"/>
   <Representation id="2" bandwidth="96000"/>
  </AdaptationSet>
 </Period>
</MPD>`

// textMPD is an MPD with a video and two text AdaptationSets, WebVTT and
// IMSC1 in fMP4, as a packager that writes CMAF text tracks uploads it.
const textMPD = `<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" profiles="urn:mpeg:dash:profile:isoff-live:2011">
 <Period id="0" start="PT0.0S">
  <AdaptationSet id="0" contentType="video">
   <Representation id="0" bandwidth="800000"><SegmentTemplate timescale="10000000" initialization="init-stream$RepresentationID$.m4s" media="chunk-stream$RepresentationID$-$Number%05d$.m4s" startNumber="1"/></Representation>
  </AdaptationSet>
  <AdaptationSet id="1" contentType="text" mimeType="application/mp4" lang="en">
   <Role schemeIdUri="urn:mpeg:dash:role:2011" value="subtitle"/>
   <SegmentTemplate timescale="1000" initialization="text-$RepresentationID$.mp4" media="text-$RepresentationID$-$Number%06d$.m4s"/>
   <Representation id="eng" codecs="wvtt" bandwidth="1000"/>
  </AdaptationSet>
  <AdaptationSet id="2" contentType="text" mimeType="application/mp4" lang="fr">
   <SegmentTemplate timescale="1000" initialization="text-$RepresentationID$.mp4" media="text-$RepresentationID$-$Number%06d$.m4s"/>
   <Representation id="fra" codecs="stpp.ttml.im1t" bandwidth="2000"/>
  </AdaptationSet>
 </Period>
</MPD>`

// The rules that place a media segment with its init segment, from what
// the encoder's manifests said, or from names alone before they say
// anything.
func TestPlacement(t *testing.T) {
	for _, tc := range []struct {
		name       string
		renditions []string
		learn      func(h *hints) error
		file, want string
	}{
		{"an MPD's template, per Representation", []string{"init-stream0.m4s", "init-stream1.m4s"},
			func(h *hints) error { _, err := h.learnMPD([]byte(ffmpegMPD)); return err }, "chunk-stream1-00007.m4s", "init-stream1.m4s"},
		{"an MPD's template from the AdaptationSet", []string{"init-stream0.m4s", "a-2.mp4"},
			func(h *hints) error { _, err := h.learnMPD([]byte(ffmpegMPD)); return err }, "a-2-123456.m4s", "a-2.mp4"},
		{"an HLS playlist lists the segment", []string{"init_0.mp4", "init_1.mp4"},
			func(h *hints) error {
				_, err := h.learnPlaylist("v.m3u8", []byte("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init_1.mp4\"\n#EXTINF:2,\nseg-a.m4s?x=1\n"))
				return err
			}, "seg-a.m4s", "init_1.mp4"},
		{"each listed segment with its own EXT-X-MAP", []string{"old.mp4", "new.mp4"},
			func(h *hints) error {
				_, err := h.learnPlaylist("v.m3u8", []byte("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"old.mp4\"\n#EXTINF:2,\na.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"new.mp4\"\n#EXTINF:2,\nb.m4s\n"))
				return err
			}, "a.m4s", "old.mp4"},
		{"a segment to come, named after its playlist (ffmpeg's hls muxer)", []string{"init_0.mp4", "init_1.mp4"},
			func(h *hints) error {
				_, err := h.learnPlaylist("stream_1.m3u8", []byte("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init_1.mp4\"\n"))
				return err
			}, "stream_17.m4s", "init_1.mp4"},
		{"the same name but for init/chunk and the number (ffmpeg's dash muxer)", []string{"init-stream0.m4s", "init-stream1.m4s"},
			nil, "chunk-stream1-00002.m4s", "init-stream1.m4s"},
		{"the only rendition there is", []string{"video.mp4"}, nil, "whatever-12.m4s", "video.mp4"},
		{"nothing tells yet", []string{"a.mp4", "b.mp4"}, nil, "seg-3.m4s", ""},
		{"an MPD's text AdaptationSet (DASH-IF ingest: wvtt or stpp in fMP4)", []string{"init-stream0.m4s", "text-eng.mp4"},
			func(h *hints) error { _, err := h.learnMPD([]byte(textMPD)); return err }, "text-eng-000004.m4s", "text-eng.mp4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h hints
			if tc.learn != nil {
				if err := tc.learn(&h); err != nil {
					t.Fatal(err)
				}
			}
			if got := h.place(tc.file, slices.Values(tc.renditions)); got != tc.want {
				t.Errorf("place(%s) = %q, want %q", tc.file, got, tc.want)
			}
		})
	}
}

// What ends a rendition: EXT-X-ENDLIST ends its playlist's, a static MPD
// every one; a multivariant playlist and a dynamic MPD end nothing.
func TestWhatEndsRenditions(t *testing.T) {
	var h hints
	for _, tc := range []struct {
		name  string
		learn func() (learned, error)
		want  learned
	}{
		{"ENDLIST", func() (learned, error) {
			return h.learnPlaylist("v.m3u8", []byte("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"i.mp4\"\n#EXTINF:2,\na.m4s\n#EXT-X-ENDLIST\n"))
		}, learned{ended: []string{"i.mp4"}}},
		{"a multivariant playlist", func() (learned, error) {
			return h.learnPlaylist("master.m3u8", []byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n"))
		}, learned{}},
		{"a dynamic MPD", func() (learned, error) { return h.learnMPD([]byte(ffmpegMPD)) }, learned{}},
		{"a static MPD", func() (learned, error) {
			return h.learnMPD([]byte(`<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static"><Period/></MPD>`))
		}, learned{all: true}},
	} {
		got, err := tc.learn()
		if err != nil || got.all != tc.want.all || !slices.Equal(got.ended, tc.want.ended) {
			t.Errorf("%s: %+v %v, want %+v", tc.name, got, err, tc.want)
		}
	}
	if _, err := h.learnPlaylist("x.m3u8", []byte("#EXTM3U\n#EXTINF:2,\n")); !errors.Is(err, ErrMalformed) {
		t.Errorf("a playlist that ends inside a segment: %v, want ErrMalformed", err)
	}
}

// FuzzHints: whatever playlists and MPDs say, learning from them never
// panics, what they hold stays bounded, and a segment is placed only with
// an init segment there is.
func FuzzHints(f *testing.F) {
	f.Add("stream_0.m3u8", []byte("#EXTM3U\n#EXT-X-MAP:URI=\"init_0.mp4\"\n#EXTINF:2,\nstream_00.m4s\n#EXT-X-ENDLIST\n"), []byte(ffmpegMPD), "stream_01.m4s")
	f.Add("x.m3u8", []byte("#EXTM3U\n#EXT-X-MAP:URI=\"$$.mp4\"\n"), []byte(`<MPD><Period><AdaptationSet><Representation id="(."><SegmentTemplate initialization="$RepresentationID$[" media="$Number%099d$"/></Representation></AdaptationSet></Period></MPD>`), "x1.m4s")
	f.Add("out_0_vtt.m3u8", []byte("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:2,\nout_07.vtt\n"), []byte(ffmpegMPD), "out_07.vtt")
	f.Add("master.m3u8", []byte(ffmpegMaster), []byte(textMPD), "out_00.vtt")
	f.Fuzz(func(t *testing.T, file string, pl, mpd []byte, segment string) {
		var h hints
		_, _ = h.learnPlaylist(file, pl)
		_, _ = h.learnPlaylist("master.m3u8", []byte(ffmpegMaster))
		_, _ = h.learnMPD(mpd)
		if len(h.exact) > maxExactSegments || len(h.rules) > maxRules || len(h.stems) > maxStems ||
			len(h.vttSegs) > maxExactSegments || len(h.vtt) > maxStems || len(h.subs) > maxStems || len(h.captions) > maxStems {
			t.Fatalf("%d segment names, %d rules, %d playlists, %d WebVTT segments and %d playlists, %d subtitle renditions, %d captioned variants",
				len(h.exact), len(h.rules), len(h.stems), len(h.vttSegs), len(h.vtt), len(h.subs), len(h.captions))
		}
		for key := range h.vtt {
			_, _ = h.avOf(key)
			_ = h.subtitleTrack(key)
		}
		inits := map[string]bool{"init_0.mp4": true, "init-stream0.m4s": true}
		for name := range h.stems {
			inits[h.stems[name]] = true
		}
		got := h.place(segment, maps.Keys(inits))
		if got != "" && !inits[got] && h.exact[segment] != got {
			t.Fatalf("placed %q with %q, which is no rendition", segment, got)
		}
	})
}

// Playlists under ever new names (an encoder's, or a stranger's) leave
// a bounded number of hints: the newest.
func TestHintsOfPlaylistsUnderNewNamesAreBounded(t *testing.T) {
	var h hints
	for i := range 10 * maxStems {
		pl := fmt.Sprintf("#EXTM3U\n#EXT-X-MAP:URI=\"init_%d.mp4\"\n#EXTINF:2,\nstream_%d_1.m4s\n", i, i)
		if _, err := h.learnPlaylist(fmt.Sprintf("stream_%d_.m3u8", i), []byte(pl)); err != nil {
			t.Fatal(err)
		}
		if len(h.stems) > maxStems {
			t.Fatalf("%d playlists remembered after %d, want at most %d", len(h.stems), i+1, maxStems)
		}
	}
	if got := h.place(fmt.Sprintf("stream_%d_2.m4s", 10*maxStems-1), func(func(string) bool) {}); got != fmt.Sprintf("init_%d.mp4", 10*maxStems-1) {
		t.Errorf("the newest playlist's segment placed with %q", got)
	}
}

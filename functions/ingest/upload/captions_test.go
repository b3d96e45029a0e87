package upload

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// videoCaptions are the caption services the video tracks of an init
// segment declare.
func videoCaptions(t *testing.T, init []byte) []timeline.Captions {
	t.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(init))
	if err != nil {
		t.Fatal(err)
	}
	var out []timeline.Captions
	for _, trak := range f.Init.Moov.Traks {
		if trak.Mdia.Hdlr.HandlerType == "vide" {
			out = append(out, fmp4.DeclaredCaptions(trak))
		}
	}
	return out
}

func ccMaster(variant string) []byte {
	return []byte(fmt.Sprintf(`#EXTM3U
#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="English",LANGUAGE="eng",INSTREAM-ID="CC1"
#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="French",LANGUAGE="fra",INSTREAM-ID="SERVICE2"
#EXT-X-STREAM-INF:BANDWIDTH=900000,CLOSED-CAPTIONS="cc"
%s
`, variant))
}

// A multivariant playlist's CLOSED-CAPTIONS, uploaded before the
// rendition starts, is declared in its video's init segment (kind
// boxes), for an fMP4 rendition (its init named by its playlist's
// EXT-X-MAP) and a TS one (the packager's init segment).
func TestClosedCaptionsAreDeclaredInTheVideosInitSegment(t *testing.T) {
	want := timeline.Captions("CC1=eng;SERVICE2=fra")
	t.Run("fMP4", func(t *testing.T) {
		h := newHarness(t, Config{})
		m := renditions(t, 1)[0]
		for _, u := range []struct {
			file string
			body []byte
		}{
			{"master.m3u8", ccMaster("stream_0.m3u8")},
			{"stream_0.m3u8", []byte("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init_0.mp4\"\n")},
			{"init_0.mp4", m.init},
			{"stream_00.m4s", m.segments[0]},
		} {
			if a := h.put("c", u.file, u.body); a.err != nil {
				t.Fatalf("%s: %v", u.file, a.err)
			}
		}
		s := h.sessions.sessions()[0]
		s.mu.Lock()
		init := s.initBody
		s.mu.Unlock()
		if got := videoCaptions(t, init); len(got) != 1 || got[0] != want {
			t.Errorf("video captions %v, want %s", got, want)
		}
	})
	t.Run("MPEG-TS", func(t *testing.T) {
		h := newHarness(t, Config{})
		segs := tsSegments(t)
		if a := h.put("c", "master.m3u8", ccMaster("index.m3u8")); a.err != nil {
			t.Fatal(a.err)
		}
		if a := h.put("c", "index.m3u8", tsPlaylist("index.m3u8", 0)); a.err != nil {
			t.Fatal(a.err)
		}
		if a := h.put("c", tsName(0), segs[0]); a.err != nil {
			t.Fatal(a.err)
		}
		s := h.sessions.sessions()[0]
		waitFor(t, "the init segment fed", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.init })
		s.mu.Lock()
		init := s.initBody
		s.mu.Unlock()
		if got := videoCaptions(t, init); len(got) != 1 || got[0] != want {
			t.Errorf("video captions %v, want %s", got, want)
		}
	})
	t.Run("no CLOSED-CAPTIONS: the init segment as uploaded", func(t *testing.T) {
		m := renditions(t, 1)[0]
		got, err := withCaptions(m.init, "")
		if err != nil || !bytes.Equal(got, m.init) {
			t.Errorf("changed (%v)", err)
		}
	})
}

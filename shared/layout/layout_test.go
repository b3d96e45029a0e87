package layout

import (
	"errors"
	"strings"
	"testing"
)

// key rebuilds the key of a parsed object with the constructors above.
func key(o Object) string {
	switch o.Kind {
	case KindFragment:
		return FragmentKey(o.Channel, o.Track, o.Start)
	case KindEnd:
		return EndKey(o.Channel, o.Track, o.Start)
	case KindFragmentInfo:
		return FragmentInfoPath(o.Channel, o.Track, o.Start)
	case KindInit:
		return InitKeyOf(o.Channel, o.Track, o.InitVersion)
	case KindSmoothManifest:
		return SmoothManifestPath(o.Channel)
	case KindMasterPlaylist:
		return MasterPlaylistPath(o.Channel)
	case KindMediaPlaylist:
		return MediaPlaylistPath(o.Channel, o.Track)
	case KindDASHManifest:
		return DASHManifestPath(o.Channel)
	}
	return ""
}

func TestParse(t *testing.T) {
	v := TrackID{Name: "video", Bitrate: 800000}
	for _, tc := range []struct {
		key  string
		want Object // zero Kind: not in the layout
	}{
		{"live/ch1.isml/QualityLevels(800000)/Fragments(video=20000000)", Object{Kind: KindFragment, Channel: "ch1", Track: v, Start: 20000000}},
		{"/live/ch1.isml/QualityLevels(800000)/Fragments(video=0)", Object{Kind: KindFragment, Channel: "ch1", Track: v}},
		{"live/ch1.isml/QualityLevels(800000)/Fragments(video=18446744073709551615)", Object{Kind: KindFragment, Channel: "ch1", Track: v, Start: 1<<64 - 1}},
		{"live/ch1.isml/QualityLevels(800000)/Init(video).mp4", Object{Kind: KindInit, Channel: "ch1", Track: v}},
		{"live/ch1.isml/QualityLevels(800000)/Init(video,clear).mp4", Object{Kind: KindInit, Channel: "ch1", Track: v, InitVersion: ClearInit}},
		{"live/ch1.isml/QualityLevels(800000)/Init(video,cbcs).mp4", Object{Kind: KindInit, Channel: "ch1", Track: v, InitVersion: "cbcs"}},
		{"live/ch1.isml/QualityLevels(800000)/End(video=40000000)", Object{Kind: KindEnd, Channel: "ch1", Track: v, Start: 40000000}},
		{"/live/ch1.isml/QualityLevels(800000)/FragmentInfo(video=20000000)", Object{Kind: KindFragmentInfo, Channel: "ch1", Track: v, Start: 20000000}},
		{"live/ch1.isml/QualityLevels(800000)/video.m3u8", Object{Kind: KindMediaPlaylist, Channel: "ch1", Track: v}},
		{"live/ch1.isml/Manifest", Object{Kind: KindSmoothManifest, Channel: "ch1"}},
		{"live/ch1.isml/master.m3u8", Object{Kind: KindMasterPlaylist, Channel: "ch1"}},
		{"live/ch1.isml/manifest.mpd", Object{Kind: KindDASHManifest, Channel: "ch1"}},
		// Not in the layout.
		{"state/ch1/channel.json", Object{}},
		{"live/ch1.isml/QualityLevels(800000)/Fragments(video=18446744073709551616)", Object{}}, // overflows
		{"live/ch1.isml/QualityLevels(800000)/Fragments(video=007)", Object{}},                  // not canonical
		{"live/ch1.isml/QualityLevels(+8)/Fragments(video=7)", Object{}},
		{"live/ch1.isml/QualityLevels(0)/Fragments(video=7)", Object{}},
		{"live/ch1.isml/QualityLevels(2147483648)/Fragments(video=7)", Object{}},
		{"live/ch1.isml/QualityLevels(800000)/Fragments(../x=7)", Object{}},
		{"live/ch1.isml/QualityLevels(800000)/Fragments(video=7)/x", Object{}},
		{"live/../state.isml/Manifest", Object{}},
		{"live/a/b.isml/Manifest", Object{}},
		{"live/.isml/Manifest", Object{}},
		{"live/ch1.isml/QualityLevels(800000)/Init(video)", Object{}},
		{"live/ch1.isml/QualityLevels(800000)/Init(video,).mp4", Object{}},
		{"live/ch1.isml/QualityLevels(800000)/Init(video,../x).mp4", Object{}},
		{"live/ch1.isml/QualityLevels(800000)/Init(video,a,b).mp4", Object{}},
		{"live/ch1.isml/QualityLevels(800000)/End(video)", Object{}},
		{"live/ch1.isml/QualityLevels(800000)/End(video=01)", Object{}},
		{"live/ch1.isml/QualityLevels(800000)/FragmentInfo(video)", Object{}},
		{"live/ch1.isml/QualityLevels(800000)/FragmentInfos(video=1)", Object{}},
		{"live/ch1.isml/manifest", Object{}},
		{"live/ch1.isml/", Object{}},
		{"", Object{}},
	} {
		t.Run(tc.key, func(t *testing.T) {
			got, err := Parse(tc.key)
			if tc.want.Kind == KindUnknown {
				if !errors.Is(err, ErrNotInLayout) {
					t.Fatalf("Parse = %+v, %v; want ErrNotInLayout", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse = %+v, %v; want %+v", got, err, tc.want)
			}
			if k := key(got); k != strings.TrimPrefix(tc.key, "/") {
				t.Fatalf("rebuilt key %q", k)
			}
		})
	}
}

func TestParseIngestPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		want IngestPath
		ok   bool
	}{
		{"/live/ch1.isml/Streams(enc1)", IngestPath{Channel: "ch1", Stream: "enc1"}, true},
		{"/live/ch1.isml/Events(ev-2)/Streams(video_1)", IngestPath{Channel: "ch1", Event: "ev-2", Stream: "video_1"}, true},
		{"/live/ch1.isml/Streams()", IngestPath{}, false},
		{"/live/ch1.isml/Streams(a/b)", IngestPath{}, false},
		{"/live/ch1.isml/Events(e)/Streams(s)/x", IngestPath{}, false},
		{"/live/ch%2F1.isml/Streams(s)", IngestPath{}, false},
		{"/live/" + strings.Repeat("c", MaxNameLen+1) + ".isml/Streams(s)", IngestPath{}, false},
		{"live/ch1.isml/Streams(s)", IngestPath{}, false},
		{"/live/ch1.isml/Manifest", IngestPath{}, false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			got, err := ParseIngestPath(tc.path)
			if tc.ok != (err == nil) || got != tc.want {
				t.Fatalf("ParseIngestPath = %+v, %v; want %+v (ok %v)", got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestSanitizeName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"video", "video"},
		{"Cam 1/left", "Cam_1_left"},
		{"", "fallback"},
		{"-x", "x"},
		{"  ", "fallback"},
		{strings.Repeat("a", 100), strings.Repeat("a", MaxNameLen)},
	} {
		if got := SanitizeName(tc.in, "fallback"); got != tc.want || !ValidName(got) {
			t.Errorf("SanitizeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzParse: whatever Parse accepts has valid names and exactly one key,
// the one the constructors build; nothing it accepts reaches the state
// prefix.
func FuzzParse(f *testing.F) {
	v := TrackID{Name: "video", Bitrate: 800000}
	for _, k := range []string{FragmentKey("ch", v, 123), InitKey("ch", v), MediaPlaylistPath("ch", v),
		FragmentInfoPath("ch", v, 123), SmoothManifestPath("ch"), MasterPlaylistPath("ch"), DASHManifestPath("ch"), TrackStateKey("ch", v), "/live/x.isml/QualityLevels(1)/Fragments(a=0)"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, k string) {
		o, err := Parse(k)
		if err != nil {
			if !errors.Is(err, ErrNotInLayout) {
				t.Fatalf("error %v is not ErrNotInLayout", err)
			}
			return
		}
		if !ValidName(o.Channel) || o.Kind != KindSmoothManifest && o.Kind != KindMasterPlaylist && o.Kind != KindDASHManifest && (!ValidName(o.Track.Name) || o.Track.Bitrate <= 0) {
			t.Fatalf("Parse(%q) = %+v with an invalid name", k, o)
		}
		if rebuilt := key(o); rebuilt != strings.TrimPrefix(k, "/") {
			t.Fatalf("Parse(%q) = %+v, which rebuilds as %q", k, o, rebuilt)
		}
		if !strings.HasPrefix(key(o), LivePrefix) || strings.Contains(k, "..") {
			t.Fatalf("Parse(%q) accepted a key outside the live prefix", k)
		}
	})
}

// FuzzParseIngestPath: accepted paths have valid names and rebuild exactly.
func FuzzParseIngestPath(f *testing.F) {
	f.Add("/live/ch1.isml/Streams(enc1)")
	f.Add("/live/ch1.isml/Events(e)/Streams(s)")
	f.Fuzz(func(t *testing.T, p string) {
		ip, err := ParseIngestPath(p)
		if err != nil {
			return
		}
		rebuilt := "/live/" + ip.Channel + ".isml/"
		if ip.Event != "" {
			rebuilt += "Events(" + ip.Event + ")/"
		}
		rebuilt += "Streams(" + ip.Stream + ")"
		if !ValidName(ip.Channel) || !ValidName(ip.Stream) || ip.Event != "" && !ValidName(ip.Event) || rebuilt != p {
			t.Fatalf("ParseIngestPath(%q) = %+v", p, ip)
		}
	})
}

func TestParseUploadPath(t *testing.T) {
	for _, tc := range []struct {
		path, channel, file string
	}{
		{"/live/ch.isml/init-stream0.m4s", "ch", "init-stream0.m4s"},
		{"/live/ch.isml/chunk-stream0-00001.m4s", "ch", "chunk-stream0-00001.m4s"},
		{"/live/ch.isml/stream_0.m3u8", "ch", "stream_0.m3u8"},
		{"/live/ch.isml/manifest.mpd", "ch", "manifest.mpd"},
		{"/live/ch.isml/../state/x", "", ""},
		{"/live/ch.isml/a/b.m4s", "", ""},
		{"/live/ch.isml/.hidden", "", ""},
		{"/live/ch.isml/Streams(enc1)", "", ""},
		{"/live/ch.isml/", "", ""},
		{"/live/../x.isml/y", "", ""},
		{"/state/ch.isml/y.m4s", "", ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			up, err := ParseUploadPath(tc.path)
			if tc.channel == "" {
				if err == nil {
					t.Fatalf("accepted: %+v", up)
				}
				return
			}
			if err != nil || up.Channel != tc.channel || up.File != tc.file {
				t.Fatalf("%+v, %v; want %s %s", up, err, tc.channel, tc.file)
			}
		})
	}
}

// FuzzParseUploadPath: accepted paths have safe names and rebuild exactly.
func FuzzParseUploadPath(f *testing.F) {
	f.Add("/live/ch1.isml/init-stream0.m4s")
	f.Add("/live/ch1.isml/stream_10.m4s")
	f.Fuzz(func(t *testing.T, p string) {
		up, err := ParseUploadPath(p)
		if err != nil {
			return
		}
		if !ValidName(up.Channel) || strings.ContainsAny(up.File, "/()\\") || strings.HasPrefix(up.File, ".") ||
			"/live/"+up.Channel+".isml/"+up.File != p {
			t.Fatalf("ParseUploadPath(%q) = %+v", p, up)
		}
	})
}

package hls

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// Where a track's protection changes, its media playlist has a
// discontinuity, then the EXT-X-MAP of the new version's init segment
// and that version's key tags (METHOD=NONE when it leaves a KEYFORMAT
// without a key): every segment has in force the init segment and the
// keys of its own version, parsed back. The multivariant playlist's
// session keys are those of the versions the window lists.
func TestProtectionChangeStartsANewMapAndKeys(t *testing.T) {
	short := func(d time.Duration) func(*timeline.Presentation) {
		return func(p *timeline.Presentation) { p.DVRWindow = d }
	}
	for _, tc := range []struct {
		name    string
		p       func() *timeline.Presentation
		edit    func(*timeline.Presentation)
		golden  bool
		session int // EXT-X-SESSION-KEY tags
		nones   int // METHOD=NONE tags in the video playlist
	}{
		{"protection-change", manifesttest.ProtectionChange, nil, true, 4, 1},
		{"window from the encrypted part", manifesttest.ProtectionChange, short(10 * time.Second), false, 4, 1},
		{"window past the encrypted part", manifesttest.ProtectionChange, short(5 * time.Second), false, 0, 0},
		{"protection-change-encrypted-first", manifesttest.ProtectionChangeEncryptedFirst, nil, true, 5, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p()
			if tc.edit != nil {
				tc.edit(p)
			}
			master := Master(p)
			m, err := Parse(master)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.SessionKeys) != tc.session {
				t.Errorf("%d session keys, want %d:\n%s", len(m.SessionKeys), tc.session, master)
			}
			for i := range p.Tracks {
				tv := &p.Tracks[i]
				media, _ := Media(p, tv.ID)
				if tc.golden && i == 0 {
					manifesttest.Golden(t, tc.name+"-master.m3u8", master)
					manifesttest.Golden(t, tc.name+"-video.m3u8", media)
				}
				if i == 0 {
					if n := strings.Count(string(media), "#EXT-X-KEY:METHOD=NONE\n"); n != tc.nones {
						t.Errorf("%d METHOD=NONE, want %d:\n%s", n, tc.nones, media)
					}
				}
				pl, err := Parse(media)
				if err != nil {
					t.Fatal(err)
				}
				var entries []timeline.Entry
				tl := p.Windowed(tv)
				for e := range tl.All() {
					entries = append(entries, e)
				}
				if len(pl.Segments) != len(entries) {
					t.Fatalf("%s: %d segments, want %d:\n%s", tv.ID, len(pl.Segments), len(entries), media)
				}
				for j, s := range pl.Segments {
					e := entries[j]
					if s.Map == nil || s.Map.URI != layout.InitRefOf(tv.ID, e.Init) {
						t.Errorf("%s segment %s: map %+v, want %s", tv.ID, s.URI, s.Map, layout.InitRefOf(tv.ID, e.Init))
					}
					if changed := j > 0 && e.Init != entries[j-1].Init; changed && !s.Discontinuity {
						t.Errorf("%s segment %s: a new version without a discontinuity", tv.ID, s.URI)
					}
					var got, want []string
					for _, k := range s.Keys {
						got = append(got, k.Method+" "+k.KeyFormat)
					}
					prot := tv.ProtectionOf(e.Init)
					for _, k := range keyTags(prot) {
						want = append(want, keyMethod(prot.Scheme)+" "+k.format)
					}
					slices.Sort(got)
					slices.Sort(want)
					if !slices.Equal(got, want) {
						t.Errorf("%s segment %s (version %q): keys in force %v, want %v", tv.ID, s.URI, e.Init, got, want)
					}
				}
			}
		})
	}
}

// changesProtection reports whether a track of p has init segments of
// more than one version: its playlists have a map and keys per version.
func changesProtection(p *timeline.Presentation) bool {
	return slices.ContainsFunc(p.Tracks, func(tv timeline.TrackView) bool { return len(tv.Inits) > 0 })
}

// hlsJSVersionsScript prints what hls.js's parser makes of each fragment
// of a media playlist: its init segment's URL and the methods of the
// keys in force (KEYFORMAT=method, sorted; "" for none).
const hlsJSVersionsScript = `
import { M3U8Parser } from process.env.HLSJS;
import { readFileSync } from 'node:fs';
const media = M3U8Parser.parseLevelPlaylist(readFileSync(process.argv[1], 'utf8'), 'https://cdn.example/live/ch.isml/QualityLevels(800000)/video.m3u8', 0, 'main', 0, null);
console.log(JSON.stringify(media.fragments.map(f => ({
  init: f.initSegment ? f.initSegment.relurl : '',
  keys: Object.entries(f.levelkeys || {}).filter(([, k]) => k.method !== 'NONE').map(([fmt, k]) => fmt + '=' + k.method).sort().join(' '),
}))));
`

// hls.js, as the players' tests install it, follows a change of
// protection: each fragment has the init segment of its version and
// the keys of its protection, none once it is clear again.
func TestHLSJSFollowsAProtectionChange(t *testing.T) {
	node := testtool.Require(t, "node")
	lib := hlsJS(t)
	for _, f := range []func() *timeline.Presentation{manifesttest.ProtectionChange, manifesttest.ProtectionChangeEncryptedFirst} {
		p := f()
		tv := &p.Tracks[0]
		video, _ := Media(p, tv.ID)
		path := filepath.Join(t.TempDir(), "video.m3u8")
		if err := os.WriteFile(path, video, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(node, "--input-type=module", "-e", strings.Replace(hlsJSVersionsScript, "process.env.HLSJS", `'file://`+lib+`'`, 1), path)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("node: %v\n%s", err, out)
		}
		var got []struct{ Init, Keys string }
		if err := json.Unmarshal(out[strings.LastIndexByte(strings.TrimSpace(string(out)), '\n')+1:], &got); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		i := 0
		for e := range tv.State.Timeline.All() {
			if i >= len(got) {
				t.Fatalf("hls.js reads %d fragments:\n%s", len(got), video)
			}
			var want []string
			prot := tv.ProtectionOf(e.Init)
			for _, k := range keyTags(prot) {
				want = append(want, k.format+"="+keyMethod(prot.Scheme))
			}
			slices.Sort(want)
			if got[i].Init != layout.InitRefOf(tv.ID, e.Init) || got[i].Keys != strings.Join(want, " ") {
				t.Errorf("fragment %d (version %q): hls.js reads init %s, keys %q; want %s, %q", i, e.Init, got[i].Init, got[i].Keys, layout.InitRefOf(tv.ID, e.Init), strings.Join(want, " "))
			}
			i++
		}
	}
}

package hls

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// An encrypted track's media playlist names, after its EXT-X-MAP, a key
// tag per DRM system (the method its scheme's, FairPlay for cbcs alone),
// which every segment has in force; the multivariant playlist lists each
// once as an EXT-X-SESSION-KEY; a clear channel's playlists have none.
func TestEncryptedTracksSignalTheirKeys(t *testing.T) {
	for _, tc := range []struct {
		name    string
		p       *timeline.Presentation
		formats []string // the video's KEYFORMATs
		session int      // EXT-X-SESSION-KEY tags
	}{
		{"encrypted-cbcs", manifesttest.Encrypted(cenc.CBCS), []string{keyFormatClearKey, keyFormatWidevine, keyFormatPlayReady, keyFormatFairPlay}, 4},
		{"encrypted-per-track", manifesttest.EncryptedPerTrack(), []string{keyFormatClearKey, keyFormatWidevine, keyFormatPlayReady}, 4},
		{"clear", manifesttest.Presentation(false), nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			master := Master(tc.p)
			video, _ := Media(tc.p, tc.p.Tracks[0].ID)
			if tc.formats != nil {
				manifesttest.Golden(t, tc.name+"-master.m3u8", master)
				manifesttest.Golden(t, tc.name+"-video.m3u8", video)
			}
			m, err := Parse(master)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.SessionKeys) != tc.session {
				t.Errorf("%d session keys, want %d:\n%s", len(m.SessionKeys), tc.session, master)
			}
			pl, err := Parse(video)
			if err != nil {
				t.Fatal(err)
			}
			var formats []string
			for _, k := range pl.Keys {
				formats = append(formats, k.KeyFormat)
				if want := map[string]string{"cbcs": "SAMPLE-AES", "cenc": "SAMPLE-AES-CTR"}[tc.p.Tracks[0].Protection.Scheme]; k.Method != want {
					t.Errorf("%s: METHOD %s, want %s", k.KeyFormat, k.Method, want)
				}
				if k.Line <= strings.Count(string(video[:strings.Index(string(video), "#EXT-X-MAP")]), "\n") {
					t.Errorf("%s key before the EXT-X-MAP", k.KeyFormat)
				}
			}
			if strings.Join(formats, " ") != strings.Join(tc.formats, " ") {
				t.Errorf("KEYFORMATs %v, want %v", formats, tc.formats)
			}
			for _, s := range pl.Segments {
				if len(s.Keys) != len(tc.formats) {
					t.Errorf("segment %s has %d keys in force, want %d", s.URI, len(s.Keys), len(tc.formats))
				}
			}
		})
	}
}

// hlsJS is hls.js as the players' tests install it, or "" (the test is
// skipped) before `(cd players && npm ci)`.
func hlsJS(t *testing.T) string {
	t.Helper()
	path, err := filepath.Abs("../../../players/node_modules/hls.js/dist/hls.mjs")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Skipf("hls.js is not installed: run (cd players && npm ci --no-audit --no-fund): %v", err)
	}
	return path
}

// hlsKeys is what hls.js (M3U8Parser and LevelKey, as its key loader and
// EME controller use them) makes of a media playlist's keys: per
// KEYFORMAT of the first segment, whether hls.js supports it, its method
// and the key ID it asks a CDM for (hex); and the multivariant playlist's
// session keys' formats.
type hlsKeys struct {
	Keys map[string]struct {
		Supported bool   `json:"supported"`
		Method    string `json:"method"`
		KeyID     string `json:"keyId"`
	} `json:"keys"`
	Session []string `json:"session"`
}

const hlsKeysScript = `
import { M3U8Parser, LevelKey } from process.env.HLSJS;
import { readFileSync } from 'node:fs';
const base = 'https://cdn.example/live/ch.isml/';
const media = M3U8Parser.parseLevelPlaylist(readFileSync(process.argv[1], 'utf8'), base + 'QualityLevels(800000)/video.m3u8', 0, 'main', 0, null);
const frag = media.fragments[0];
const keys = {};
for (const [format, key] of Object.entries(frag.levelkeys)) {
  if (format === 'com.microsoft.playready') continue; // its WRM header needs a DOMParser, which node has not
  const d = key.getDecryptData(frag.sn, frag.levelkeys);
  keys[format] = { supported: key.isSupported(), method: key.method, keyId: d && d.keyId ? Buffer.from(d.keyId).toString('hex') : '' };
}
const master = M3U8Parser.parseMasterPlaylist(readFileSync(process.argv[2], 'utf8'), base + 'master.m3u8');
console.log(JSON.stringify({ keys, session: (master.sessionKeys || []).map(k => k.keyFormat) }));
`

// hls.js reads the key tags as its players need them: each supported,
// with the method of the scheme, and the default KID as the key ID of the
// ClearKey key (its data URI) and of the Widevine one (KEYID), which is
// what it asks the CDM's license for; and the session keys of every
// system.
func TestHLSJSFindsTheKeyIDs(t *testing.T) {
	node := testtool.Require(t, "node")
	lib := hlsJS(t)
	for _, scheme := range []cenc.Scheme{cenc.CBCS, cenc.CENC} {
		t.Run(string(scheme), func(t *testing.T) {
			p := manifesttest.Encrypted(scheme)
			dir := t.TempDir()
			video, _ := Media(p, layout.TrackID{Name: "video", Bitrate: 800000})
			if err := os.WriteFile(filepath.Join(dir, "video.m3u8"), video, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "master.m3u8"), Master(p), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(node, "--input-type=module", "-e", strings.Replace(hlsKeysScript, "process.env.HLSJS", `'file://`+lib+`'`, 1),
				filepath.Join(dir, "video.m3u8"), filepath.Join(dir, "master.m3u8"))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("node: %v\n%s", err, out)
			}
			var got hlsKeys
			if err := json.Unmarshal(out[strings.LastIndexByte(strings.TrimSpace(string(out)), '\n')+1:], &got); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			kid := hex.EncodeToString(manifesttest.KID[:])
			method := keyMethod(string(scheme))
			for _, format := range []string{keyFormatClearKey, keyFormatWidevine} {
				k, ok := got.Keys[format]
				if !ok || !k.Supported || k.Method != method || k.KeyID != kid {
					t.Errorf("hls.js reads the %s key as %+v (present %v), want supported, %s, key ID %s", format, k, ok, method, kid)
				}
			}
			if k, ok := got.Keys[keyFormatFairPlay]; (scheme == cenc.CBCS) != ok || ok && !k.Supported {
				t.Errorf("hls.js reads the FairPlay key as %+v (present %v)", k, ok)
			}
			if len(got.Session) < 3 {
				t.Errorf("hls.js reads the session keys as %v", got.Session)
			}
		})
	}
}

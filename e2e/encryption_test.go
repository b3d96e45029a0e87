package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/keys"
	"github.com/smoothcast/smoothcast/shared/manifest/dash"
)

// keysByChannel gives each channel its own key source: the tests encrypt
// channels with different schemes in one stack.
type keysByChannel map[string]keys.Source

func (c keysByChannel) Plan(channel string) (keys.Plan, bool) {
	if s, ok := c[channel]; ok {
		return s.Plan(channel)
	}
	return keys.Plan{}, false
}

func (c keysByChannel) Period(ctx context.Context, channel string, n uint64) (cenc.Period, error) {
	s, ok := c[channel]
	if !ok {
		return cenc.Period{}, fmt.Errorf("no key for channel %s", channel)
	}
	return s.Period(ctx, channel, n)
}

// staticKey is a channel's key source with one static key, as the key
// file gives it.
func staticKey(t *testing.T, channel, key string, scheme cenc.Scheme) keys.Source {
	t.Helper()
	k, err := cenc.ParseKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return keys.NewStatic(map[string]cenc.Key{channel: k}, scheme)
}

const (
	// The test keys ({KID hex}:{key hex}).
	cbcsKey = "5a5f2e1ac0b34e7d9a3e0c1d2b4f6a81:0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	cencKey = "9b2c4d6e8f0a4b1c8d3e5f7a9b1c3d5e:00112233445566778899aabbccddeeff"
)

// A channel encrypted with a static ClearKey key (cbcs: one copy for HLS
// and DASH) plays live in Chromium, in hls.js (SAMPLE-AES, EME ClearKey)
// and dash.js (ContentProtection, EME ClearKey), for a minute of media
// each, with the forced switches to the lowest and the highest video
// rendition; the manifests signal the key.
func TestEncryptedChannelPlaysInBrowsers(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	besideAnother(t)
	ffmpeg := testtool.Require(t, "ffmpeg")
	node := testtool.Require(t, "node")
	chromium := testtool.Require(t, "chromium")
	players := requirePlayers(t)
	const channel = "drm-clearkey"
	st := startStackWith(t, players, func(o *stack.Options) {
		o.Relay.Keys = keysByChannel{channel: staticKey(t, channel, cbcsKey, cenc.CBCS)}
	})
	// hls.js and dash.js (not dash.js's Smooth support, which wants five:
	// players_test.go) start on three fragments.
	ctx, cancel := context.WithCancel(context.Background())
	startEncoder(t, ffmpegPush(ctx, ffmpeg, st.IngestURL+"/live/"+channel+".isml/Streams(enc1)", 150, true), cancel)
	waitForFragments(t, st.EdgeURL+"/live/"+channel+".isml/Manifest", 3, 40*time.Second)
	base := st.EdgeURL + "/live/" + channel + ".isml/"
	kid, _, _ := strings.Cut(cbcsKey, ":")
	k, _ := cenc.ParseKID(kid)
	_, mpd := get(t, base+"manifest.mpd")
	if !bytes.Contains(mpd, []byte(`value="cbcs"`)) || !bytes.Contains(mpd, []byte(k.UUID())) {
		t.Errorf("the MPD does not signal cbcs with the key %s:\n%s", k.UUID(), mpd)
	}
	for uri, pl := range mediaPlaylists(t, base) {
		_, b := get(t, base+uri)
		if strings.Contains(uri, "text") || len(pl.Segments) == 0 {
			continue
		}
		if !bytes.Contains(b, []byte("#EXT-X-KEY:METHOD=SAMPLE-AES")) {
			t.Errorf("%s does not signal SAMPLE-AES:\n%s", uri, b)
		}
	}
	playInBrowsersWith(t, node, chromium, players, st, channel, playOptions{seconds: 60, params: []string{"clearkey=" + cbcsKey}}, "hls", "dash")
}

// The archive of an encrypted channel decrypts to exactly what the
// encoder sent: ffmpeg pushes one encoding to a clear channel and to a
// cenc and a cbcs one at once (its tee muxer); every stored audio and
// video fragment of the encrypted channels differs from the clear one's,
// and ffmpeg, given the key (-decryption_key), decodes each track of the
// encrypted archives (its init segment and fragments, as the HLS media
// playlist lists them) into the very frames of the clear archive. Without
// the key it does not.
func TestEncryptedArchiveDecryptsToTheClearOne(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	besideAnother(t)
	ffmpeg := testtool.Require(t, "ffmpeg")
	channels := map[string]string{"arch-cenc": cencKey, "arch-cbcs": cbcsKey}
	st := startStackWith(t, "", func(o *stack.Options) {
		o.Relay.Keys = keysByChannel{
			"arch-cenc": staticKey(t, "arch-cenc", cencKey, cenc.CENC),
			"arch-cbcs": staticKey(t, "arch-cbcs", cbcsKey, cenc.CBCS),
		}
	})
	var outs []string
	for _, ch := range []string{"arch-clear", "arch-cenc", "arch-cbcs"} {
		outs = append(outs, "[f=ismv:movflags=+isml+frag_keyframe]"+st.IngestURL+"/live/"+ch+".isml/Streams(tee)")
	}
	cmd := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-map", "0:v", "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-b:v:0", "800k", "-b:v:1", "300k", "-s:v:1", "320x180", "-c:a", "aac", "-b:a", "96k",
		"-flags", "+global_header", "-t", "6", "-f", "tee", strings.Join(outs, "|"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	clear := archiveFiles(t, st, "arch-clear")
	for ch, key := range channels {
		waitForVOD(t, st, st.EdgeURL+"/live/"+ch+".isml/")
		enc := archiveFiles(t, st, ch)
		if len(enc) != len(clear) || len(clear) < 3 {
			t.Fatalf("%s has %d tracks, the clear channel %d", ch, len(enc), len(clear))
		}
		_, value, _ := strings.Cut(key, ":")
		for track, file := range enc {
			clearFile := clear[track]
			a, _ := os.ReadFile(file.fragments)
			b, _ := os.ReadFile(clearFile.fragments)
			if bytes.Equal(a, b) || len(a) < len(b) {
				t.Errorf("%s %s: the stored fragments (%d bytes) are the clear ones (%d bytes)", ch, track, len(a), len(b))
			}
			want, err := framecrcOf(ffmpeg, clearFile.whole)
			if err != nil {
				t.Fatalf("%s %s, clear: %v", ch, track, err)
			}
			if got, err := framecrcOf(ffmpeg, file.whole, "-decryption_key", value); got != want || err != nil {
				t.Errorf("%s %s decrypted by ffmpeg is not the clear track (%v):\n%s\nwant\n%s", ch, track, err, head(got), head(want))
			}
			if got, _ := framecrcOf(ffmpeg, file.whole); got == want {
				t.Errorf("%s %s decodes to the clear frames without its key", ch, track)
			}
		}
	}
}

// archiveTrack is one track of a channel's archive on disk: whole is its
// init segment followed by its fragments, fragments the fragments alone.
type archiveTrack struct{ whole, fragments string }

// archiveFiles downloads, from the edge, every audio and video media
// playlist's init segment and fragments of channel, by playlist URI.
func archiveFiles(t *testing.T, st *stack.Stack, channel string) map[string]archiveTrack {
	t.Helper()
	base := st.EdgeURL + "/live/" + channel + ".isml/"
	waitForVOD(t, st, base)
	dir := t.TempDir()
	out := map[string]archiveTrack{}
	for uri, pl := range mediaPlaylists(t, base) {
		if len(pl.Maps) == 0 || strings.Contains(uri, "text") {
			continue
		}
		ref := func(u string) string {
			r, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := url.Parse(base + uri)
			return b.ResolveReference(r).String()
		}
		resp, init := get(t, ref(pl.Maps[0].URI))
		if resp.StatusCode != 200 {
			t.Fatalf("%s: init segment %d", uri, resp.StatusCode)
		}
		var frags []byte
		for _, s := range pl.Segments {
			resp, b := get(t, ref(s.URI))
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %s %d", uri, s.URI, resp.StatusCode)
			}
			frags = append(frags, b...)
		}
		name := strings.NewReplacer("/", "_", "(", "_", ")", "_").Replace(path.Clean(uri))
		f := archiveTrack{whole: filepath.Join(dir, name+".mp4"), fragments: filepath.Join(dir, name+".frag")}
		if err := os.WriteFile(f.whole, append(init, frags...), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.fragments, frags, 0o644); err != nil {
			t.Fatal(err)
		}
		out[uri] = f
	}
	return out
}

// framecrcOf is what ffmpeg decodes of the fragmented MP4 file with
// inputArgs, and an error with ffmpeg's complaints if it complained. The
// file goes in through a pipe: ffmpeg 5.1, given a fragmented file it can
// seek in, reads every moof before the first packet and then decrypts
// each fragment's samples with the last fragment's encryption info
// ("subsample size exceeds the packet size left"); read as a stream, it
// takes each moof's with its samples.
func framecrcOf(ffmpeg, file string, inputArgs ...string) (string, error) {
	in, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer in.Close()
	args := append([]string{"-hide_banner", "-v", "error"}, inputArgs...)
	cmd := exec.Command(ffmpeg, append(args, "-i", "pipe:0", "-map", "0", "-fps_mode", "passthrough", "-f", "framecrc", "-")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		return stdout.String(), fmt.Errorf("ffmpeg %v: %v\n%s", inputArgs, err, head(stderr.String()))
	}
	return stdout.String(), nil
}

// head is the first lines of a framecrc listing, for a failure's message.
func head(s string) string {
	lines := strings.SplitN(s, "\n", 12)
	return strings.Join(lines[:min(len(lines), 11)], "\n")
}

// switchableKeys is a channel's key source that can be turned on while
// the stack runs: what restarting a relay with a new key file does.
type switchableKeys struct {
	on  atomic.Bool
	src keys.Source
}

func (s *switchableKeys) Plan(channel string) (keys.Plan, bool) {
	if !s.on.Load() {
		return keys.Plan{}, false
	}
	return s.src.Plan(channel)
}

func (s *switchableKeys) Period(ctx context.Context, channel string, n uint64) (cenc.Period, error) {
	return s.src.Period(ctx, channel, n)
}

// Encryption turned on for a channel already published: the fragments
// stored stay clear, the encoder's next session is encrypted, and the
// manifests say where protection starts (HLS: a discontinuity with the
// encrypted init segment's EXT-X-MAP and EXT-X-KEY; DASH: a second
// Period with its ContentProtection, the first with none). Playing
// across the change is not asked of the browsers: Chromium fails about
// one switch in two from clear to encrypted media in one stream
// ("decoder reinitialization failed", docs/limitations.md), whatever
// the manifest says.
func TestEncryptionTurnedOnMidStreamIsSignalled(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	besideAnother(t)
	ffmpeg := testtool.Require(t, "ffmpeg")
	const channel = "drm-later"
	ks := &switchableKeys{src: staticKey(t, channel, cbcsKey, cenc.CBCS)}
	st := startStackWith(t, "", func(o *stack.Options) {
		o.Relay.Keys = keysByChannel{channel: ks}
		// The second session starts from zero again: 2 s behind what the
		// channel published is a restart (rebased after it), not a
		// reconnect resending its fragments.
		o.Relay.MaxDrift = 2 * time.Second
	})
	base := st.EdgeURL + "/live/" + channel + ".isml/"
	push := func(stream string) {
		cmd := ffmpegPush(context.Background(), ffmpeg, st.IngestURL+"/live/"+channel+".isml/Streams("+stream+")", 6, true)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, out)
		}
	}
	push("clear")
	st.Settle(context.Background())
	ks.on.Store(true)
	push("encrypted")
	waitForVOD(t, st, base)
	for uri, pl := range mediaPlaylists(t, base) {
		var maps []string
		for _, m := range pl.Maps {
			maps = append(maps, m.URI)
		}
		if len(maps) != 2 || strings.Contains(maps[0], ",") || !strings.Contains(maps[1], ",cbcs)") {
			t.Errorf("%s: EXT-X-MAP %v, want the clear init segment, then the encrypted one", uri, maps)
			continue
		}
		var clear, encrypted int
		for _, s := range pl.Segments {
			if len(s.Keys) == 0 || s.Keys[0].Method == "NONE" {
				clear++
			} else {
				encrypted++
			}
		}
		if clear == 0 || encrypted == 0 || discontinuitiesOf(pl) != 1 {
			t.Errorf("%s: %d clear and %d encrypted segments, %d discontinuities; want both, and one", uri, clear, encrypted, discontinuitiesOf(pl))
		}
	}
	_, b := get(t, base+"manifest.mpd")
	mpd, err := dash.Parse(b)
	if err != nil || len(mpd.Periods) != 2 {
		t.Fatalf("the MPD (%v) does not have two Periods:\n%s", err, b)
	}
	for i, p := range mpd.Periods {
		var protected bool
		for _, as := range p.AdaptationSets {
			protected = protected || len(as.ContentProtections) > 0
			for _, r := range as.Representations {
				protected = protected || len(r.ContentProtections) > 0
			}
		}
		if protected != (i == 1) {
			t.Errorf("Period %d protected %v, want %v", i, protected, i == 1)
		}
	}
}

package e2e

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/manifest/dash"
	"github.com/smoothcast/smoothcast/shared/manifest/smooth"
)

// An encoder that ends its push (ffmpeg writes an mfra and completes the
// request) turns the channel's manifests into VOD: IsLive="FALSE",
// EXT-X-ENDLIST, a static MPD, and the archive decodes from start to end.
// The same encoder started again begins at timestamp zero: the relay
// rebases it onto the channel's clock, the manifests go live again after a
// discontinuity (the Smooth timeline keeps rising, DASH opens a Period),
// and when it ends the archive holds both sessions, every fragment still
// there.
func TestEndOfStreamTurnsVODAndARestartContinues(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	besideAnother(t)
	ffmpeg := testtool.Require(t, "ffmpeg")
	// Sessions of 8 s: a restart is told from a reconnect when it starts
	// further back than the drift limit from what the channel published.
	st := startStackWith(t, "", func(o *stack.Options) { o.Relay.MaxDrift = 3 * time.Second })
	const channel, session = "eos", 8 // seconds per session
	base := st.EdgeURL + "/live/" + channel + ".isml/"
	push := func() {
		t.Helper()
		cmd := ffmpegPush(context.Background(), ffmpeg, st.IngestURL+"/live/"+channel+".isml/Streams(enc1)", session, true)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("ffmpeg push: %v\n%s", err, stderr.String())
		}
	}

	push()
	m := waitForVOD(t, st, base)
	if m.Duration == 0 {
		t.Errorf("VOD Smooth manifest has no Duration")
	}
	checkVODManifests(t, base, 0)
	checkDecodeSeconds(t, ffmpeg, base+"master.m3u8", session, [][]string{{"0:v:0", "0:a:0"}})
	// The final, static MPD too (each adaptation set on its own, as in
	// checkTimeShiftWithFFmpeg).
	checkDecodeSeconds(t, ffmpeg, base+"manifest.mpd", session, [][]string{{"0:v:0"}, {"0:a:0"}})

	push()
	m = waitForVOD(t, st, base)
	checkVODManifests(t, base, 1)
	for _, si := range m.Streams {
		var last uint64
		for i, start := range fragmentStarts(t, &si) {
			if i > 0 && start <= last {
				t.Errorf("%s: Smooth timeline goes back at chunk %d (%d after %d)", si.Type, i, start, last)
			}
			last = start
		}
	}
	checkSmoothFragmentsExist(t, base, m)
	// DASH: the restart opens a second Period.
	_, b := get(t, base+"manifest.mpd")
	if mpd, err := dash.Parse(b); err != nil || len(mpd.Periods) != 2 {
		t.Errorf("the MPD of a restarted stream does not parse into 2 Periods (%v):\n%s", err, b)
	}
	checkDecodeSeconds(t, ffmpeg, base+"master.m3u8", 2*session, [][]string{{"0:v:0", "0:a:0"}})
}

// waitForVOD waits until the Smooth manifest is final and returns it.
func waitForVOD(t *testing.T, st *stack.Stack, base string) *smooth.Manifest {
	t.Helper()
	st.Settle(context.Background())
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, body := get(t, base+"Manifest")
		if m, err := smooth.Parse(body); resp.StatusCode == 200 && err == nil && m.IsLive == "FALSE" {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Smooth manifest is still live 20 s after the push ended:\n%s", body)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// checkVODManifests checks that the HLS and DASH manifests are final, with
// the given number of discontinuities.
func checkVODManifests(t *testing.T, base string, discontinuities int) {
	t.Helper()
	for uri, pl := range mediaPlaylists(t, base) {
		if !pl.Ended || pl.Type != "VOD" {
			t.Errorf("%s is not final: EXT-X-ENDLIST %v, EXT-X-PLAYLIST-TYPE %q", uri, pl.Ended, pl.Type)
		}
		if n := discontinuitiesOf(pl); n != discontinuities {
			t.Errorf("%s: %d discontinuities, want %d", uri, n, discontinuities)
		}
	}
	_, b := get(t, base+"manifest.mpd")
	if mpd, err := dash.Parse(b); err != nil || mpd.GetType() != "static" {
		t.Errorf("the MPD is not static (%v):\n%s", err, b)
	}
}

// checkSmoothFragmentsExist fetches every fragment URL of every quality
// level the manifest lists: none may be missing.
func checkSmoothFragmentsExist(t *testing.T, base string, m *smooth.Manifest) {
	t.Helper()
	n := 0
	for _, si := range m.Streams {
		for _, ql := range si.Levels {
			for _, tm := range fragmentStarts(t, &si) {
				u := si.FragmentURL(ql.Bitrate, tm)
				if resp, _ := get(t, base+u); resp.StatusCode != 200 {
					t.Errorf("listed but missing: %s (%d)", u, resp.StatusCode)
				}
				n++
			}
		}
	}
	t.Logf("all %d listed fragments exist", n)
}

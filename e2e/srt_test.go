package e2e

import (
	"bytes"
	"context"
	"net/url"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/check"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/layout"
)

// srtURL is the URL an SRT caller publishes channel to: the stream ID in
// the access control convention (with the channel's secret when given),
// the passphrase when given, and a linger of a second, so that ffmpeg's
// close waits for what it has not sent yet (libsrt's live mode default
// discards it: the encoder's last frames, which x264 flushes at the end).
func srtURL(base, channel, secret, passphrase string) string {
	sid := "#!::r=" + channel + ",m=publish"
	if secret != "" {
		sid += ",smoothcast_secret=" + secret
	}
	q := url.Values{"streamid": {sid}, "linger": {"1"}}
	if passphrase != "" {
		q.Set("passphrase", passphrase)
	}
	return base + "?" + q.Encode()
}

// ffmpegSRTPush is an encoder publishing over SRT, as ffmpeg does it: a
// test pattern in H.264 (a GOP of 2 s) and AAC, muxed in MPEG-TS, in
// real time, for seconds.
func ffmpegSRTPush(ctx context.Context, ffmpeg, url string, seconds int) *exec.Cmd {
	return exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-loglevel", "error",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
		"-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-b:v", "800k", "-c:a", "aac", "-b:a", "96k", "-t", strconv.Itoa(seconds), "-f", "mpegts", url)
}

// startSRTStack is a local stack with its SRT listener on a free
// loopback port, adjusted by adjust.
func startSRTStack(t *testing.T, adjust ...func(*stack.Options)) *stack.Stack {
	t.Helper()
	return startStackWith(t, "", append([]func(*stack.Options){func(o *stack.Options) { o.SRT.Addr = "127.0.0.1:0" }}, adjust...)...)
}

// An SRT caller (ffmpeg -f mpegts srt://...) publishes a channel that
// plays in every format: with and without SRT's encryption, with and
// without authentication. When ffmpeg ends the stream (it closes the
// connection) the manifests turn VOD; every Smooth fragment URL answers
// with a moof at its time, ffmpeg decodes the HLS playlists and the DASH
// MPD whole, and smoothcast check finds nothing missing.
func TestFFmpegSRTPublishPlaysInEveryFormat(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	const secret, passphrase = "srt-e2e-secret-0123456789", "srt-e2e-passphrase"
	for _, tc := range []struct {
		name               string
		secret, passphrase string
	}{
		{"in the clear, authentication off", "", ""},
		{"in the clear, authentication on", secret, ""},
		{"encrypted, authentication off", "", passphrase},
		{"encrypted, authentication on", secret, passphrase},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := startSRTStack(t, func(o *stack.Options) {
				o.SRT.Passphrase = tc.passphrase
				if tc.secret != "" {
					o.Relay.Secrets = relay.Secrets{Default: tc.secret}
				}
			})
			const channel = "srt"
			push := ffmpegSRTPush(context.Background(), ffmpeg, srtURL(st.SRTURL, channel, tc.secret, tc.passphrase), pushSeconds)
			var stderr bytes.Buffer
			push.Stderr = &stderr
			if err := push.Run(); err != nil {
				t.Fatalf("ffmpeg SRT publish: %v\n%s", err, stderr.String())
			}
			base := st.EdgeURL + "/live/" + channel + ".isml/"
			m := waitForVOD(t, st, base)
			checkVODManifests(t, base, 0)
			checkSmoothFragmentsExist(t, base, m)
			checkSmoothLevels(t, base, 1)
			checkDecode(t, ffmpeg, base+"master.m3u8", [][]string{{"0:v:0", "0:a:0"}})
			checkDecode(t, ffmpeg, base+"manifest.mpd", [][]string{{"0:v:0"}, {"0:a:0"}})
			checkWithSmoothcast(t, st, channel)
		})
	}
}

// checkWithSmoothcast runs smoothcast check on channel: every object each
// format references is there and is what it says, and the formats agree.
func checkWithSmoothcast(t *testing.T, st *stack.Stack, channel string) {
	t.Helper()
	rep, err := check.Run(context.Background(), nil, st.EdgeURL, channel, check.Options{})
	if err != nil || !rep.OK() {
		t.Fatalf("smoothcast check: %v %v", err, rep.Problems)
	}
}

// An SRT encoder killed with SIGKILL inside a GOP sends no SHUTDOWN: the
// relay finds it gone at the peer idle timeout, stores nothing of the GOP
// it was receiving (every fragment stored is a whole GOP of 50 frames)
// and keeps the channel live. The encoder started again (from timestamp
// zero) continues the channel after one discontinuity; when it ends, the
// manifests are VOD, list exactly what is stored, and decode whole.
func TestFFmpegSRTReconnectsAfterKill9MidGOP(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	// A restart from zero is told from a reconnect when it starts further
	// back than the drift limit from what the channel published.
	st := startSRTStack(t, func(o *stack.Options) {
		o.Relay.MaxDrift = 3 * time.Second
		o.SRT.PeerIdleTimeout = 2 * time.Second
	})
	const channel = "srtkill"
	base := st.EdgeURL + "/live/" + channel + ".isml/"
	url := srtURL(st.SRTURL, channel, "", "")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first := ffmpegSRTPush(ctx, ffmpeg, url, 60)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	// Three GOPs stored, then a second into the fourth: SIGKILL.
	waitUntil(t, 30*time.Second, "three video fragments stored", func() bool { return videoFragments(t, st, channel) >= 3 })
	time.Sleep(time.Second)
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	// The relay finds the caller gone: the channel is live, its end marker
	// a drop.
	waitUntil(t, 10*time.Second, "the killed connection ended", func() bool { return st.Relay.Active() == 0 })
	if m := getSmooth(t, base+"Manifest"); !m.Live() {
		t.Errorf("after a killed encoder the channel is not live: IsLive=%q", m.IsLive)
	}
	killed := videoFragments(t, st, channel)

	// The encoder comes back, from timestamp zero, for 8 s (4 GOPs).
	const again = 8
	second := ffmpegSRTPush(ctx, ffmpeg, url, again)
	if out, err := second.CombinedOutput(); err != nil {
		t.Fatalf("second publish: %v\n%s", err, out)
	}
	m := waitForVOD(t, st, base)
	checkVODManifests(t, base, 1)
	checkSmoothFragmentsExist(t, base, m)
	checkWithSmoothcast(t, st, channel)

	var video, audio time.Duration
	frags := 0
	for key, info := range storedFragments(t, st, channel) {
		obj, _ := layout.Parse(key)
		switch obj.Track.Name {
		case "video":
			video += time.Duration(info.Duration) * time.Second / 90000
			frags++
			if info.Samples != 50 {
				t.Errorf("%s: %d frames; every fragment stored is a whole GOP of 50", key, info.Samples)
			}
		case "audio":
			audio += time.Duration(info.Duration) * time.Second / 48000
		}
	}
	if frags != killed+again/2 {
		t.Errorf("%d video fragments stored, want the %d stored before the kill and %d after", frags, killed, again/2)
	}
	t.Logf("killed after %d whole GOPs; then %d s more: %v of video, %v of audio stored", killed, again, video, audio)
	checkDecodeSpan(t, ffmpeg, base+"master.m3u8", video, audio, [][]string{{"0:v:0", "0:a:0"}})
}

// videoFragments counts the video fragments stored of channel.
func videoFragments(t *testing.T, st *stack.Stack, channel string) int {
	t.Helper()
	n := 0
	for key := range storedFragments(t, st, channel) {
		if obj, _ := layout.Parse(key); obj.Track.Name == "video" {
			n++
		}
	}
	return n
}

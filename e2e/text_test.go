package e2e

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/check"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// cueResult is one line of drive.mjs's cues mode: what one page (a
// format, a text track) played and the cues its text tracks held.
type cueResult struct {
	Format     string   `json:"format"`
	Text       string   `json:"text"`
	Channel    string   `json:"channel"`
	OK         bool     `json:"ok"`
	Failure    string   `json:"failure"`
	Start      float64  `json:"start"`
	End        float64  `json:"end"`
	Paused     bool     `json:"paused"`
	TextTracks []string `json:"textTracks"`
	Cues       []struct {
		Track string  `json:"track"`
		Start float64 `json:"start"`
		End   float64 `json:"end"`
		Text  string  `json:"text"`
	} `json:"cues"`
	Errors  []string `json:"errors"`
	Console []string `json:"console"`
	Failed  []string `json:"failed"`
}

// runCuesDriver plays channel in drive.mjs's cues mode, a page per
// "format:text track" of pages, for seconds of media time each.
func runCuesDriver(t *testing.T, node, chromium, players string, st *stack.Stack, channel string, seconds int, pages []string) []cueResult {
	t.Helper()
	args := append([]string{filepath.Join(players, "drive.mjs"), "cues", st.EdgeURL, channel, fmt.Sprint(seconds)}, pages...)
	out, _ := drive[cueResult](t, node, chromium, 2*time.Minute, args...)
	return out
}

// hls.js and dash.js in Chromium show the cues of a live channel's
// WebVTT and IMSC1 text tracks: a synthetic CMAF push (a POST per track)
// of video, audio, English WebVTT with a cue in every fragment, and
// French IMSC1 with a cue every other fragment (empty documents
// between), both silent for three fragments (no fragment at all: a
// sparse track's pause). Each player, on a page per text track, plays
// across the pause; its text track holds every cue of the time it
// played, with the synthetic cue's text, at its media time to the
// frame, and no other (none in the pause). hls.js reads the WebVTT
// track as the WebVTT files beside its fragments; HLS lists a channel's
// IMSC1 tracks only when it has no WebVTT one (hls.subtitleTracks),
// so hls.js plays IMSC1 (as fMP4) on a second channel, of video and the
// French track alone, pushed at the same time. The three formats list
// the same text fragments (smoothcast check). dash.js's Smooth support
// is left out: it reads TTML times as relative to the fragment
// (ttmlTimeIsRelative, what IIS wrote), where CMAF's IMSC1 samples carry
// them on the track's timeline, so its cues come late by their
// fragment's start.
func TestPlayersShowTextCues(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	node := testtool.Require(t, "node")
	chromium := testtool.Require(t, "chromium")
	players := requirePlayers(t)
	st := startStackWith(t, players)
	const (
		channel   = "text"
		fragments = 24 // 48 s of push, more than the test plays
		gapFrom   = 9  // the text tracks send nothing from 18 s
		gapCount  = 3  // to 24 s
		played    = 22 // seconds of media each page plays: past the gap from a start as early as 2 s
		frame     = 0.04
	)
	gap := synth.Gap{From: gapFrom, Count: gapCount}
	cfg := synth.Config{CMAF: true, Tracks: []synth.Track{
		{Kind: timeline.Video, Bitrate: 300_000, Width: 320, Height: 180},
		{Kind: timeline.Audio, Bitrate: 64_000},
		{Kind: timeline.Text, Language: "eng", Label: "English", TextOptions: synth.TextOptions{Codec: "wvtt", Default: true, Gap: gap}},
		{Kind: timeline.Text, Language: "fra", Label: "Français", Bitrate: 2000, TextOptions: synth.TextOptions{Codec: "stpp", CueEvery: 2, Gap: gap}},
	}}
	imsc := synth.Config{CMAF: true, Tracks: []synth.Track{cfg.Tracks[0], cfg.Tracks[3]}}
	streams := map[string]*synth.Stream{} // by language, the text tracks' (the same cues on both channels)
	var pushes []*livePushes
	for ch, cfg := range map[string]synth.Config{channel: cfg, channel + "-imsc": imsc} {
		p := pushSplit(t, st, ch, cfg, fragments, nil)
		for i, c := range cfg.Split() {
			if c.Tracks[0].Kind == timeline.Text {
				streams[c.Tracks[0].Language] = p.Streams[i]
			}
		}
		pushes = append(pushes, p)
	}
	pushErr := func() string {
		var b strings.Builder
		for _, p := range pushes {
			b.WriteString(p.String())
		}
		return b.String()
	}
	base := st.EdgeURL + "/live/" + channel + ".isml/"
	waitForFragments(t, base+"Manifest", 4, time.Minute)
	waitForFragments(t, st.EdgeURL+"/live/"+channel+"-imsc.isml/Manifest", 4, time.Minute)

	results := runCuesDriver(t, node, chromium, players, st, channel, played,
		[]string{"hls:eng", "dash:eng", "dash:fra", "hls:fra@" + channel + "-imsc"})
	if len(results) != 4 {
		t.Errorf("%d pages reported, want 4", len(results))
	}
	fragSec := cfg.FragmentDuration.Seconds()
	if fragSec == 0 {
		fragSec = 2
	}
	for _, r := range results {
		name := r.Format + " " + r.Text + " (" + r.Channel + ")"
		t.Logf("%s: played %.1f s from %.1f, text tracks %v, %d cues, errors %.300v, failed requests %v", name, r.End-r.Start, r.Start, r.TextTracks, len(r.Cues), r.Errors, r.Failed)
		for _, c := range r.Cues {
			t.Logf("%s: %s %.3f-%.3f %q", name, c.Track, c.Start, c.End, c.Text)
		}
		if !r.OK {
			t.Errorf("%s: %s; errors %.300v; console %v; failed %v; paused %v; %d cues\npushes: %s", name, r.Failure, r.Errors, r.Console, r.Failed, r.Paused, len(r.Cues), pushErr())
			continue
		}
		if r.Start > gapFrom*fragSec || r.End < (gapFrom+gapCount)*fragSec {
			t.Errorf("%s: played %.1f s to %.1f s, not across the gap (%v s to %v s)", name, r.Start, r.End, gapFrom*fragSec, (gapFrom+gapCount)*fragSec)
		}
		s := streams[r.Text]
		const idx = 0 // a split stream's one track
		// Every cue held is a cue of the track, at its time.
		got := map[string]bool{}
		for _, c := range r.Cues {
			if c.Text == "" {
				continue // a player's empty cue (an empty document)
			}
			k := -1
			if _, err := fmt.Sscanf(c.Text, "Cue %d", &k); err != nil {
				t.Errorf("%s: cue %q at %.3f s: not a cue of the push", name, c.Text, c.Start)
				continue
			}
			want, ok := s.Cue(idx, k)
			switch {
			case !ok:
				t.Errorf("%s: cue %q at %.3f s: fragment %d has none", name, c.Text, c.Start, k)
			case c.Text != want.Text:
				t.Errorf("%s: cue %q, want %q", name, c.Text, want.Text)
			case math.Abs(c.Start-want.Start.Seconds()) > frame || math.Abs(c.End-want.End.Seconds()) > frame:
				t.Errorf("%s: cue %q from %.3f s to %.3f s, want %.3f s to %.3f s", name, c.Text, c.Start, c.End, want.Start.Seconds(), want.End.Seconds())
			}
			got[c.Text] = true
		}
		// Every cue of the time played is held.
		var missing []string
		for k := range fragments {
			want, ok := s.Cue(idx, k)
			if ok && want.Start.Seconds() >= r.Start && want.End.Seconds() <= r.End && !got[want.Text] {
				missing = append(missing, fmt.Sprintf("%q at %v", want.Text, want.Start))
			}
		}
		if len(missing) > 0 {
			t.Errorf("%s: played %.1f s to %.1f s without the cues %s", name, r.Start, r.End, strings.Join(missing, ", "))
		}
	}

	// The three formats list the same fragments of every track they
	// carry, and each object they list is there (a WebVTT file for
	// HLS's WebVTT segments).
	for _, ch := range []string{channel, channel + "-imsc"} {
		if rep, err := check.Run(context.Background(), nil, st.EdgeURL, ch, check.Options{}); err != nil || !rep.OK() {
			t.Errorf("smoothcast check %s: %v %v", ch, err, rep.Problems)
		}
	}
}

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/check"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// A CMAF push (interface 1) of one video and three audio tracks at the
// same bitrate: English, a Spanish dub and an English commentary, told
// apart only by their headers (mdhd language, CMAF kind box). Each is a
// track of its own in every format, with its language and role, and
// ffprobe sees the three audio renditions with their languages through
// the HLS playlist and the MPD.
func TestCMAFAudioLanguagesAndRoles(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	besideAnother(t)
	ffmpeg := testtool.Require(t, "ffmpeg")
	ffprobe := testtool.Require(t, "ffprobe")
	cfg := synth.Config{CMAF: true, Tracks: []synth.Track{
		{Kind: timeline.Video, Bitrate: 800_000},
		{Kind: timeline.Audio, Bitrate: 96_000, Language: "eng"},
		{Kind: timeline.Audio, Bitrate: 96_000, Language: "spa", Role: "dub"},
		{Kind: timeline.Audio, Bitrate: 96_000, Language: "eng", Role: "commentary"},
	}}
	st := startStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	streams := cfg.Split()
	errs := make([]error, len(streams))
	for i, c := range streams {
		s, err := synth.New(c)
		if err != nil {
			t.Fatal(err)
		}
		url := fmt.Sprintf("%s/live/langs.isml/Streams(track%d)", st.IngestURL, i)
		wg.Go(func() {
			errs[i] = synth.Push(ctx, http.DefaultClient, url, s, synth.Range{Count: pushSeconds / 2, End: true})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	st.Settle(context.Background())
	base := st.EdgeURL + "/live/langs.isml/"
	// Every object each format references is there and is what it says,
	// and the formats agree; each lists the four tracks.
	rep, err := check.Run(ctx, nil, st.EdgeURL, "langs", check.Options{})
	if err != nil || !rep.OK() {
		t.Fatalf("smoothcast check: %v %v", err, rep.Problems)
	}
	perFormat := map[check.Format]int{}
	for _, tr := range rep.Tracks {
		if tr.Listed > 0 {
			perFormat[tr.Format]++
		}
	}
	for _, f := range check.Formats {
		if perFormat[f] != 4 {
			t.Errorf("%s lists %d tracks, want 4: %+v", f, perFormat[f], rep.Tracks)
		}
	}

	_, manifest := get(t, base+"Manifest")
	for _, want := range []string{`Name="audio_eng" Language="eng"`, `Name="audio_spa_dub" Language="spa"`, `Name="audio_eng_commentary" Language="eng"`} {
		if !strings.Contains(string(manifest), want) {
			t.Errorf("Smooth manifest lacks a StreamIndex with %s:\n%s", want, manifest)
		}
	}
	_, master := get(t, base+"master.m3u8")
	for _, want := range []string{
		`NAME="audio_eng",LANGUAGE="eng",DEFAULT=YES,AUTOSELECT=YES`,
		`NAME="audio_spa_dub",LANGUAGE="spa",DEFAULT=NO,AUTOSELECT=YES`,
		`NAME="audio_eng_commentary",LANGUAGE="eng",DEFAULT=NO,AUTOSELECT=NO`,
	} {
		if !strings.Contains(string(master), want) {
			t.Errorf("master.m3u8 lacks %s:\n%s", want, master)
		}
	}
	_, mpd := get(t, base+"manifest.mpd")
	for _, want := range []string{`lang="eng"`, `lang="spa"`, `<Role schemeIdUri="urn:mpeg:dash:role:2011" value="dub">`, `<Role schemeIdUri="urn:mpeg:dash:role:2011" value="commentary">`} {
		if !strings.Contains(string(mpd), want) {
			t.Errorf("manifest.mpd lacks %s:\n%s", want, mpd)
		}
	}
	// ffmpeg reads the language from the playlist or the MPD, and the
	// role from the init segment's kind box.
	for _, url := range []string{base + "master.m3u8", base + "manifest.mpd"} {
		if got, want := probeAudio(t, ffprobe, url), []string{"eng", "eng comment", "spa dub"}; !slices.Equal(got, want) {
			t.Errorf("ffprobe %s: audio %v, want %v", url, got, want)
		}
	}
	checkHLSWithFFmpeg(t, ffmpeg, base+"master.m3u8")
}

// probeAudio is every audio rendition ffprobe finds at url with a
// language: the language, then "dub" or "comment" as its disposition
// says; sorted, each once (an HLS variant's streams are listed again
// under its programs).
func probeAudio(t *testing.T, ffprobe, url string) []string {
	t.Helper()
	out, err := exec.Command(ffprobe, "-v", "error", "-show_entries", "stream=codec_type:stream_tags=language:stream_disposition=dub,comment", "-of", "json", url).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", url, err)
	}
	var probe struct {
		Streams []struct {
			CodecType   string            `json:"codec_type"`
			Tags        map[string]string `json:"tags"`
			Disposition map[string]int    `json:"disposition"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &probe); err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", url, err, out)
	}
	var got []string
	for _, s := range probe.Streams {
		lang := s.Tags["language"]
		if s.CodecType != "audio" || lang == "" {
			continue
		}
		for _, d := range []string{"dub", "comment"} {
			if s.Disposition[d] == 1 {
				lang += " " + d
			}
		}
		if !slices.Contains(got, lang) {
			got = append(got, lang)
		}
	}
	slices.Sort(got)
	return got
}

package synth

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// collect is an ingest.Sink that keeps what a session produced.
type collect struct {
	inits []ingest.TrackHeader
	frags []ingest.Fragment
}

func (c *collect) Init(_ context.Context, h ingest.TrackHeader) error {
	c.inits = append(c.inits, h)
	return nil
}

func (c *collect) Fragment(_ context.Context, f ingest.Fragment) error {
	f.Head, f.Payload = nil, nil
	c.frags = append(c.frags, f)
	return nil
}

var ladder = []Track{
	{Kind: timeline.Video, Bitrate: 800_000, Name: "video"},
	{Kind: timeline.Video, Bitrate: 300_000, Name: "video", Width: 320, Height: 180},
	{Kind: timeline.Audio, Bitrate: 96_000, Name: "audio"},
}

func encode(t *testing.T, cfg Config, r Range) (*Stream, []byte) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := s.WriteTo(context.Background(), &b, r); err != nil {
		t.Fatal(err)
	}
	return s, b.Bytes()
}

// The relay's own demuxer must see exactly the tracks, names, bitrates
// and fragment times the stream was configured with, however the bitrate
// is announced.
func TestStreamDemuxesAsConfigured(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name      string
		cfg       Config
		wantNames []string
		measured  bool // bitrate measured by the relay: compare loosely
	}{
		{"SMIL", Config{Tracks: ladder, SMIL: true}, []string{"video", "video", "audio"}, false},
		{"btrt and esds", Config{Tracks: ladder}, []string{"video", "video", "audio"}, false},
		{"measured", Config{Tracks: ladder, NoBitrateBoxes: true}, []string{"video", "video", "audio"}, true},
		{"named tracks, 1 s at 30 fps, 44.1 kHz", Config{
			Tracks: []Track{{Kind: timeline.Video, Bitrate: 2_000_000, Name: "cam1", Width: 1280, Height: 720},
				{Kind: timeline.Audio, Bitrate: 128_000, Name: "english"}},
			SMIL: true, FragmentDuration: time.Second, FrameRate: 30, SampleRate: 44100,
		}, []string{"cam1", "english"}, false},
		{"audio before zero, as ffmpeg", Config{Tracks: ladder, SMIL: true, AudioOffset: -21333 * time.Microsecond},
			[]string{"video", "video", "audio"}, false},
		{"millisecond timescale", Config{Tracks: ladder, Timescale: 1000}, []string{"video", "video", "audio"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 5
			s, body := encode(t, tc.cfg, Range{Count: n, End: true})
			var c collect
			stats, err := ingest.Read(context.Background(), bytes.NewReader(body), ingest.NewSession(&c, quiet, ingest.Options{}), ingest.ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !stats.Ended || stats.Fragments != n*len(tc.cfg.Tracks) {
				t.Fatalf("stats %+v, want %d fragments and the end", stats, n*len(tc.cfg.Tracks))
			}
			if len(c.inits) != len(tc.cfg.Tracks) {
				t.Fatalf("%d init segments, want %d", len(c.inits), len(tc.cfg.Tracks))
			}
			for i, h := range c.inits {
				tr := tc.cfg.Tracks[h.TrackID-1]
				if h.ID.Name != tc.wantNames[h.TrackID-1] || h.Kind != tr.Kind {
					t.Errorf("track %d: %s %s, want %s %s", i, h.ID.Name, h.Kind, tc.wantNames[h.TrackID-1], tr.Kind)
				}
				if got, want := float64(h.ID.Bitrate), float64(tr.Bitrate); tc.measured && (got < 0.9*want || got > 1.1*want) ||
					!tc.measured && got != want {
					t.Errorf("track %d: bitrate %d, want %d", h.TrackID, h.ID.Bitrate, tr.Bitrate)
				}
			}
			seen := map[uint32]int{}
			for _, f := range c.frags {
				k := seen[f.TrackID]
				seen[f.TrackID]++
				want := s.Start(int(f.TrackID-1), k)
				if want < 0 {
					// The relay drops the samples before zero: the
					// fragment starts at the first sample after it.
					if frame := int64(s.Timescale()) * 1024 / 48000; int64(f.Start) > frame {
						t.Errorf("track %d fragment 0 starts at %d, want in [0, %d)", f.TrackID, f.Start, frame)
					}
					continue
				}
				if int64(f.Start) != want {
					t.Errorf("track %d fragment %d starts at %d, want %d", f.TrackID, k, f.Start, want)
				}
				if f.Duration == 0 || f.Duration > s.FragmentTicks()+s.FragmentTicks()/10 {
					t.Errorf("track %d fragment %d lasts %d ticks, nominal %d", f.TrackID, k, f.Duration, s.FragmentTicks())
				}
			}
			if tc.cfg.AudioOffset < 0 && stats.Trimmed != 1 {
				t.Errorf("%d fragments trimmed, want the first audio one", stats.Trimmed)
			}
		})
	}
}

// Each track's media carries the bitrate it declares, within 5 %.
func TestTracksCarryTheirBitrate(t *testing.T) {
	cfg := Config{Tracks: append(ladder, Track{Kind: timeline.Video, Bitrate: 6_000_000, Width: 1920, Height: 1080},
		Track{Kind: timeline.Video, Bitrate: 100_000, Width: 256, Height: 144})}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Header(); err != nil {
		t.Fatal(err)
	}
	for i, tr := range cfg.Tracks {
		one := &Stream{cfg: s.cfg, fragTicks: s.fragTicks, tracks: []*track{s.tracks[i]}}
		var size int
		const n = 4
		for k := range n {
			b, err := one.AppendFragment(nil, k)
			if err != nil {
				t.Fatal(err)
			}
			moof := int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
			size += len(b) - moof - 8 // the media, without moof and mdat header
		}
		got := float64(size*8) / (n * s.cfg.FragmentDuration.Seconds())
		if got < 0.95*float64(tr.Bitrate) || got > 1.05*float64(tr.Bitrate) {
			t.Errorf("track %d (%s %d): carries %.0f bit/s", i+1, tr.Kind, tr.Bitrate, got)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no tracks", Config{}, "no tracks"},
		{"fractional frames", Config{Tracks: ladder, FragmentDuration: 1010 * time.Millisecond}, "whole number of frames"},
		{"odd size", Config{Tracks: []Track{{Kind: timeline.Video, Bitrate: 1, Width: 641, Height: 360}}}, "even sizes"},
		{"zero bitrate", Config{Tracks: []Track{{Kind: timeline.Audio}}}, "bitrate"},
		{"text codec", Config{Tracks: []Track{{Kind: timeline.Text, Bitrate: 1000, TextOptions: TextOptions{Codec: "tx3g"}}}}, "text codec"},
		{"data track", Config{Tracks: []Track{{Kind: "data", Bitrate: 1000}}}, "not supported"},
		{"sample rate", Config{Tracks: ladder, SampleRate: 12345}, "sample rate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error about %q", err, tc.want)
			}
		})
	}
}

// ffmpeg, a real decoder, decodes every picture and all the audio of a
// synthetic push without a single warning.
func TestFFmpegDecodesTheStream(t *testing.T) {
	ffmpeg := testtool.Require(t, "ffmpeg")
	const n = 3
	cfg := Config{Tracks: ladder, SMIL: true}
	_, body := encode(t, cfg, Range{Count: n, End: true})
	path := filepath.Join(t.TempDir(), "synth.ismv")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		stream string
		want   int
	}{
		{"0:v:0", n * 2 * 25},
		{"0:v:1", n * 2 * 25},
		{"0:a:0", n * 2 * 48000 / 1024}, // whole AAC frames in 6 s
	} {
		cmd := exec.Command(ffmpeg, "-hide_banner", "-v", "warning", "-i", path, "-map", m.stream, "-f", "framecrc", "-")
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("ffmpeg %s: %v\n%s", m.stream, err, stderr.String())
		}
		if s := strings.TrimSpace(stderr.String()); s != "" {
			t.Errorf("ffmpeg %s warned:\n%s", m.stream, s)
		}
		frames := 0
		for _, l := range strings.Split(out.String(), "\n") {
			if l != "" && !strings.HasPrefix(l, "#") {
				frames++
			}
		}
		if frames < m.want-1 || frames > m.want+1 {
			t.Errorf("%s: %d frames decoded, want %d", m.stream, frames, m.want)
		}
	}
}

// A CMAF push (interface 1) is one track: a cmfc ftyp, its moov, then per
// fragment styp, a moof timed by tfdt alone and the mdat, and no mfra.
// The relay's demuxer reads it as it reads Smooth; ffmpeg decodes it.
func TestCMAFTrackPush(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	const n = 4
	for _, cfg := range (Config{Tracks: ladder, CMAF: true}).Split() {
		t.Run(string(cfg.Tracks[0].Kind)+strconv.Itoa(cfg.Tracks[0].Bitrate), func(t *testing.T) {
			s, body := encode(t, cfg, Range{Count: n, End: true})
			if string(body[4:12]) != "ftypcmfc" {
				t.Errorf("starts with %q, want a cmfc ftyp", body[4:12])
			}
			for _, want := range []string{"styp", "tfdt"} {
				if c := bytes.Count(body, []byte(want)); c != n {
					t.Errorf("%d %s boxes, want %d", c, want, n)
				}
			}
			if bytes.Contains(body, []byte("mfra")) || bytes.Contains(body, []byte(serverManifestUUID)) || bytes.Contains(body, []byte("\x6d\x1d\x9b\x05\x42\xd5\x44\xe6")) {
				t.Error("a CMAF push carries an mfra, a server manifest or a tfxd")
			}
			var c collect
			stats, err := ingest.Read(context.Background(), bytes.NewReader(body), ingest.NewSession(&c, quiet, ingest.Options{}), ingest.ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if stats.Fragments != n || len(c.inits) != 1 || stats.Ended {
				t.Fatalf("stats %+v, %d init segments; want %d fragments, 1 init, no mfra", stats, len(c.inits), n)
			}
			if h := c.inits[0]; h.ID.Bitrate != cfg.Tracks[0].Bitrate || h.Kind != cfg.Tracks[0].Kind {
				t.Errorf("track %s %d, want %s %d", h.Kind, h.ID.Bitrate, cfg.Tracks[0].Kind, cfg.Tracks[0].Bitrate)
			}
			for k, f := range c.frags {
				if int64(f.Start) != s.Start(0, k) {
					t.Errorf("fragment %d starts at %d, want %d", k, f.Start, s.Start(0, k))
				}
			}
		})
	}
	if _, err := New(Config{Tracks: ladder, CMAF: true}); err == nil {
		t.Error("a CMAF stream of three tracks was accepted")
	}
	if _, err := New(Config{Tracks: ladder[2:], CMAF: true, AudioOffset: -time.Millisecond}); err == nil {
		t.Error("a CMAF track starting before zero was accepted")
	}
}

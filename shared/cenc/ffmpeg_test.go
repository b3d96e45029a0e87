package cenc_test

import (
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/mp4box"
)

// ffmpegStored is the first fragment of what ffmpeg encodes with args
// (one track, fragmented), as the relay stores it.
func ffmpegStored(t *testing.T, ffmpeg string, args ...string) stored {
	t.Helper()
	out := filepath.Join(t.TempDir(), "src.mp4")
	args = append(append([]string{"-v", "error", "-nostdin"}, args...), "-f", "mp4", out)
	if b, err := exec.Command(ffmpeg, args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	moov := decodeMoov(t, b)
	var moofAt int
	for box, err := range mp4box.All(b) {
		if err != nil {
			t.Fatal(err)
		}
		switch box.Type {
		case "moof":
			moofAt = int(box.Pos)
		case "mdat":
			return storeFragment(t, moov, moov.Trak.Tkhd.TrackID, b[moofAt:int(box.Pos)+box.Size()])
		}
	}
	t.Fatal("ffmpeg wrote no fragment")
	return stored{}
}

// framecrc is ffmpeg's framecrc of the decoded frames of file (init
// segment and fragment), with the decryption key given when key is set.
func framecrc(t *testing.T, ffmpeg string, file []byte, key []byte) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.mp4")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-v", "error", "-nostdin"}
	if key != nil {
		args = append(args, "-decryption_key", hex.EncodeToString(key))
	}
	args = append(args, "-i", path, "-map", "0", "-f", "framecrc", "-")
	out, err := exec.Command(ffmpeg, args...).Output()
	return string(out), err
}

// ffmpeg, a player that knows nothing of smoothcast, decrypts what
// Fragment encrypts (its decryption_key) and decodes the same frames as
// from the clear fragment: AVC, HEVC and AV1 by subsamples, AAC, AC-3, E-AC-3
// and Opus whole; cenc with the init's key and with a rotated one (the
// moof's pssh and seig group in its way), cbcs with the init's (ffmpeg
// 5.1 takes cbcs's constant IV from tenc alone, never from a seig
// group). Without the key it decodes other frames.
func TestFFmpegDecryptsWhatFragmentEncrypts(t *testing.T) {
	ffmpeg := testtool.Require(t, "ffmpeg")
	k1, k2 := keys(t)
	const frag = "frag_keyframe+empty_moov+default_base_moof"
	video := []string{"-f", "lavfi", "-i", "testsrc=size=320x180:rate=25", "-t", "1", "-pix_fmt", "yuv420p", "-movflags", frag}
	// delay_moov: the moov waits for the first (E-)AC-3 frame's parameters.
	sine := []string{"-f", "lavfi", "-i", "sine=f=440:sample_rate=48000", "-t", "1", "-movflags", frag + "+delay_moov", "-frag_duration", "2000000"}
	with := func(base []string, more ...string) []string { return append(slices.Clip(base), more...) }
	sources := map[string][]string{
		"avc":    with(video, "-c:v", "libx264", "-g", "25"),
		"hevc":   with(video, "-c:v", "libx265", "-x265-params", "keyint=25:log-level=error", "-tag:v", "hvc1"),
		"av1":    with(video, "-c:v", "libsvtav1", "-g", "25", "-preset", "12"),
		"aac":    with(sine, "-c:a", "aac", "-b:a", "64k"),
		"ac-3":   with(sine, "-c:a", "ac3", "-b:a", "96k"),
		"e-ac-3": with(sine, "-c:a", "eac3", "-b:a", "96k"),
		"opus":   with(sine, "-c:a", "libopus", "-b:a", "64k"),
	}
	for name, args := range sources {
		s := ffmpegStored(t, ffmpeg, args...)
		want, err := framecrc(t, ffmpeg, join(s.init, s.fragment()), nil)
		if err != nil || strings.Count(want, "\n0,") < 10 {
			t.Fatalf("%s: framecrc of the clear fragment: %v\n%s", name, err, want)
		}
		for _, tc := range []struct {
			scheme cenc.Scheme
			p      cenc.Period
		}{{cenc.CENC, period(k1)}, {cenc.CENC, period(k2)}, {cenc.CBCS, period(k1)}} {
			p := tc.p
			t.Run(name+"/"+string(tc.scheme)+"/"+p.Key.String(), func(t *testing.T) {
				tr, init := protected(t, s, tc.scheme)
				h, b, err := tr.Fragment(s.head, s.payload, p, k1.KID)
				if err != nil {
					t.Fatal(err)
				}
				file := join(init, h, b)
				got, err := framecrc(t, ffmpeg, file, p.Key.Value[:])
				if err != nil || got != want {
					t.Errorf("decrypted by ffmpeg: %v\n%s\nwant\n%s", err, got, want)
				}
				if none, _ := framecrc(t, ffmpeg, file, nil); none == want {
					t.Error("ffmpeg decoded the clear frames without the key")
				}
				if bytes.Equal(b, s.payload) {
					t.Error("the stored media is the clear one")
				}
			})
		}
	}
}

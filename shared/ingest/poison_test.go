package ingest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/ism"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

const year = 36525 * 24 * time.Hour / 100

// pushOf is a synthetic push of n 2 s fragments of a small video and an
// audio track, as an encoder sends it.
func pushOf(t testing.TB, cfg synth.Config, n int) []byte {
	t.Helper()
	if len(cfg.Tracks) == 0 {
		cfg.Tracks = []synth.Track{{Kind: timeline.Video, Bitrate: 20_000, Width: 32, Height: 16}, {Kind: timeline.Audio, Bitrate: 8_000}}
	}
	s, err := synth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := s.WriteTo(context.Background(), &b, synth.Range{Count: n, End: true}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// editMoofs returns body with each moof edited in place by edit (given
// its index among the moofs): edits that keep the moof's size (times,
// durations of the same versions).
func editMoofs(t *testing.T, body []byte, edit func(i int, traf *mp4.TrafBox)) []byte {
	t.Helper()
	out := bytes.Clone(body)
	i := 0
	for box, err := range mp4box.All(body) {
		if err != nil {
			t.Fatal(err)
		}
		if box.Type != "moof" {
			continue
		}
		moof, err := fmp4.DecodeMoof(box.Data)
		if err != nil {
			t.Fatal(err)
		}
		edit(i, moof.Traf)
		i++
		var b bytes.Buffer
		if err := moof.Encode(&b); err != nil || b.Len() != box.Size() {
			t.Fatalf("moof %d: re-encoded to %d bytes (%v), want %d", i, b.Len(), err, box.Size())
		}
		copy(out[box.Pos:], b.Bytes())
	}
	return out
}

// setTfxd sets a traf's tfxd time to at(its time).
func setTfxd(traf *mp4.TrafBox, at func(uint64) uint64) {
	for _, c := range traf.Children {
		if u, ok := c.(*mp4.UUIDBox); ok && u.Tfxd != nil {
			u.Tfxd.FragmentAbsoluteTime = at(u.Tfxd.FragmentAbsoluteTime)
		}
	}
}

// shifted moves every fragment of body by d (10 MHz ticks, wrapping).
func shifted(t *testing.T, body []byte, d uint64) []byte {
	return editMoofs(t, body, func(_ int, traf *mp4.TrafBox) { setTfxd(traf, func(at uint64) uint64 { return at + d }) })
}

// inMoov returns body with every occurrence of box typ in the moov given
// the 32-bit value v at offset at of its payload.
func inMoov(t *testing.T, body []byte, typ string, at int, v uint32) []byte {
	t.Helper()
	out := bytes.Clone(body)
	moov, ok := mp4box.Find(out, "moov")
	if !ok {
		t.Fatal("no moov")
	}
	n := 0
	for i := 0; ; n++ {
		j := bytes.Index(moov.Data[i:], []byte(typ))
		if j < 0 {
			break
		}
		i += j + 4
		binary.BigEndian.PutUint32(moov.Data[i+at:], v)
	}
	if n == 0 {
		t.Fatalf("no %s in the moov", typ)
	}
	return out
}

// withSMIL returns body with its live server manifest's document passed
// through edit.
func withSMIL(t *testing.T, body []byte, edit func(doc string) string) []byte {
	t.Helper()
	var out []byte
	for box, err := range mp4box.All(body) {
		if err != nil {
			t.Fatal(err)
		}
		if box.Type != "uuid" {
			out = append(out, box.Data...)
			continue
		}
		p := box.Payload()
		doc := edit(string(ism.ServerManifestDoc(p[16:])))
		head := p[:len(p)-len(ism.ServerManifestDoc(p[16:]))]
		out = binary.BigEndian.AppendUint32(out, uint32(8+len(head)+len(doc)))
		out = append(append(append(out, "uuid"...), head...), doc...)
	}
	return out
}

// Timestamps, durations, timescales and bitrates that no real encoder
// sends, and tracks of one push that disagree, are refused with a
// ProtocolError that says why, before the clock is asked and before
// anything of the refused track is stored (a refusal at the moov or at a
// stream's first fragment stores nothing at all); what real encoders send
// passes.
func TestTimingNoEncoderSendsPoisonsNothing(t *testing.T) {
	smooth := func(cfg synth.Config) []byte { return pushOf(t, cfg, 3) }
	ffmpeg := readFixture(t, "ffmpeg-isml.ismv")
	for _, tc := range []struct {
		name string
		body []byte
		// says is what the refusal says ("" when the push is accepted);
		// stored, how many fragments reach the sink; asked, how many
		// times the clock is.
		says          string
		stored, asked int
	}{
		{"ffmpeg's push", ffmpeg, "", 6, 1},
		{"ffmpeg's audio, one AAC frame early", smooth(synth.Config{AudioOffset: -21333 * time.Microsecond}), "", 6, 1},
		{"audio 9 s after its video, within the skew", smooth(synth.Config{AudioOffset: 9 * time.Second}), "", 6, 1},
		{"every track on the Unix epoch's clock", shifted(t, smooth(synth.Config{}), uint64(56*year/time.Second)*10_000_000), "", 6, 1},
		{"a 90 kHz push", smooth(synth.Config{Timescale: 90_000}), "", 6, 1},

		// The examples.
		{"audio ten years after its video", smooth(synth.Config{AudioOffset: 10 * year}),
			"the track starts at 10.0 years, 10.0 years from track 1's fragments (0 ms to 2 s): the tracks of a stream start within 10s", 1, 1},
		{"every fragment at tfxd time 2^64-1", editMoofs(t, smooth(synth.Config{}), func(_ int, traf *mp4.TrafBox) {
			setTfxd(traf, func(uint64) uint64 { return math.MaxUint64 })
		}),
			"0.0001 ms before time zero, after the track's fragments up to 2.01 s", 1, 1},
		{"timescale 1", inMoov(t, smooth(synth.Config{}), "mdhd", 12, 1), "timescale 1:", 0, 0},
		{"a fragment whose samples last 1.4 years", editMoofs(t, smooth(synth.Config{Timescale: 1000}), func(i int, traf *mp4.TrafBox) {
			if i == 2 { // the second video fragment
				for j := range traf.Trun.Samples {
					traf.Trun.Samples[j].Dur = 885_000_000 // 50 frames of 10 days
				}
			}
		}), "a fragment of 1.4 years", 2, 1},
		{"a SMIL systemBitrate of 2^31", withSMIL(t, smooth(synth.Config{SMIL: true}), func(doc string) string {
			return strings.ReplaceAll(doc, `"20000"`, `"2147483648"`)
		}), "2147483648 bit/s is more than a manifest can carry", 0, 0},

		// The rest of the class.
		{"audio 13 s after its video, 11 s after the video's first fragment", smooth(synth.Config{AudioOffset: 13 * time.Second}), "the tracks of a stream start within 10s", 1, 1},
		{"audio a minute before its video", smooth(synth.Config{AudioOffset: -time.Minute}), "before time zero", 1, 1},
		{"a first fragment at tfxd time 2^63-1", shifted(t, smooth(synth.Config{}), math.MaxInt64), "of media time", 0, 0},
		{"a first fragment 200 years into media time", shifted(t, smooth(synth.Config{}), uint64(200*year/time.Second)*10_000_000),
			"200.0 years of media time", 0, 0},
		{"a first fragment of one tick per sample", editMoofs(t, smooth(synth.Config{}), func(i int, traf *mp4.TrafBox) {
			for j := range traf.Trun.Samples {
				traf.Trun.Samples[j].Dur = 1
			}
		}), "a fragment lasts 5ms to 1m0s", 0, 0},
		{"a timescale of 2^32-1", inMoov(t, smooth(synth.Config{}), "mdhd", 12, math.MaxUint32), "timescale 4294967295", 0, 0},
		{"a btrt of 2^32-1 bit/s", inMoov(t, smooth(synth.Config{}), "btrt", 8, math.MaxUint32), "4294967295 bit/s is more than a manifest can carry", 0, 0},
		{"a SMIL systemBitrate of 500", withSMIL(t, smooth(synth.Config{SMIL: true}), func(doc string) string {
			return strings.ReplaceAll(doc, `"8000"`, `"500"`)
		}), "500 bit/s is less than any real track", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink, clock := &recordingSink{}, &fakeClock{offsets: []time.Duration{0}}
			_, err := run(NewSession(sink, quiet, Options{Clock: clock}), bytes.NewReader(tc.body))
			if tc.says == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			} else {
				var perr *ProtocolError
				if !errors.As(err, &perr) || !errors.Is(err, fmp4.ErrTiming) && !errors.Is(err, ism.ErrBitrate) || !strings.Contains(err.Error(), tc.says) {
					t.Fatalf("err %v, want a ProtocolError about timing or bitrate saying %q", err, tc.says)
				}
			}
			if len(sink.frags) != tc.stored || len(clock.asked) != tc.asked {
				t.Errorf("%d fragments stored, clock asked %d times; want %d and %d", len(sink.frags), len(clock.asked), tc.stored, tc.asked)
			}
			if tc.stored == 0 && len(sink.inits) != 0 {
				t.Errorf("%d init segments stored by a push refused before its first fragment", len(sink.inits))
			}
			// What was stored is on the stream's first fragment's clock.
			for _, f := range sink.frags {
				checkStoredFragment(t, f)
				if at := fmp4.Duration(int64(f.Start), 10_000_000); tc.says != "" && at > time.Minute {
					t.Errorf("a fragment of the refused push stored at %v", at)
				}
			}
		})
	}
}

// countingReader counts what was read of it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// A live server manifest (any uuid box) is capped at MaxServerManifest,
// and a source's per-type limits (Options.Limit) apply: a box over its
// type's limit is refused with mp4box.ErrTooLarge (413) once its header is
// read, before it is read whole or parsed, whether the session reads it
// from a stream (a push) or is handed it (an upload); one within the cap
// is taken.
func TestBoxesOverTheirTypesLimitAreRefusedUnread(t *testing.T) {
	body := pushOf(t, synth.Config{SMIL: true}, 2)
	padded := func(n int) []byte {
		return withSMIL(t, body, func(doc string) string {
			return strings.Replace(doc, "<head>", "<head><!--"+strings.Repeat("x", n)+"-->", 1)
		})
	}
	uuid, _ := mp4box.Find(body, "uuid")
	// A header that claims a 23 MB live server manifest, then its bytes.
	huge := append(bytes.Clone(body[:uuid.Pos]), binary.BigEndian.AppendUint32(nil, 23<<20)...)
	huge = append(append(huge, "uuid"...), uuid.Payload()...)
	huge = append(huge, make([]byte, 23<<20-uuid.Size())...)
	for _, tc := range []struct {
		name    string
		body    []byte
		limit   func(string) int
		refused string // the box refused, "" when none
	}{
		{"a live server manifest of 200 KiB", padded(200 << 10), nil, ""},
		{"a live server manifest of 300 KiB", padded(300 << 10), nil, "uuid box of"},
		{"a live server manifest of 23 MB", huge, nil, "uuid box of 24117248 bytes"},
		{"a uuid cap that Limit would raise", padded(300 << 10), func(string) int { return 64 << 20 }, "uuid box of"},
		{"a moof over the source's moof limit", body, func(typ string) int {
			if typ == "moof" {
				return 100
			}
			return 0
		}, "moof box of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{Limit: tc.limit}
			in := &countingReader{r: bytes.NewReader(tc.body)}
			_, readErr := run(NewSession(&recordingSink{}, quiet, opts), in)
			fed := NewSession(&recordingSink{}, quiet, opts)
			var fedErr error
			for box, err := range mp4box.All(tc.body) {
				if err != nil {
					t.Fatal(err)
				}
				if fedErr = fed.Box(context.Background(), box); fedErr != nil {
					break
				}
			}
			for how, err := range map[string]error{"read": readErr, "fed": fedErr} {
				var perr *ProtocolError
				switch {
				case tc.refused == "" && err != nil:
					t.Errorf("%s: refused: %v", how, err)
				case tc.refused != "" && (!errors.As(err, &perr) || !errors.Is(err, mp4box.ErrTooLarge) || !strings.Contains(err.Error(), tc.refused)):
					t.Errorf("%s: err %v, want a ProtocolError wrapping ErrTooLarge about the %q", how, err, tc.refused)
				}
			}
			if tc.refused != "" {
				// Read stops at the refused box's header.
				box, _ := mp4box.Find(tc.body, strings.Fields(tc.refused)[0])
				if in.n > int(box.Pos)+16 {
					t.Errorf("read %d bytes, past the header of the refused box at %d", in.n, box.Pos)
				}
			}
		})
	}
}

package ism

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// chunkReader returns at most n bytes per Read (n from a seeded source
// when random).
type chunkReader struct {
	r   io.Reader
	n   int
	rng *rand.Rand
}

func (c *chunkReader) Read(p []byte) (int, error) {
	n := c.n
	if c.rng != nil {
		n = 1 + c.rng.IntN(4096)
	}
	return c.r.Read(p[:min(len(p), n)])
}

func readers(b []byte) map[string]func() io.Reader {
	return map[string]func() io.Reader{
		"whole":   func() io.Reader { return bytes.NewReader(b) },
		"1 byte":  func() io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"7 bytes": func() io.Reader { return &chunkReader{r: bytes.NewReader(b), n: 7} },
		"random":  func() io.Reader { return &chunkReader{r: bytes.NewReader(b), rng: rand.New(rand.NewPCG(1, 2))} },
	}
}

func TestParseSMILOfFFmpeg(t *testing.T) {
	br := mp4box.NewReader(bytes.NewReader(readFixture(t, "ffmpeg-isml.ismv")), 1<<20)
	var doc []byte
	for doc == nil {
		b, err := br.Next()
		if err != nil {
			t.Fatal(err)
		}
		if b.Type == "uuid" {
			doc = bytes.Clone(ServerManifestDoc(b.Payload()[16:]))
		}
	}
	tracks, err := ParseSMIL(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := []SMILTrack{
		{Kind: "video", SystemBitrate: 60000, TrackID: 1, TrackName: "video", Language: "und"},
		{Kind: "video", SystemBitrate: 30000, TrackID: 2, TrackName: "video", Language: "und"},
		{Kind: "audio", SystemBitrate: 32000, TrackID: 3, TrackName: "audio", Language: "und"},
	}
	if len(tracks) != len(want) {
		t.Fatalf("%d tracks, want %d", len(tracks), len(want))
	}
	for i, w := range want {
		g := tracks[i]
		if g.Kind != w.Kind || g.SystemBitrate != w.SystemBitrate || g.TrackID != w.TrackID || g.TrackName != w.TrackName || g.Language != w.Language {
			t.Errorf("track %d: %+v, want %+v", i, g, w)
		}
	}
	for _, bad := range []string{"<smil><body><switch><video systemBitrate=\"fast\"/></switch></body></smil>", "not xml <"} {
		if _, err := ParseSMIL([]byte(bad)); err == nil {
			t.Errorf("ParseSMIL(%q) accepted it", bad)
		}
	}
}

type recordingSink struct {
	inits []TrackHeader
	frags []Fragment
}

func (r *recordingSink) Init(_ context.Context, h TrackHeader) error {
	h.Init = bytes.Clone(h.Init)
	r.inits = append(r.inits, h)
	return nil
}

func (r *recordingSink) Fragment(_ context.Context, f Fragment) error {
	// Keep a copy: the parts are only valid during the call.
	f.Head, f.Payload = f.Bytes(), nil
	r.frags = append(r.frags, f)
	return nil
}

func TestSessionSplitsTracksWhateverTheChunkSize(t *testing.T) {
	body := readFixture(t, "ffmpeg-isml.ismv")
	var ref *recordingSink
	for _, name := range []string{"whole", "1 byte", "7 bytes", "random"} {
		t.Run(name, func(t *testing.T) {
			sink := &recordingSink{}
			stats, err := NewSession(sink, quiet, Options{}).Run(context.Background(), readers(body)[name]())
			if err != nil {
				t.Fatal(err)
			}
			if !stats.Ended || stats.Trimmed != 1 || stats.Fragments != 6 || int(stats.Bytes) != len(body) {
				t.Fatalf("stats %+v", stats)
			}
			ids := map[layout.TrackID]bool{}
			for _, h := range sink.inits {
				ids[h.ID] = true
			}
			for _, id := range []layout.TrackID{{Name: "video", Bitrate: 60000}, {Name: "video", Bitrate: 30000}, {Name: "audio", Bitrate: 32000}} {
				if !ids[id] {
					t.Errorf("no init segment for %s (got %v)", id, ids)
				}
			}
			next := map[layout.TrackID]uint64{}
			for _, f := range sink.frags {
				if n, seen := next[f.ID]; seen {
					if !f.HasPrev || f.Start != n {
						t.Errorf("%s: fragment at %d (prev %v), want contiguous at %d", f.ID, f.Start, f.HasPrev, n)
					}
				} else if f.HasPrev || f.Start != 0 {
					t.Errorf("%s: first fragment at %d with prev %v, want 0 and none", f.ID, f.Start, f.HasPrev)
				}
				next[f.ID] = f.Start + f.Duration
			}
			if ref == nil {
				ref = sink
				return
			}
			for i := range ref.frags {
				if !bytes.Equal(ref.frags[i].Bytes(), sink.frags[i].Bytes()) {
					t.Fatalf("fragment %d differs from the whole read", i)
				}
			}
		})
	}
}

func TestSessionMeasuresBitrateWithoutServerManifest(t *testing.T) {
	sink := &recordingSink{}
	if _, err := NewSession(sink, quiet, Options{}).Run(context.Background(), bytes.NewReader(readFixture(t, "ffmpeg-plain.ismv"))); err != nil {
		t.Fatal(err)
	}
	for _, h := range sink.inits {
		switch {
		case h.ID.Name == "audio" && h.ID.Bitrate != 32000:
			t.Errorf("audio bitrate %d, want the esds's 32000", h.ID.Bitrate)
		case h.ID.Name == "video" && (h.ID.Bitrate < 10000 || h.ID.Bitrate%1000 != 0):
			t.Errorf("measured video bitrate %d", h.ID.Bitrate)
		}
	}
}

func TestSessionRefusesMalformedStreams(t *testing.T) {
	body := readFixture(t, "ffmpeg-isml.ismv")
	moov := bytes.Index(body, []byte("moov")) - 4
	moof := bytes.Index(body, []byte("moof")) - 4
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"moof before moov", append(append([]byte{}, body[:moov]...), body[moof:]...)},
		{"mdat without moof", append(append([]byte{}, body[:moof]...), 0, 0, 0, 8, 'm', 'd', 'a', 't')},
		{"truncated inside a fragment", body[:moof+5000]},
		{"garbage", bytes.Repeat([]byte{0xde, 0xad}, 100)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &recordingSink{}
			_, err := NewSession(sink, quiet, Options{}).Run(context.Background(), bytes.NewReader(tc.in))
			var perr *ProtocolError
			if !errors.As(err, &perr) {
				t.Fatalf("err = %v, want a ProtocolError", err)
			}
		})
	}
}

// synthSeed is a tiny synthetic push (two short fragments of a small
// video and an audio track): small seeds keep the fuzzer fast.
func synthSeed(f *testing.F, cfg synth.Config) []byte {
	f.Helper()
	if len(cfg.Tracks) == 0 {
		cfg.Tracks = []synth.Track{
			{Kind: timeline.Video, Bitrate: 20_000, Width: 32, Height: 16},
			{Kind: timeline.Audio, Bitrate: 8_000},
		}
	}
	cfg.FragmentDuration, cfg.FrameRate = 200*time.Millisecond, 10
	s, err := synth.New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := s.WriteTo(context.Background(), &b, synth.Range{Count: 2, End: true}); err != nil {
		f.Fatal(err)
	}
	return b.Bytes()
}

// FuzzSession feeds arbitrary bodies to a session: it may refuse them, but
// only with a ProtocolError, and whatever it hands the sink must be a
// well-formed fragment whose tfxd and tfdt agree with what it reports.
func FuzzSession(f *testing.F) {
	f.Add(synthSeed(f, synth.Config{SMIL: true}))
	f.Add(synthSeed(f, synth.Config{NoBitrateBoxes: true, AudioOffset: -20 * time.Millisecond}))
	f.Add(readFixture(f, "ffmpeg-plain.ismv")[:4000])
	f.Add([]byte{0, 0, 0, 8, 'm', 'o', 'o', 'f'})
	f.Fuzz(func(t *testing.T, in []byte) {
		sink := &recordingSink{}
		_, err := NewSession(sink, quiet, Options{MaxBox: 1 << 20}).Run(context.Background(), bytes.NewReader(in))
		var perr *ProtocolError
		if err != nil && !errors.As(err, &perr) {
			t.Fatalf("error that is not a ProtocolError: %v", err)
		}
		for _, fr := range sink.frags {
			checkStoredFragment(t, fr)
		}
	})
}

// checkStoredFragment checks a fragment as the relay stores it.
func checkStoredFragment(t *testing.T, fr Fragment) {
	t.Helper()
	info, err := fmp4.Inspect(fr.Bytes())
	if err != nil {
		t.Fatalf("stored fragment: %v", err)
	}
	if info.Start != fr.Start || info.TrackID != fr.TrackID {
		t.Fatalf("stored fragment of track %d at %d, reported as track %d at %d", info.TrackID, info.Start, fr.TrackID, fr.Start)
	}
}

// The relay describes each track from its moov exactly as ffmpeg describes
// it in its live server manifest (CodecPrivateData, FourCC, sizes).
func TestTracksDescribeAsTheEncoderDeclares(t *testing.T) {
	body := readFixture(t, "ffmpeg-isml.ismv")
	br := mp4box.NewReader(bytes.NewReader(body), 1<<20)
	var smil []SMILTrack
	for smil == nil {
		box, err := br.Next()
		if err != nil {
			t.Fatal(err)
		}
		if box.Type == "uuid" {
			if smil, err = ParseSMIL(ServerManifestDoc(box.Payload()[16:])); err != nil {
				t.Fatal(err)
			}
		}
	}
	sink := &recordingSink{}
	if _, err := NewSession(sink, quiet, Options{}).Run(context.Background(), bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if len(sink.inits) != 3 || len(smil) != 3 {
		t.Fatalf("%d tracks, %d declared; want 3", len(sink.inits), len(smil))
	}
	for _, h := range sink.inits {
		got, err := fmp4.ParseInit(h.Init)
		if err != nil {
			t.Fatal(err)
		}
		var decl SMILTrack
		for _, st := range smil {
			if st.TrackID == h.TrackID {
				decl = st
			}
		}
		want := decl.Params["CodecPrivateData"]
		if !strings.EqualFold(got.CodecPrivateData, want) || got.FourCC != decl.Params["FourCC"] {
			t.Errorf("track %d: CodecPrivateData %s FourCC %s; ffmpeg declares %s %s", h.TrackID, got.CodecPrivateData, got.FourCC, want, decl.Params["FourCC"])
		}
		if w := decl.Params["MaxWidth"]; w != "" && w != strconv.Itoa(got.Width) {
			t.Errorf("track %d: width %d, ffmpeg declares %s", h.TrackID, got.Width, w)
		}
		if sr := decl.Params["SamplingRate"]; sr != "" && sr != strconv.Itoa(got.SamplingRate) {
			t.Errorf("track %d: sampling rate %d, ffmpeg declares %s", h.TrackID, got.SamplingRate, sr)
		}
	}
}

// renderSMIL writes tracks back as a live server manifest.
func renderSMIL(tracks []SMILTrack) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><smil xmlns="http://www.w3.org/2001/SMIL20/Language"><body><switch>`)
	for _, t := range tracks {
		fmt.Fprintf(&b, `<%s systemBitrate="%d">`, t.Kind, t.SystemBitrate)
		for _, n := range slices.Sorted(maps.Keys(t.Params)) {
			b.WriteString(`<param name="`)
			_ = xml.EscapeText(&b, []byte(n))
			b.WriteString(`" value="`)
			_ = xml.EscapeText(&b, []byte(t.Params[n]))
			b.WriteString(`"/>`)
		}
		fmt.Fprintf(&b, `</%s>`, t.Kind)
	}
	b.WriteString(`</switch></body></smil>`)
	return b.Bytes()
}

// xmlName matches the element names renderSMIL can write back as they are.
var xmlName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9._-]*$`)

// FuzzParseSMIL: any document parses or fails with an error. What parses
// has non-negative bitrates, gives track names the session can only turn
// into safe ones, and round-trips: written back as SMIL (each bitrate as
// the systemBitrate attribute) and parsed again, it gives the same tracks,
// so bitrates, track IDs, names and parameters are what the document said.
func FuzzParseSMIL(f *testing.F) {
	body := readFixture(f, "ffmpeg-isml.ismv")
	i, j := bytes.Index(body, []byte("<?xml")), bytes.Index(body, []byte("</smil>"))
	f.Add(body[i : j+len("</smil>")])
	f.Add([]byte(`<smil><body><switch><video systemBitrate="1"><param name="trackID" value="2"/></video></switch></body></smil>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		tracks, err := ParseSMIL(doc)
		if err != nil {
			return
		}
		renderable := true
		for _, tr := range tracks {
			if tr.SystemBitrate < 0 {
				t.Fatalf("negative bitrate %d", tr.SystemBitrate)
			}
			for _, fallback := range []string{"video", "audio"} {
				if name := layout.SanitizeName(tr.TrackName, fallback); !layout.ValidName(name) {
					t.Fatalf("track name %q gives the unsafe name %q", tr.TrackName, name)
				}
			}
			if tr.TrackName != tr.Params["trackName"] || tr.Language != tr.Params["systemLanguage"] {
				t.Fatalf("track %+v: name or language is not its parameter", tr)
			}
			renderable = renderable && xmlName.MatchString(tr.Kind)
		}
		if !renderable {
			return
		}
		again, err := ParseSMIL(renderSMIL(tracks))
		if err != nil {
			t.Fatalf("the parsed tracks, written back, do not parse: %v\n%s", err, renderSMIL(tracks))
		}
		if !reflect.DeepEqual(again, tracks) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", again, tracks)
		}
	})
}

// The live server manifest's tracks round-trip through renderSMIL, and
// refused documents are refused with a reason.
func TestParseSMILRoundTrip(t *testing.T) {
	body := readFixture(t, "ffmpeg-isml.ismv")
	i, j := bytes.Index(body, []byte("<?xml")), bytes.Index(body, []byte("</smil>"))
	for _, tc := range []struct {
		name, doc string
		ok        bool
	}{
		{"ffmpeg's", string(body[i : j+len("</smil>")]), true},
		{"bitrate as a parameter", `<smil><body><switch><audio><param name="systemBitrate" value="0064000"/><param name="trackID" value="3"/></audio></switch></body></smil>`, true},
		{"escaped names", `<smil><body><switch><video systemBitrate="5"><param name="trackName" value="a&amp;b&#xA;c/../d"/></video></switch></body></smil>`, true},
		{"negative bitrate", `<smil><body><switch><video systemBitrate="-1"/></switch></body></smil>`, false},
		{"bitrate not a number", `<smil><body><switch><video systemBitrate="fast"/></switch></body></smil>`, false},
		{"track ID past 32 bits", `<smil><body><switch><video><param name="trackID" value="4294967296"/></video></switch></body></smil>`, false},
		{"not XML", "not xml <", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tracks, err := ParseSMIL([]byte(tc.doc))
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok {
				if !strings.Contains(err.Error(), "live server manifest") {
					t.Errorf("error %q does not say what was refused", err)
				}
				return
			}
			again, err := ParseSMIL(renderSMIL(tracks))
			if err != nil || !reflect.DeepEqual(again, tracks) {
				t.Fatalf("round trip: %+v, %v; want %+v", again, err, tracks)
			}
		})
	}
}

// fakeClock answers the offsets it is given, one call after another (the
// last one again when they run out), and records what it was asked.
type fakeClock struct {
	offsets []time.Duration
	asked   []time.Duration // the fragments' ends
	queries []ClockQuery
}

func (c *fakeClock) Offset(_ context.Context, q ClockQuery) (time.Duration, error) {
	c.asked = append(c.asked, q.End)
	c.queries = append(c.queries, q)
	off := c.offsets[min(len(c.asked), len(c.offsets))-1]
	return off, nil
}

// An encoder whose timestamps go back (it restarted inside one request)
// is rebased by the clock: its fragments continue the channel's timeline,
// the first of each track after the jump is marked Disc, and the chain of
// previous fragments goes on.
func TestSessionRebasesAJumpOntoTheClock(t *testing.T) {
	cfg := synth.Config{Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 100_000}, {Kind: timeline.Audio, Bitrate: 64_000}}}
	s, err := synth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	body, err := s.Header()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []int{0, 1, 2, 0, 1} { // the encoder restarts after 3 fragments
		if body, err = s.AppendFragment(body, k); err != nil {
			t.Fatal(err)
		}
	}
	sink := &recordingSink{}
	clock := &fakeClock{offsets: []time.Duration{0, 100 * time.Second}}
	sess := NewSession(sink, quiet, Options{Clock: clock})
	if _, err := sess.Run(context.Background(), bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	// Asked at the first fragment, at the video's jump and at the audio's.
	if len(clock.asked) != 3 || clock.asked[0] != 2*time.Second {
		t.Errorf("clock asked %v, want 3 times, first with 2 s", clock.asked)
	}
	const second = 10_000_000
	type got struct {
		start uint64
		disc  bool
		prev  uint64
	}
	perTrack := map[string][]got{}
	for _, f := range sink.frags {
		perTrack[f.ID.Name] = append(perTrack[f.ID.Name], got{f.Start, f.Disc, f.Prev})
	}
	for i, name := range []string{"video", "audio"} {
		at := func(k int, rebased bool) uint64 {
			t := uint64(s.Start(i, k))
			if rebased {
				t += 100 * second
			}
			return t
		}
		want := []got{{at(0, false), false, 0}, {at(1, false), false, at(0, false)}, {at(2, false), false, at(1, false)},
			{at(0, true), true, at(2, false)}, {at(1, true), false, at(0, true)}}
		if !slices.Equal(perTrack[name], want) {
			t.Errorf("%s: %+v, want %+v", name, perTrack[name], want)
		}
	}
	ends := sess.Ends()
	if len(ends) != 2 || ends[0].End != uint64(s.Start(0, 2))+100*second || ends[1].End != uint64(s.Start(1, 2))+100*second {
		t.Errorf("ends %+v, want each track where its second rebased fragment ends", ends)
	}
}

// A moov that changes a track's codec parameters mid-stream is refused:
// the track's init segment and fragments are already out.
func TestCodecChangeMidStreamIsRefused(t *testing.T) {
	var body []byte
	for _, w := range []int{640, 1280} {
		s, err := synth.New(synth.Config{Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 100_000, Width: w, Height: 360}}})
		if err != nil {
			t.Fatal(err)
		}
		hdr, err := s.Header()
		if err != nil {
			t.Fatal(err)
		}
		body = append(body, hdr...)
		if body, err = s.AppendFragment(body, 0); err != nil {
			t.Fatal(err)
		}
	}
	sink := &recordingSink{}
	_, err := NewSession(sink, quiet, Options{}).Run(context.Background(), bytes.NewReader(body))
	var perr *ProtocolError
	if !errors.As(err, &perr) || !strings.Contains(err.Error(), "changes codec") {
		t.Fatalf("err %v, want a protocol error about the codec change", err)
	}
	if len(sink.frags) != 1 {
		t.Errorf("%d fragments reached the sink, want only the first stream's", len(sink.frags))
	}
}

// topBox returns the offset and size of the n-th top-level box of type
// typ in b.
func topBox(t *testing.T, b []byte, typ string, n int) (int, int) {
	t.Helper()
	for box, err := range mp4box.All(b) {
		if err != nil {
			t.Fatal(err)
		}
		if box.Type == typ {
			if n == 0 {
				return int(box.Pos), box.Size()
			}
			n--
		}
	}
	t.Fatalf("no %s box %d", typ, n)
	return 0, 0
}

// with64BitSize returns b with the n-th typ box rewritten with a 64-bit
// size (size field 1).
func with64BitSize(t *testing.T, b []byte, typ string, n int) []byte {
	at, size := topBox(t, b, typ, n)
	out := append([]byte{}, b[:at]...)
	out = binary.BigEndian.AppendUint32(out, 1)
	out = append(out, typ...)
	out = binary.BigEndian.AppendUint64(out, uint64(size+8))
	out = append(out, b[at+8:at+size]...)
	return append(out, b[at+size:]...)
}

// Boxes with size fields 0 (to the end of the stream) and 1 (64-bit size)
// are read as the boxes they are: the session produces what it produces
// of the plain stream. (The MP4 decoder takes no 64-bit moov: the session
// hands it a 32-bit header.)
func TestSessionReadsBoxesOfSizeZeroAndOne(t *testing.T) {
	body := readFixture(t, "ffmpeg-isml.ismv")
	ref := &recordingSink{}
	if _, err := NewSession(ref, quiet, Options{}).Run(context.Background(), bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	mfra, _ := topBox(t, body, "mfra", 0)
	lastMdat, _ := topBox(t, body, "mdat", 5)
	toEnd := bytes.Clone(body[:mfra])
	copy(toEnd[lastMdat:], []byte{0, 0, 0, 0})
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"64-bit moov", with64BitSize(t, body, "moov", 0)},
		{"64-bit ftyp", with64BitSize(t, body, "ftyp", 0)},
		{"64-bit uuid (the live server manifest)", with64BitSize(t, body, "uuid", 0)},
		{"the last mdat to the end of the stream", toEnd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &recordingSink{}
			if _, err := NewSession(sink, quiet, Options{}).Run(context.Background(), bytes.NewReader(tc.in)); err != nil {
				t.Fatal(err)
			}
			if len(sink.inits) != len(ref.inits) || len(sink.frags) != len(ref.frags) {
				t.Fatalf("%d init segments and %d fragments, want %d and %d", len(sink.inits), len(sink.frags), len(ref.inits), len(ref.frags))
			}
			for i := range ref.frags {
				if !bytes.Equal(sink.frags[i].Bytes(), ref.frags[i].Bytes()) || sink.frags[i].ID != ref.frags[i].ID {
					t.Errorf("fragment %d differs from the plain stream's", i)
				}
			}
			for i := range ref.inits {
				if !bytes.Equal(sink.inits[i].Init, ref.inits[i].Init) {
					t.Errorf("init segment %d differs from the plain stream's", i)
				}
			}
		})
	}
}

// logRecorder keeps the messages and attributes a session logs.
type logRecorder struct{ lines []string }

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	line := rec.Level.String() + " " + rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		line += " " + a.String()
		return true
	})
	r.lines = append(r.lines, line)
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

// Audio ahead of zero: a fragment that starts before zero loses its
// leading samples; one wholly before zero is dropped with a log line, and
// the stream goes on.
func TestFragmentsBeforeZero(t *testing.T) {
	for _, tc := range []struct {
		name             string
		offset           time.Duration
		trimmed, skipped int
		audioFragments   int
	}{
		{"ffmpeg's one AAC frame early", -21333 * time.Microsecond, 1, 0, 3},
		{"more than a fragment early", -300 * time.Millisecond, 1, 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := synth.New(synth.Config{FragmentDuration: 200 * time.Millisecond, FrameRate: 10, AudioOffset: tc.offset,
				Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 20_000, Width: 32, Height: 16}, {Kind: timeline.Audio, Bitrate: 8_000}}})
			if err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			if _, err := s.WriteTo(context.Background(), &body, synth.Range{Count: 3, End: true}); err != nil {
				t.Fatal(err)
			}
			sink, rec := &recordingSink{}, &logRecorder{}
			stats, err := NewSession(sink, slog.New(rec), Options{}).Run(context.Background(), &body)
			if err != nil {
				t.Fatal(err)
			}
			if stats.Trimmed != tc.trimmed || stats.Skipped != tc.skipped {
				t.Errorf("trimmed %d, skipped %d; want %d and %d", stats.Trimmed, stats.Skipped, tc.trimmed, tc.skipped)
			}
			audio := 0
			for _, f := range sink.frags {
				checkStoredFragment(t, f)
				if f.Kind == timeline.Audio {
					audio++
				}
			}
			if audio != tc.audioFragments {
				t.Errorf("%d audio fragments, want %d", audio, tc.audioFragments)
			}
			logged := slices.ContainsFunc(rec.lines, func(l string) bool {
				return strings.HasPrefix(l, "WARN dropping fragment that starts before time zero")
			})
			if logged != (tc.skipped > 0) {
				t.Errorf("drop logged %v, want %v: %q", logged, tc.skipped > 0, rec.lines)
			}
		})
	}
}

// A track no SMIL names is named after its kind, its language (audio and
// text, unless undetermined) and its role (unless main): the languages
// and roles of one channel are tracks of their own, whatever their
// bitrates.
func TestTrackName(t *testing.T) {
	for _, tc := range []struct {
		kind timeline.Kind
		lang string
		role string
		want string
	}{
		{timeline.Video, "", "", "video"},
		{timeline.Video, "eng", "", "video"},
		{timeline.Video, "und", "alternate", "video_alternate"},
		{timeline.Audio, "", "", "audio"},
		{timeline.Audio, "und", "main", "audio"},
		{timeline.Audio, "eng", "", "audio_eng"},
		{timeline.Audio, "spa", "dub", "audio_spa_dub"},
		{timeline.Audio, "en-GB", "commentary", "audio_en-GB_commentary"},
		{timeline.Audio, "x/../y", "", "audio_x____y"},
	} {
		desc := timeline.Track{Language: tc.lang, Role: tc.role}
		if got := TrackName(tc.kind, desc); got != tc.want {
			t.Errorf("%s %q %q: %q, want %q", tc.kind, tc.lang, tc.role, got, tc.want)
		}
	}
}

package ingest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool/chunked"
	"github.com/smoothcast/smoothcast/internal/testtool/logtest"
	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/ism"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/scte35"
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
			stats, err := run(NewSession(sink, quiet, Options{}), chunked.Readers(body)[name]())
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
	if _, err := run(NewSession(sink, quiet, Options{}), bytes.NewReader(readFixture(t, "ffmpeg-plain.ismv"))); err != nil {
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
			_, err := run(NewSession(sink, quiet, Options{}), bytes.NewReader(tc.in))
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
	f.Add(synthSeed(f, synth.Config{CMAF: true, Muxed: true}))
	f.Add(synthSeed(f, synth.Config{CMAF: true, Muxed: true, Markers: []synth.Marker{{Fragment: 1, ID: 1, Out: true}, {Fragment: 1, ID: 2, V0: true}}}))
	f.Add(synthSeed(f, synth.Config{SMIL: true, Muxed: true, AudioOffset: -20 * time.Millisecond}))
	for _, evte := range []bool{false, true} {
		sample := synth.AMSMessage(1, 1, 0, scte35.Insert(1, true, 0))
		if evte {
			sample = synth.EmibSample(0, 1, scte35.Scheme, scte35.Insert(1, true, 0))
		}
		if b, err := (synth.DataTrack{Timescale: 90000, Evte: evte, Starts: []uint64{0, 9000}, Samples: [][]byte{sample, sample}}).Push(); err == nil {
			f.Add(b)
		}
	}
	f.Add(readFixture(f, "ffmpeg-plain.ismv")[:4000])
	f.Add(readFixture(f, "ffmpeg-text.ismv")) // 3GPP timed text, stored as WebVTT
	text := synth.Track{Kind: timeline.Text, Language: "eng", TextOptions: synth.TextOptions{CueEvery: 2}}
	f.Add(synthSeed(f, synth.Config{SMIL: true, Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 20_000, Width: 32, Height: 16}, text}}))
	text.Codec = "stpp"
	f.Add(synthSeed(f, synth.Config{CMAF: true, Tracks: []synth.Track{text}}))
	f.Add([]byte{0, 0, 0, 8, 'm', 'o', 'o', 'f'})
	f.Fuzz(func(t *testing.T, in []byte) {
		sink := &recordingSink{}
		_, err := run(NewSession(sink, quiet, Options{MaxBox: 1 << 20}), bytes.NewReader(in))
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
	uuid, ok := mp4box.Find(body, "uuid")
	if !ok {
		t.Fatal("no live server manifest")
	}
	smil, err := ism.ParseSMIL(ism.ServerManifestDoc(uuid.Payload()[16:]))
	if err != nil {
		t.Fatal(err)
	}
	sink := &recordingSink{}
	if _, err := run(NewSession(sink, quiet, Options{}), bytes.NewReader(body)); err != nil {
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
		var decl ism.SMILTrack
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
	if _, err := run(sess, bytes.NewReader(body)); err != nil {
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
	_, err := run(NewSession(sink, quiet, Options{}), bytes.NewReader(body))
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
	if _, err := run(NewSession(ref, quiet, Options{}), bytes.NewReader(body)); err != nil {
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
			if _, err := run(NewSession(sink, quiet, Options{}), bytes.NewReader(tc.in)); err != nil {
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
			sink, rec := &recordingSink{}, logtest.New()
			stats, err := run(NewSession(sink, slog.New(rec), Options{}), &body)
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
			logged := slices.ContainsFunc(rec.Lines(), func(l string) bool {
				return strings.HasPrefix(l, "WARN dropping fragment that starts before time zero")
			})
			if logged != (tc.skipped > 0) {
				t.Errorf("drop logged %v, want %v: %q", logged, tc.skipped > 0, rec.Lines())
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

// run reads body into s as a push is read.
func run(s *Session, body io.Reader) (Stats, error) {
	return Read(context.Background(), body, s, ReadOptions{})
}

// A source with its boxes in hand (an upload) feeds them one by one with
// Box; a push reads them from its body with Read: the sink gets the same
// init segments and fragments either way, and a stream that stops after a
// moof is refused at Close.
func TestBoxesInHandAndReadFromAStreamAgree(t *testing.T) {
	body := readFixture(t, "ffmpeg-isml.ismv")
	read := &recordingSink{}
	if _, err := run(NewSession(read, quiet, Options{}), bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	fed := &recordingSink{}
	s := NewSession(fed, quiet, Options{})
	for box, err := range mp4box.All(body) {
		if err != nil {
			t.Fatal(err)
		}
		if want := box.Type != "mdat"; s.Between() != want {
			t.Fatalf("between fragments before the %s at %d: %v, want %v", box.Type, box.Pos, s.Between(), want)
		}
		if err := s.Box(context.Background(), box); err != nil {
			t.Fatal(err)
		}
		if box.Type == "moof" && s.Between() {
			t.Fatal("between fragments after a moof")
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); int(st.Bytes) != len(body) || !st.Ended || st.Fragments != len(read.frags) {
		t.Errorf("stats %+v, want %d bytes, ended, %d fragments", st, len(body), len(read.frags))
	}
	if len(fed.inits) != len(read.inits) || len(fed.frags) != len(read.frags) {
		t.Fatalf("fed: %d init segments, %d fragments; read: %d, %d", len(fed.inits), len(fed.frags), len(read.inits), len(read.frags))
	}
	for i := range read.frags {
		if !bytes.Equal(fed.frags[i].Bytes(), read.frags[i].Bytes()) {
			t.Errorf("fragment %d differs", i)
		}
	}
	moof, _ := mp4box.Find(body, "moof")
	cut := NewSession(&recordingSink{}, quiet, Options{})
	for box := range mp4box.All(body[:int(moof.Pos)+moof.Size()]) {
		if err := cut.Box(context.Background(), box); err != nil {
			t.Fatal(err)
		}
	}
	var perr *ProtocolError
	if err := cut.Close(); !errors.As(err, &perr) {
		t.Errorf("Close after a moof: %v, want a protocol error", err)
	}
}

// A stream the encoder encrypted itself (encv/enca) is refused at its
// moov, saying so: the relay encrypts, with the channel's keys.
func TestEncoderEncryptedStreamIsRefused(t *testing.T) {
	s, err := synth.New(synth.Config{CMAF: true, Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 20_000, Width: 32, Height: 16}}})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := s.WriteTo(context.Background(), &b, synth.Range{Count: 1, End: true}); err != nil {
		t.Fatal(err)
	}
	body := b.Bytes()
	moof := bytes.Index(body, []byte("moof")) - 4
	styp := bytes.Index(body, []byte("styp")) - 4
	if styp > 0 && styp < moof {
		moof = styp
	}
	tr, err := cenc.NewTrack(body[:moof], cenc.CBCS)
	if err != nil {
		t.Fatal(err)
	}
	init, err := tr.Init(cenc.Period{Key: cenc.Key{KID: cenc.KID{1}}})
	if err != nil {
		t.Fatal(err)
	}
	sink := &recordingSink{}
	_, err = run(NewSession(sink, quiet, Options{}), bytes.NewReader(append(init, body[moof:]...)))
	var perr *ProtocolError
	if !errors.As(err, &perr) || !strings.Contains(err.Error(), "encrypted by the encoder") {
		t.Fatalf("err = %v, want a ProtocolError saying the encoder encrypted it", err)
	}
	if len(sink.inits)+len(sink.frags) > 0 {
		t.Errorf("the sink got %d init segments and %d fragments", len(sink.inits), len(sink.frags))
	}
}

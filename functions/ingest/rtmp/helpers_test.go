package rtmp

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool/logtest"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/store/storetest"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// keyStore is the store in memory, listing what it holds.
type keyStore struct {
	storetest.Mem
	mu   sync.Mutex
	keys []string
}

func (s *keyStore) PutParts(ctx context.Context, key string, parts [][]byte, o store.PutOptions) (string, error) {
	etag, err := s.Mem.PutParts(ctx, key, parts, o)
	if err == nil {
		s.mu.Lock()
		s.keys = append(s.keys, key)
		s.mu.Unlock()
	}
	return etag, err
}

// written is how many objects the store has written, and those written
// after the first from.
func (s *keyStore) written(from int) (int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys), slices.Clone(s.keys[min(from, len(s.keys)):])
}

// Keys lists what the store holds, sorted.
func (s *keyStore) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(slices.Values(s.keys))
}

// stored is what the store holds of a channel: each track's fragments
// (their starts and sample counts) and its end markers.
type stored struct {
	fragments map[string][]fmp4.FragmentInfo // by track
	ends      []string                       // {"eos":true} or false, by track
}

func (s *keyStore) channel(t testing.TB, channel string) stored {
	t.Helper()
	out := stored{fragments: map[string][]fmp4.FragmentInfo{}}
	for _, k := range s.Keys() {
		obj, err := layout.Parse(k)
		if err != nil || obj.Channel != channel {
			continue
		}
		o, err := s.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		switch obj.Kind {
		case layout.KindFragment:
			info, err := fmp4.Inspect(o.Body)
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			out.fragments[obj.Track.String()] = append(out.fragments[obj.Track.String()], info)
		case layout.KindEnd:
			out.ends = append(out.ends, obj.Track.String()+" "+string(o.Body))
		}
	}
	for _, f := range out.fragments {
		slices.SortFunc(f, func(a, b fmp4.FragmentInfo) int { return int(a.Start) - int(b.Start) })
	}
	return out
}

// count is how many fragments of each kind of track were stored.
func (s stored) count(kind timeline.Kind) int {
	n := 0
	for id, f := range s.fragments {
		if strings.HasPrefix(id, string(kind)) {
			n += len(f)
		}
	}
	return n
}

// harness is a relay over a store in memory, and an RTMP server on a
// loopback port publishing through it.
type harness struct {
	st   *keyStore
	rl   *relay.Relay
	srv  *Server
	rec  *logtest.Recorder
	addr string
}

func newHarness(t testing.TB, rcfg relay.Config, cfg Config) *harness {
	t.Helper()
	h := &harness{st: &keyStore{}, rec: logtest.New()}
	log := slog.New(h.rec)
	h.rl = relay.New(h.st, rcfg, log)
	h.srv = New(h.rl, cfg, log)
	ln, err := Listen(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = h.rl.Shutdown(context.Background())
		_ = h.srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return h
}

// url is the publish URL of key (the part after /live/) as gortmplib's
// client takes it: the stream key after a #.
func (h *harness) url(key string) string { return "rtmp://" + h.addr + "/live#" + key }

// publishAll publishes the whole of m, its timestamps shifted by offset,
// under key, ends the stream, and returns what the store then holds of
// channel.
func (h *harness) publishAll(t testing.TB, key, channel string, m *media, offset time.Duration) stored {
	t.Helper()
	e, err := dial(t, h.url(key), m)
	if err != nil {
		t.Fatal(err)
	}
	e.offset = offset
	if err := e.send(0, len(m.samples)); err != nil {
		t.Fatal(err)
	}
	if err := e.end(); err != nil {
		t.Fatal(err)
	}
	e.waitClosed(t)
	h.waitIdle(t)
	return h.st.channel(t, channel)
}

// waitIdle waits until the relay has no stream open.
func (h *harness) waitIdle(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.rl.Active() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams still open", h.rl.Active())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sample is one access unit or audio frame as an encoder sends it.
type sample struct {
	video    bool
	dts, pts time.Duration
	au       [][]byte
	frame    []byte
}

// media is a synthetic stream: the shared/synth encoder's H.264 (an IDR
// picture every gop) and AAC, as samples in decode order.
type media struct {
	sps, pps []byte
	asc      *mpeg4audio.AudioSpecificConfig
	samples  []sample
}

// newMedia makes seconds of synthetic media with a key frame every gop
// at 25 fps, and AAC at 48 kHz.
func newMedia(t testing.TB, seconds int, gop time.Duration) *media {
	t.Helper()
	return newMediaRate(t, seconds, gop, 300_000)
}

// newMediaRate is newMedia with a video bitrate.
func newMediaRate(t testing.TB, seconds int, gop time.Duration, videoBitrate int) *media {
	t.Helper()
	cfg := synth.Config{
		Tracks:           []synth.Track{{Kind: timeline.Video, Bitrate: videoBitrate, Width: 320, Height: 180}, {Kind: timeline.Audio, Bitrate: 64_000}},
		FragmentDuration: gop, CMAF: true, Timescale: 90000,
	}
	m := &media{}
	for _, c := range cfg.Split() {
		s, err := synth.New(c)
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Header()
		if err != nil {
			t.Fatal(err)
		}
		n := int((time.Duration(seconds)*time.Second + gop - 1) / gop)
		for k := range n {
			if b, err = s.AppendFragment(b, k); err != nil {
				t.Fatal(err)
			}
		}
		f, err := mp4.DecodeFile(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		trak := f.Init.Moov.Trak
		trex := f.Init.Moov.Mvex.Trex
		stsd := trak.Mdia.Minf.Stbl.Stsd
		video := c.Tracks[0].Kind == timeline.Video
		if video {
			m.sps, m.pps = stsd.AvcX.AvcC.SPSnalus[0], stsd.AvcX.AvcC.PPSnalus[0]
		} else {
			m.asc = &mpeg4audio.AudioSpecificConfig{}
			if err := m.asc.Unmarshal(stsd.Mp4a.Esds.DecConfigDescriptor.DecSpecificInfo.DecConfig); err != nil {
				t.Fatal(err)
			}
		}
		ts := time.Duration(trak.Mdia.Mdhd.Timescale)
		for _, seg := range f.Segments {
			for _, frag := range seg.Fragments {
				fs, err := frag.GetFullSamples(trex)
				if err != nil {
					t.Fatal(err)
				}
				for _, x := range fs {
					at := time.Duration(x.DecodeTime) * time.Second / ts
					if at >= time.Duration(seconds)*time.Second {
						continue
					}
					smp := sample{video: video, dts: at, pts: time.Duration(x.PresentationTime()) * time.Second / ts}
					if video {
						if smp.au, err = avc.GetNalusFromSample(x.Data); err != nil {
							t.Fatal(err)
						}
					} else {
						smp.frame = x.Data
					}
					m.samples = append(m.samples, smp)
				}
			}
		}
	}
	slices.SortStableFunc(m.samples, func(a, b sample) int { return int(a.dts - b.dts) })
	return m
}

// encoder is a synthetic RTMP encoder: gortmplib's client.
type encoder struct {
	c      *gortmplib.Client
	w      *gortmplib.Writer
	vt, at *gortmplib.Track
	m      *media
	offset time.Duration // added to every timestamp
}

// dial connects an encoder and publishes m to u; the publish's refusal
// is its error.
func dial(t testing.TB, u string, m *media) (*encoder, error) {
	t.Helper()
	e, err := connect(t, u)
	if err != nil {
		return nil, err
	}
	e.m = m
	e.vt, e.at = newTracks(m)
	e.w = &gortmplib.Writer{Conn: e.c, Tracks: []*gortmplib.Track{e.vt, e.at}}
	if err := e.w.Initialize(); err != nil {
		return nil, err
	}
	return e, nil
}

// connect connects an encoder and publishes to u, tracks not yet sent.
func connect(t testing.TB, u string) (*encoder, error) {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	e := &encoder{c: &gortmplib.Client{URL: pu, Publish: true}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.c.Initialize(ctx); err != nil {
		return nil, err
	}
	t.Cleanup(e.c.Close)
	return e, nil
}

// newTracks are m's tracks as gortmplib's writer takes them.
func newTracks(m *media) (video, audio *gortmplib.Track) {
	return &gortmplib.Track{Codec: &codecs.H264{SPS: m.sps, PPS: m.pps}}, &gortmplib.Track{Codec: &codecs.MPEG4Audio{Config: m.asc}}
}

// send writes samples [from, to) of the encoder's media.
func (e *encoder) send(from, to int) error {
	for _, s := range e.m.samples[from:to] {
		var err error
		if s.video {
			err = e.w.WriteH264(e.vt, s.pts+e.offset, s.dts+e.offset, s.au)
		} else {
			err = e.w.WriteMPEG4Audio(e.at, s.pts+e.offset, s.frame)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// end ends the stream as OBS and ffmpeg do: FCUnpublish, deleteStream.
func (e *encoder) end() error {
	for _, name := range []string{"FCUnpublish", "deleteStream"} {
		if err := e.c.Write(&message.CommandAMF0{ChunkStreamID: 3, Name: name, CommandID: 6, Arguments: []any{nil, float64(1)}}); err != nil {
			return err
		}
	}
	return nil
}

// waitClosed waits until the server has closed the encoder's connection
// (it reads until EOF or an error), and returns the description of the
// onStatus error it sent before, if any.
func (e *encoder) waitClosed(t testing.TB) string {
	t.Helper()
	_ = e.c.NetConn().SetReadDeadline(time.Now().Add(10 * time.Second))
	status := ""
	for {
		msg, err := e.c.Read()
		if err != nil {
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				t.Fatal("the server did not close the connection")
			}
			return status
		}
		if cmd, ok := msg.(*message.CommandAMF0); ok && cmd.Name == "onStatus" && len(cmd.Arguments) > 1 {
			if o, ok := cmd.Arguments[1].(amf0.Object); ok {
				if level, _ := o.GetString("level"); level == "error" {
					status, _ = o.GetString("description")
				}
			}
		}
	}
}

// keyIndex is the index of the n-th video key frame of m's samples (n from
// 0), len(samples) when there is none.
func (m *media) keyIndex(n int) int {
	for i, s := range m.samples {
		if s.video && h264.IsRandomAccess(s.au) {
			if n == 0 {
				return i
			}
			n--
		}
	}
	return len(m.samples)
}

// dialPlay asks to play u (gortmplib's client, the stream key after #):
// the refusal is its error.
func dialPlay(t testing.TB, u string) error {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	c := &gortmplib.Client{URL: pu}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Initialize(ctx); err != nil {
		return err
	}
	c.Close()
	return nil
}

// metadata sends an onMetaData declaring the bitrates (kbit/s), as OBS
// does.
func (e *encoder) metadata(videoKbps, audioKbps float64) error {
	return e.c.Write(&message.DataAMF0{ChunkStreamID: 4, MessageStreamID: 0x1000000, Payload: amf0.Data{
		"@setDataFrame", "onMetaData", amf0.Object{{Key: "videodatarate", Value: videoKbps}, {Key: "audiodatarate", Value: audioKbps}},
	}})
}

type slogAttr = slog.Attr

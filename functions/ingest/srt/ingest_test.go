package srt

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"os"
	"slices"
	"testing"
	"time"

	gosrt "github.com/datarhei/gosrt"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/internal/testtool/tsedit"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
)

// fixture is 8 s of H.264 (a key frame every second) and AAC in MPEG-TS
// (testdata/README.md).
func fixture(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/h264_aac_8s.ts")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// upTo is ts before its first PES at or after media time sec.
func upTo(t testing.TB, ts []byte, sec float64) []byte {
	t.Helper()
	b, err := tsedit.UpTo(ts, sec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stored is what the store holds of a channel: fragments per track (in
// time order), init segments, and end markers (eos: the stream ended;
// else a drop).
type storedChannel struct {
	fragments map[string][]fmp4.FragmentInfo
	inits     int
	ends      map[string]bool // track: eos
}

func storedOf(t *testing.T, st *store.Store, channel string) storedChannel {
	t.Helper()
	s := storedChannel{fragments: map[string][]fmp4.FragmentInfo{}, ends: map[string]bool{}}
	for _, k := range testtool.Keys(t, st) {
		obj, err := layout.Parse(k)
		if err != nil || obj.Channel != channel {
			continue
		}
		switch obj.Kind {
		case layout.KindFragment:
			o, err := st.Get(context.Background(), k)
			if err != nil {
				t.Fatal(err)
			}
			info, err := fmp4.Inspect(o.Body)
			if err != nil {
				t.Errorf("%s: %v", k, err)
			}
			s.fragments[obj.Track.Name] = append(s.fragments[obj.Track.Name], info)
		case layout.KindInit:
			s.inits++
		case layout.KindEnd:
			o, err := st.Get(context.Background(), k)
			if err != nil {
				t.Fatal(err)
			}
			var m struct {
				EOS bool `json:"eos"`
			}
			if err := json.Unmarshal(o.Body, &m); err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			s.ends[obj.Track.Name] = m.EOS
		}
	}
	for _, f := range s.fragments {
		slices.SortFunc(f, func(a, b fmp4.FragmentInfo) int { return cmp.Compare(a.Start, b.Start) })
	}
	return s
}

// counts is the number of fragments of each track.
func (s storedChannel) counts() map[string]int {
	out := map[string]int{}
	for tr, f := range s.fragments {
		out[tr] = len(f)
	}
	return out
}

// publish connects as an SRT caller to channel (through a proxy, for
// drops) and sends b.
func publish(t *testing.T, ts *testServer, channel string, b []byte) (gosrt.Conn, *udpProxy) {
	t.Helper()
	proxy := newUDPProxy(t, ts.addr)
	cfg := gosrt.DefaultConfig()
	cfg.StreamId = "#!::r=" + channel + ",m=publish"
	c, err := gosrt.Dial("srt", proxy.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	write(t, c, b)
	return c, proxy
}

// waitRead waits until the relay has read n bytes of channel's stream.
func waitRead(t *testing.T, rl *relay.Relay, channel string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, ch := range rl.Status().Channels {
			if ch.Channel == channel && len(ch.Streams) == 1 && ch.Streams[0].Bytes >= int64(n) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the relay did not read %d bytes: %+v", n, rl.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitClosed waits until the relay has no stream open.
func waitClosed(t *testing.T, rl *relay.Relay) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); rl.Active() > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the stream did not end")
		}
	}
}

// How an SRT stream ends decides what is stored: an end of stream stores
// all of it and marks its end; a drop stores the fragments that were
// whole and marks a drop, nothing of the GOP in hand; a relay that shuts
// down stores everything the connection brought, the GOP in hand as a
// shorter fragment on every track (Packager.Flush), and ends the stream
// as a drop (the channel stays live for the encoder's reconnect).
func TestStreamEndDecidesWhatIsStored(t *testing.T) {
	ts := fixture(t)
	cases := []struct {
		name string
		// first is sent, then end happens, then (rest) the rest is sent.
		first     float64 // seconds of media
		end       func(t *testing.T, s *testServer, c gosrt.Conn, p *udpProxy)
		rest      bool
		fragments map[string]int // per track
		// video is the media time of video stored, in frames (10 fps); a
		// GOP is 10 of them.
		video  int
		eos    bool // else the end markers are drops
		logged string
	}{
		{name: "the caller closes: everything, then the end of stream", first: 9,
			end:       func(t *testing.T, _ *testServer, c gosrt.Conn, _ *udpProxy) { waitSent(t, c); c.Close() },
			fragments: map[string]int{"video": 8, "audio": 8}, video: 80, eos: true, logged: "srt publish ended"},
		// The audio of the fourth second ends at the first frame at or
		// after the video's cut, which the first 4.5 s of the stream do not
		// hold whole (MPEG-TS carries audio in PES packets of several
		// frames, ahead of the video): its fragment is lost with the GOP in
		// hand.
		{name: "the caller vanishes mid-GOP: the whole GOPs, then a drop", first: 4.5, rest: true,
			end:       func(t *testing.T, _ *testServer, c gosrt.Conn, p *udpProxy) { waitSent(t, c); p.blackhole() },
			fragments: map[string]int{"video": 4, "audio": 3}, video: 40, logged: "srt publish dropped"},
		// The demultiplexer holds a PES until the next one starts: of the
		// 35 frames sent, 34 are whole.
		{name: "the relay shuts down mid-GOP: all it received, then a drop", first: 3.5,
			end: func(t *testing.T, s *testServer, c gosrt.Conn, _ *udpProxy) {
				waitRead(t, s.rl, "ends", len(upTo(t, ts, 3.5)))
				go func() { _ = s.rl.Shutdown(context.Background()) }()
			},
			fragments: map[string]int{"video": 4, "audio": 4}, video: 34, logged: "srt publish stopped: the relay is shutting down"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := DefaultConfig()
			cfg.PeerIdleTimeout = time.Second
			s := startServer(t, relay.DefaultConfig(), cfg, nil)
			first := ts
			if tc.first < 8 {
				first = upTo(t, ts, tc.first)
			}
			c, p := publish(t, s, "ends", first)
			tc.end(t, s, c, p)
			if tc.rest {
				write(t, c, ts[len(first):])
			}
			waitClosed(t, s.rl)
			got := storedOf(t, s.store, "ends")
			if !maps.Equal(got.counts(), tc.fragments) {
				t.Errorf("fragments %v, want %v", got.counts(), tc.fragments)
			}
			frames := 0
			for _, f := range got.fragments["video"] {
				frames += f.Samples
			}
			if frames != tc.video {
				t.Errorf("%d video frames stored, want %d", frames, tc.video)
			}
			if want := map[string]bool{"video": tc.eos, "audio": tc.eos}; !maps.Equal(got.ends, want) {
				t.Errorf("end markers (eos) %v, want %v", got.ends, want)
			}
			if got.inits != 2 {
				t.Errorf("%d init segments, want 2", got.inits)
			}
			s.rec.Wait(t, levelOf(tc.logged), tc.logged, nil)
		})
	}
}

func levelOf(msg string) slog.Level {
	if msg == "srt publish ended" || msg == "srt publish stopped: the relay is shutting down" {
		return slog.LevelInfo
	}
	return slog.LevelWarn
}

// The read timeout counts media, not bytes: a caller that keeps its
// connection busy with what yields no sample (null packets here) is
// dropped as one that sends nothing is, and nothing is stored.
func TestReadTimeoutCountsMediaNotBytes(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ReadTimeout = time.Second
	s := startServer(t, relay.DefaultConfig(), cfg, nil)
	c, _ := publish(t, s, "padding", tsedit.NullPackets(7))
	for deadline := time.Now().Add(10 * time.Second); s.rl.Active() > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a caller sending only null packets is still connected")
		}
		if _, err := c.Write(tsedit.NullPackets(7)); err != nil {
			break
		}
	}
	s.rec.Wait(t, slog.LevelWarn, "srt publish dropped", map[string]string{"err": "no media for 1s"})
	if got := storedOf(t, s.store, "padding"); got.inits != 0 || len(got.fragments) != 0 {
		t.Errorf("stored %+v for a stream without media", got)
	}
}

package e2e

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	gosrt "github.com/datarhei/gosrt"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/internal/testtool/tsedit"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/layout"
)

// What hostile or broken SRT callers send ends their own stream with a
// clear error and stores nothing partial: garbage instead of MPEG-TS,
// packets cut short, a PES that never ends, timestamps that go back,
// a wrong passphrase, and a flood of handshakes (bad stream IDs, wrong
// credentials, callers that connect and send nothing). Then a real
// encoder publishes as if nothing had happened, and its channel plays.
func TestSRTHostileCallersDoNotHurtTheNext(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ffmpeg := testtool.Require(t, "ffmpeg")
	const secret, passphrase = "hostile-e2e-secret-0123456789", "hostile-e2e-passphrase"
	st := startSRTStack(t, func(o *stack.Options) {
		o.Relay.Secrets = relay.Secrets{Default: secret}
		o.SRT.Passphrase = passphrase
		// Long enough for the PES that never ends to reach its limit:
		// the read timeout counts media, and it brings none.
		o.SRT.ReadTimeout = 10 * time.Second
	})
	addr := strings.TrimPrefix(st.SRTURL, "srt://")
	ts, err := os.ReadFile("../functions/ingest/srt/testdata/h264_aac_8s.ts")
	if err != nil {
		t.Fatal(err)
	}
	sid := func(channel string) string { return "#!::r=" + channel + ",m=publish,smoothcast_secret=" + secret }

	// Broken media, each on a channel of its own: the stream ends with a
	// protocol error that says what was wrong.
	edit := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rnd := rand.New(rand.NewPCG(17, 17))
	garbage := make([]byte, 2<<20)
	for i := range garbage {
		garbage[i] = byte(rnd.Uint32())
	}
	media := []struct {
		channel string
		b       []byte
		says    string
		// fragments is how many whole video fragments may be stored (what
		// came before the fault); none for the others.
		fragments int
	}{
		{"garbage", garbage, "mpeg-ts", 0},
		{"truncated", tsedit.TruncatePackets(ts, 20, 100), "malformed elementary stream", 0},
		{"absurd", edit(tsedit.EndlessPES(ts, 9<<20)), "PES packet too large", 0},
		{"backwards", edit(tsedit.ShiftTimestamps(ts, 4.5, -3*90000)), "timestamps go backwards", 4},
	}
	for _, m := range media {
		if err := sendSRT(t, addr, sid(m.channel), passphrase, m.b); err != nil {
			t.Fatalf("%s: %v", m.channel, err)
		}
	}
	waitUntil(t, 30*time.Second, "the broken streams ended", func() bool { return st.Relay.Active() == 0 })
	for _, m := range media {
		var found bool
		for _, e := range st.Relay.Status().RecentErrors {
			if e.Channel == m.channel && e.Kind == "protocol" && strings.Contains(e.Message, m.says) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no protocol error saying %q among the relay's errors", m.channel, m.says)
		}
	}
	// Refused at the handshake: nothing opens.
	if err := sendSRT(t, addr, sid("wrongpass"), "not-the-passphrase", ts); err == nil {
		t.Error("a caller with a wrong passphrase was admitted")
	}
	flood(t, addr, sid("flood"), secret, passphrase)
	waitUntil(t, 30*time.Second, "every hostile stream ended", func() bool { return st.Relay.Active() == 0 })
	for _, channel := range []string{"garbage", "truncated", "absurd", "backwards", "wrongpass", "flood"} {
		video := 0
		for key, info := range storedFragments(t, st, channel) {
			if obj, _ := layout.Parse(key); obj.Track.Name == "video" {
				video++
				if info.Samples != 10 {
					t.Errorf("%s: %d frames, not a whole GOP of 10", key, info.Samples)
				}
			}
		}
		want := 0
		for _, m := range media {
			if m.channel == channel {
				want = m.fragments
			}
		}
		if video != want {
			t.Errorf("%s: %d video fragments stored, want %d", channel, video, want)
		}
	}

	// The next encoder, a real one.
	const channel = "good"
	push := ffmpegSRTPush(context.Background(), ffmpeg, srtURL(st.SRTURL, channel, secret, passphrase), 8)
	var stderr bytes.Buffer
	push.Stderr = &stderr
	if err := push.Run(); err != nil {
		t.Fatalf("ffmpeg after the hostile callers: %v\n%s", err, stderr.String())
	}
	base := st.EdgeURL + "/live/" + channel + ".isml/"
	waitForVOD(t, st, base)
	checkDecodeSeconds(t, ffmpeg, base+"master.m3u8", 8, [][]string{{"0:v:0", "0:a:0"}})
	checkWithSmoothcast(t, st, channel)
}

// sendSRT publishes b as an SRT caller and closes the connection once it
// is all acknowledged; the error is the handshake's.
func sendSRT(t *testing.T, addr, streamID, passphrase string, b []byte) error {
	t.Helper()
	cfg := gosrt.DefaultConfig()
	cfg.StreamId, cfg.Passphrase = streamID, passphrase
	c, err := gosrt.Dial("srt", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	// The relay sends nothing: a read ends when the connection does.
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_, _ = c.Read(make([]byte, 1500))
	}()
	packets := uint64(0)
	for len(b) > 0 {
		// gosrt's Write fails when its queue of 1024 packets is full: keep
		// a few dozen in flight (more are lost on a loaded machine, and
		// the PES this test sends whole would start again).
		for {
			var s gosrt.Statistics
			c.Stats(&s)
			if packets-min(packets, s.Accumulated.PktSentUnique)+s.Instantaneous.PktSendBuf < 64 {
				break
			}
			select {
			case <-closed:
				return nil // the relay ended the stream
			case <-time.After(time.Millisecond):
			}
		}
		n := min(len(b), 1316)
		if _, err := c.Write(b[:n]); err != nil {
			return nil // the relay ended the stream
		}
		b = b[n:]
		packets++
	}
	// Everything sent and acknowledged (gosrt's Close discards the rest),
	// or the relay ended the stream.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var s gosrt.Statistics
		c.Stats(&s)
		select {
		case <-closed:
			return nil
		default:
		}
		if s.Accumulated.PktSentUnique >= packets && s.Instantaneous.PktSendBuf == 0 {
			return nil
		}
	}
	t.Errorf("%s: what was sent is not acknowledged", streamID)
	return nil
}

// flood makes a few hundred handshakes at once: bad stream IDs, wrong
// secrets and passphrases, requests to play, each refused; and callers
// that connect to channel and send nothing, admitted up to the relay's
// streams per channel and dropped at the read timeout.
func flood(t *testing.T, addr, good, secret, passphrase string) {
	t.Helper()
	bad := []struct{ sid, pass string }{
		{"", passphrase},
		{"#!::r=flood,m=request,smoothcast_secret=" + secret, passphrase},
		{"#!::r=flood,m=publish,smoothcast_secret=wrong-secret-0123456789", passphrase},
		{"#!::r=flood", passphrase},
		{"#!::r=../../etc,smoothcast_secret=" + secret, passphrase},
		{good, ""},
		{good, "wrong-passphrase-0123"},
		{strings.Repeat("x", 600), passphrase},
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted, silent := 0, []gosrt.Conn{}
	for i := range 240 {
		wg.Go(func() {
			if i%12 == 0 {
				// A caller that connects and sends nothing.
				cfg := gosrt.DefaultConfig()
				cfg.StreamId, cfg.Passphrase = good, passphrase
				if c, err := gosrt.Dial("srt", addr, cfg); err == nil {
					mu.Lock()
					admitted++
					silent = append(silent, c)
					mu.Unlock()
				}
				return
			}
			b := bad[i%len(bad)]
			cfg := gosrt.DefaultConfig()
			cfg.StreamId, cfg.Passphrase = b.sid, b.pass
			cfg.ConnectionTimeout = 5 * time.Second
			if c, err := gosrt.Dial("srt", addr, cfg); err == nil {
				c.Close()
				t.Errorf("admitted: stream ID %q with passphrase %q", b.sid, b.pass)
			}
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range silent {
			c.Close()
		}
	})
	if admitted == 0 || admitted > relay.DefaultConfig().MaxStreamsPerChannel {
		t.Errorf("%d silent callers admitted to one channel, want 1 to %d", admitted, relay.DefaultConfig().MaxStreamsPerChannel)
	}
}

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
		{"truncated", truncatePackets(ts, 20, 100), "malformed elementary stream", 0},
		{"absurd", endlessPES(t, ts, 9<<20), "PES packet too large", 0},
		{"backwards", shiftTimestamps(t, ts, 4.5, -3*90000), "timestamps go backwards", 4},
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

// truncatePackets cuts every nth 188-byte packet of ts to keep bytes.
func truncatePackets(ts []byte, nth, keep int) []byte {
	var out []byte
	for i := 0; i+188 <= len(ts); i += 188 {
		p := ts[i : i+188]
		if (i/188)%nth == nth-1 {
			p = p[:keep]
		}
		out = append(out, p...)
	}
	return out
}

// endlessPES is ts's PAT and PMT, then a video PES that never ends: its
// first packet, then continuation packets up to size bytes.
func endlessPES(t *testing.T, ts []byte, size int) []byte {
	t.Helper()
	var out []byte
	var video []byte
	for i := 0; i+188 <= len(ts); i += 188 {
		p := ts[i : i+188]
		pid := int(p[1]&0x1f)<<8 | int(p[2])
		if pid == 0 || pid == 0x1000 {
			out = append(out, p...) // PAT, PMT (ffmpeg's PMT PID)
		}
		if start, ok := pesStart(p); ok && p[start+3] == 0xe0 && video == nil {
			video = p
		}
	}
	if video == nil {
		t.Fatal("no video PES in the fixture")
	}
	out = append(out, video...)
	cc := video[3] & 0x0f
	for n := 0; n < size; n += 184 {
		cc = (cc + 1) & 0x0f
		p := make([]byte, 188)
		p[0], p[1], p[2], p[3] = 0x47, video[1]&0x1f, video[2], 0x10|cc
		out = append(out, p...)
	}
	return out
}

// pesStart is where the PES header of a packet that starts one begins.
func pesStart(p []byte) (int, bool) {
	if p[0] != 0x47 || p[1]&0x40 == 0 {
		return 0, false
	}
	off := 4
	if p[3]&0x20 != 0 {
		off += 1 + int(p[4])
	}
	if off+19 > len(p) || p[off] != 0 || p[off+1] != 0 || p[off+2] != 1 {
		return 0, false
	}
	return off, true
}

// shiftTimestamps moves the PTS and DTS of every PES that starts at or
// after media time from (seconds after the stream's first PTS) by delta
// (90 kHz ticks).
func shiftTimestamps(t *testing.T, ts []byte, from float64, delta int64) []byte {
	t.Helper()
	out := bytes.Clone(ts)
	first := int64(-1)
	shifted := 0
	for i := 0; i+188 <= len(out); i += 188 {
		p := out[i : i+188]
		off, ok := pesStart(p)
		if !ok || p[off+7]&0x80 == 0 {
			continue
		}
		h := p[off:]
		pts := readTimestamp(h[9:14])
		if first < 0 {
			first = pts
		}
		if float64(pts-first)/90000 < from {
			continue
		}
		writeTimestamp(h[9:14], pts+delta)
		if h[7]&0x40 != 0 {
			writeTimestamp(h[14:19], readTimestamp(h[14:19])+delta)
		}
		shifted++
	}
	if shifted == 0 {
		t.Fatal("no timestamp shifted")
	}
	return out
}

// readTimestamp and writeTimestamp read and write a PES header's 33-bit
// timestamp (5 bytes with marker bits), keeping its 4-bit prefix.
func readTimestamp(b []byte) int64 {
	return int64(b[0]>>1&7)<<30 | int64(b[1])<<22 | int64(b[2]>>1)<<15 | int64(b[3])<<7 | int64(b[4]>>1)
}

func writeTimestamp(b []byte, v int64) {
	v &= 1<<33 - 1
	b[0] = b[0]&0xf0 | byte(v>>29)&0x0e | 1
	b[1] = byte(v >> 22)
	b[2] = byte(v>>14)&0xfe | 1
	b[3] = byte(v >> 7)
	b[4] = byte(v<<1) | 1
}

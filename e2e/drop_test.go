package e2e

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http/httputil"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/store"
)

// A real encoder's connection breaks inside a fragment: ffmpeg pushes
// through a proxy that cuts the TCP connection after a fixed number of
// bytes. Every fragment that arrived whole is stored and nothing of the one
// cut short; the channel stays live. ffmpeg started again begins at zero:
// the channel goes on after one discontinuity, ends VOD, lists exactly
// what is stored, and decodes to the end.
func TestFFmpegConnectionDropsMidFragment(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	besideAnother(t)
	ffmpeg := testtool.Require(t, "ffmpeg")
	st := startStackWith(t, "", func(o *stack.Options) { o.Relay.MaxDrift = 3 * time.Second })
	const channel = "drop"
	// About 10 s of the push (some 150 kB/s): a byte count, not a time, so
	// that the cut falls inside a box rather than between fragments. More
	// than -max-drift: a restart from zero after a shorter session looks
	// like a reconnect that resends (docs/limitations.md).
	const cutAt = 1_555_555
	proxy, prefix := cuttingProxy(t, strings.TrimPrefix(st.IngestURL, "http://"), cutAt)
	base := st.EdgeURL + "/live/" + channel + ".isml/"
	path := "/live/" + channel + ".isml/Streams(enc1)"

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = ffmpegPush(ctx, ffmpeg, "http://"+proxy+path, 30, true).Run() // fails: its connection is cut
	st.Settle(context.Background())

	// What reached the relay: the complete moof+mdat pairs before the cut.
	whole := completeFragments(prefix())
	if whole < 4 {
		t.Fatalf("only %d whole fragments before the cut at byte %d", whole, cutAt)
	}
	stored := storedFragments(t, st, channel)
	if len(stored) != whole {
		t.Errorf("%d fragments stored, want the %d that arrived whole (none of the one cut)", len(stored), whole)
	}
	var video, audio time.Duration
	for key, info := range stored {
		obj, _ := layout.Parse(key)
		d := time.Duration(info.Duration) * 100 // ismv: 10 MHz
		switch {
		case obj.Track.Name == "audio":
			audio += d
		case obj.Track.Bitrate == 800_000:
			video += d
		}
	}
	if m := getSmooth(t, base+"Manifest"); !m.Live() {
		t.Errorf("after a dropped connection the channel is not live: IsLive=%q", m.IsLive)
	}

	// The encoder comes back, from timestamp zero.
	const again = 8
	if out, err := ffmpegPush(ctx, ffmpeg, st.IngestURL+path, again, true).CombinedOutput(); err != nil {
		t.Fatalf("second push: %v\n%s", err, out)
	}
	checkContinuedOnce(t, st, channel)
	t.Logf("cut at byte %d: %d fragments whole before it (%v of the 800k video, %v of audio), then %d s more", cutAt, whole, video, audio, again)
	checkDecodeSpan(t, ffmpeg, base+"master.m3u8", video+again*time.Second, audio+again*time.Second, [][]string{{"0:v:0", "0:a:0"}})
}

// checkContinuedOnce checks channel, once its encoder that stopped and
// started again from zero has ended: its manifests are final with one
// discontinuity, list exactly what is stored (each fragment whole, none
// twice), and its Smooth timeline only rises.
func checkContinuedOnce(t *testing.T, st *stack.Stack, channel string) {
	t.Helper()
	base := st.EdgeURL + "/live/" + channel + ".isml/"
	m := waitForVOD(t, st, base)
	checkVODManifests(t, base, 1)
	f := chaosFigures(t, st, channel, 0)
	if f.missing != 0 || f.unlisted != 0 || f.corrupt != 0 || f.duplicates != 0 {
		t.Errorf("listed but missing %d, stored but unlisted %d, corrupt %d, duplicates %d; want none", f.missing, f.unlisted, f.corrupt, f.duplicates)
	}
	for _, si := range m.Streams {
		times := fragmentStarts(t, &si)
		for i := 1; i < len(times); i++ {
			if times[i] <= times[i-1] {
				t.Errorf("%s: the Smooth timeline goes back at chunk %d", si.Type, i)
			}
		}
	}
}

// cuttingProxy forwards TCP connections to target; the first one is cut
// (both sides closed) once limit bytes have gone from the client to the
// server. prefix returns the bytes that went through before the cut.
func cuttingProxy(t *testing.T, target string, limit int) (addr string, prefix func() []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	var seen []byte
	first := true
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			mu.Lock()
			cut := first
			first = false
			mu.Unlock()
			go func() { _, _ = io.Copy(client, server); client.Close() }()
			go func() {
				defer server.Close()
				defer client.Close()
				if !cut {
					_, _ = io.Copy(server, client)
					return
				}
				buf := make([]byte, 32<<10)
				for {
					mu.Lock()
					left := limit - len(seen)
					mu.Unlock()
					n, err := client.Read(buf[:min(len(buf), left)])
					if n > 0 {
						mu.Lock()
						seen = append(seen, buf[:n]...)
						mu.Unlock()
						if _, werr := server.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil || left-n == 0 {
						// RST rather than FIN on the encoder's side.
						if tc, ok := client.(*net.TCPConn); ok {
							_ = tc.SetLinger(0)
						}
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), func() []byte {
		mu.Lock()
		defer mu.Unlock()
		return append([]byte(nil), seen...)
	}
}

// completeFragments counts the moof+mdat pairs that lie wholly in the
// HTTP request b (headers, then a chunked body, perhaps cut short).
func completeFragments(b []byte) int {
	_, body, ok := bytes.Cut(b, []byte("\r\n\r\n"))
	if !ok {
		return 0
	}
	// Undo the chunked transfer coding as far as it goes.
	media, _ := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(body)))
	count, moof := 0, false
	for box, err := range mp4box.All(media) {
		if err != nil {
			break
		}
		switch box.Type {
		case "moof":
			moof = true
		case "mdat":
			if moof {
				count++
			}
			moof = false
		}
	}
	return count
}

// storedFragments reads every fragment object of channel, checked whole
// by fmp4.Inspect.
func storedFragments(t *testing.T, st *stack.Stack, channel string) map[string]fmp4.FragmentInfo {
	t.Helper()
	out := map[string]fmp4.FragmentInfo{}
	err := st.Store.List(context.Background(), layout.LivePrefix+channel+".isml/", func(page []store.Listed) error {
		for _, o := range page {
			if obj, err := layout.Parse(o.Key); err != nil || obj.Kind != layout.KindFragment {
				continue
			}
			got, err := st.Store.Get(context.Background(), o.Key)
			if err != nil {
				return err
			}
			info, err := fmp4.Inspect(got.Body)
			if err != nil {
				t.Errorf("%s is not a whole fragment: %v", o.Key, err)
			}
			out[o.Key] = info
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

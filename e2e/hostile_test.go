package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// 200 hostile connections at once against the relay binary: each sends a
// push whose first box claims 60 MiB, then 64 KiB of it, then nothing.
// The relay's memory stays bounded (what arrived, not what was claimed),
// and a real encoder on another channel keeps streaming meanwhile: every
// fragment it pushes is listed.
func TestHostileConnectionsDoNotHurtOthers(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	st := startStack(t)
	rp := startRelay(t, buildRelay(t), st)
	addr := strings.TrimPrefix(rp.url("x", "y"), "http://")
	addr = addr[:strings.Index(addr, "/")]

	const hostile = 200
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	chunk := make([]byte, 64<<10)
	for i := range hostile {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		hdr := fmt.Sprintf("POST /live/h%d.isml/Streams(s) HTTP/1.1\r\nHost: relay\r\nTransfer-Encoding: chunked\r\n\r\n", i)
		box := []byte{0x03, 0xC0, 0x00, 0x00, 'm', 'd', 'a', 't'} // 60 MiB claimed
		body := append(box, chunk...)
		if _, err := fmt.Fprintf(c, "%s%x\r\n%s\r\n", hdr, len(body), body); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}

	cfg := synth.Config{FragmentDuration: time.Second, SMIL: true, Tracks: []synth.Track{
		{Kind: timeline.Video, Bitrate: 300_000, Name: "video"}, {Kind: timeline.Audio, Bitrate: 64_000, Name: "audio"}}}
	s, err := synth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	var pushErr error
	wg.Go(func() {
		pushErr = synth.Push(context.Background(), nil, rp.url("legit", "enc1"), s, synth.Range{Count: n, Realtime: true, End: true})
	})
	wg.Wait()
	if pushErr != nil {
		t.Fatalf("the real encoder's push failed beside the hostile connections: %v", pushErr)
	}
	m := waitForVOD(t, st, st.EdgeURL+"/live/legit.isml/")
	for _, si := range m.Streams {
		if got := len(fragmentStarts(t, &si)); got != n {
			t.Errorf("%s: %d fragments listed, want %d", si.Type, got, n)
		}
	}
	peak := rp.peakRSS()
	t.Logf("relay peak RSS with %d hostile connections (each claiming a 60 MiB box, 64 KiB sent) and one real push: %.1f MiB", hostile, float64(peak)/(1<<20))
	if peak > 200<<20 {
		t.Errorf("relay peak RSS %.1f MiB: memory is not bounded by what arrived", float64(peak)/(1<<20))
	}
}

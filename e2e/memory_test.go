package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/shared/ism"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// The relay's memory budget holds against every shape of traffic that
// tries to exhaust it, all at once: uploads held open a byte short,
// segments that nothing places (held, 202), connections that send a
// megabyte of headers and nothing more, pushes that declare huge boxes
// and send part of them, and an oversized live server manifest. Past the
// budget each is refused (503 with Retry-After, 431, 413) instead of the
// process growing: the relay's peak resident set stays within its budget,
// while a legitimate push on another channel, started before, keeps
// publishing a fragment a second.
func TestRelayMemoryStaysWithinItsBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	const budget = 256 << 20
	st := startStack(t)
	rp := startRelay(t, buildRelay(t), st, "-memory-budget", "256MiB")

	// The legitimate encoder: 1 s fragments, in real time.
	legit, err := synth.New(synth.Config{FragmentDuration: time.Second, Tracks: []synth.Track{
		{Kind: timeline.Video, Bitrate: 1_000_000, Width: 640, Height: 360}, {Kind: timeline.Audio, Bitrate: 96_000}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pushed := make(chan error, 1)
	go func() {
		pushed <- synth.Push(ctx, http.DefaultClient, rp.url("legit", "enc"), legit, synth.Range{Count: 30, Realtime: true, End: true})
	}()
	waitUntil(t, 30*time.Second, "the legitimate push's first fragments", func() bool { return fewestFragments(t, st, "legit", 2) >= 3 })

	attack := newAttack(t, rp.addr)
	begin := fewestFragments(t, st, "legit", 2)
	began := time.Now()
	attack.run(20 * time.Second)
	published := fewestFragments(t, st, "legit", 2) - begin
	took := time.Since(began)
	attack.report()

	if err := <-pushed; err != nil {
		t.Errorf("the legitimate push: %v", err)
	}
	peak := rp.peakRSS()
	t.Logf("relay peak resident set %.1f MiB, budget %d MiB; the legitimate push published %d fragments in the %v of the attack",
		float64(peak)/(1<<20), budget>>20, published, took.Round(time.Second))
	if peak > budget+48<<20 {
		t.Errorf("the relay's peak resident set is %.1f MiB, over its budget of %d MiB", float64(peak)/(1<<20), budget>>20)
	}
	if want := int(took/time.Second) - 4; published < want {
		t.Errorf("the legitimate push published %d fragments in %v of attack, want at least %d", published, took.Round(time.Second), want)
	}
	attack.check()
}

// attack drives the shapes of traffic that once exhausted the relay's
// memory, and counts how the relay answered each.
type attack struct {
	t    *testing.T
	addr string

	mu      sync.Mutex
	answers map[string]map[string]int // shape: status (or "closed"): count
	stop    chan struct{}
	wg      sync.WaitGroup

	segment, header []byte // a 1 MiB media segment; a push's header
	moof            []byte // a moof of that push
}

func newAttack(t *testing.T, addr string) *attack {
	t.Helper()
	big, err := synth.New(synth.Config{CMAF: true, FragmentDuration: time.Second, Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 8_400_000, Width: 640, Height: 360}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := big.Header(); err != nil {
		t.Fatal(err)
	}
	seg, err := big.AppendFragment(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	s, err := synth.New(synth.Config{Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 100_000}}})
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := s.Header()
	if err != nil {
		t.Fatal(err)
	}
	frag, err := s.AppendFragment(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	moof, _ := mp4box.Find(frag, "moof")
	return &attack{moof: moof.Data, t: t, addr: addr, answers: map[string]map[string]int{}, stop: make(chan struct{}), segment: seg, header: hdr}
}

func (a *attack) note(shape, answer string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.answers[shape] == nil {
		a.answers[shape] = map[string]int{}
	}
	a.answers[shape][answer]++
}

// raw sends head and body on a connection of its own, keeps it open until
// the attack stops (or the relay answers), and notes the answer.
func (a *attack) raw(shape, head string, body func(w io.Writer) error) {
	defer a.wg.Done()
	c, err := net.Dial("tcp", a.addr)
	if err != nil {
		a.note(shape, "dial: "+err.Error())
		return
	}
	defer c.Close()
	answered := make(chan string, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			answered <- "closed"
			return
		}
		resp.Body.Close()
		answer := resp.Status[:3]
		if resp.Header.Get("Retry-After") != "" {
			answer += " Retry-After"
		}
		answered <- answer
	}()
	if _, err := io.WriteString(c, head); err == nil && body != nil {
		_ = body(c)
	}
	select {
	case ans := <-answered:
		a.note(shape, ans)
	case <-a.stop:
		a.note(shape, "held open")
	}
}

// run starts every shape, holds it for d, and stops them.
func (a *attack) run(d time.Duration) {
	// A live server manifest of 20 MB, before the flood: the relay reads
	// its box header and refuses it by its size. raw returns once it is
	// answered.
	a.wg.Add(1)
	a.raw("a 20 MB live server manifest, alone", smilHead, a.hugeSMIL)
	// Uploads of 4 MiB, sent but for their last byte.
	for i := range 300 {
		a.wg.Add(1)
		go a.raw("upload held a byte short", fmt.Sprintf("PUT /live/up%d.isml/s%d.m4s HTTP/1.1\r\nHost: relay\r\nContent-Length: %d\r\n\r\n", i%40, i, 4<<20),
			func(w io.Writer) error {
				_, err := w.Write(make([]byte, 4<<20-1))
				return err
			})
	}
	// Segments no rule places: 16 of 1 MiB on each of 40 channels, each
	// on a connection of its own (the relay closes one it refuses).
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for ch := range 40 {
		a.wg.Go(func() {
			for k := range 16 {
				resp, err := client.Post(fmt.Sprintf("http://%s/live/held%d.isml/x%d.m4s", a.addr, ch, k), "video/mp4", bytes.NewReader(a.segment))
				if err != nil {
					a.note("segment nothing places", "closed")
					continue
				}
				resp.Body.Close()
				ans := resp.Status[:3]
				if resp.Header.Get("Retry-After") != "" {
					ans += " Retry-After"
				}
				a.note("segment nothing places", ans)
			}
		})
	}
	// A megabyte of headers, then nothing.
	for range 300 {
		a.wg.Add(1)
		go a.raw("a megabyte of headers", "GET /live/h.isml/Streams(x) HTTP/1.1\r\nHost: relay\r\nX-Junk: "+strings.Repeat("a", 1<<20)+"\r\n", nil)
	}
	// Pushes that declare a 60 MiB mdat and send 4 MiB of it.
	moof := a.moof
	for i := range 50 {
		a.wg.Add(1)
		go a.raw("push declaring a huge box", fmt.Sprintf("POST /live/huge%d.isml/Streams(e) HTTP/1.1\r\nHost: relay\r\nContent-Length: %d\r\n\r\n", i, 60<<20),
			func(w io.Writer) error {
				mdat := binary.BigEndian.AppendUint32(nil, 60<<20-uint32(len(a.header)+len(moof)))
				mdat = append(mdat, "mdat"...)
				for _, b := range [][]byte{a.header, moof, mdat, make([]byte, 4<<20)} {
					if _, err := w.Write(b); err != nil {
						return err
					}
				}
				return nil
			})
	}
	// A live server manifest of 20 MB, during the flood: refused, by its
	// size or by the budget the flood has spent.
	a.wg.Add(1)
	go a.raw("a 20 MB live server manifest", smilHead, a.hugeSMIL)
	time.Sleep(d)
	close(a.stop)
	a.wg.Wait()
}

// smilHead is the request head of hugeSMIL's push.
var smilHead = fmt.Sprintf("POST /live/smil.isml/Streams(e) HTTP/1.1\r\nHost: relay\r\nContent-Length: %d\r\n\r\n", 24+20<<20)

// hugeSMIL writes a push that begins with a live server manifest (the
// uuid box of Smooth's ingest) of 20 MB.
func (a *attack) hugeSMIL(w io.Writer) error {
	box := binary.BigEndian.AppendUint32(nil, uint32(24+20<<20))
	box = append(box, "uuid"...)
	u := strings.ReplaceAll(ism.ServerManifestUUID, "-", "")
	for i := 0; i < len(u); i += 2 {
		var b byte
		fmt.Sscanf(u[i:i+2], "%02x", &b)
		box = append(box, b)
	}
	box = append(box, "<smil>"...)
	box = append(box, bytes.Repeat([]byte("<video systemBitrate=\"1\"/>"), (20<<20-6)/26+1)...)
	_, err := w.Write(box[:24+20<<20])
	return err
}

// report logs how the relay answered each shape.
func (a *attack) report() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for shape, answers := range a.answers {
		a.t.Logf("%s: %v", shape, answers)
	}
}

// check asserts the answers the budget and the limits owe each shape.
func (a *attack) check() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range []struct {
		shape string
		want  []string // at least one answer is one of these
	}{
		{"upload held a byte short", []string{"503 Retry-After"}},
		{"segment nothing places", []string{"202"}},
		{"segment nothing places", []string{"503 Retry-After"}},
		{"a megabyte of headers", []string{"431"}},
		{"push declaring a huge box", []string{"503 Retry-After"}},
		{"a 20 MB live server manifest, alone", []string{"413"}},
		{"a 20 MB live server manifest", []string{"413", "503 Retry-After"}},
	} {
		n := 0
		for _, w := range c.want {
			n += a.answers[c.shape][w]
		}
		if n == 0 {
			a.t.Errorf("%s: none of %v among %v", c.shape, c.want, a.answers[c.shape])
		}
	}
}

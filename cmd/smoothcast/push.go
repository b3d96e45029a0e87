package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/shared/config"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

const pushUsage = `usage: smoothcast push [flags]

Pushes synthetic live media to a relay, as an encoder would: H.264 video
(flat gray pictures, an IDR picture per fragment) and AAC silence, each
track padded to the bitrate it declares, so that any player plays it and
the relay, the store and the CDN carry the real load.

  -mode smooth      one POST per channel, all tracks in it, with the live server
                    manifest (SMIL), as ffmpeg -f ismv -movflags +isml does;
                    stream name enc1
  -mode per-track   a Smooth POST per track (stream name: kind and bitrate, video800k)
  -mode cmaf        a CMAF POST per track (DASH-IF Live Media Ingest interface 1)

to {url}/live/{channel}.isml/Streams({stream}). Several channels
(-channel a,b,c) are pushed at once. Tracks are kind:bitrate[:WxH],
comma-separated (bitrates in bit/s, with k or M: 800k, 1.5M; video is
640x360 unless given), or "ladder": five H.264 renditions from 1080p at
6 Mbit/s to 270p at 0.5 Mbit/s and AAC at 128 kbit/s.

A progress line on stderr (rewritten in place on a terminal, every 10 s
otherwise) shows the time elapsed and, per channel, fragments, megabytes
and Mbit/s sent. Ctrl-C (or SIGTERM) ends the pushes cleanly: the current
fragment is finished and the stream ends as an encoder ends it, so the
channel goes final; a second Ctrl-C aborts. A push the relay refuses ends
every push, and the command exits 1 with the relay's reason.

Every flag can also be set as SMOOTHCAST_PUSH_<FLAG> (upper case, '-' as
'_'), except -secret: SMOOTHCAST_INGEST_SECRET, as for the relay.

Flags:
`

// pushPlan is what `smoothcast push` does.
type pushPlan struct {
	url      string // relay base
	streams  []*pushStream
	channels []string
	count    int // fragments per stream
	realtime bool
	// progress goes here: rewritten in place every tick when terminal,
	// one line every tick otherwise.
	progress io.Writer
	terminal bool
	tick     time.Duration
	grace    time.Duration // how long the relay may take to answer once stopped
}

// pushStream is one POST.
type pushStream struct {
	channel, name string
	cfg           synth.Config
	secret        string // HTTP Basic password; empty: none
	bytes, frags  atomic.Int64
}

// push runs `smoothcast push`.
func push(args []string) error {
	fs := config.New("push", config.Prefix+"PUSH_")
	fs.Usage = func() { fmt.Fprint(fs.Output(), pushUsage); fs.PrintDefaults() }
	base := fs.String("url", "http://127.0.0.1:8080", "relay base URL")
	channels := fs.String("channel", "demo", "channel, or channels separated by commas, pushed at once")
	tracks := fs.String("tracks", "video:800k,video:300k:320x180,audio:96k", `tracks, kind:bitrate[:WxH] separated by commas, or "ladder"`)
	duration := fs.Duration("duration", 60*time.Second, "how much media to push (0: until Ctrl-C)")
	fragment := fs.Duration("fragment", 2*time.Second, "fragment duration (a whole number of 25 fps frames, 100ms..1m)")
	mode := fs.String("mode", "smooth", "smooth, per-track or cmaf")
	burst := fs.Bool("burst", false, "push as fast as the relay takes it, not in real time")
	secret := fs.String("secret", "", "ingest secret, sent as HTTP Basic (lines of channel=secret pick the channel's)")
	fs.Rename("secret", "SMOOTHCAST_INGEST_SECRET") // the relay's and smoothcast run's
	fs.Secret("secret")
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	plan, err := newPushPlan(*base, *channels, *tracks, *mode, *secret, *duration, *fragment, !*burst)
	if err != nil {
		fmt.Fprintf(os.Stderr, "push: %v\n", err)
		return errUsage
	}
	plan.progress = os.Stderr
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		plan.terminal = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		signal.Stop(sig) // a second signal kills
		fmt.Fprintf(os.Stderr, "\n%v: ending the pushes cleanly (again to abort)\n", s)
		cancel()
	}()
	for _, s := range plan.streams {
		fmt.Fprintf(os.Stderr, "push %s: %s\n", plan.streamURL(s), describeTracks(s.cfg.Tracks))
	}
	return plan.run(ctx, &http.Client{})
}

// newPushPlan validates the flags and lays out the streams.
func newPushPlan(base, channels, tracks, mode, secret string, duration, fragment time.Duration, realtime bool) (*pushPlan, error) {
	p := &pushPlan{url: strings.TrimRight(base, "/"), realtime: realtime, tick: 10 * time.Second, grace: 10 * time.Second}
	if !strings.HasPrefix(p.url, "http://") && !strings.HasPrefix(p.url, "https://") {
		return nil, fmt.Errorf("-url %q: want http(s)://host:port", base)
	}
	for _, ch := range strings.Split(channels, ",") {
		ch = strings.TrimSpace(ch)
		if !layout.ValidName(ch) {
			return nil, fmt.Errorf("-channel %q: %w (1-64 of A-Z a-z 0-9 _ -)", ch, layout.ErrInvalidName)
		}
		p.channels = append(p.channels, ch)
	}
	trs, err := parseTracks(tracks)
	if err != nil {
		return nil, err
	}
	if duration < 0 {
		return nil, fmt.Errorf("-duration %v", duration)
	}
	p.count = math.MaxInt
	if duration > 0 {
		p.count = int((duration + fragment - 1) / fragment)
	}
	secrets, perr := relay.ParseSecrets(secret)
	cfg := synth.Config{Tracks: trs, FragmentDuration: fragment}
	for _, ch := range p.channels {
		sec := strings.TrimSpace(secret)
		if perr == nil {
			sec, _ = secrets.For(ch)
		}
		add := func(name string, c synth.Config) error {
			if _, err := synth.New(c); err != nil {
				return err
			}
			p.streams = append(p.streams, &pushStream{channel: ch, name: name, cfg: c, secret: sec})
			return nil
		}
		switch mode {
		case "smooth":
			c := cfg
			c.SMIL = true
			if err := add("enc1", c); err != nil {
				return nil, err
			}
		case "per-track", "cmaf":
			seen := map[string]int{}
			for _, c := range cfg.Split() {
				c.SMIL, c.CMAF = mode == "per-track", mode == "cmaf"
				name := string(c.Tracks[0].Kind) + formatBitrate(c.Tracks[0].Bitrate)
				if seen[name]++; seen[name] > 1 {
					name += "-" + strconv.Itoa(seen[name])
				}
				if err := add(name, c); err != nil {
					return nil, err
				}
			}
		default:
			return nil, fmt.Errorf("-mode %q: want smooth, per-track or cmaf", mode)
		}
	}
	return p, nil
}

// parseTracks reads -tracks.
func parseTracks(s string) ([]synth.Track, error) {
	if strings.TrimSpace(s) == "ladder" {
		return synth.Ladder(), nil
	}
	var out []synth.Track
	for _, spec := range strings.Split(s, ",") {
		parts := strings.Split(strings.TrimSpace(spec), ":")
		if len(parts) < 2 || len(parts) > 3 {
			return nil, fmt.Errorf("-tracks %q: want kind:bitrate[:WxH]", spec)
		}
		var t synth.Track
		switch parts[0] {
		case "video":
			t.Kind = timeline.Video
		case "audio":
			t.Kind = timeline.Audio
		default:
			return nil, fmt.Errorf("-tracks %q: kind %q (want video or audio)", spec, parts[0])
		}
		b, err := parseBitrate(parts[1])
		if err != nil {
			return nil, fmt.Errorf("-tracks %q: %w", spec, err)
		}
		t.Bitrate = b
		if len(parts) == 3 {
			if t.Kind != timeline.Video {
				return nil, fmt.Errorf("-tracks %q: a size is for video", spec)
			}
			w, h, ok := strings.Cut(parts[2], "x")
			t.Width, err = strconv.Atoi(w)
			if err == nil {
				t.Height, err = strconv.Atoi(h)
			}
			if !ok || err != nil || t.Width < 16 || t.Height < 16 || t.Width > 4096 || t.Height > 4096 || t.Width%2 != 0 || t.Height%2 != 0 {
				return nil, fmt.Errorf("-tracks %q: size %q (want WxH, even, 16..4096)", spec, parts[2])
			}
		}
		out = append(out, t)
	}
	return out, nil
}

// parseBitrate reads 96000, 96k, 1.5M.
func parseBitrate(s string) (int, error) {
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1e3, s[:len(s)-1]
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult, s = 1e6, s[:len(s)-1]
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v*mult < 1000 || v*mult > 100e6 {
		return 0, fmt.Errorf("bitrate %q (want 1k..100M bit/s)", s)
	}
	return int(math.Round(v * mult)), nil
}

// formatBitrate writes a bitrate as -tracks does: 800k, or bits per second.
func formatBitrate(b int) string {
	if b%1000 == 0 {
		return strconv.Itoa(b/1000) + "k"
	}
	return strconv.Itoa(b)
}

func describeTracks(ts []synth.Track) string {
	var parts []string
	for _, t := range ts {
		d := string(t.Kind) + " " + formatBitrate(t.Bitrate)
		if t.Kind == timeline.Video {
			w, h := t.Width, t.Height
			if w == 0 && h == 0 {
				w, h = 640, 360
			}
			d += fmt.Sprintf(" %dx%d", w, h)
		}
		parts = append(parts, d)
	}
	return strings.Join(parts, ", ")
}

func (p *pushPlan) streamURL(s *pushStream) string {
	return p.url + "/live/" + s.channel + ".isml/Streams(" + s.name + ")"
}

// run pushes every stream at once until each has sent its fragments or
// ctx ends (then each ends its stream cleanly). The first push that fails
// ends the others. client nil is http.DefaultClient.
func (p *pushPlan) run(ctx context.Context, client *http.Client) error {
	if client == nil {
		client = http.DefaultClient
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	began := time.Now()
	done := make(chan struct{})
	var progressDone sync.WaitGroup
	progressDone.Go(func() { p.report(began, done) })
	errs := make([]error, len(p.streams))
	var wg sync.WaitGroup
	for i, s := range p.streams {
		wg.Go(func() {
			if errs[i] = p.pushOne(ctx, client, s); errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	close(done)
	progressDone.Wait()
	return errors.Join(errs...)
}

// report writes the progress line until done is closed, then once more.
func (p *pushPlan) report(began time.Time, done <-chan struct{}) {
	tick := p.tick
	if p.terminal {
		tick = 500 * time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-done:
			if p.terminal {
				fmt.Fprintf(p.progress, "\r%s\x1b[K\n", p.line(time.Since(began)))
			} else {
				fmt.Fprintln(p.progress, p.line(time.Since(began)))
			}
			return
		}
		if p.terminal {
			fmt.Fprintf(p.progress, "\r%s\x1b[K", p.line(time.Since(began)))
		} else {
			fmt.Fprintln(p.progress, p.line(time.Since(began)))
		}
	}
}

// line is the progress line: the time elapsed, then per channel the
// fragments sent (of how many), MB and Mbit/s.
func (p *pushPlan) line(elapsed time.Duration) string {
	var b strings.Builder
	e := elapsed.Truncate(time.Second)
	fmt.Fprintf(&b, "%02d:%02d:%02d", int(e.Hours()), int(e.Minutes())%60, int(e.Seconds())%60)
	for _, ch := range p.channels {
		var bytes int64
		frags := int64(-1)
		for _, s := range p.streams {
			if s.channel == ch {
				bytes += s.bytes.Load()
				if n := s.frags.Load(); frags < 0 || n < frags {
					frags = n // the channel is as far as its slowest stream
				}
			}
		}
		of := ""
		if p.count != math.MaxInt {
			of = "/" + strconv.Itoa(p.count)
		}
		rate := 0.0
		if elapsed > 0 {
			rate = float64(bytes) * 8 / 1e6 / elapsed.Seconds()
		}
		fmt.Fprintf(&b, "  %s %d%s frags %.1f MB %.2f Mbit/s", ch, max(frags, 0), of, float64(bytes)/1e6, rate)
	}
	return b.String()
}

// countingWriter counts what a stream sends: bytes, and fragments (the
// writes that start with a moof or, for CMAF, an styp: synth writes a
// fragment of every track at once).
type countingWriter struct {
	w io.Writer
	s *pushStream
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.s.bytes.Add(int64(n))
	if err == nil && len(b) >= 8 && (string(b[4:8]) == "moof" || string(b[4:8]) == "styp") {
		c.s.frags.Add(1)
	}
	return n, err
}

// pushOne sends one stream in a chunked POST and waits for the relay's
// answer. When ctx ends, the stream ends at a fragment boundary with its
// trailer (Smooth's mfra; a CMAF push just completes), as an encoder that
// stops does; the relay then has p.grace to answer.
func (p *pushPlan) pushOne(ctx context.Context, client *http.Client, s *pushStream) error {
	st, err := synth.New(s.cfg)
	if err != nil {
		return fmt.Errorf("push %s: %w", s.channel, err)
	}
	url := p.streamURL(s)
	reqCtx, cancelReq := context.WithCancel(context.Background())
	defer cancelReq()
	go func() {
		select {
		case <-ctx.Done():
		case <-reqCtx.Done():
			return
		}
		t := time.NewTimer(p.grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancelReq()
		case <-reqCtx.Done():
		}
	}()
	pr, pw := io.Pipe()
	wrote := make(chan struct{})
	writeCtx, cancelWrite := context.WithCancel(ctx)
	defer cancelWrite()
	go func() {
		defer close(wrote)
		_, err := st.WriteTo(writeCtx, &countingWriter{w: pw, s: s}, synth.Range{Count: p.count, Realtime: p.realtime, End: true})
		if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			// Stopped between fragments: end the stream as an encoder does.
			_, err = (&countingWriter{w: pw, s: s}).Write(st.Trailer())
		}
		pw.CloseWithError(err)
	}()
	defer func() {
		pr.Close() // a writer still blocked fails
		cancelWrite()
		<-wrote
	}()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, url, pr)
	if err != nil {
		pr.CloseWithError(err)
		return fmt.Errorf("push %s: %w", url, err)
	}
	req.ContentLength = -1 // chunked, as encoders send it
	req.Header.Set("Content-Type", "video/mp4")
	if s.secret != "" {
		req.SetBasicAuth("smoothcast", s.secret)
	}
	resp, err := client.Do(req)
	if err != nil {
		pr.CloseWithError(err)
		return fmt.Errorf("push %s: %w", url, err)
	}
	defer resp.Body.Close()
	// The relay may answer before it has read everything (a refusal): stop
	// writing.
	pr.CloseWithError(errors.New("the relay answered"))
	cancelWrite()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("push %s refused: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

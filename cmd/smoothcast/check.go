package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	checkpkg "github.com/smoothcast/smoothcast/internal/check"
	"github.com/smoothcast/smoothcast/shared/config"
)

const checkUsage = `usage: smoothcast check -base URL [-channel CH] [-timeout 30s] [-fetch all|head]

Fetches a channel's manifests as a viewer would, from any base URL: the
local edge (http://127.0.0.1:8081) or a CloudFront distribution
(https://dxxxx.cloudfront.net):

  {base}/live/{channel}.isml/Manifest       Smooth: every StreamIndex's c t/d/r timeline and Url template
  {base}/live/{channel}.isml/master.m3u8    HLS: every media playlist, its EXT-X-MAP and segments
  {base}/live/{channel}.isml/manifest.mpd   DASH: every Period's SegmentTemplate, SegmentTimeline and initialization

and verifies that
  - every object they reference answers 200 (each distinct object is
    requested once). With -fetch all (the default) it is downloaded: a
    fragment must be a whole moof+mdat whose tfdt is the time its manifest
    lists, an init segment an ftyp and a moov. With -fetch head only HEAD
    is asked (cheap on a long DVR window or a CDN bill);
  - every format lists the same tracks, and per track the same fragment
    start times. While live, a format may lack the newest two (Smooth
    holds back the newest fragment; the manifests are fetched one after
    the other) or, as the DVR window slides, the oldest two. Final (VOD)
    manifests must agree exactly.

It prints a report (per format and track: fragments listed, checked,
missing, bad; then every problem) and exits 0 when there is no problem,
1 otherwise.

Every flag can also be set as SMOOTHCAST_CHECK_<FLAG> (upper case, '-' as '_').

Flags:
`

// check runs `smoothcast check`.
func check(args []string) error {
	fs := config.New("check", config.Prefix+"CHECK_")
	fs.Usage = func() { fmt.Fprint(fs.Output(), checkUsage); fs.PrintDefaults() }
	base := fs.String("base", "http://127.0.0.1:8081", "playback base URL: the edge, or a CDN")
	channel := fs.String("channel", "demo", "channel to check")
	timeout := fs.Duration("timeout", 30*time.Second, "deadline for the whole check (manifests and every object); 0: none")
	fetch := fs.String("fetch", "all", "all: GET every object and inspect it; head: HEAD only")
	concurrency := fs.Int("concurrency", 8, "objects requested at once")
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	mode := checkpkg.FetchMode(*fetch)
	if mode != checkpkg.FetchAll && mode != checkpkg.FetchHead {
		fmt.Fprintf(os.Stderr, "check: -fetch %q: want all or head\n", *fetch)
		return errUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	return runCheck(ctx, os.Stdout, &http.Client{}, *base, *channel, checkpkg.Options{Fetch: mode, Concurrency: *concurrency})
}

// runCheck runs the check and prints its report to w; the error says why
// the channel failed.
func runCheck(ctx context.Context, w io.Writer, client *http.Client, base, channel string, opts checkpkg.Options) error {
	rep, err := checkpkg.Run(ctx, client, base, channel, opts)
	if len(rep.Manifests) > 0 {
		if werr := rep.WriteText(w); werr != nil {
			return fmt.Errorf("check: report: %w", werr)
		}
	}
	switch {
	case err != nil:
		return err
	case !rep.OK():
		return fmt.Errorf("check %s channel %s: %d problem(s)", base, channel, len(rep.Problems))
	}
	return nil
}

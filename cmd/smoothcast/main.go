// Command smoothcast is the operator's tool for the origin.
//
//	smoothcast run [flags]       the local stack: embedded S3, relay, manifest function, edge
//	smoothcast push [flags]      the synthetic encoder: push channels of test media to a relay
//	smoothcast check [flags]     verify a channel's manifests and every object they reference
//	smoothcast aws stop|start|status [flags]   stop a deployed stack's relays between events, start them, show them
//	smoothcast version           the build's version, VCS revision and Go version
//
// Run `smoothcast <command> -h` for a command's flags.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/functions/ingest/srt"
	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/internal/keyflags"
	"github.com/smoothcast/smoothcast/local/stack"
	"github.com/smoothcast/smoothcast/shared/config"
)

const usage = `usage: smoothcast <command> [flags]

Commands:
  run       start the local stack (embedded S3, relay, manifest function, edge)
  push      push synthetic live media (H.264 + AAC) to a relay: channels, tracks, bitrates, duration
  check     fetch a channel's Smooth, HLS and DASH manifests from any base URL and verify
            that every referenced object exists and the timelines agree
  aws       stop|start|status: stop a deployed stack's relays between events (storage is all
            that is paid), start them again (the ingest URLs stay), show their state
  version   print the version, VCS revision and time, and Go version of this build

Run 'smoothcast <command> -h' for a command's flags.
`

// errUsage marks a command line that could not be parsed (exit status 2).
var errUsage = errors.New("usage")

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "-h", "--help", "-help", "help":
		fmt.Fprint(os.Stdout, usage)
		return
	case "run":
		err = run(os.Args[2:])
	case "push":
		err = push(os.Args[2:])
	case "check":
		err = check(os.Args[2:])
	case "aws":
		err = awsCmd(os.Args[2:])
	case "version":
		err = version(os.Args[2:], os.Stdout)
	default:
		fmt.Fprintf(os.Stderr, "smoothcast: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	switch {
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		slog.Error("smoothcast "+os.Args[1], "err", err)
		os.Exit(1)
	}
}

// parseFlags parses a command's flags (and their variables): -h prints
// the usage and ends the command (flag.ErrHelp, success); a bad flag is
// errUsage, a bad variable an error naming it.
func parseFlags(fs *config.Set, args []string) error {
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return flag.ErrHelp
	} else if errors.Is(err, config.ErrUsage) {
		return errUsage
	} else if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return errUsage
	}
	return nil
}

const runUsage = `usage: smoothcast run [flags]

Runs the origin on this machine: an embedded S3-compatible store, the ingest
relay, the manifest function (driven by the same S3 event JSON AWS sends) and
a local edge that behaves like the CloudFront distribution.

Ingest (encoders push here, POST or PUT, chunked or not):
  http://{ingest}/live/{channel}.isml/Streams({stream})   Smooth (ffmpeg -f ismv) or CMAF, a track per stream
  http://{ingest}/live/{channel}.isml/{file}              uploads: ffmpeg -f dash or -f hls -method PUT
  rtmp://{rtmp}/live/{channel}                            RTMP (OBS: Server rtmp://{rtmp}/live, Stream Key {channel})
  srt://{srt}?streamid=#!::r={channel},m=publish         SRT callers (MPEG-TS; the bare channel name works too)
With -tls, the ingest is https:// only and RTMPS is rtmps://{rtmps}/live/{channel}, with a
self-signed certificate kept in {data-dir}/tls (or -tls-cert); SRT encrypts with -srt-passphrase.

Playback (the edge):
  http://{edge}/live/{channel}.isml/Manifest       Smooth Streaming
  http://{edge}/live/{channel}.isml/master.m3u8    HLS (fMP4)
  http://{edge}/live/{channel}.isml/manifest.mpd   DASH
  http://{edge}/live/{channel}.isml/QualityLevels({bitrate})/Fragments({track}={time})

Every flag can also be set as SMOOTHCAST_<FLAG> (upper case, '-' as '_').

Flags:
`

func run(args []string) error {
	fs := config.New("run", config.Prefix)
	fs.Usage = func() { fmt.Fprint(fs.Output(), runUsage); fs.PrintDefaults() }
	ingest := fs.String("ingest-addr", "127.0.0.1:8080", "relay listen address")
	rtmpAddr := fs.String("rtmp-addr", "127.0.0.1:1935", "RTMP listen address (empty: no RTMP)")
	srtCfg := srt.DefaultConfig()
	fs.StringVar(&srtCfg.Addr, "srt-addr", "127.0.0.1:9000", "SRT listen address, UDP (empty: off)")
	fs.StringVar(&srtCfg.Passphrase, "srt-passphrase", "", "SRT encryption passphrase, 10 to 79 characters (empty: callers must not encrypt)")
	fs.Secret("srt-passphrase")
	var pulls srt.PullFlag
	fs.Var(&pulls, "srt-pull", srt.PullUsage)
	edgeAddr := fs.String("edge-addr", "127.0.0.1:8081", "edge (playback) listen address")
	adminAddr := fs.String("admin-addr", "127.0.0.1:8082", "the relay's /metrics, /healthz, /status and /status.html (empty: off)")
	s3Addr := fs.String("s3-addr", "127.0.0.1:0", "embedded S3 listen address (port 0: any free port)")
	dataDir := fs.String("data-dir", ".smoothcast", "where the embedded store keeps the bucket (empty: in memory)")
	dvr := fs.Duration("dvr-window", 30*time.Minute, "DVR window the manifests list")
	gap := fs.Duration("gap-timeout", 10*time.Second, "how long a fragment waits for earlier ones before the hole is declared a gap")
	archive := fs.Duration("archive", 0, "how far back time-shift requests reach (start=0 on a finished event is its whole archive); 0: the retention less 10 min")
	keep := fs.Duration("retention", 24*time.Hour, "how long fragments are kept; manifests stop listing them 10 min sooner (at least the DVR window plus 10 min)")
	secretFile := fs.String("ingest-secret-file", "", "file with the ingest secret, or lines of channel=secret (* for the default); SMOOTHCAST_INGEST_SECRET may hold them instead; none: no authentication")
	secretEnv := fs.EnvSecret("SMOOTHCAST_INGEST_SECRET", "the ingest secret(s) themselves, when -ingest-secret-file is not set")
	budget := config.Bytes(relay.DefaultConfig().MemoryBudget)
	fs.BytesVar(&budget, "memory-budget", budget, "the memory the relay's buffers draw from, the local stack's share of it: past it, pushes and uploads get 503 and Retry-After (0: no bound)")
	drift := fs.Duration("max-drift", 10*time.Second, "how far an encoder's timestamps may stray from the channel clock before the relay rebases them (a restarted encoder), and the largest forward skip that is not a discontinuity")
	var tlsOpts runTLS
	tlsOpts.define(fs)
	var keyOpts keyflags.Options
	keyOpts.Define(fs, false)
	players := fs.String("players", "players", "the source tree's players/ folder, whose npm packages the player page at /player/ loads")
	verbose := fs.Bool("v", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		if errors.Is(err, config.ErrUsage) {
			return errUsage
		}
		return err
	}
	var err error
	if srtCfg.Pull, err = pulls.Pulls(); err != nil {
		return fmt.Errorf("-srt-pull: %w", err)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	tlsOpts.dataDir = *dataDir
	ingestCert, err := tlsOpts.load(log, time.Now())
	defer tlsOpts.close()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hcfg := handler.DefaultConfig()
	hcfg.DVRWindow, hcfg.GapTimeout, hcfg.Retention, hcfg.Archive = *dvr, *gap, *keep, *archive
	rcfg := relay.DefaultConfig()
	rcfg.MaxDrift = *drift
	rcfg.MemoryBudget = int64(budget)
	secrets := *secretEnv
	if *secretFile != "" {
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return fmt.Errorf("ingest secret: %w", err)
		}
		secrets = string(b)
	}
	if secrets != "" {
		if rcfg.Secrets, err = relay.ParseSecrets(secrets); err != nil {
			return err
		}
	} else {
		log.Warn("ingest authentication is off (fine on this machine; set -ingest-secret-file or SMOOTHCAST_INGEST_SECRET to try it)")
	}
	keySource, keysFrom, err := keyOpts.Source(ctx, log.With("component", "keys"), nil)
	if err != nil {
		return fmt.Errorf("encryption: %w", err)
	}
	rcfg.Keys = keySource
	log.Info("encryption", "keys_from", keysFrom)
	if c, ok := keySource.(interface{ Close() }); ok {
		defer c.Close() // a key server's prefetches
	}
	// Not ctx itself: Ctrl-C must not cut the pushes before Close lets them
	// store the fragment in hand, as the relay does on SIGTERM.
	so := stack.Options{
		IngestAddr: *ingest, EdgeAddr: *edgeAddr, AdminAddr: *adminAddr, S3Addr: *s3Addr, DataDir: *dataDir, RTMPAddr: *rtmpAddr,
		Handler: hcfg, Relay: rcfg, SRT: srtCfg, Players: *players, Log: log,
	}
	if ingestCert != nil {
		so.IngestTLS, so.RTMPSAddr, so.RTMPTLS = ingestCert.Config(), tlsOpts.rtmpsAddr, ingestCert.Config()
	}
	st, err := stack.Start(context.WithoutCancel(ctx), so)
	if err != nil {
		return err
	}
	fs.Log(log, "configuration", "s3", st.S3.URL, "archive_span", hcfg.ArchiveSpan().String())
	rtmpKey := "{channel}"
	if rcfg.Secrets.On() {
		rtmpKey += "?secret={secret}"
	}
	fmt.Printf(`
smoothcast is running.

  Ingest:    %[1]s/live/{channel}.isml/Streams({stream})   (Smooth or CMAF push)
             %[1]s/live/{channel}.isml/{file}              (DASH or HLS upload)
             %[6]s/%[7]s   (RTMP; OBS: Server %[6]s, Stream Key %[7]s)
             %[8]s
  Playback:  %[2]s/live/{channel}.isml/   (Manifest, master.m3u8, manifest.mpd)
  Player:    %[2]s/player/?channel=demo&format=hls   (format: hls, dash or smooth)
  Store:     %[3]s (bucket smoothcast, data in %[4]q)
  Relay:     %[5]s/status.html   (also /metrics, /healthz, /status)
%[9]s
Push a test pattern (two video bitrates + AAC) to channel "demo":

  ffmpeg -re -f lavfi -i testsrc2=size=640x360:rate=25 -f lavfi -i sine=frequency=440:sample_rate=48000 \
    -map 0:v -map 0:v -map 1:a -c:v libx264 -preset veryfast -g 50 -keyint_min 50 -sc_threshold 0 \
    -b:v:0 800k -b:v:1 300k -s:v:1 320x180 -c:a aac -b:a 96k \
    -movflags +isml+frag_keyframe -f ismv "%[1]s/live/demo.isml/Streams(demo)"

or over RTMP, as OBS would (H.264 + AAC, a key frame every 2 s):

  ffmpeg -re -f lavfi -i testsrc2=size=640x360:rate=25 -f lavfi -i sine=frequency=440:sample_rate=48000 \
    -c:v libx264 -preset veryfast -g 50 -b:v 800k -c:a aac -b:a 96k -f flv "%[6]s/demo"

Then play:

  %[2]s/player/?channel=demo   (in a browser: HLS, DASH or Smooth)
  ffplay %[2]s/live/demo.isml/master.m3u8

Ctrl-C stops.
`, st.IngestURL, st.EdgeURL, st.S3.URL, *dataDir, cmp.Or(st.AdminURL, "(off)"), cmp.Or(st.RTMPURL, "rtmp (off)"), rtmpKey,
		srtLine(st.SRTURL, rcfg.Secrets.On(), srtCfg.Passphrase != ""), tlsOpts.banner(ingestCert, st.IngestURL, st.RTMPSURL))
	<-ctx.Done()
	log.Info("stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return st.Close(sctx)
}

// srtLine is the SRT URL of `smoothcast run`'s banner: the stream ID a
// caller gives (with the channel's secret when authentication is on), and
// the passphrase when encryption is.
func srtLine(base string, auth, encrypted bool) string {
	if base == "" {
		return "(SRT off: -srt-addr)"
	}
	u := base + "?streamid=#!::r={channel},m=publish"
	if auth {
		u += ",smoothcast_secret={secret}"
	}
	if encrypted {
		u += "&passphrase={passphrase}"
	}
	return u + "   (SRT caller, MPEG-TS)"
}

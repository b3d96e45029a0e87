// Command ingest is the ingest relay daemon (on EC2 in production): it
// takes Smooth and CMAF pushes at /live/{channel}.isml/Streams({stream})
// and DASH and HLS uploads under /live/{channel}.isml/ (package relay),
// and writes init segments and fragments to S3.
//
// On a second listener of its own (-admin-addr, loopback by default) it
// serves the operator's endpoints: /metrics (Prometheus), /healthz,
// /status (JSON) and /status.html. They name channels and encoder
// addresses, so they are not on the ingest port: the AWS stack's
// security group opens only the ingest port, and an operator reaches the
// admin port through Session Manager port forwarding or from the
// instance itself. A relay whose admin address is taken still takes
// pushes, and logs an error.
//
// On a UDP port of its own (-srt-addr) it takes MPEG-TS over SRT from
// callers whose stream ID is #!::r={channel},m=publish (package srt),
// and it calls the SRT encoders that listen (-srt-pull).
//
// On SIGTERM (or SIGINT) the relay stops taking requests (503), lets each
// push store the fragment it is receiving and end as a drop (so that the
// channel stays live while the encoder reconnects to another relay), ends
// the upload renditions the same way and exits, within -shutdown-timeout.
//
// Flags (each also settable as SMOOTHCAST_<FLAG>, upper case, '-' as '_',
// except -secret-parameter: SMOOTHCAST_INGEST_SECRET_PARAMETER; see
// package shared/config). The effective configuration is logged at start,
// secrets masked:
//
//	-addr       listen address (default :8080): HTTPS only with -tls-cert
//	-tls-cert   certificate chain, PEM, which may hold the key too (read again
//	            when it changes; its SHA-256 fingerprint, names and addresses
//	            are logged at start); empty: clear-text HTTP
//	-tls-key    its private key, PEM (empty: in the -tls-cert file)
//	-bucket     bucket (required)
//	-region     region (default: AWS_REGION, else us-east-1)
//	-endpoint   S3-compatible endpoint (empty: AWS)
//	-max-box    largest box accepted, bytes (default 64 MiB)
//	-read-timeout  drop an encoder silent this long (default 30s)
//	-read-header-timeout  close a connection whose request headers take longer (default 10s)
//	-max-drift  rebase an encoder this far off the channel clock (default 10s)
//	-reorder-wait  how long an uploaded segment that leaves a gap waits (default 2s)
//	-secret-file       file with the ingest secret(s) (see relay.ParseSecrets)
//	-secret-parameter  SSM parameter (SecureString) with the ingest secret(s)
//	-admin-addr        metrics, health and status address (default 127.0.0.1:9090; empty: none)
//	-shutdown-timeout  how long a shutdown may take (default 10s)
//	-rtmp-addr   RTMP listen address (default :1935; empty: none), package rtmp
//	-rtmps-addr  RTMPS listen address (default none), with -rtmps-cert and -rtmps-key (PEM),
//	             or else -tls-cert and -tls-key
//	-srt-addr    SRT listen address, UDP (default :9000; empty: none), package srt
//	-srt-passphrase  SRT encryption passphrase, 10 to 79 characters (empty: none)
//	-srt-passphrase-parameter  SSM parameter (SecureString) with the SRT passphrase,
//	             read at start (SMOOTHCAST_SRT_PASSPHRASE_PARAMETER)
//	-srt-latency  the least SRT latency the relay asks of callers (default 120ms)
//	-srt-pull    CHANNEL=srt://HOST:PORT[?streamid=&passphrase=&latency=ms]: an
//	             encoder that listens, which the relay calls (repeatable;
//	             SMOOTHCAST_SRT_PULL: entries separated by spaces)
//	-cloudwatch-namespace  publish the relay's health to CloudWatch in this
//	             namespace (empty: not at all), package cloudwatch
//	-cloudwatch-relay      the Relay dimension's value (a, b), with it
//	-cloudwatch-interval   how often (default 1m)
//
// With -tls-cert, -addr takes no clear text: net/http answers a request
// in clear-text HTTP 400 and closes the connection, and the relay logs it
// once per remote host (an encoder whose URL says http:// where https://
// is due); an rtmp:// publish to the RTMPS port likewise.
//
// SMOOTHCAST_INGEST_SECRET may also hold the secret(s) themselves. Without
// any, encoders are not authenticated, and the relay says so loudly.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/smoothcast/smoothcast/functions/ingest/cloudwatch"
	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/functions/ingest/srt"
	"github.com/smoothcast/smoothcast/internal/keyflags"
	"github.com/smoothcast/smoothcast/shared/config"
	"github.com/smoothcast/smoothcast/shared/keys"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/tlsfile"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	slog.SetDefault(log)
	opts, err := parseOptions(os.Args[1:], os.LookupEnv)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return
	case errors.Is(err, config.ErrUsage):
		os.Exit(2)
	case err != nil:
		log.Error("ingest relay", "err", err)
		os.Exit(1)
	}
	opts.settings.Log(log, "configuration")
	if err := run(log, opts); err != nil {
		log.Error("ingest relay", "err", err)
		os.Exit(1)
	}
}

// options are the relay's settings, read by parseOptions.
type options struct {
	relay                               relay.Config
	addr, bucket, region, endpoint      string
	secretFile, secretParameter, secret string
	adminAddr                           string
	headerTimeout, shutdownTimeout      time.Duration
	rtmp                                rtmpOptions
	tls                                 tlsOptions
	srt                                 srt.Config
	srtPassphraseParameter              string
	pulls                               srt.PullFlag
	cloudwatch                          cloudwatchOptions
	keys                                keyflags.Options
	metrics                             cloudwatch.Config // from cloudwatch
	settings                            *config.Set       // for the log line
}

// parseOptions reads the flags, each also settable as SMOOTHCAST_<FLAG>
// (lookup reads the environment).
func parseOptions(args []string, lookup func(string) (string, bool)) (options, error) {
	o := options{relay: relay.DefaultConfig(), srt: srt.DefaultConfig()}
	fs := config.New("smoothcast-ingest", config.Prefix)
	fs.LookupEnv = lookup
	region, _ := lookup("AWS_REGION")
	fs.StringVar(&o.addr, "addr", ":8080", "listen address")
	fs.StringVar(&o.bucket, "bucket", "", "bucket for fragments (required)")
	fs.StringVar(&o.region, "region", region, "AWS region")
	fs.StringVar(&o.endpoint, "endpoint", "", "S3-compatible endpoint (empty: AWS)")
	fs.IntVar(&o.relay.MaxBox, "max-box", o.relay.MaxBox, "largest MP4 box accepted, in bytes")
	budget := config.Bytes(o.relay.MemoryBudget)
	fs.BytesVar(&budget, "memory-budget", budget, "the memory the relay may use: its buffers draw from it (past it, requests get 503 and Retry-After), and Go's garbage collector keeps to it (unless GOMEMLIMIT is set); 0: no bound")
	fs.DurationVar(&o.relay.ReadTimeout, "read-timeout", o.relay.ReadTimeout, "drop an encoder that sends nothing for this long")
	fs.DurationVar(&o.headerTimeout, "read-header-timeout", 10*time.Second, "close a connection that has not sent its request headers within this long")
	fs.DurationVar(&o.relay.MaxDrift, "max-drift", o.relay.MaxDrift, "rebase an encoder whose timestamps stray this far from the channel clock")
	fs.DurationVar(&o.relay.ReorderWait, "reorder-wait", o.relay.ReorderWait, "how long an uploaded segment that leaves a gap waits for the segments before it (0: not at all)")
	fs.StringVar(&o.secretFile, "secret-file", "", "file with the ingest secret, or lines of channel=secret (* for the default)")
	fs.StringVar(&o.secretParameter, "secret-parameter", "", "SSM parameter (SecureString) holding the ingest secret(s)")
	// The stack's systemd unit sets SMOOTHCAST_INGEST_SECRET_PARAMETER;
	// the name derived from the flag was read too, once.
	fs.Rename("secret-parameter", "SMOOTHCAST_INGEST_SECRET_PARAMETER", "SMOOTHCAST_SECRET_PARAMETER")
	secret := fs.EnvSecret("SMOOTHCAST_INGEST_SECRET", "the ingest secret(s) themselves, when neither -secret-parameter nor -secret-file is set")
	fs.StringVar(&o.adminAddr, "admin-addr", "127.0.0.1:9090", "address of /metrics, /healthz, /status and /status.html (empty: not served); keep it away from encoders")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGTERM, how long pushes have to finish the fragment in hand before the relay exits")
	o.tls.define(fs)
	o.rtmp.define(fs)
	defineSRT(fs, &o.srt, &o.srtPassphraseParameter, &o.pulls)
	o.cloudwatch.define(fs)
	o.keys.Define(fs, true)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.secret, o.settings = *secret, fs
	o.relay.MemoryBudget = int64(budget)
	if o.bucket == "" {
		return o, errors.New("-bucket (or SMOOTHCAST_BUCKET) is required")
	}
	if o.shutdownTimeout <= 0 {
		return o, fmt.Errorf("-shutdown-timeout %v: want a positive duration", o.shutdownTimeout)
	}
	if err := o.tls.check(); err != nil {
		return o, err
	}
	if err := o.rtmp.check(o.tls.cert != ""); err != nil {
		return o, err
	}
	var err error
	if o.metrics, err = o.cloudwatch.config(); err != nil {
		return o, err
	}
	return o, checkSRT(&o.srt, o.srtPassphraseParameter, &o.pulls)
}

func run(log *slog.Logger, o options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := store.New(ctx, store.Config{Bucket: o.bucket, Region: o.region, Endpoint: o.endpoint})
	if err != nil {
		return err
	}
	secrets, from, err := loadSecrets(ctx, o.secretFile, o.secretParameter, o.secret, o.region)
	if err != nil {
		return err
	}
	cfg := o.relay
	cfg.Secrets = secrets
	logAuth(log, secrets, from)
	keySource, keysFrom, err := o.keys.Source(ctx, log.With("component", "keys"), func(ctx context.Context) (keys.SSMGetter, error) {
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(o.region))
		if err != nil {
			return nil, fmt.Errorf("AWS config: %w", err)
		}
		return ssm.NewFromConfig(awsCfg), nil
	})
	if err != nil {
		return fmt.Errorf("encryption: %w", err)
	}
	cfg.Keys = keySource
	log.Info("encryption", "keys_from", keysFrom)
	if c, ok := keySource.(interface{ Close() }); ok {
		defer c.Close() // a key server's prefetches
	}
	if o.srtPassphraseParameter != "" {
		if o.srt.Passphrase, err = loadSRTPassphrase(ctx, o.srtPassphraseParameter, o.region); err != nil {
			return err
		}
	}
	ingestCert, err := o.tls.load(log)
	if err != nil {
		return fmt.Errorf("ingest listener (-tls-cert): %w", err)
	}
	o.rtmp.ingestCert = ingestCert
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && cfg.MemoryBudget > 0 {
		// The garbage collector keeps the heap, garbage included, within
		// the budget the buffers draw from.
		debug.SetMemoryLimit(cfg.MemoryBudget)
	}
	rl := relay.New(st, cfg, log)
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("ingest listener: %w", err)
	}
	// Each connection draws its headers' cost from the budget, TLS's
	// handshake included.
	ln = listenTLS(rl, ln, ingestCert)
	rtmpSrv, err := listenRTMP(ctx, log, rl, o.rtmp)
	if err != nil {
		_ = ln.Close()
		return err
	}
	if rtmpSrv != nil {
		defer rtmpSrv.Close() // after serve's Shutdown of the relay
	}
	if srtSrv := listenSRT(log, rl, o.srt); srtSrv != nil {
		defer srtSrv.Close() // after serve's Shutdown of the relay
	}
	adminLn, adminAt := listenAdmin(log, o.adminAddr)
	stopMetrics := startCloudWatch(log, rl.Registry(), o.metrics, o.region)
	log.Info("ingest relay", "addr", ln.Addr().String(), "tls", ingestCert != nil, "admin_addr", adminAt, "bucket", o.bucket)
	err = serve(ctx, log, rl, ln, adminLn, o.headerTimeout, o.shutdownTimeout)
	stopMetrics() // a last publish, the shutdown counted
	return err
}

// listenAdmin opens the admin listener, if addr is set. A relay whose
// admin address is taken (another relay on the machine, say) still takes
// pushes: it says so loudly and serves no metrics.
func listenAdmin(log *slog.Logger, addr string) (net.Listener, string) {
	if addr == "" {
		return nil, "none"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error("admin listener (-admin-addr): NO METRICS, HEALTH OR STATUS; the relay takes pushes all the same", "admin_addr", addr, "err", err)
		return nil, "none"
	}
	return ln, ln.Addr().String()
}

// serve runs the relay on ln, and its admin endpoints on adminLn (if not
// nil), until ctx ends (SIGTERM); then it shuts the relay down within
// timeout: new requests get 503 meanwhile, pushes in flight store the
// fragment in hand and end as drops (see relay.Shutdown).
func serve(ctx context.Context, log *slog.Logger, rl *relay.Relay, ln, adminLn net.Listener, headerTimeout, timeout time.Duration) error {
	// Requests do not end with ctx: the relay's Shutdown ends them, each
	// at a boundary between fragments. base ends what is left after it.
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := newServer(base, "", rl.Handler(), headerTimeout)
	// On a TLS listener, net/http answers a clear-text request 400 and
	// logs it: once per remote host is enough.
	srv.ErrorLog = tlsfile.NewHandshakeLog(log.With("listener", "-addr")).ErrorLog()
	errc := make(chan error, 2)
	go func() { errc <- fmt.Errorf("ingest listener: %w", srv.Serve(ln)) }()
	var admin *http.Server
	if adminLn != nil {
		admin = newServer(base, "", rl.AdminHandler(), headerTimeout)
		go func() { errc <- fmt.Errorf("admin listener: %w", admin.Serve(adminLn)) }()
	}
	select {
	case err := <-errc:
		_ = srv.Close()
		if admin != nil {
			_ = admin.Close()
		}
		return err
	case <-ctx.Done():
	}
	log.Info("signal: shutting down", "timeout", timeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// The listeners stay open meanwhile: a new push gets 503 "shutting
	// down" and /healthz 503, not a refused connection.
	errs := []error{rl.Shutdown(sctx)}
	if err := srv.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("ingest server: %w", err), srv.Close())
	}
	if admin != nil {
		if err := admin.Shutdown(sctx); err != nil {
			errs = append(errs, fmt.Errorf("admin server: %w", err), admin.Close())
		}
	}
	cancelBase()
	return errors.Join(errs...)
}

// newServer is the relay's HTTP server: a client that has not sent its
// request headers within headerTimeout is disconnected (the relay's own
// read timeout and rate floor take over once the body starts), and one
// whose headers exceed relay.MaxHeaderBytes is answered 431.
func newServer(ctx context.Context, addr string, h http.Handler, headerTimeout time.Duration) *http.Server {
	return &http.Server{
		Addr: addr, Handler: h,
		ReadHeaderTimeout: headerTimeout, IdleTimeout: 120 * time.Second, MaxHeaderBytes: relay.MaxHeaderBytes,
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
}

// logAuth says at start which authentication is in force, and warns
// loudly when there is none.
func logAuth(log *slog.Logger, secrets relay.Secrets, from string) {
	if !secrets.On() {
		log.Warn("INGEST AUTHENTICATION IS OFF: anyone who reaches this port can push to any channel; set -secret-parameter, -secret-file or SMOOTHCAST_INGEST_SECRET", "mode", secrets.Mode())
		return
	}
	log.Info("ingest authentication on", "mode", secrets.Mode(), "secrets_from", from, "channels_with_own_secret", len(secrets.PerChannel), "default_secret", secrets.Default != "")
}

// loadSecrets reads the ingest secrets from the SSM parameter, the file or
// secret (SMOOTHCAST_INGEST_SECRET), the first that is set, and says which.
func loadSecrets(ctx context.Context, file, parameter, secret, region string) (relay.Secrets, string, error) {
	switch {
	case parameter != "":
		v, err := getParameter(ctx, parameter, region)
		if err != nil {
			return relay.Secrets{}, "", fmt.Errorf("ingest secret: %w", err)
		}
		s, err := relay.ParseSecrets(v)
		return s, "ssm:" + parameter, err
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return relay.Secrets{}, "", fmt.Errorf("ingest secret: %w", err)
		}
		s, err := relay.ParseSecrets(string(b))
		return s, file, err
	case secret != "":
		s, err := relay.ParseSecrets(secret)
		return s, "SMOOTHCAST_INGEST_SECRET", err
	}
	return relay.Secrets{}, "", nil
}

// getParameter reads an SSM parameter (a SecureString, decrypted) in
// region.
func getParameter(ctx context.Context, name, region string) (string, error) {
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return "", fmt.Errorf("AWS config: %w", err)
	}
	out, err := ssm.NewFromConfig(awsCfg).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	if err != nil {
		return "", fmt.Errorf("SSM parameter %s: %w", name, err)
	}
	return aws.ToString(out.Parameter.Value), nil
}

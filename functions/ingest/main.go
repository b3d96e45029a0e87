// Command ingest is the ingest relay daemon (on EC2 in production): it
// accepts Smooth Streaming pushes at /live/{channel}.isml/Streams({stream})
// and writes init segments and fragments to S3.
//
// Flags (each also settable as SMOOTHCAST_<FLAG>, upper case, '-' as '_'):
//
//	-addr       listen address (default :8080)
//	-bucket     bucket (required)
//	-region     region (default: AWS_REGION, else us-east-1)
//	-endpoint   S3-compatible endpoint (empty: AWS)
//	-max-box    largest box accepted, bytes (default 64 MiB)
//	-read-timeout  drop an encoder silent this long (default 30s)
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
	"strings"
	"syscall"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/shared/store"
)

func env(name, def string) string {
	if v, ok := os.LookupEnv("SMOOTHCAST_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))); ok {
		return v
	}
	return def
}

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	slog.SetDefault(log)
	if err := run(log); err != nil {
		log.Error("ingest relay", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	cfg := relay.DefaultConfig()
	addr := flag.String("addr", env("addr", ":8080"), "listen address")
	bucket := flag.String("bucket", env("bucket", ""), "bucket for fragments (required)")
	region := flag.String("region", env("region", os.Getenv("AWS_REGION")), "AWS region")
	endpoint := flag.String("endpoint", env("endpoint", ""), "S3-compatible endpoint (empty: AWS)")
	flag.IntVar(&cfg.MaxBox, "max-box", cfg.MaxBox, "largest MP4 box accepted, in bytes")
	flag.DurationVar(&cfg.ReadTimeout, "read-timeout", cfg.ReadTimeout, "drop an encoder that sends nothing for this long")
	flag.DurationVar(&cfg.MaxDrift, "max-drift", cfg.MaxDrift, "rebase an encoder whose timestamps stray this far from the channel clock")
	flag.Parse()
	if *bucket == "" {
		return errors.New("-bucket (or SMOOTHCAST_BUCKET) is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := store.New(ctx, store.Config{Bucket: *bucket, Region: *region, Endpoint: *endpoint})
	if err != nil {
		return err
	}
	rl := relay.New(st, cfg, log)
	srv := &http.Server{
		Addr: *addr, Handler: rl.Handler(),
		ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	log.Info("ingest relay", "addr", *addr, "bucket", *bucket, "region", *region, "endpoint", *endpoint, "max_box", cfg.MaxBox, "read_timeout", cfg.ReadTimeout.String(), "max_drift", cfg.MaxDrift.String())
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return fmt.Errorf("listen %s: %w", *addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// Command manifest is the manifest function's Lambda entry point. One
// function serves two kinds of invocations, told apart by their shape:
// S3 ObjectCreated events (it updates the channel's timeline) and Lambda
// Function URL requests behind CloudFront (it renders the Smooth
// manifest, the HLS playlists and the DASH MPD).
//
// Logs are JSON (log/slog) on stdout, one line per event with its channel,
// track, key and timings; each processed event also prints a CloudWatch
// Embedded Metric Format document (namespace Smoothcast, see
// package shared/metricname), from which CloudWatch Logs extracts the
// function's metrics.
//
// Environment (read with package shared/config, as the relay reads its
// flags; logged once at start):
//
//	SMOOTHCAST_BUCKET       bucket holding fragments and state (required)
//	SMOOTHCAST_REGION       region (default: AWS_REGION)
//	SMOOTHCAST_ENDPOINT     S3-compatible endpoint (empty: AWS)
//	SMOOTHCAST_DVR_WINDOW   DVR window, Go duration (default 30m)
//	SMOOTHCAST_GAP_TIMEOUT  how long an early fragment waits (default 10s)
//	SMOOTHCAST_RETENTION    how long fragments are kept (the bucket's lifecycle rule; default 24h)
//	SMOOTHCAST_ARCHIVE      how far back time-shift requests reach (default: the retention less 10m)
package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/shared/config"
	"github.com/smoothcast/smoothcast/shared/emf"
	"github.com/smoothcast/smoothcast/shared/store"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	slog.SetDefault(log)
	h, err := setup(context.Background(), log, os.LookupEnv)
	if err != nil {
		log.Error("manifest function: configuration", "err", err)
		os.Exit(1)
	}
	lambda.Start(h.Invoke)
}

// setup reads the function's settings from the environment (the same
// settings package as the relay's flags; the function has no command
// line), logs them and builds the handler.
func setup(ctx context.Context, log *slog.Logger, lookup func(string) (string, bool)) (*handler.Handler, error) {
	cfg := handler.DefaultConfig()
	fs := config.New("manifest", config.Prefix)
	fs.LookupEnv = lookup
	fs.SetOutput(io.Discard)
	awsRegion, _ := lookup("AWS_REGION")
	bucket := fs.String("bucket", "", "bucket holding fragments and state (required)")
	region := fs.String("region", awsRegion, "region (empty: AWS_REGION)")
	endpoint := fs.String("endpoint", "", "S3-compatible endpoint (empty: AWS)")
	durations := []struct {
		name, usage string
		dst         *time.Duration
	}{
		{"dvr-window", "DVR window", &cfg.DVRWindow},
		{"gap-timeout", "how long an early fragment waits", &cfg.GapTimeout},
		{"retention", "how long fragments are kept (the bucket's lifecycle rule)", &cfg.Retention},
		{"archive", "how far back time-shift requests reach (0: the retention less layout.RetentionMargin)", &cfg.Archive},
	}
	for _, d := range durations {
		fs.DurationVar(d.dst, d.name, *d.dst, d.usage)
	}
	if err := fs.Parse(nil); err != nil {
		return nil, err
	}
	for _, d := range durations {
		if v, set := lookup(fs.Variable(d.name)); set && *d.dst <= 0 {
			return nil, fmt.Errorf("%s=%q: want a positive Go duration such as 30m", fs.Variable(d.name), v)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st, err := store.New(ctx, store.Config{Bucket: *bucket, Region: cmp.Or(*region, awsRegion), Endpoint: *endpoint})
	if err != nil {
		return nil, err
	}
	fs.Log(log, "manifest function", "archive_span", cfg.ArchiveSpan().String())
	h := handler.New(st, cfg, log)
	h.Metrics = emf.NewWriter(os.Stdout) // CloudWatch Logs extracts them
	return h, nil
}

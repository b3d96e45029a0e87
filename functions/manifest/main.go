// Command manifest is the manifest function's Lambda entry point. One
// function serves two kinds of invocations, told apart by their shape:
// S3 ObjectCreated events (it updates the channel's timeline) and Lambda
// Function URL requests behind CloudFront (it renders the Smooth manifest
// and HLS playlists).
//
// Logs are JSON (log/slog) on stdout, one line per event with its channel,
// track, key and timings; each processed event also prints a CloudWatch
// Embedded Metric Format document (namespace Smoothcast, see
// package shared/metricname), from which CloudWatch Logs extracts the
// function's metrics.
//
// Environment:
//
//	SMOOTHCAST_BUCKET       bucket holding fragments and state (required)
//	SMOOTHCAST_REGION       region (default: AWS_REGION)
//	SMOOTHCAST_ENDPOINT     S3-compatible endpoint (empty: AWS)
//	SMOOTHCAST_DVR_WINDOW   DVR window, Go duration (default 30m)
//	SMOOTHCAST_GAP_TIMEOUT  how long an early fragment waits (default 10s)
//	SMOOTHCAST_RETENTION    how long fragments are kept (the bucket's lifecycle rule; default 24h)
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/smoothcast/smoothcast/functions/manifest/handler"
	"github.com/smoothcast/smoothcast/shared/emf"
	"github.com/smoothcast/smoothcast/shared/store"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	slog.SetDefault(log)
	h, err := setup(context.Background(), log)
	if err != nil {
		log.Error("manifest function: configuration", "err", err)
		os.Exit(1)
	}
	lambda.Start(h.Invoke)
}

func setup(ctx context.Context, log *slog.Logger) (*handler.Handler, error) {
	cfg := handler.DefaultConfig()
	for name, dst := range map[string]*time.Duration{"SMOOTHCAST_DVR_WINDOW": &cfg.DVRWindow, "SMOOTHCAST_GAP_TIMEOUT": &cfg.GapTimeout, "SMOOTHCAST_RETENTION": &cfg.Retention, "SMOOTHCAST_ARCHIVE": &cfg.Archive} {
		if v := os.Getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("%s=%q: want a positive Go duration such as 30m", name, v)
			}
			*dst = d
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	region := os.Getenv("SMOOTHCAST_REGION")
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	st, err := store.New(ctx, store.Config{Bucket: os.Getenv("SMOOTHCAST_BUCKET"), Region: region, Endpoint: os.Getenv("SMOOTHCAST_ENDPOINT")})
	if err != nil {
		return nil, err
	}
	log.Info("manifest function", "bucket", st.Bucket, "dvr_window", cfg.DVRWindow.String(), "gap_timeout", cfg.GapTimeout.String(), "retention", cfg.Retention.String(), "archive", cfg.ArchiveSpan().String())
	h := handler.New(st, cfg, log)
	h.Metrics = emf.NewWriter(os.Stdout) // CloudWatch Logs extracts them
	return h, nil
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	cw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smoothcast/smoothcast/functions/ingest/cloudwatch"
	"github.com/smoothcast/smoothcast/shared/config"
)

// cloudwatchOptions are the flags of the relay's CloudWatch metrics.
type cloudwatchOptions struct {
	namespace, relay string
	interval         time.Duration
}

// define declares the flags on fs.
func (o *cloudwatchOptions) define(fs *config.Set) {
	fs.StringVar(&o.namespace, "cloudwatch-namespace", "", "CloudWatch namespace to publish the relay's health to every -cloudwatch-interval (refusals by reason, store errors and retries, streams, bytes in, memory); empty: none")
	fs.StringVar(&o.relay, "cloudwatch-relay", "", "the relay's name in its metrics' Relay dimension (a, b: the stack's relays), with -cloudwatch-namespace")
	fs.DurationVar(&o.interval, "cloudwatch-interval", time.Minute, "how often to publish to CloudWatch (the stack's alarms expect a minute)")
}

// config is the publisher's configuration, checked (the zero Config,
// with no namespace, when there is none).
func (o *cloudwatchOptions) config() (cloudwatch.Config, error) {
	if o.namespace == "" {
		return cloudwatch.Config{}, nil
	}
	c := cloudwatch.Config{Namespace: o.namespace, Relay: o.relay, Interval: o.interval}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("-cloudwatch-namespace, -cloudwatch-relay or -cloudwatch-interval: %w", err)
	}
	return c, nil
}

// startCloudWatch publishes reg's metrics to CloudWatch, in region, when
// c has a namespace; stop ends the publisher after a last publish (call
// it once the relay has shut down). A relay whose AWS configuration does
// not load takes pushes all the same, and says so loudly.
func startCloudWatch(log *slog.Logger, reg prometheus.Gatherer, c cloudwatch.Config, region string) (stop func()) {
	if c.Namespace == "" {
		return func() {}
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion(region))
	if err != nil {
		log.Error("cloudwatch (-cloudwatch-namespace): NO METRICS TO CLOUDWATCH; the relay takes pushes all the same", "err", err)
		return func() {}
	}
	pub := cloudwatch.New(cw.NewFromConfig(awsCfg), reg, c, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		pub.Run(ctx)
	}()
	log.Info("cloudwatch: publishing the relay's health", "namespace", c.Namespace, "relay", c.Relay, "interval", c.Interval.String())
	return func() {
		cancel()
		<-done
	}
}

// Package cloudwatch publishes the relay's health to CloudWatch: what an
// operator alarms on, read from the relay's Prometheus registry (which
// nothing scrapes on AWS) every interval and sent in one PutMetricData
// call, in the namespace and with the Relay dimension the relay is given.
// The metric names and dimension keys are package shared/metricname's,
// which the AWS stack's alarms and dashboard import too:
//
//	IngestErrors     smoothcast_errors_total, by kind as Reason (the interval's increase)
//	StoreErrors      smoothcast_store_request_duration_seconds{status="error"}'s count (increase)
//	StoreRetries     smoothcast_store_retries_total (increase)
//	ActiveStreams    smoothcast_active_streams summed over channels, by Kind and in total
//	BytesIn          smoothcast_ingest_bytes_total, by Kind and in total (increase)
//	MemoryBudgetUsed smoothcast_memory_budget_used_bytes
//	MemoryBudget     smoothcast_memory_budget_bytes
//	ResidentMemory   process_resident_memory_bytes
//
// A counter is published as its increase since the last publish that
// succeeded, so a failed publish loses nothing: it is logged (the first
// of a run of failures, then once every LogEvery) and the next interval
// publishes the increase over both. Gauges are published as they are at
// the time. Publishing runs on a goroutine of its own and never waits on
// ingest, nor ingest on it.
package cloudwatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/smoothcast/smoothcast/shared/metricname"
)

// The relay's Prometheus metrics the publisher reads (functions/ingest/
// relay, metrics.go; a test checks that the relay serves each).
const (
	promErrors      = "smoothcast_errors_total"
	promStoreTime   = "smoothcast_store_request_duration_seconds"
	promRetries     = "smoothcast_store_retries_total"
	promActive      = "smoothcast_active_streams"
	promBytes       = "smoothcast_ingest_bytes_total"
	promBudgetUsed  = "smoothcast_memory_budget_used_bytes"
	promBudget      = "smoothcast_memory_budget_bytes"
	promResident    = "process_resident_memory_bytes"
	labelKind       = "kind"
	labelStatus     = "status"
	statusError     = "error"
	defaultInterval = time.Minute
)

// LogEvery is how often a run of failed publishes is logged after its
// first failure.
const LogEvery = 10 * time.Minute

// Client is what the publisher needs of CloudWatch (*cloudwatch.Client).
type Client interface {
	PutMetricData(ctx context.Context, in *cw.PutMetricDataInput, optFns ...func(*cw.Options)) (*cw.PutMetricDataOutput, error)
}

// Config is the publisher's settings.
type Config struct {
	// Namespace is the CloudWatch namespace (required).
	Namespace string
	// Relay is the value of the Relay dimension (required): it tells
	// the relays of a stack apart.
	Relay string
	// Interval is how often to publish (default one minute).
	Interval time.Duration
	// Timeout bounds each publish (default 5 s, at most Interval). A
	// publish under way when Run's context ends is not cancelled (a
	// request CloudWatch took but whose answer was lost would be counted
	// twice): it ends, then the last one runs.
	Timeout time.Duration
	// Ticks, when not nil, drives the publishing in Interval's stead
	// (each value received is the time of the publish), for tests.
	Ticks <-chan time.Time
	// Now is the clock of the last publish and of the failure log
	// (default time.Now).
	Now func() time.Time
}

// Validate refuses a configuration the publisher cannot run with.
func (c Config) Validate() error {
	switch {
	case c.Namespace == "":
		return errors.New("no namespace")
	case len(c.Namespace) > 255 || strings.HasPrefix(c.Namespace, "AWS/"):
		return fmt.Errorf("namespace %q: want 1 to 255 characters, not starting with AWS/", c.Namespace)
	case c.Relay == "" || len(c.Relay) > 1024:
		return fmt.Errorf("relay dimension %q: want 1 to 1024 characters (the relay's name in the stack: a, b)", c.Relay)
	case c.Interval < 0 || c.Interval > 0 && c.Interval < time.Second:
		return fmt.Errorf("interval %v: want a second or more", c.Interval)
	}
	return nil
}

// Publisher publishes a relay's health to CloudWatch (see the package
// documentation). Run it on a goroutine of its own.
type Publisher struct {
	client Client
	reg    prometheus.Gatherer
	cfg    Config
	log    *slog.Logger
	// published holds each counter's value as of the last publish that
	// succeeded: the next publishes the increase since.
	published map[series]float64
	// failures counts the publishes failed since the last success;
	// logged is when the run of failures was last logged.
	failures int
	logged   time.Time
}

// New returns a publisher of reg's metrics to client, with cfg (which
// must Validate).
func New(client Client, reg prometheus.Gatherer, cfg Config, log *slog.Logger) *Publisher {
	if cfg.Interval == 0 {
		cfg.Interval = defaultInterval
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	cfg.Timeout = min(cfg.Timeout, cfg.Interval)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Publisher{client: client, reg: reg, cfg: cfg, log: log.With("namespace", cfg.Namespace, "relay", cfg.Relay), published: map[series]float64{}}
}

// Run publishes every interval until ctx ends, then a last time; it
// returns within twice Timeout of ctx's end. Start it with a context that
// ends once the relay has shut down, so that the last publish counts the
// shutdown too.
func (p *Publisher) Run(ctx context.Context) {
	ticks := p.cfg.Ticks
	if ticks == nil {
		t := time.NewTicker(p.cfg.Interval)
		defer t.Stop()
		ticks = t.C
	}
	publish := func(now time.Time) {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.Timeout)
		defer cancel()
		_ = p.Publish(pctx, now)
	}
	for {
		select {
		case <-ctx.Done():
			publish(p.cfg.Now())
			return
		case now := <-ticks:
			publish(now)
		}
	}
}

// Publish sends the metrics once, stamped now, and returns the error
// (logged already) of a publish that failed. Run calls it; call it
// yourself only without Run.
func (p *Publisher) Publish(ctx context.Context, now time.Time) error {
	counters, gauges, gerr := read(p.reg)
	if gerr != nil && len(counters)+len(gauges) == 0 {
		p.failed(now, fmt.Errorf("gather the relay's metrics: %w", gerr))
		return gerr
	}
	data := p.datums(counters, gauges, now)
	_, err := p.client.PutMetricData(ctx, &cw.PutMetricDataInput{Namespace: aws.String(p.cfg.Namespace), MetricData: data})
	if err != nil {
		err = fmt.Errorf("cloudwatch PutMetricData, %d metrics: %w", len(data), err)
		p.failed(now, err)
		return err
	}
	p.published = counters
	if p.failures > 0 {
		p.log.Info("cloudwatch: publishing again; the failed intervals' counts are in this one", "failed_publishes", p.failures)
		p.failures = 0
	}
	if gerr != nil {
		p.log.Debug("cloudwatch: some of the relay's metrics could not be read", "err", gerr)
	}
	return nil
}

// failed logs a failed publish: the first of a run, then once every
// LogEvery.
func (p *Publisher) failed(now time.Time, err error) {
	p.failures++
	if p.failures > 1 && now.Sub(p.logged) < LogEvery {
		return
	}
	p.logged = now
	p.log.Warn("cloudwatch: publish failed; the next interval publishes the counts again, with its own", "failed_publishes", p.failures, "err", err)
}

// series is one CloudWatch metric of a relay: a name and at most one
// dimension besides Relay.
type series struct {
	name, dim, value string
}

// units are the metrics' units.
var units = map[string]types.StandardUnit{
	metricname.IngestErrors: types.StandardUnitCount, metricname.StoreErrors: types.StandardUnitCount,
	metricname.StoreRetries: types.StandardUnitCount, metricname.ActiveStreams: types.StandardUnitCount,
	metricname.BytesIn: types.StandardUnitBytes, metricname.MemoryBudgetUsed: types.StandardUnitBytes,
	metricname.MemoryBudget: types.StandardUnitBytes, metricname.ResidentMemory: types.StandardUnitBytes,
}

// datums are the interval's data: each counter's increase since the
// last publish that succeeded, each gauge's value, in a fixed order.
func (p *Publisher) datums(counters, gauges map[series]float64, now time.Time) []types.MetricDatum {
	var data []types.MetricDatum
	add := func(s series, v float64) {
		dims := []types.Dimension{{Name: aws.String(metricname.DimensionRelay), Value: aws.String(p.cfg.Relay)}}
		if s.dim != "" {
			dims = append(dims, types.Dimension{Name: aws.String(s.dim), Value: aws.String(s.value)})
		}
		data = append(data, types.MetricDatum{
			MetricName: aws.String(s.name), Dimensions: dims, Value: aws.Float64(v),
			Unit: units[s.name], Timestamp: aws.Time(now),
		})
	}
	for _, s := range sorted(counters) {
		v := counters[s]
		if last, ok := p.published[s]; ok && last <= v {
			v -= last // else the counter was reset: all of it is new
		}
		add(s, v)
	}
	for _, s := range sorted(gauges) {
		add(s, gauges[s])
	}
	return data
}

func sorted(m map[series]float64) []series {
	keys := make([]series, 0, len(m))
	for s := range m {
		keys = append(keys, s)
	}
	slices.SortFunc(keys, func(a, b series) int {
		return cmp.Or(cmp.Compare(a.name, b.name), cmp.Compare(a.dim, b.dim), cmp.Compare(a.value, b.value))
	})
	return keys
}

// read gathers reg and returns the counters (their totals so far) and
// the gauges, as CloudWatch series. A family that is missing (the memory
// budget's, without a budget; the process's, off Linux) is not
// published; the stream kinds the relay counts bytes of are, with zero
// streams when none is active.
func read(reg prometheus.Gatherer) (counters, gauges map[series]float64, err error) {
	families, err := reg.Gather()
	counters, gauges = map[series]float64{}, map[series]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			kind := label(m, labelKind)
			switch f.GetName() {
			case promErrors:
				counters[series{metricname.IngestErrors, metricname.DimensionReason, kind}] += m.GetCounter().GetValue()
			case promStoreTime:
				counters[series{name: metricname.StoreErrors}] += 0 // zero when none failed
				if label(m, labelStatus) == statusError {
					counters[series{name: metricname.StoreErrors}] += float64(m.GetHistogram().GetSampleCount())
				}
			case promRetries:
				counters[series{name: metricname.StoreRetries}] += m.GetCounter().GetValue()
			case promBytes:
				counters[series{metricname.BytesIn, metricname.DimensionKind, kind}] += m.GetCounter().GetValue()
				counters[series{name: metricname.BytesIn}] += m.GetCounter().GetValue()
				gauges[series{metricname.ActiveStreams, metricname.DimensionKind, kind}] += 0
				gauges[series{name: metricname.ActiveStreams}] += 0
			case promActive:
				gauges[series{metricname.ActiveStreams, metricname.DimensionKind, kind}] += m.GetGauge().GetValue()
				gauges[series{name: metricname.ActiveStreams}] += m.GetGauge().GetValue()
			case promBudgetUsed:
				gauges[series{name: metricname.MemoryBudgetUsed}] = m.GetGauge().GetValue()
			case promBudget:
				gauges[series{name: metricname.MemoryBudget}] = m.GetGauge().GetValue()
			case promResident:
				gauges[series{name: metricname.ResidentMemory}] = m.GetGauge().GetValue()
			}
		}
	}
	// CloudWatch refuses NaN and infinities.
	for _, m := range []map[series]float64{counters, gauges} {
		for s, v := range m {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				delete(m, s)
			}
		}
	}
	return counters, gauges, err
}

// label is m's value of the label name ("" without it).
func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

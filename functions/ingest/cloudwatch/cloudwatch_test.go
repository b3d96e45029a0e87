package cloudwatch_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	cw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/smithy-go/encoding/cbor"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smoothcast/smoothcast/functions/ingest/cloudwatch"
	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/internal/testtool/logtest"
	"github.com/smoothcast/smoothcast/shared/metricname"
	"github.com/smoothcast/smoothcast/shared/store/storetest"
)

// fakeCloudWatch answers PutMetricData as CloudWatch does with the SDK's
// protocol, Smithy RPC v2 CBOR (POST
// /service/GraniteServiceVersion20100801/operation/PutMetricData, a CBOR
// body, gzip when large), and records each request on reqs.
type fakeCloudWatch struct {
	t    *testing.T
	srv  *httptest.Server
	reqs chan putRequest
	fail chan bool // whether the next request fails (a 500); none waiting: it succeeds
}

// putRequest is one PutMetricData call: its namespace and its data, by
// series ("Name{Dim=value,...}", dimensions sorted).
type putRequest struct {
	failed    bool
	namespace string
	data      map[string]float64
	units     map[string]string
	stamps    map[time.Time]bool
}

func newFakeCloudWatch(t *testing.T) *fakeCloudWatch {
	f := &fakeCloudWatch{t: t, reqs: make(chan putRequest, 16), fail: make(chan bool, 16)}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCloudWatch) serve(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			f.t.Errorf("gzip body: %v", err)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		f.t.Errorf("body: %v", err)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/service/GraniteServiceVersion20100801/operation/PutMetricData" ||
		r.Header.Get("Smithy-Protocol") != "rpc-v2-cbor" || r.Header.Get("Content-Type") != "application/cbor" {
		f.t.Errorf("%s %s (Smithy-Protocol %q, Content-Type %q): not a PutMetricData call in RPC v2 CBOR", r.Method, r.URL.Path,
			r.Header.Get("Smithy-Protocol"), r.Header.Get("Content-Type"))
	}
	req, err := decodePut(b)
	if err != nil {
		f.t.Errorf("PutMetricData body: %v", err)
	}
	select {
	case req.failed = <-f.fail:
	default:
	}
	f.reqs <- req
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.Header().Set("Content-Type", "application/cbor")
	if req.failed {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write(cbor.Encode(cbor.Map{"__type": cbor.String("com.amazonaws.cloudwatch#InternalServiceFault"), "message": cbor.String("try again")}))
		return
	}
	_, _ = w.Write(cbor.Encode(cbor.Map{}))
}

// decodePut reads a PutMetricData request body.
func decodePut(b []byte) (putRequest, error) {
	req := putRequest{data: map[string]float64{}, units: map[string]string{}, stamps: map[time.Time]bool{}}
	v, err := cbor.Decode(b)
	if err != nil {
		return req, err
	}
	in, ok := v.(cbor.Map)
	if !ok {
		return req, fmt.Errorf("body %T, want a map", v)
	}
	if ns, ok := in["Namespace"].(cbor.String); ok {
		req.namespace = string(ns)
	}
	data, _ := in["MetricData"].(cbor.List)
	for _, d := range data {
		m, ok := d.(cbor.Map)
		if !ok {
			return req, fmt.Errorf("datum %T, want a map", d)
		}
		var dims []string
		list, _ := m["Dimensions"].(cbor.List)
		for _, dv := range list {
			dm, _ := dv.(cbor.Map)
			name, _ := dm["Name"].(cbor.String)
			value, _ := dm["Value"].(cbor.String)
			dims = append(dims, string(name)+"="+string(value))
		}
		slices.Sort(dims)
		name, _ := m["MetricName"].(cbor.String)
		key := string(name) + "{" + strings.Join(dims, ",") + "}"
		if _, dup := req.data[key]; dup {
			return req, fmt.Errorf("%s twice", key)
		}
		if req.data[key], err = cbor.AsFloat64(m["Value"]); err != nil {
			return req, fmt.Errorf("%s: value: %w", key, err)
		}
		unit, _ := m["Unit"].(cbor.String)
		req.units[key] = string(unit)
		ts, err := cbor.AsTime(m["Timestamp"])
		if err != nil {
			return req, fmt.Errorf("%s: timestamp: %w", key, err)
		}
		req.stamps[ts.UTC()] = true
	}
	return req, nil
}

// client is a CloudWatch client of f that tries each request once (the
// publisher retries at the next interval).
func (f *fakeCloudWatch) client() *cw.Client {
	return cw.New(cw.Options{
		BaseEndpoint: aws.String(f.srv.URL), Region: "eu-west-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		Retryer:     aws.NopRetryer{},
	})
}

// fakeRelay is a registry with the relay's metrics, their names and
// labels as the relay's (TestTheRelayServesWhatIsPublished checks them
// against a relay).
type fakeRelay struct {
	reg                    *prometheus.Registry
	errors                 *prometheus.CounterVec
	storeTime              *prometheus.HistogramVec
	retries                *prometheus.CounterVec
	active                 *prometheus.GaugeVec
	bytes                  *prometheus.CounterVec
	used, budget, resident prometheus.Gauge
}

func newFakeRelay() *fakeRelay {
	r := &fakeRelay{
		reg:       prometheus.NewRegistry(),
		errors:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smoothcast_errors_total"}, []string{"kind"}),
		storeTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "smoothcast_store_request_duration_seconds"}, []string{"operation", "status"}),
		retries:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smoothcast_store_retries_total"}, []string{"operation"}),
		active:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "smoothcast_active_streams"}, []string{"channel", "kind"}),
		bytes:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smoothcast_ingest_bytes_total"}, []string{"kind"}),
		used:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "smoothcast_memory_budget_used_bytes"}),
		budget:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "smoothcast_memory_budget_bytes"}),
		resident:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "process_resident_memory_bytes"}),
	}
	r.reg.MustRegister(r.errors, r.storeTime, r.retries, r.active, r.bytes, r.used, r.budget, r.resident)
	// As the relay does, the fixed series exist from the start.
	for _, k := range []string{"auth", "limit", "store"} {
		r.errors.WithLabelValues(k)
	}
	for _, k := range []string{"push", "rtmp", "srt"} {
		r.bytes.WithLabelValues(k)
	}
	r.retries.WithLabelValues("put")
	r.storeTime.WithLabelValues("put", "ok")
	r.storeTime.WithLabelValues("put", "error")
	return r
}

// publisher runs a publisher of reg to f, driven by the ticks the test
// sends; stop ends it and returns its last publish.
type publisher struct {
	t      *testing.T
	f      *fakeCloudWatch
	ticks  chan time.Time
	cancel context.CancelFunc
	done   chan struct{}
	log    *logtest.Recorder
}

var (
	t0       = time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)
	stopTime = t0.Add(time.Hour)
)

func startPublisher(t *testing.T, reg prometheus.Gatherer) *publisher {
	f := newFakeCloudWatch(t)
	p := &publisher{t: t, f: f, ticks: make(chan time.Time), done: make(chan struct{}), log: logtest.New()}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	pub := cloudwatch.New(f.client(), reg, cloudwatch.Config{
		Namespace: "Smoothcast/Relay", Relay: "a", Ticks: p.ticks, Now: func() time.Time { return stopTime },
	}, slog.New(p.log))
	go func() { defer close(p.done); pub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-p.done })
	return p
}

// tick publishes at now (the request failing if fail) and returns the
// request.
func (p *publisher) tick(now time.Time, fail bool) putRequest {
	p.t.Helper()
	if fail {
		p.f.fail <- true
	}
	p.ticks <- now
	return p.request()
}

func (p *publisher) request() putRequest {
	p.t.Helper()
	select {
	case r := <-p.f.reqs:
		return r
	case <-time.After(10 * time.Second): // a guard, not an ordering
		p.t.Fatal("no PutMetricData request")
		return putRequest{}
	}
}

// stop ends the publisher's context and returns its last publish.
func (p *publisher) stop() putRequest {
	p.t.Helper()
	p.cancel()
	<-p.done
	return p.request()
}

// checkData compares a request's data with want, series by series.
func checkData(t *testing.T, what string, got putRequest, want map[string]float64) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if v, ok := got.data[k]; !ok || v != want[k] {
			t.Errorf("%s: %s = %v (published: %v), want %v", what, k, v, ok, want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got.data)) {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s = %v published, not wanted", what, k, got.data[k])
		}
	}
}

// Over two intervals: counters are published as their increase over the
// interval, gauges as they are; refusals by Reason, streams summed over
// channels by Kind and in total, every series with the Relay dimension,
// one request an interval stamped with its tick, in the namespace.
func TestPublishesIncreasesAndValues(t *testing.T) {
	r := newFakeRelay()
	p := startPublisher(t, r.reg)

	r.errors.WithLabelValues("auth").Add(3)
	r.errors.WithLabelValues("limit").Inc()
	r.storeTime.WithLabelValues("put", "error").Observe(0.1)
	r.storeTime.WithLabelValues("put", "error").Observe(0.2)
	r.storeTime.WithLabelValues("put", "ok").Observe(0.01)
	r.retries.WithLabelValues("put").Add(2)
	r.bytes.WithLabelValues("push").Add(1000)
	r.bytes.WithLabelValues("rtmp").Add(500)
	r.active.WithLabelValues("demo", "push").Set(2)
	r.active.WithLabelValues("news", "push").Set(1)
	r.active.WithLabelValues("demo", "srt").Set(1)
	r.used.Set(100 << 20)
	r.budget.Set(960 << 20)
	r.resident.Set(180 << 20)
	first := p.tick(t0, false)
	checkData(t, "first interval", first, map[string]float64{
		"IngestErrors{Reason=auth,Relay=a}": 3, "IngestErrors{Reason=limit,Relay=a}": 1, "IngestErrors{Reason=store,Relay=a}": 0,
		"StoreErrors{Relay=a}": 2, "StoreRetries{Relay=a}": 2,
		"BytesIn{Kind=push,Relay=a}": 1000, "BytesIn{Kind=rtmp,Relay=a}": 500, "BytesIn{Kind=srt,Relay=a}": 0, "BytesIn{Relay=a}": 1500,
		"ActiveStreams{Kind=push,Relay=a}": 3, "ActiveStreams{Kind=rtmp,Relay=a}": 0, "ActiveStreams{Kind=srt,Relay=a}": 1, "ActiveStreams{Relay=a}": 4,
		"MemoryBudgetUsed{Relay=a}": 100 << 20, "MemoryBudget{Relay=a}": 960 << 20, "ResidentMemory{Relay=a}": 180 << 20,
	})
	if first.namespace != "Smoothcast/Relay" || !maps.Equal(first.stamps, map[time.Time]bool{t0: true}) {
		t.Errorf("namespace %q, timestamps %v; want Smoothcast/Relay, %v", first.namespace, first.stamps, t0)
	}
	for k, u := range first.units {
		want := "Count"
		if strings.HasPrefix(k, "BytesIn") || strings.Contains(k, "Memory") {
			want = "Bytes"
		}
		if u != want {
			t.Errorf("%s in %s, want %s", k, u, want)
		}
	}

	r.errors.WithLabelValues("auth").Inc()
	r.storeTime.WithLabelValues("put", "ok").Observe(0.01)
	r.bytes.WithLabelValues("push").Add(200)
	r.active.DeleteLabelValues("news", "push")
	r.used.Set(300 << 20)
	second := p.tick(t0.Add(time.Minute), false)
	checkData(t, "second interval", second, map[string]float64{
		"IngestErrors{Reason=auth,Relay=a}": 1, "IngestErrors{Reason=limit,Relay=a}": 0, "IngestErrors{Reason=store,Relay=a}": 0,
		"StoreErrors{Relay=a}": 0, "StoreRetries{Relay=a}": 0,
		"BytesIn{Kind=push,Relay=a}": 200, "BytesIn{Kind=rtmp,Relay=a}": 0, "BytesIn{Kind=srt,Relay=a}": 0, "BytesIn{Relay=a}": 200,
		"ActiveStreams{Kind=push,Relay=a}": 2, "ActiveStreams{Kind=rtmp,Relay=a}": 0, "ActiveStreams{Kind=srt,Relay=a}": 1, "ActiveStreams{Relay=a}": 3,
		"MemoryBudgetUsed{Relay=a}": 300 << 20, "MemoryBudget{Relay=a}": 960 << 20, "ResidentMemory{Relay=a}": 180 << 20,
	})
	if !maps.Equal(second.stamps, map[time.Time]bool{t0.Add(time.Minute): true}) {
		t.Errorf("timestamps %v, want the second tick's", second.stamps)
	}
}

// A publish that fails loses nothing: the next interval publishes the
// increase since the last publish that succeeded. The failure is logged
// (a warning), and so is the recovery.
func TestFailedPublishKeepsTheIncrease(t *testing.T) {
	r := newFakeRelay()
	p := startPublisher(t, r.reg)
	r.errors.WithLabelValues("auth").Add(3)
	r.bytes.WithLabelValues("push").Add(1000)
	p.tick(t0, false)

	r.errors.WithLabelValues("auth").Add(2)
	r.bytes.WithLabelValues("push").Add(100)
	r.active.WithLabelValues("demo", "push").Set(1)
	if failed := p.tick(t0.Add(time.Minute), true); !failed.failed || failed.data["IngestErrors{Reason=auth,Relay=a}"] != 2 {
		t.Fatalf("second interval: failed %v, auth %v; want a failed request with 2", failed.failed, failed.data["IngestErrors{Reason=auth,Relay=a}"])
	}

	r.errors.WithLabelValues("auth").Add(1)
	r.bytes.WithLabelValues("push").Add(10)
	r.active.WithLabelValues("demo", "push").Set(0)
	third := p.tick(t0.Add(2*time.Minute), false)
	for k, want := range map[string]float64{
		"IngestErrors{Reason=auth,Relay=a}": 3, "BytesIn{Kind=push,Relay=a}": 110, "BytesIn{Relay=a}": 110,
		"ActiveStreams{Kind=push,Relay=a}": 0, "ActiveStreams{Relay=a}": 0, // a gauge: as it is now
	} {
		if third.data[k] != want {
			t.Errorf("after the failure: %s = %v, want %v", k, third.data[k], want)
		}
	}
	p.stop()
	if _, ok := p.log.Find(slog.LevelWarn, "cloudwatch: publish failed; the next interval publishes the counts again, with its own",
		map[string]string{"failed_publishes": "1", "err": "InternalServiceFault", "relay": "a"}); !ok {
		t.Errorf("no warning of the failure:\n%s", strings.Join(p.log.Lines(), "\n"))
	}
	if _, ok := p.log.Find(slog.LevelInfo, "cloudwatch: publishing again; the failed intervals' counts are in this one", map[string]string{"failed_publishes": "1"}); !ok {
		t.Errorf("no line for the recovery:\n%s", strings.Join(p.log.Lines(), "\n"))
	}
}

// A run of failures is logged at its first and then once every
// LogEvery, not every interval.
func TestFailuresAreLoggedAtARate(t *testing.T) {
	p := startPublisher(t, newFakeRelay().reg)
	for i := range 25 { // 25 minutes
		p.tick(t0.Add(time.Duration(i)*time.Minute), true)
	}
	var logged []string
	for _, rec := range p.log.Records() {
		if rec.Level == slog.LevelWarn {
			logged = append(logged, logtest.Attrs(rec)["failed_publishes"])
		}
	}
	if want := []string{"1", "11", "21"}; !slices.Equal(logged, want) {
		t.Errorf("warnings at failures %v, want %v (every %v)", logged, want, cloudwatch.LogEvery)
	}
}

// When its context ends the publisher publishes a last time, stamped
// with its clock, with the increase since the last publish.
func TestLastPublishOnStop(t *testing.T) {
	r := newFakeRelay()
	p := startPublisher(t, r.reg)
	r.errors.WithLabelValues("store").Add(1)
	p.tick(t0, false)
	r.errors.WithLabelValues("store").Add(4)
	r.errors.WithLabelValues("shutdown").Add(2)
	last := p.stop()
	if last.failed || last.data["IngestErrors{Reason=store,Relay=a}"] != 4 || last.data["IngestErrors{Reason=shutdown,Relay=a}"] != 2 ||
		!maps.Equal(last.stamps, map[time.Time]bool{stopTime: true}) {
		t.Errorf("last publish: %v at %v; want store 4 and shutdown 2 at %v", last.data, last.stamps, stopTime)
	}
}

// Each Prometheus metric the publisher reads is the relay's, with the
// labels it reads: a relay's refusal and push show in the publish.
func TestTheRelayServesWhatIsPublished(t *testing.T) {
	cfg := relay.DefaultConfig()
	secrets, err := relay.ParseSecrets("right-secret-0123")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Secrets = secrets
	rl := relay.New(&storetest.Mem{}, cfg, slog.New(logtest.New()))
	hs := httptest.NewServer(rl.Handler())
	t.Cleanup(hs.Close)
	body, err := os.ReadFile("../../../shared/ingest/testdata/ffmpeg-isml.ismv")
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := testtool.Do(t, http.MethodPost, hs.URL+"/live/demo.isml/Streams(enc1)", body, false); code != http.StatusUnauthorized {
		t.Fatalf("a push without the secret: %d, want 401", code)
	}
	req, _ := http.NewRequest(http.MethodPost, hs.URL+"/live/demo.isml/Streams(enc1)", bytes.NewReader(body))
	req.SetBasicAuth("enc", "right-secret-0123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("push: %s", resp.Status)
	}

	p := startPublisher(t, rl.Registry())
	got := p.tick(t0, false)
	// The stack's alarm on refusals for credentials names the reason.
	for _, k := range []string{"IngestErrors{Reason=" + metricname.ReasonAuth + ",Relay=a}", "BytesIn{Kind=push,Relay=a}", "BytesIn{Relay=a}", "MemoryBudget{Relay=a}"} {
		if got.data[k] <= 0 {
			t.Errorf("%s = %v, want more than 0", k, got.data[k])
		}
	}
	if got.data["BytesIn{Kind=push,Relay=a}"] < float64(len(body)) {
		t.Errorf("bytes in %v, want the push's %d at least", got.data["BytesIn{Kind=push,Relay=a}"], len(body))
	}
	for _, k := range []string{
		"IngestErrors{Reason=protocol,Relay=a}", "StoreErrors{Relay=a}", "StoreRetries{Relay=a}",
		"ActiveStreams{Kind=push,Relay=a}", "ActiveStreams{Kind=upload,Relay=a}", "ActiveStreams{Kind=rtmp,Relay=a}", "ActiveStreams{Kind=srt,Relay=a}", "ActiveStreams{Relay=a}",
		"MemoryBudgetUsed{Relay=a}", "ResidentMemory{Relay=a}",
	} {
		if _, ok := got.data[k]; !ok {
			t.Errorf("%s not published", k)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := cloudwatch.Config{Namespace: "Smoothcast/Relay", Relay: "a"}
	for _, tc := range []struct {
		name string
		edit func(*cloudwatch.Config)
		err  string
	}{
		{"a namespace and a relay", func(*cloudwatch.Config) {}, ""},
		{"no namespace", func(c *cloudwatch.Config) { c.Namespace = "" }, "no namespace"},
		{"an AWS namespace", func(c *cloudwatch.Config) { c.Namespace = "AWS/EC2" }, "AWS/"},
		{"no relay", func(c *cloudwatch.Config) { c.Relay = "" }, "relay dimension"},
		{"an interval under a second", func(c *cloudwatch.Config) { c.Interval = time.Millisecond }, "interval"},
		{"an interval of ten seconds", func(c *cloudwatch.Config) { c.Interval = 10 * time.Second }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("%v, want %q", err, tc.err)
			}
		})
	}
}

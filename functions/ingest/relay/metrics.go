package relay

import (
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/smoothcast/smoothcast/shared/store"
)

// Stream kinds, the kind label of smoothcast_active_streams and
// smoothcast_ingest_bytes_total.
const (
	kindPush   = "push"   // a Smooth or CMAF push: one long request
	kindUpload = "upload" // a DASH or HLS upload rendition (one init segment)
	kindRTMP   = "rtmp"   // an RTMP or RTMPS publish (a live source)
	kindSRT    = "srt"    // an SRT publish (a live source)
)

// Buckets, in seconds: a store request takes milliseconds, and a write
// that keeps failing is given up after StoreTimeout (30 s).
var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// metrics are the relay's Prometheus metrics, in a registry of the relay's
// own (not the global default: a process may run several relays).
type metrics struct {
	reg        *prometheus.Registry
	active     *prometheus.GaugeVec     // channel, kind
	bytes      *prometheus.CounterVec   // kind
	fragments  *prometheus.CounterVec   // outcome
	storeTime  *prometheus.HistogramVec // operation, status
	retries    *prometheus.CounterVec   // operation
	errors     *prometheus.CounterVec   // kind
	storeDelay prometheus.Histogram
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "smoothcast_active_streams",
			Help: "Pushes, upload renditions and live-source publishes in progress, by channel and kind (push, upload, rtmp or srt).",
		}, []string{"channel", "kind"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smoothcast_ingest_bytes_total",
			Help: "Bytes received from encoders, by kind (push, upload, rtmp or srt).",
		}, []string{"kind"}),
		fragments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smoothcast_fragments_total",
			Help: "Fragments stored (written) or found stored already (duplicate: a resend, a redundant encoder).",
		}, []string{"outcome"}),
		storeTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "smoothcast_store_request_duration_seconds",
			Help:    "Duration of each store request (each attempt), by operation (put or get) and status (ok, including a refused condition or a missing object, or error).",
			Buckets: latencyBuckets,
		}, []string{"operation", "status"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smoothcast_store_retries_total",
			Help: "Store requests retried after a failure that may pass, by operation.",
		}, []string{"operation"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smoothcast_errors_total",
			Help: "Requests refused and streams ended by an error, by kind: protocol, too_large, auth, limit, store, read, timeout, conflict, shutdown.",
		}, []string{"kind"}),
		storeDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "smoothcast_fragment_store_delay_seconds",
			Help:    "From a fragment's last byte received to the store's answer to its PUT.",
			Buckets: latencyBuckets,
		}),
	}
	m.reg.MustRegister(m.active, m.bytes, m.fragments, m.storeTime, m.retries, m.errors, m.storeDelay,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every series of a fixed label set exists from the start, at zero.
	for _, k := range []string{kindPush, kindUpload, kindRTMP, kindSRT} {
		m.bytes.WithLabelValues(k)
	}
	for _, o := range []string{"written", "duplicate"} {
		m.fragments.WithLabelValues(o)
	}
	for _, op := range []string{"put", "get"} {
		m.retries.WithLabelValues(op)
		for _, s := range []string{"ok", "error"} {
			m.storeTime.WithLabelValues(op, s)
		}
	}
	for _, k := range errorKinds {
		m.errors.WithLabelValues(k)
	}
	return m
}

// watchMemory serves the memory budget's use and limit as
// smoothcast_memory_budget_bytes.
func (m *metrics) watchMemory(mem *memory) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "smoothcast_memory_budget_used_bytes", Help: "What the relay's buffers hold, drawn from its memory budget.",
	}, func() float64 { return float64(mem.used.Load()) }), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "smoothcast_memory_budget_bytes", Help: "The relay's memory budget (0: none).",
	}, func() float64 { return float64(mem.limit) }))
}

// storeRequest records one store request.
func (m *metrics) storeRequest(op string, err error, took time.Duration) {
	status := "ok"
	if err != nil && !errors.Is(err, store.ErrPreconditionFailed) && !errors.Is(err, store.ErrNotFound) {
		status = "error"
	}
	m.storeTime.WithLabelValues(op, status).Observe(took.Seconds())
}

// Registry is the relay's own Prometheus registry: what MetricsHandler
// serves. Register further collectors on it to serve them alongside.
func (rl *Relay) Registry() *prometheus.Registry { return rl.metrics.reg }

// MetricsHandler serves the relay's metrics in the Prometheus exposition
// format. See AdminHandler for where to serve it.
func (rl *Relay) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(rl.metrics.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

package relay

import (
	"errors"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/store"
)

// Stream kinds, the kind label of smoothcast_active_streams and
// smoothcast_ingest_bytes_total.
const (
	kindPush   = "push"   // a Smooth or CMAF push: one long request
	kindUpload = "upload" // a DASH or HLS upload rendition (one init segment)
)

// Error kinds, the kind label of smoothcast_errors_total: a fixed set, so
// that what an encoder sends cannot add series.
const (
	errProtocol = "protocol"  // malformed media, a bad upload (400)
	errTooLarge = "too_large" // a box or an upload over the limit (413)
	errAuth     = "auth"      // no or wrong credentials (401, 403)
	errLimit    = "limit"     // too many pushes or held segments (429, 503)
	errStore    = "store"     // the store kept failing; an end marker not written
	errRead     = "read"      // the connection broke (a drop)
	errTimeout  = "timeout"   // an encoder silent or slower than the rate floor (408)
	errConflict = "conflict"  // an upload out of order, or to an ended rendition (409)
	errShutdown = "shutdown"  // refused: the relay is shutting down (503)
)

var errorKinds = []string{errProtocol, errTooLarge, errAuth, errLimit, errStore, errRead, errTimeout, errConflict, errShutdown}

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
			Help: "Pushes and upload renditions in progress, by channel and kind (push or upload).",
		}, []string{"channel", "kind"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smoothcast_ingest_bytes_total",
			Help: "Bytes received from encoders, by kind (push or upload).",
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
	for _, k := range []string{kindPush, kindUpload} {
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

// errTooSlow ends a body that arrives below the rate floor.
var errTooSlow = errors.New("encoder too slow")

// errorKind is the kind of what ended a session or refused a request.
func errorKind(err error) string {
	var ue *uploadError
	var perr *ingest.ProtocolError
	var ne net.Error
	switch {
	case errors.Is(err, errShuttingDown):
		return errShutdown
	case errors.As(err, &ue):
		switch ue.code {
		case http.StatusConflict:
			return errConflict
		case http.StatusRequestEntityTooLarge:
			return errTooLarge
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			return errLimit
		}
		return errProtocol
	case errors.As(err, &perr) && errors.Is(err, mp4box.ErrTruncated):
		return errRead
	case errors.As(err, &perr) && errors.Is(err, mp4box.ErrTooLarge):
		return errTooLarge
	case errors.As(err, &perr):
		return errProtocol
	case errors.Is(err, store.ErrPreconditionFailed), isStoreErr(err):
		return errStore
	case errors.Is(err, errTooSlow), errors.Is(err, errUploadIdle), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return errTimeout
	}
	return errRead
}

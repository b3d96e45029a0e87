// Package relay is the ingest relay: the HTTP server encoders reach. It
// takes Smooth and CMAF pushes (POST or PUT to
// /live/{channel}.isml/Streams({stream}), one long chunked request, read
// box by box: push.go) and DASH and HLS uploads (files PUT under
// /live/{channel}.isml/, handed to the upload source, package upload:
// uploads.go); below both, each encoder connection or uploaded rendition
// feeds an ingest.Session that stores init segments and fragments through
// the relay's sink (session.go). It authenticates encoders (auth.go),
// bounds what they may hold, turns every error into one status, log line
// and metric (errors.go), and serves the operator's metrics and status on
// a listener of their own (status.go, metrics.go). It holds about one
// fragment per stream in memory and writes a fragment only when it is
// complete.
package relay

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/upload"
	"github.com/smoothcast/smoothcast/shared/keys"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/store"
)

// ObjectStore is what the relay needs of the store: it writes media and
// markers, and reads the channel's clock.
type ObjectStore interface {
	// PutParts writes the concatenation of parts: a fragment goes out as
	// its new head and the media as it arrived, never copied into one.
	PutParts(ctx context.Context, key string, parts [][]byte, o store.PutOptions) (string, error)
	Get(ctx context.Context, key string) (store.Object, error)
}

// Config holds the relay's limits.
type Config struct {
	// MaxBox is the largest box (in practice, fragment mdat) accepted.
	MaxBox int
	// MaxTracks is the most tracks one stream may declare.
	MaxTracks int
	// ReadTimeout drops an encoder that sends nothing for this long; a slow
	// but live one is kept (the deadline rolls with every read).
	ReadTimeout time.Duration
	// SparseReadTimeout replaces ReadTimeout, when longer, for a push
	// whose tracks are all text (a DASH-IF ingest text track on its own
	// connection): it may rightly send nothing for minutes between cues,
	// and MinRate does not apply to it.
	SparseReadTimeout time.Duration
	// MaxDrift is how far an encoder's timestamps may stray from the
	// channel's clock before the relay rebases them (a restarted encoder);
	// it is also the largest forward skip that is not a discontinuity.
	MaxDrift time.Duration
	// StoreTimeout is how long a store request may keep failing (retried
	// with backoff) before the relay fails the encoder's request.
	StoreTimeout time.Duration
	// AttemptTimeout bounds one store request (with the SDK's own retries).
	AttemptTimeout time.Duration
	// Secrets authenticate encoders (zero: no authentication).
	Secrets Secrets
	// MaxStreams bounds the pushes in progress, in all and per channel;
	// one more is refused with 429.
	MaxStreams, MaxStreamsPerChannel int
	// MinRate (bytes per second, averaged over RateWindow) drops an encoder
	// that trickles: a real one sends its bitrate; a slow client holding a
	// connection open does not.
	MinRate    float64
	RateWindow time.Duration
	// MemoryBudget is the memory, in bytes, the relay may use. Its
	// buffers (connections' headers, pushes' boxes, uploads' bodies while
	// they are read, stored, wait or are held) draw from it, all but
	// MemoryOverhead for the rest of the process; past it, requests are
	// refused with 503 and Retry-After instead of the process growing.
	// The relay's main also gives it to Go's garbage collector as its
	// memory limit. Zero: no bound.
	MemoryBudget int64
	// ReorderWait is how long an uploaded segment that would leave a gap
	// after its rendition's newest waits for the segments before it: an
	// encoder uploads on parallel connections, and the segment it sent
	// first may arrive second. Zero stores it at once.
	ReorderWait time.Duration
	// Keys, when set, encrypts the audio and video of the channels it has
	// a plan for (protect.go); nil stores every channel in the clear.
	Keys keys.Source
}

// DefaultConfig returns the defaults: 64 MiB boxes, 16 tracks, 30 s of
// silence (30 min for a push of text tracks alone), 10 s of drift, 30 s of store failures, 10 s per store request,
// 16 pushes per channel and 256 in all, at least 1000 bytes/s a minute,
// 2 s for an uploaded segment to wait for the ones before it, 1 GiB of
// memory (half of the AWS stack's t4g.small).
func DefaultConfig() Config {
	return Config{MaxBox: 64 << 20, MaxTracks: 16, ReadTimeout: 30 * time.Second, SparseReadTimeout: 30 * time.Minute, MaxDrift: 10 * time.Second,
		StoreTimeout: 30 * time.Second, AttemptTimeout: 10 * time.Second, MaxStreams: 256, MaxStreamsPerChannel: 16,
		MinRate: 1000, RateWindow: time.Minute, ReorderWait: 2 * time.Second, MemoryBudget: 1 << 30}
}

// MemoryOverhead is what a relay's MemoryBudget keeps for the rest of the
// process (code, runtime, goroutines, sessions' small buffers): its
// buffers may hold the budget less this.
const MemoryOverhead = 64 << 20

// bufferLimit is what the buffers may hold of budget (0: no bound): all
// but MemoryOverhead, or half of a budget under twice that.
func bufferLimit(budget int64) int64 {
	switch {
	case budget <= 0:
		return 0
	case budget < 2*MemoryOverhead:
		return budget / 2
	}
	return budget - MemoryOverhead
}

// Relay serves the ingest endpoints (Handler) and the operator's
// (AdminHandler: metrics, health, status).
type Relay struct {
	Store ObjectStore
	Cfg   Config
	Log   *slog.Logger

	active  atomic.Int64
	retries atomic.Int64
	store   *retrying
	metrics *metrics

	uploads *upload.Uploads // interface 2: the upload source
	mem     memory          // the memory budget every buffer draws from
	markers markerQueues    // ad markers between a channel's connections (markers.go)

	// mu guards what follows. It may be held while taking a push's
	// sessionReader.mu or a Live's mu (Shutdown stops them) or a stream's mu, never
	// the other way round; errMu and a stream's mu are never held together
	// with another lock.
	mu        sync.Mutex
	perStream map[string]int // pushes and upload renditions in progress per channel
	// streams in progress, for /status, and how Shutdown stops each.
	streams   map[*stream]stopper
	closing   bool          // Shutdown was called
	inflight  int           // ingest requests in progress
	drained   chan struct{} // closed once closing and no request is in progress
	drainOnce sync.Once

	errMu  sync.Mutex
	recent []ErrorStatus // the latest errors, oldest first
}

// New returns a relay that writes to st.
func New(st ObjectStore, cfg Config, log *slog.Logger) *Relay {
	if log == nil {
		log = slog.Default()
	}
	def := DefaultConfig()
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = def.StoreTimeout
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = def.AttemptTimeout
	}
	rl := &Relay{Store: st, Cfg: cfg, Log: log, metrics: newMetrics(), drained: make(chan struct{}), mem: memory{limit: bufferLimit(cfg.MemoryBudget)}}
	rl.metrics.watchMemory(&rl.mem)
	rl.store = &retrying{st: st, cfg: cfg, log: log, retries: &rl.retries, m: rl.metrics}
	rl.uploads = upload.New(rl, rl.store, upload.Config{
		ReorderWait: cfg.ReorderWait, Idle: cfg.ReadTimeout, MaxHeldBytes: cfg.MaxBox, Live: rl.channelLive, Log: log,
	})
	return rl
}

// admit counts a push (or an upload rendition) in, or refuses it with a
// *limitError saying which limit it would break.
func (rl *Relay) admit(channel string) error {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if m := rl.Cfg.MaxStreams; m > 0 && rl.active.Load() >= int64(m) {
		return &limitError{fmt.Sprintf("too many pushes in progress (limit %d)", m)}
	}
	if m := rl.Cfg.MaxStreamsPerChannel; m > 0 && rl.perStream[channel] >= m {
		return &limitError{fmt.Sprintf("too many pushes to channel %s in progress (limit %d)", channel, m)}
	}
	if rl.perStream == nil {
		rl.perStream = map[string]int{}
	}
	rl.perStream[channel]++
	rl.active.Add(1)
	return nil
}

// leave counts a push (or an upload rendition) out.
func (rl *Relay) leave(channel string) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.perStream[channel]--; rl.perStream[channel] <= 0 {
		delete(rl.perStream, channel)
	}
	rl.active.Add(-1)
}

// Active counts the pushes in progress: requests being read, or finishing
// their writes after the encoder has hung up.
func (rl *Relay) Active() int64 { return rl.active.Load() }

// Retries counts store requests retried since the relay started.
func (rl *Relay) Retries() int64 { return rl.retries.Load() }

// Handler routes ingest requests: POST and PUT to a stream URL push
// (servePush); PUT, POST and DELETE of a file under a channel upload
// (serveUpload); any other method there is 405; anything else is 404.
func (rl *Relay) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/live/", rl.serveIngest)
	mux.HandleFunc(tokenPrefix, rl.serveIngest)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		refuse(w, "not found: push to /live/{channel}.isml/Streams({stream})", http.StatusNotFound)
	})
	return mux
}

// serveIngest counts the request in (none while shutting down) and hands
// it to the push or the upload handler by its path.
func (rl *Relay) serveIngest(w http.ResponseWriter, r *http.Request) {
	token, path := splitToken(r.URL.Path) // never log a path with its token
	if !rl.enter() {
		rl.noteError(errShutdown, "", "", r.RemoteAddr, fmt.Errorf("%s %s refused: %w", r.Method, path, errShuttingDown))
		w.Header().Set("Retry-After", "5")
		refuse(w, "shutting down: push to another relay", http.StatusServiceUnavailable)
		return
	}
	defer rl.exit()
	ip, err := layout.ParseIngestPath(path)
	if err != nil {
		if up, uerr := layout.ParseUploadPath(path); uerr == nil {
			rl.serveUpload(w, r, up, token)
			return
		}
		refuse(w, err.Error()+" (or upload files to /live/{channel}.isml/{file})", http.StatusNotFound)
		return
	}
	rl.servePush(w, r, ip, token)
}

// refuse answers a request whose body is not read, and closes the
// connection: otherwise net/http would first try to drain the body, and a
// client whose body never ends would wait for its answer forever.
func refuse(w http.ResponseWriter, reason string, code int) {
	w.Header().Set("Connection", "close")
	http.Error(w, reason, code)
}

// refuseBefore refuses a request before its body is read, for err (an
// *authError or a *limitError): it logs it after op ("push", "upload"),
// counts it and keeps it among the recent errors.
func (rl *Relay) refuseBefore(w http.ResponseWriter, r *http.Request, log *slog.Logger, op, channel, name string, err error) {
	o := outcomeOf(err)
	log.Warn(op+" "+o.what, "status", o.status, "reason", err.Error())
	rl.noteError(o.kind, channel, name, r.RemoteAddr, err)
	switch o.status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Basic realm="smoothcast ingest"`)
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "5")
	}
	refuse(w, err.Error(), o.status)
}

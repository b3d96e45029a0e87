package relay

import (
	"errors"
	"net"
	"net/http"
	"os"
	"slices"

	"github.com/smoothcast/smoothcast/functions/ingest/upload"
	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/store"
)

// Error kinds, the kind label of smoothcast_errors_total and of /status's
// errors: a fixed set, so that what an encoder sends cannot add series.
const (
	errProtocol = "protocol"  // malformed media, a bad upload (400)
	errTooLarge = "too_large" // a box or an upload over the limit (413), credentials too long (431, 414)
	errAuth     = "auth"      // no or wrong credentials (401, 403)
	errLimit    = "limit"     // too many pushes or held segments (429, 503)
	errStore    = "store"     // the store kept failing; an end marker not written
	errRead     = "read"      // the connection broke (a drop)
	errTimeout  = "timeout"   // an encoder silent or slower than the rate floor (408)
	errConflict = "conflict"  // an upload out of order, or to an ended rendition (409)
	errShutdown = "shutdown"  // refused: the relay is shutting down (503)
	errKey      = "key"       // no key for an encrypted channel (503), or going on with the last one
)

var errorKinds = []string{errProtocol, errTooLarge, errAuth, errLimit, errStore, errRead, errTimeout, errConflict, errShutdown, errKey}

// Errors of the relay's own.
var (
	// errShuttingDown ends the pushes a relay that shuts down stops, and
	// refuses the requests that come meanwhile.
	errShuttingDown = errors.New("the relay is shutting down")
	// errTooSlow ends a body that arrives below the rate floor.
	errTooSlow = errors.New("encoder too slow")
)

// storeError is a store request that kept failing (StoreTimeout).
type storeError struct{ err error }

func (e *storeError) Error() string { return e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// limitError refuses a push or an upload rendition over a limit of
// pushes in progress.
type limitError struct{ reason string }

func (e *limitError) Error() string { return e.reason }

// authError refuses a request whose credentials do not open its channel.
type authError struct {
	status int // 401 or 403
	reason string
}

func (e *authError) Error() string { return e.reason }

// outcome is what the relay makes of an error that refused a request or
// ended a stream: the status the encoder gets, what the log says after
// "push" or "upload", and the kind it is counted as.
type outcome struct {
	status int
	what   string
	kind   string
}

// outcomeOf is the one place that decides an error's outcome.
func outcomeOf(err error) outcome {
	var perr *ingest.ProtocolError
	var lim *limitError
	var auth *authError
	var se *storeError
	var ke *keyError
	var ne net.Error
	switch {
	case errors.Is(err, errShuttingDown), errors.Is(err, upload.ErrClosed):
		// Stopped at a boundary between fragments: the channel stays live.
		return outcome{http.StatusServiceUnavailable, "stopped: the relay is shutting down", errShutdown}
	case errors.As(err, &auth) && (auth.status == http.StatusRequestHeaderFieldsTooLarge || auth.status == http.StatusRequestURITooLong):
		return outcome{auth.status, "refused: credentials too large", errTooLarge}
	case errors.As(err, &auth):
		return outcome{auth.status, "refused: authentication", errAuth}
	case errors.As(err, &lim):
		return outcome{http.StatusTooManyRequests, "refused: limit", errLimit}
	case errors.Is(err, errMemory):
		return outcome{http.StatusServiceUnavailable, "refused: memory budget", errLimit}
	case errors.Is(err, upload.ErrBusy):
		return outcome{http.StatusServiceUnavailable, "refused: limit", errLimit}
	case errors.As(err, &ke):
		// Never stored in the clear: the encoder sends it again later.
		return outcome{http.StatusServiceUnavailable, "failed: key server", errKey}
	case errors.Is(err, upload.ErrConflict):
		return outcome{http.StatusConflict, "refused: conflict", errConflict}
	case errors.Is(err, upload.ErrTooLarge):
		return outcome{http.StatusRequestEntityTooLarge, "refused: too large", errTooLarge}
	case errors.Is(err, upload.ErrNotMedia), errors.Is(err, upload.ErrMalformed):
		return outcome{http.StatusBadRequest, "refused", errProtocol}
	case errors.As(err, &perr) && errors.Is(err, mp4box.ErrTruncated):
		// The connection broke inside a box: a drop, not an end. Nothing of
		// the incomplete fragment was written; the encoder may reconnect.
		return outcome{http.StatusBadRequest, "dropped", errRead}
	case errors.As(err, &perr) && errors.Is(err, mp4box.ErrTooLarge):
		return outcome{http.StatusRequestEntityTooLarge, "refused: box too large", errTooLarge}
	case errors.As(err, &perr):
		return outcome{http.StatusBadRequest, "refused", errProtocol}
	case malformedChunked(err):
		// The encoder's HTTP, not its connection: answered, not dropped.
		return outcome{http.StatusBadRequest, "refused: malformed chunked body", errProtocol}
	case errors.Is(err, store.ErrPreconditionFailed), errors.As(err, &se):
		return outcome{http.StatusServiceUnavailable, "failed: store", errStore}
	case errors.Is(err, errTooSlow), errors.Is(err, upload.ErrIdle), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return outcome{http.StatusRequestTimeout, "dropped", errTimeout}
	}
	// Other read errors: resets, the client gone.
	return outcome{http.StatusRequestTimeout, "dropped", errRead}
}

// chunkedErrors are the texts of net/http's errors for a malformed
// chunked request body (net/http/internal/chunked.go; only
// http.ErrLineTooLong is exported): each a malformed request, where other
// read errors are a connection that broke.
var chunkedErrors = []string{
	"malformed chunked encoding",
	"chunked encoding contains too much non-data",
	"chunked line ends with bare LF",
	"invalid CR in chunked line",
	"empty hex number for chunk length",
	"invalid byte in chunk length",
	"http chunk length too large",
}

// malformedChunked reports whether err is net/http's refusal of a
// malformed chunked body.
func malformedChunked(err error) bool {
	if errors.Is(err, http.ErrLineTooLong) {
		return true
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if slices.Contains(chunkedErrors, e.Error()) {
			return true
		}
	}
	return false
}

package tlsfile

import (
	"bytes"
	"log"
	"log/slog"
	"net"
	"strings"
	"sync"
)

// maxRemembered bounds the remote hosts a HandshakeLog remembers; past
// it, it forgets them all and starts again (a host may then be logged a
// second time).
const maxRemembered = 4096

// HandshakeLog logs the TLS handshakes that fail on a listener, at most
// once per remote host and kind of failure: an encoder that speaks clear
// text to a TLS port (an http:// or rtmp:// URL where https:// or
// rtmps:// was due) and retries all event long is one warning, not one
// per connection.
type HandshakeLog struct {
	log *slog.Logger

	mu   sync.Mutex
	seen map[string]bool // host and kind, logged already
}

// NewHandshakeLog logs to log, which names the listener.
func NewHandshakeLog(log *slog.Logger) *HandshakeLog {
	return &HandshakeLog{log: log, seen: map[string]bool{}}
}

// Failed notes that the handshake with remote (host:port) failed with
// err; clearText says the client did not speak TLS (IsClearText).
func (h *HandshakeLog) Failed(remote string, clearText bool, err string) {
	host, _, splitErr := net.SplitHostPort(remote)
	if splitErr != nil {
		host = remote
	}
	key := "tls " + host
	if clearText {
		key = "clear " + host
	}
	h.mu.Lock()
	if h.seen[key] {
		h.mu.Unlock()
		return
	}
	if len(h.seen) >= maxRemembered {
		clear(h.seen)
	}
	h.seen[key] = true
	h.mu.Unlock()
	if clearText {
		h.log.Warn("clear-text connection to a TLS port refused: the encoder must use https:// or rtmps:// (logged once per remote host)", "remote", host, "err", err)
		return
	}
	// Scanners and clients that do not trust the certificate.
	h.log.Info("TLS handshake failed (logged once per remote host)", "remote", host, "err", err)
}

// ErrorLog is an http.Server's ErrorLog that sends the server's TLS
// handshake errors to Failed (net/http answers a clear-text request on
// a TLS port itself, 400 "Client sent an HTTP request to an HTTPS
// server", and would log every one) and its other lines to log.
func (h *HandshakeLog) ErrorLog() *log.Logger {
	return log.New(errorWriter{h}, "", 0)
}

// errorWriter reads net/http's error lines.
type errorWriter struct{ h *HandshakeLog }

// net/http's line for a failed handshake, and its reason for a client
// that spoke clear-text HTTP.
const (
	handshakePrefix = "http: TLS handshake error from "
	plainHTTPReason = "client sent an HTTP request to an HTTPS server"
)

func (w errorWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	if rest, ok := strings.CutPrefix(line, handshakePrefix); ok {
		// "host:port: reason" (the host may be [v6]).
		if i := strings.Index(rest, ": "); i > 0 {
			// EOF: a connection closed before it said anything (a load
			// balancer's or a test's TCP probe), not worth a line.
			if reason := rest[i+2:]; reason != "EOF" {
				w.h.Failed(rest[:i], reason == plainHTTPReason, reason)
			}
			return len(p), nil
		}
	}
	w.h.log.Error("http server", "err", line)
	return len(p), nil
}

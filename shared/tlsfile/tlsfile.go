// Package tlsfile serves TLS with a certificate chain and its key read
// from PEM files, read again when they change: the relay's HTTPS and
// RTMPS listeners use it (a renewed certificate needs no restart). It
// also describes a certificate as an operator checks it (its SHA-256
// fingerprint as openssl prints it, its names and addresses), makes the
// self-signed certificate of the local stack (SelfSigned), and logs the
// handshakes that fail without repeating itself (HandshakeLog).
package tlsfile

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// KeyPair is a certificate chain and its key read from PEM files (one
// file may hold both), read again when either file's modification time
// changes (checked at most once a second). A renewed certificate that
// does not load keeps the one before it in use, and the log says so
// (once per failure).
type KeyPair struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]time.Time // the files' modification times when read
	checked time.Time
	failed  string // the last failure logged
}

// Load reads the certificate chain in certFile and its key in keyFile
// (empty: certFile holds both). An error names the files; log (nil: the
// default logger) later hears of a renewed certificate that does not
// load.
func Load(certFile, keyFile string, log *slog.Logger) (*KeyPair, error) {
	if keyFile == "" {
		keyFile = certFile
	}
	if log == nil {
		log = slog.Default()
	}
	k := &KeyPair{certFile: certFile, keyFile: keyFile, log: log}
	if _, err := k.Get(); err != nil {
		return nil, err
	}
	return k, nil
}

// Get returns the certificate, reading the files again if they changed.
func (k *KeyPair) Get() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cert != nil && time.Since(k.checked) < time.Second {
		return k.cert, nil
	}
	k.checked = time.Now()
	var stamp [2]time.Time
	for i, f := range []string{k.certFile, k.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return k.keep(fmt.Errorf("certificate: %w", err))
		}
		stamp[i] = fi.ModTime()
	}
	if k.cert != nil && stamp == k.stamp {
		return k.cert, nil
	}
	c, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return k.keep(fmt.Errorf("certificate %s, key %s: %w", k.certFile, k.keyFile, err))
	}
	k.cert, k.stamp, k.failed = &c, stamp, ""
	return k.cert, nil
}

// keep is Get's answer when the files cannot be read: the certificate
// read before, if any.
func (k *KeyPair) keep(err error) (*tls.Certificate, error) {
	if k.cert == nil {
		return nil, err
	}
	if err.Error() != k.failed {
		k.failed = err.Error()
		k.log.Error("certificate not read again: the one read before stays in use", "err", err)
	}
	return k.cert, nil
}

// Config is a server's TLS configuration with k's certificate: TLS 1.2
// at least, the files read again when they change.
func (k *KeyPair) Config() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return k.Get() },
	}
}

// Attrs describes the certificate in use for a log line: its SHA-256
// fingerprint (as `openssl x509 -noout -fingerprint -sha256` prints it),
// subject, names, addresses and expiry.
func (k *KeyPair) Attrs() []any {
	c, err := k.Get()
	if err != nil {
		return []any{"certificate_err", err.Error()}
	}
	return Attrs(c.Leaf)
}

// Attrs describes c for a log line: its SHA-256 fingerprint, subject,
// names, addresses and expiry.
func Attrs(c *x509.Certificate) []any {
	ips := make([]string, len(c.IPAddresses))
	for i, ip := range c.IPAddresses {
		ips[i] = ip.String()
	}
	return []any{"fingerprint_sha256", Fingerprint(c), "subject", c.Subject.String(),
		"dns_names", c.DNSNames, "ip_addresses", ips, "not_after", c.NotAfter.UTC().Format(time.RFC3339)}
}

// Fingerprint is c's SHA-256 fingerprint as `openssl x509 -noout
// -fingerprint -sha256` prints it after "sha256 Fingerprint=": the hash
// of the DER certificate, upper-case hexadecimal bytes separated by
// colons.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// IsClearText tells whether err is a TLS handshake's failure because
// the client did not speak TLS at all: an http:// or rtmp:// URL where
// https:// or rtmps:// was due.
func IsClearText(err error) bool {
	var re tls.RecordHeaderError
	return errors.As(err, &re) && re.Conn != nil
}

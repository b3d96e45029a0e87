package main

import (
	"cmp"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/smoothcast/smoothcast/shared/config"
	"github.com/smoothcast/smoothcast/shared/tlsfile"
)

// runTLS are `smoothcast run`'s TLS flags.
type runTLS struct {
	on         bool
	cert, key  string
	hosts      string // comma-separated
	rtmpsAddr  string
	dataDir    string // -data-dir
	certFile   string // the certificate in use, once loaded
	generated  bool   // certFile is the self-signed one
	removeTemp string // a directory to remove at exit (no -data-dir)
}

// define declares the flags on fs.
func (o *runTLS) define(fs *config.Set) {
	fs.BoolVar(&o.on, "tls", false, "serve the ingest over TLS: HTTPS only on -ingest-addr, and RTMPS on -rtmps-addr, with a self-signed certificate kept in -data-dir/tls (or -tls-cert)")
	fs.StringVar(&o.cert, "tls-cert", "", "certificate chain, PEM, instead of the self-signed one (it may hold the key too); implies -tls")
	fs.StringVar(&o.key, "tls-key", "", "private key of -tls-cert, PEM (empty: in the -tls-cert file)")
	fs.StringVar(&o.hosts, "tls-host", "", "more names or IP addresses for the self-signed certificate, comma-separated (it always holds localhost, 127.0.0.1 and ::1)")
	fs.StringVar(&o.rtmpsAddr, "rtmps-addr", "127.0.0.1:1936", "RTMPS listen address, with -tls (empty: no RTMPS)")
}

// load returns the certificate (nil without -tls or -tls-cert): the one
// given, or the self-signed one under -data-dir/tls, made the first
// time (and when it lacks a -tls-host or is about to expire), so that its
// fingerprint stays the same across restarts. Without -data-dir it lives
// in a temporary directory for this run.
func (o *runTLS) load(log *slog.Logger, now time.Time) (*tlsfile.KeyPair, error) {
	if o.key != "" && o.cert == "" {
		return nil, fmt.Errorf("-tls-key needs -tls-cert")
	}
	if o.cert != "" {
		o.on = true
		o.certFile = o.cert
		return tlsfile.Load(o.cert, o.key, log)
	}
	if !o.on {
		return nil, nil
	}
	dir := o.dataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "smoothcast-tls-")
		if err != nil {
			return nil, fmt.Errorf("self-signed certificate: %w", err)
		}
		dir, o.removeTemp = tmp, tmp
	}
	var hosts []string
	for h := range strings.SplitSeq(o.hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	certFile, keyFile, made, err := tlsfile.SelfSigned(filepath.Join(dir, "tls"), hosts, now)
	if err != nil {
		return nil, err
	}
	if made {
		log.Info("made a self-signed certificate: encoders that verify it must trust this file", "file", certFile)
	}
	o.certFile, o.generated = certFile, true
	return tlsfile.Load(certFile, keyFile, log)
}

// close removes what load made for this run alone.
func (o *runTLS) close() {
	if o.removeTemp != "" {
		_ = os.RemoveAll(o.removeTemp)
	}
}

// banner is what `smoothcast run` prints about TLS: the certificate's
// fingerprint and file, and how an encoder trusts it (empty without TLS).
func (o *runTLS) banner(k *tlsfile.KeyPair, ingestURL, rtmpsURL string) string {
	if k == nil {
		return ""
	}
	c, err := k.Get()
	if err != nil {
		return ""
	}
	rtmps := cmp.Or(rtmpsURL, "(off: -rtmps-addr)")
	kind := "given (-tls-cert)"
	if o.generated {
		kind = "self-signed, kept across restarts"
	}
	return fmt.Sprintf(`
TLS (certificate %s: %s):
  SHA-256 fingerprint  %s
  Names                %s
  HTTPS                %s/live/{channel}.isml/Streams({stream})   (clear-text http:// is refused)
  RTMPS                %s/{channel}   (OBS: Server %s)
  ffmpeg that verifies it:  -tls_verify 1 -ca_file %s (before the output URL)
  Without -tls_verify, ffmpeg encrypts but does not check who answers: compare
  the fingerprint above with: openssl s_client -connect HOST:PORT </dev/null | openssl x509 -noout -fingerprint -sha256
`, o.certFile, kind, tlsfile.Fingerprint(c.Leaf), strings.Join(names(c.Leaf), ", "),
		ingestURL, rtmps, rtmps, o.certFile)
}

// names lists c's DNS names and IP addresses.
func names(c *x509.Certificate) []string {
	out := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

package main

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"

	"github.com/smoothcast/smoothcast/shared/config"
	"github.com/smoothcast/smoothcast/shared/tlsfile"
)

// tlsOptions are the ingest listener's certificate flags.
type tlsOptions struct {
	cert, key string
}

// define declares the flags on fs.
func (o *tlsOptions) define(fs *config.Set) {
	fs.StringVar(&o.cert, "tls-cert", "", "certificate chain, PEM (it may hold the key too; read again when it changes): -addr then serves HTTPS only, and -rtmps-addr takes it when -rtmps-cert is not set (empty: -addr serves clear-text HTTP)")
	fs.StringVar(&o.key, "tls-key", "", "private key of -tls-cert, PEM (empty: in the -tls-cert file)")
}

// check refuses a key without its certificate.
func (o *tlsOptions) check() error {
	if o.key != "" && o.cert == "" {
		return errors.New("-tls-key needs -tls-cert")
	}
	return nil
}

// load reads the certificate (nil without -tls-cert) and logs what an
// operator checks an encoder's view of it against: its SHA-256
// fingerprint, names and addresses, and expiry.
func (o *tlsOptions) load(log *slog.Logger) (*tlsfile.KeyPair, error) {
	if o.cert == "" {
		return nil, nil
	}
	k, err := tlsfile.Load(o.cert, o.key, log)
	if err != nil {
		return nil, err
	}
	log.Info("ingest certificate (-tls-cert)", append([]any{"file", o.cert}, k.Attrs()...)...)
	return k, nil
}

// listenTLS makes ln serve TLS with k's certificate, when k is set.
func listenTLS(ln net.Listener, k *tlsfile.KeyPair) net.Listener {
	if k == nil {
		return ln
	}
	return tls.NewListener(ln, k.Config())
}

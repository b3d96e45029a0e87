package main

import (
	"errors"
	"log/slog"
	"net"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
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

// listenTLS is rl's ingest listener on ln: each connection draws its
// cost from the memory budget, and with k it serves TLS with k's
// certificate (a refusal answered over TLS too).
func listenTLS(rl *relay.Relay, ln net.Listener, k *tlsfile.KeyPair) net.Listener {
	if k == nil {
		return rl.Listener(ln)
	}
	return rl.TLSListener(ln, k.Config())
}

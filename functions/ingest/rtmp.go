package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/functions/ingest/rtmp"
	"github.com/smoothcast/smoothcast/shared/config"
	"github.com/smoothcast/smoothcast/shared/tlsfile"
)

// rtmpOptions are the RTMP and RTMPS listeners' flags.
type rtmpOptions struct {
	addr, tlsAddr, cert, key string
	// ingestCert is -tls-cert's certificate, RTMPS's when -rtmps-cert is
	// not set (run sets it).
	ingestCert *tlsfile.KeyPair
}

// define declares the flags on fs.
func (o *rtmpOptions) define(fs *config.Set) {
	fs.StringVar(&o.addr, "rtmp-addr", ":1935", "RTMP listen address: encoders publish to rtmp://HOST:PORT/live/{channel}[?secret={secret}] (empty: no RTMP)")
	fs.StringVar(&o.tlsAddr, "rtmps-addr", "", "RTMPS listen address, with -rtmps-cert and -rtmps-key, or else -tls-cert (empty: no RTMPS)")
	fs.StringVar(&o.cert, "rtmps-cert", "", "RTMPS certificate chain, PEM (read again when it changes)")
	fs.StringVar(&o.key, "rtmps-key", "", "RTMPS private key, PEM")
}

// check refuses an RTMPS listener without a certificate (its own, or
// else the ingest listener's: ingestCert says -tls-cert is set), or
// RTMPS's certificate without its listener.
func (o *rtmpOptions) check(ingestCert bool) error {
	some, own := o.cert != "" || o.key != "", o.cert != "" && o.key != ""
	switch {
	case o.tlsAddr == "" && some, o.tlsAddr != "" && some && !own, o.tlsAddr != "" && !some && !ingestCert:
		return errors.New("-rtmps-addr needs -rtmps-cert and -rtmps-key (or else -tls-cert), and they need it")
	}
	return nil
}

// listenRTMP starts the RTMP and RTMPS listeners that are set; the
// server (nil with neither) is closed after the relay's Shutdown, which
// ends its publishes (what each holds is stored first). A certificate that does not load is
// an error; an address that is taken (another relay on the machine, say)
// is logged loudly, and the relay takes pushes all the same, as with the
// admin address.
func listenRTMP(ctx context.Context, log *slog.Logger, rl *relay.Relay, o rtmpOptions) (*rtmp.Server, error) {
	if o.addr == "" && o.tlsAddr == "" {
		return nil, nil
	}
	var tlsCfg *tls.Config
	switch {
	case o.tlsAddr == "":
	case o.cert != "":
		k, err := tlsfile.Load(o.cert, o.key, log)
		if err != nil {
			return nil, fmt.Errorf("rtmps %w", err)
		}
		log.Info("rtmps certificate (-rtmps-cert)", append([]any{"file", o.cert}, k.Attrs()...)...)
		tlsCfg = k.Config()
	case o.ingestCert != nil:
		tlsCfg = o.ingestCert.Config()
	default:
		return nil, errors.New("rtmps certificate: none (-rtmps-cert or -tls-cert)")
	}
	srv := rtmp.New(rl, rtmp.Config{}, log)
	for _, l := range []struct {
		flag, addr string
		tls        *tls.Config
	}{{"-rtmp-addr", o.addr, nil}, {"-rtmps-addr", o.tlsAddr, tlsCfg}} {
		if l.addr == "" {
			continue
		}
		ln, err := rtmp.Listen(ctx, l.addr, l.tls)
		if err != nil {
			log.Error("rtmp listener ("+l.flag+"): NO RTMP PUBLISHES on it; the relay takes pushes all the same", "addr", l.addr, "err", err)
			continue
		}
		log.Info("rtmp listener", "addr", ln.Addr().String(), "tls", l.tls != nil)
		go func() {
			if err := srv.Serve(ln); !errors.Is(err, rtmp.ErrServerClosed) {
				log.Error("rtmp listener ("+l.flag+") failed: no more RTMP publishes on it", "addr", l.addr, "err", err)
			}
		}()
	}
	return srv, nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/functions/ingest/srt"
	"github.com/smoothcast/smoothcast/shared/config"
)

// defineSRT declares the SRT listener's flags on fs, into c; the
// passphrase's SSM parameter goes to parameter, the pulls to pulls, for
// checkSRT.
func defineSRT(fs *config.Set, c *srt.Config, parameter *string, pulls *srt.PullFlag) {
	fs.StringVar(&c.Addr, "srt-addr", c.Addr, "SRT listen address (UDP; empty: no SRT): callers publish MPEG-TS with the stream ID #!::r={channel},m=publish")
	fs.StringVar(&c.Passphrase, "srt-passphrase", "", "SRT encryption passphrase (10 to 79 characters): callers must encrypt with it; empty: callers must not encrypt")
	fs.Secret("srt-passphrase")
	fs.StringVar(parameter, "srt-passphrase-parameter", "", "SSM parameter (SecureString) holding the SRT passphrase, read at start (instead of -srt-passphrase)")
	fs.DurationVar(&c.Latency, "srt-latency", c.Latency, "the least SRT latency the relay asks of callers and of the encoders it calls (the time SRT has to recover lost packets; a caller may ask more)")
	fs.Var(pulls, "srt-pull", srt.PullUsage)
}

// checkSRT reads the pulls into c and refuses SRT settings the server
// cannot run with (a passphrase's length, never a passphrase, in the
// error), or a passphrase given twice (-srt-passphrase and its
// parameter).
func checkSRT(c *srt.Config, parameter string, pulls *srt.PullFlag) error {
	if parameter != "" && c.Passphrase != "" {
		return errors.New("-srt-passphrase and -srt-passphrase-parameter: set one")
	}
	p, err := pulls.Pulls()
	if err != nil {
		return fmt.Errorf("-srt-pull (SMOOTHCAST_SRT_PULL): %w", err)
	}
	c.Pull = p
	if err := c.Validate(); err != nil {
		return fmt.Errorf("-srt-passphrase or -srt-latency: %w", err)
	}
	return nil
}

// listenSRT starts the SRT listener when its address is set, and the
// pulls; the server (nil without either) is closed after the relay's
// Shutdown, which ends its streams (what each holds is stored first). An
// address that is taken (another relay on the machine, say) is logged
// loudly, and the relay takes pushes and pulls all the same, as with the
// admin and RTMP addresses.
func listenSRT(log *slog.Logger, rl *relay.Relay, c srt.Config) *srt.Server {
	if c.Addr == "" && len(c.Pull) == 0 {
		return nil
	}
	srv, err := srt.Listen(rl, c)
	if err != nil {
		log.Error("srt listener (-srt-addr): NO SRT PUBLISHES; the relay takes pushes all the same", "addr", c.Addr, "err", err)
		if len(c.Pull) == 0 {
			return nil
		}
		// The pulls need no listener.
		c.Addr = ""
		if srv, err = srt.Listen(rl, c); err != nil {
			log.Error("srt pulls (-srt-pull): none", "err", err)
			return nil
		}
	}
	if c.Addr != "" {
		log.Info("srt listener", "addr", srv.Addr().String(), "encrypted", c.Passphrase != "")
	}
	go func() {
		if err := srv.Serve(); err != nil {
			log.Error("srt listener (-srt-addr) failed: no more SRT publishes", "addr", c.Addr, "err", err)
		}
	}()
	return srv
}

// loadSRTPassphrase reads the SRT passphrase from the SSM parameter (a
// SecureString), as the ingest secret is read, white space around it
// trimmed; one SRT cannot use is an error that gives its length, never
// the passphrase.
func loadSRTPassphrase(ctx context.Context, parameter, region string) (string, error) {
	v, err := getParameter(ctx, parameter, region)
	if err != nil {
		return "", fmt.Errorf("srt passphrase (-srt-passphrase-parameter): %w", err)
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return "", fmt.Errorf("SSM parameter %s (-srt-passphrase-parameter) is empty: SRT takes a passphrase of 10 to 79 characters", parameter)
	}
	if err := (srt.Config{Passphrase: v}).Validate(); err != nil {
		return "", fmt.Errorf("SSM parameter %s (-srt-passphrase-parameter): %w", parameter, err)
	}
	return v, nil
}

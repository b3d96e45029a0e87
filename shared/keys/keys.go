// Package keys gives the relay its channels' content keys: static keys
// from a key file or an SSM SecureString parameter (ClearKey and tests),
// and keys from a DRM vendor's key server over SPEKE v2 (Widevine,
// PlayReady, FairPlay), with key rotation. A Source says which channels
// are encrypted (Plan) and gives each key period's key and pssh boxes
// (Period). Key values are never logged or put in an error: cenc.Key
// prints its KID only, and the key file's errors name the line.
package keys

import (
	"context"
	"fmt"

	"github.com/smoothcast/smoothcast/shared/cenc"
)

// Source gives channels' keys. Safe for concurrent use.
type Source interface {
	// Plan says whether channel is encrypted and how; ok false: clear.
	Plan(channel string) (p Plan, ok bool)
	// Period returns channel's key period n (0 without rotation). On a
	// key server failure it returns the last period it has for the
	// channel (n' < n) together with a *StaleError (errors.As), so the
	// relay keeps going with the last key and says so; with no key at all
	// an error the relay refuses the fragment with (stops publishing).
	Period(ctx context.Context, channel string, n uint64) (cenc.Period, error)
}

// Plan is how a channel is encrypted.
type Plan struct {
	// Scheme is the protection scheme (cbcs or cenc).
	Scheme cenc.Scheme
	// RotateEvery is the number of fragments per key period; 0: one key
	// for the channel's whole life (period 0).
	RotateEvery int
}

// StaleError says that the key server failed to give channel's period
// Want and that Period returned the last period the channel has, Have,
// instead: the relay encrypts with that key and reports the failure
// (log, status page, metrics). Err is the key server's failure.
type StaleError struct {
	Channel string
	Want    uint64
	Have    uint64
	Err     error
}

// Error names the channel and both periods, and the failure.
func (e *StaleError) Error() string {
	return fmt.Sprintf("channel %s: key period %d unavailable, using period %d: %v", e.Channel, e.Want, e.Have, e.Err)
}

// Unwrap is the key server's failure.
func (e *StaleError) Unwrap() error { return e.Err }

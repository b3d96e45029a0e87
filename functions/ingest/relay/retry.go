package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/smoothcast/smoothcast/shared/store"
)

// retrying is the store as the relay uses it: each request gets
// AttemptTimeout, and a request that fails for a reason that may pass (5xx,
// throttling, a timeout, a reset connection) is retried with exponential
// backoff and full jitter for up to StoreTimeout. Meanwhile the session
// holds the fragment in hand and reads nothing more from the encoder, so
// what the relay holds per stream stays one fragment (the rest waits in
// the encoder and the TCP buffers). Past StoreTimeout the write fails,
// and with it the encoder's request.
type retrying struct {
	st      ObjectStore
	cfg     Config
	log     *slog.Logger
	retries *atomic.Int64
	m       *metrics
	// onRetry, when set, hears of every failure retried (a session's
	// copy: it shows on the stream's status).
	onRetry func(op string, err error)
}

// forStream is the store as one stream's session uses it: its retries
// show as the stream's last error.
func (r *retrying) forStream(s *stream) *retrying {
	c := *r
	c.onRetry = func(op string, err error) {
		s.failed(errStore, fmt.Errorf("store %s failed, retrying: %w", op, err))
	}
	return &c
}

// Put writes one body (init segments, markers, the clock record).
func (r *retrying) Put(ctx context.Context, key string, body []byte, o store.PutOptions) (string, error) {
	return r.PutParts(ctx, key, [][]byte{body}, o)
}

func (r *retrying) PutParts(ctx context.Context, key string, parts [][]byte, o store.PutOptions) (string, error) {
	var etag string
	err := r.do(ctx, "put", key, func(ctx context.Context) (err error) {
		etag, err = r.st.PutParts(ctx, key, parts, o)
		return err
	})
	return etag, err
}

func (r *retrying) Get(ctx context.Context, key string) (store.Object, error) {
	var obj store.Object
	err := r.do(ctx, "get", key, func(ctx context.Context) (err error) {
		obj, err = r.st.Get(ctx, key)
		return err
	})
	return obj, err
}

func (r *retrying) do(ctx context.Context, op, key string, call func(context.Context) error) error {
	started := time.Now()
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, r.cfg.AttemptTimeout)
		sent := time.Now()
		err := call(actx)
		r.m.storeRequest(op, err, time.Since(sent))
		cancel()
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
		wait := time.Duration(rand.Int64N(int64(min(100*time.Millisecond<<min(attempt, 10), 5*time.Second)))) + time.Millisecond
		if time.Since(started)+wait > r.cfg.StoreTimeout {
			return fmt.Errorf("store failing for %v (%d attempts): %w", time.Since(started).Round(time.Millisecond), attempt+1, err)
		}
		r.retries.Add(1)
		r.m.retries.WithLabelValues(op).Inc()
		if r.onRetry != nil {
			r.onRetry(op, err)
		}
		r.log.Warn("store request failed, retrying", "op", op, "key", key, "attempt", attempt+1, "wait", wait, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// retryable tells errors that may pass from those that will not: a refused
// condition, a missing object or another 4xx answer is final.
func retryable(err error) bool {
	if errors.Is(err, store.ErrPreconditionFailed) || errors.Is(err, store.ErrNotFound) {
		return false
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		code := re.HTTPStatusCode()
		return code >= 500 || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code == 0
	}
	return true // timeouts, resets, refused connections
}

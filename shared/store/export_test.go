package store

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// RetryAtOnce gives st's client and direct path the store's retry policy
// (5 attempts) without the backoff between attempts: tests of retries
// then take no time.
func RetryAtOnce(st *Store) {
	r := retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = 5
		o.RateLimiter = ratelimit.None
		o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
	})
	o := st.Client.Options()
	o.Retryer = r
	st.Client = s3.New(o)
	if st.direct != nil {
		st.direct.retryer = r
	}
}

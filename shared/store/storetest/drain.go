// Package storetest holds what the tests and benchmarks of the store and
// of its users need of S3 without S3: Drain, an endpoint on loopback that
// takes every write and keeps nothing, so that what is measured is the
// client's side of storing; and Mem, a store in memory with S3's
// conditions, for the code above the store.
package storetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/smoothcast/smoothcast/shared/store"
)

// ReadSize is how much Discard reads at a time: 1 MiB, so that reading
// costs a syscall per what the socket holds, not one per 8 KB (io.Copy to
// io.Discard).
const ReadSize = 1 << 20

var bufs = sync.Pool{New: func() any { return new([ReadSize]byte) }}

// Discard reads r to its end, ReadSize bytes at a time.
func Discard(r io.Reader) error {
	buf := bufs.Get().(*[ReadSize]byte)
	defer bufs.Put(buf)
	for {
		_, err := r.Read(buf[:])
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Drain is an S3 endpoint on loopback that reads every request to its
// end, answers PUTs with an ETag and anything else with S3's NoSuchKey,
// and counts the PUTs.
type Drain struct {
	// URL is the endpoint's base URL, http:// or https://.
	URL string
	// Client reaches the endpoint: it trusts the TLS server's certificate
	// and, like the SDK's default client, keeps up to 16 idle connections
	// (httptest's keeps 2: a benchmark of 4 streams would reconnect, and
	// shake TLS hands, all the time).
	Client *http.Client
	puts   atomic.Int64
}

// NewDrain starts a Drain over plain HTTP or over TLS (the server's
// decryption then runs in the caller's process too); it stops with tb.
func NewDrain(tb testing.TB, tls bool) *Drain {
	tb.Helper()
	d := &Drain{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = Discard(r.Body)
		if r.Method == http.MethodPut {
			d.puts.Add(1)
			w.Header().Set("ETag", `"0"`)
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `<Error><Code>NoSuchKey</Code><Message>none</Message></Error>`)
	})
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	tb.Cleanup(srv.Close)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	tb.Cleanup(tr.CloseIdleConnections)
	d.URL, d.Client = srv.URL, &http.Client{Transport: tr}
	return d
}

// Puts is the number of PUTs the endpoint answered so far.
func (d *Drain) Puts() int64 { return d.puts.Load() }

// Put writes body at key with net/http alone, as a client that neither
// signs nor sums would: the least any client of S3 does per write.
func (d *Drain) Put(ctx context.Context, key string, body []byte) error {
	req, err := d.Request(ctx, key, body)
	if err != nil {
		return err
	}
	return d.Send(req)
}

// Request is a PUT of body at key on the endpoint.
func (d *Drain) Request(ctx context.Context, key string, body []byte) (*http.Request, error) {
	return http.NewRequestWithContext(ctx, http.MethodPut, d.URL+"/drain/"+key, bytes.NewReader(body))
}

// Send sends req with Client and reads the answer.
func (d *Drain) Send(req *http.Request) error {
	resp, err := d.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := Discard(resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
	return nil
}

// Store is the S3 client (store.Store: the SDK for reads, the direct
// path for writes) on the endpoint, configured as store.New configures it
// for any endpoint.
func (d *Drain) Store(tb testing.TB) *store.Store {
	tb.Helper()
	// The SDK refuses a CA bundle from the environment with a client of
	// our own; ours trusts the test server's certificate.
	tb.Setenv("AWS_CA_BUNDLE", "")
	st, err := store.New(context.Background(), store.Config{Bucket: "drain", Endpoint: d.URL, AccessKey: "a", SecretKey: "b", HTTPClient: d.Client})
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// WithSDKChecksums sends st's writes through the SDK's PutObject with
// the SDK's default checksum on every write (a CRC32 trailer, the body
// aws-chunked), as the store wrote until it sent neither: benchmarks
// measure what they would cost.
func WithSDKChecksums(st *store.Store) {
	o := st.Client.Options()
	o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenSupported
	st.Client = s3.New(o)
	st.SDKWrites = true
}

// CPU is the process's user and system CPU time so far: benchmarks report
// CPU per byte with it, counting every goroutine (the endpoint's too).
func CPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

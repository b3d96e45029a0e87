package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/synth"
)

// nullStore takes every write and keeps nothing: the relay's own work,
// without S3.
type nullStore struct{}

func (nullStore) PutParts(context.Context, string, [][]byte, store.PutOptions) (string, error) {
	return `"etag"`, nil
}

func (nullStore) Get(context.Context, string) (store.Object, error) {
	return store.Object{}, store.ErrNotFound
}

// pushBody is a realistic push held in memory: five H.264 renditions and
// AAC in 2 s fragments, 60 s of them.
func pushBody(b *testing.B) []byte {
	b.Helper()
	s, err := synth.New(synth.Config{SMIL: true, Tracks: synth.Ladder()})
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := s.WriteTo(context.Background(), &buf, synth.Range{Count: 30, End: true}); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// discardS3 is the S3 client (store.Store, aws-sdk-go-v2) talking to an
// endpoint on loopback that drains every PUT and has no objects: the
// relay's client-side cost of storing. Over plain HTTP the SDK signs each
// body (SHA-256); over TLS, as with AWS, it sends UNSIGNED-PAYLOAD and
// encrypts instead (the server's decryption runs in this process too).
func discardS3(b *testing.B, tls bool) *store.Store {
	b.Helper()
	newServer := httptest.NewServer
	if tls {
		newServer = httptest.NewTLSServer
	}
	srv := newServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodPut {
			w.Header().Set("ETag", `"0"`)
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `<Error><Code>NoSuchKey</Code><Message>none</Message></Error>`)
	}))
	b.Cleanup(srv.Close)
	// The SDK refuses a CA bundle from the environment with a client of
	// our own; the test server's client trusts its certificate.
	b.Setenv("AWS_CA_BUNDLE", "")
	st, err := store.New(context.Background(), store.Config{Bucket: "bench", Endpoint: srv.URL, AccessKey: "a", SecretKey: "b", HTTPClient: srv.Client()})
	if err != nil {
		b.Fatal(err)
	}
	return st
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIngest pushes N concurrent streams over loopback, as fast as
// they are taken, into the relay and, as the baseline, into a sink that
// only copies the body to io.Discard. The relay stores into: a store that
// keeps nothing (the relay's own work), the S3 client against a draining
// endpoint over HTTP and over TLS (the upload's client side), and the
// embedded S3 server (everything, the server's work included). MB/s is
// what the server side took; cpu-s/GB counts the whole process (clients
// included, the same for all).
func BenchmarkIngest(b *testing.B) {
	body := pushBody(b)
	quiet := quiet
	for _, target := range []struct {
		name    string
		handler func() http.Handler
	}{
		{"discard-sink", func() http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) })
		}},
		{"relay", func() http.Handler { return relay.New(nullStore{}, relay.DefaultConfig(), quiet).Handler() }},
		{"relay+s3-client", func() http.Handler { return relay.New(discardS3(b, false), relay.DefaultConfig(), quiet).Handler() }},
		{"relay+s3-client-tls", func() http.Handler { return relay.New(discardS3(b, true), relay.DefaultConfig(), quiet).Handler() }},
		{"relay+embedded-s3", func() http.Handler {
			_, st := testtool.Store(b, "bench-ingest")
			return relay.New(st, relay.DefaultConfig(), quiet).Handler()
		}},
	} {
		for _, streams := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/streams=%d", target.name, streams), func(b *testing.B) {
				hs := httptest.NewServer(target.handler())
				defer hs.Close()
				b.SetBytes(int64(len(body) * streams))
				cpu0 := cpuTime()
				for i := 0; b.Loop(); i++ {
					var wg sync.WaitGroup
					for s := range streams {
						wg.Go(func() {
							url := fmt.Sprintf("%s/live/b%d.isml/Streams(s%d)", hs.URL, s, i)
							req, _ := http.NewRequest("POST", url, io.MultiReader(bytes.NewReader(body)))
							resp, err := http.DefaultClient.Do(req)
							if err != nil {
								b.Error(err)
								return
							}
							_, _ = io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							if resp.StatusCode != 200 {
								b.Errorf("status %d", resp.StatusCode)
							}
						})
					}
					wg.Wait()
				}
				gb := float64(len(body)*streams*b.N) / 1e9
				b.ReportMetric((cpuTime()-cpu0).Seconds()/gb, "cpu-s/GB")
			})
		}
	}
}

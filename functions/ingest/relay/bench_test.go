package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/keys"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/store/storetest"
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

// fragments counts the moof boxes of a push: the relay stores each
// fragment as one PUT.
func fragments(b *testing.B, body []byte) int {
	b.Helper()
	n := 0
	for box, err := range mp4box.All(body) {
		if err != nil {
			b.Fatal(err)
		}
		if box.Type == "moof" {
			n++
		}
	}
	return n
}

// proxy is the physical limit of the relay's work: it receives a push and
// re-sends its bytes to the endpoint, one PUT per piece of the given size
// (a fragment's, on average), one at a time as the relay does, with
// net/http alone: no parsing, no signing, no checksum.
func proxy(d *storetest.Drain, piece int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, piece)
		for i := 0; ; i++ {
			n, err := io.ReadFull(r.Body, buf)
			if n > 0 {
				if perr := d.Put(r.Context(), fmt.Sprintf("%s/%d", strings.TrimPrefix(r.URL.Path, "/"), i), buf[:n]); perr != nil {
					http.Error(w, perr.Error(), http.StatusBadGateway)
					return
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
	})
}

// BenchmarkIngest pushes N concurrent streams over loopback, as fast as
// they are taken, into:
//   - sink-8k and sink-1m: handlers that only read the body, 8 KB at a
//     time (io.Copy to io.Discard) and 1 MiB at a time;
//   - proxy and proxy-tls: a forwarding proxy that re-sends the bytes to a
//     draining endpoint, one PUT per fragment-sized piece, over plain HTTP
//     and over TLS: what any origin that stores in S3 must do at least;
//   - relay: the relay with a store that keeps nothing (its own work);
//   - relay+s3-client and relay+s3-client-tls: the relay with its S3
//     client against the same draining endpoint as the proxy's, over HTTP
//     and TLS (the AWS case); relay+s3-client-tls-crc32 with the SDK's
//     default CRC32 trailer checksum on every PUT, which the store does
//     not send;
//   - relay+embedded-s3: the relay into the embedded S3 server, whose own
//     work counts too;
//   - relay-cbcs and relay-cenc: the relay encrypting every stream's audio
//     and video (issue 20) with a store that keeps nothing, against relay;
//     relay+s3-client-tls-cbcs against relay+s3-client-tls.
//
// MB/s is what the server side took. cpu-s/GB counts the whole process:
// the pushing clients on every side alike, and the endpoint's draining
// (and decryption) for the proxy and the relay's S3 client alike. PUTs/op
// is what the endpoint received per push round.
func BenchmarkIngest(b *testing.B) {
	body := pushBody(b)
	piece := len(body) / fragments(b, body)
	quiet := quiet
	type target struct {
		name  string
		start func(b *testing.B) (http.Handler, *storetest.Drain)
	}
	// encrypted is the relay's configuration with every stream's channel
	// (b0…b3) encrypted with scheme.
	encrypted := func(scheme cenc.Scheme) relay.Config {
		cfg := relay.DefaultConfig()
		ks := map[string]cenc.Key{}
		for i := range 4 {
			ks[fmt.Sprintf("b%d", i)] = cenc.Key{KID: cenc.KID{byte(i), 1}, Value: [16]byte{byte(i), 2}}
		}
		cfg.Keys = keys.NewStatic(ks, scheme)
		return cfg
	}
	relayOn := func(tls, crc32 bool, cfg relay.Config) func(b *testing.B) (http.Handler, *storetest.Drain) {
		return func(b *testing.B) (http.Handler, *storetest.Drain) {
			d := storetest.NewDrain(b, tls)
			st := d.Store(b)
			if crc32 {
				storetest.WithSDKChecksums(st)
			}
			return relay.New(st, cfg, quiet).Handler(), d
		}
	}
	proxyOn := func(tls bool) func(b *testing.B) (http.Handler, *storetest.Drain) {
		return func(b *testing.B) (http.Handler, *storetest.Drain) {
			d := storetest.NewDrain(b, tls)
			return proxy(d, piece), d
		}
	}
	for _, target := range []target{
		{"sink-8k", func(*testing.B) (http.Handler, *storetest.Drain) {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }), nil
		}},
		{"sink-1m", func(*testing.B) (http.Handler, *storetest.Drain) {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = storetest.Discard(r.Body) }), nil
		}},
		{"proxy", proxyOn(false)},
		{"proxy-tls", proxyOn(true)},
		{"relay", func(*testing.B) (http.Handler, *storetest.Drain) {
			return relay.New(nullStore{}, relay.DefaultConfig(), quiet).Handler(), nil
		}},
		{"relay-cbcs", func(*testing.B) (http.Handler, *storetest.Drain) {
			return relay.New(nullStore{}, encrypted(cenc.CBCS), quiet).Handler(), nil
		}},
		{"relay-cenc", func(*testing.B) (http.Handler, *storetest.Drain) {
			return relay.New(nullStore{}, encrypted(cenc.CENC), quiet).Handler(), nil
		}},
		{"relay+s3-client", relayOn(false, false, relay.DefaultConfig())},
		{"relay+s3-client-tls", relayOn(true, false, relay.DefaultConfig())},
		{"relay+s3-client-tls-cbcs", relayOn(true, false, encrypted(cenc.CBCS))},
		{"relay+s3-client-tls-crc32", relayOn(true, true, relay.DefaultConfig())},
		{"relay+embedded-s3", func(b *testing.B) (http.Handler, *storetest.Drain) {
			_, st := testtool.Store(b, "bench-ingest")
			return relay.New(st, relay.DefaultConfig(), quiet).Handler(), nil
		}},
	} {
		for _, streams := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/streams=%d", target.name, streams), func(b *testing.B) {
				h, d := target.start(b)
				hs := httptest.NewServer(h)
				defer hs.Close()
				push := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: streams}}
				defer push.CloseIdleConnections()
				b.SetBytes(int64(len(body) * streams))
				cpu0 := storetest.CPU()
				var puts0 int64
				if d != nil {
					puts0 = d.Puts()
				}
				for i := 0; b.Loop(); i++ {
					var wg sync.WaitGroup
					for s := range streams {
						wg.Go(func() {
							url := fmt.Sprintf("%s/live/b%d.isml/Streams(s%d)", hs.URL, s, i)
							// Unknown length, as an encoder's push: chunked.
							req, _ := http.NewRequest("POST", url, io.MultiReader(bytes.NewReader(body)))
							resp, err := push.Do(req)
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
				b.ReportMetric((storetest.CPU()-cpu0).Seconds()/gb, "cpu-s/GB")
				if d != nil {
					b.ReportMetric(float64(d.Puts()-puts0)/float64(b.N), "PUTs/op")
				}
			})
		}
	}
}

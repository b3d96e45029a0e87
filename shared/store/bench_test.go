package store_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/store/storetest"
)

// BenchmarkPut writes fragment-sized objects (the ladder's average, 545
// KB, sent as the relay sends a fragment: a moof part and a media part),
// one at a time, to a loopback endpoint that drains them, over plain HTTP
// and TLS: with net/http alone (the least any client does), with net/http
// and the SDK's SigV4 signer (what S3 needs of a PUT), with the store
// (its direct path: the same, with the store's headers, escaping, answers
// and retries), and with the store writing through aws-sdk-go-v2's
// PutObject (SDKWrites); sdk-tls-crc32 adds the SDK's default CRC32
// trailer, which the store does not send. cpu-s/GB counts the whole
// process, the endpoint's reading and decryption included.
func BenchmarkPut(b *testing.B) {
	head, payload := bytes.Repeat([]byte{1}, 1200), bytes.Repeat([]byte{2}, 544<<10)
	whole := append(append([]byte{}, head...), payload...)
	ctx := context.Background()
	rawPut := func(b *testing.B, d *storetest.Drain) func(key string) error {
		return func(key string) error { return d.Put(ctx, key, whole) }
	}
	// What the SDK's PutObject does that matters to S3, without its
	// middleware: the same headers, signed with the SDK's own SigV4
	// signer (UNSIGNED-PAYLOAD), sent with net/http.
	signedPut := func(b *testing.B, d *storetest.Drain) func(key string) error {
		signer := v4.NewSigner()
		creds := aws.Credentials{AccessKeyID: "a", SecretAccessKey: "b"}
		return func(key string) error {
			req, err := d.Request(ctx, key, whole)
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "video/mp4")
			req.Header.Set("Cache-Control", store.CacheImmutable)
			req.Header.Set("If-None-Match", "*")
			req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
			if err := signer.SignHTTP(ctx, creds, req, "UNSIGNED-PAYLOAD", "s3", "us-east-1", time.Now()); err != nil {
				return err
			}
			return d.Send(req)
		}
	}
	storePut := func(sdk, crc32 bool) func(b *testing.B, d *storetest.Drain) func(key string) error {
		return func(b *testing.B, d *storetest.Drain) func(key string) error {
			st := d.Store(b)
			st.SDKWrites = sdk
			if crc32 {
				storetest.WithSDKChecksums(st)
			}
			return func(key string) error {
				_, err := st.PutParts(ctx, key, [][]byte{head, payload}, store.PutOptions{ContentType: "video/mp4", CacheControl: store.CacheImmutable, IfNoneMatch: true})
				return err
			}
		}
	}
	for _, c := range []struct {
		name string
		tls  bool
		put  func(*testing.B, *storetest.Drain) func(string) error
	}{
		{"net-http", false, rawPut},
		{"net-http-tls", true, rawPut},
		{"sigv4-net-http", false, signedPut},
		{"sigv4-net-http-tls", true, signedPut},
		{"store", false, storePut(false, false)},
		{"store-tls", true, storePut(false, false)},
		{"sdk", false, storePut(true, false)},
		{"sdk-tls", true, storePut(true, false)},
		{"sdk-tls-crc32", true, storePut(true, true)},
	} {
		b.Run(c.name, func(b *testing.B) {
			d := storetest.NewDrain(b, c.tls)
			put := c.put(b, d)
			if err := put("warm-up"); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(whole)))
			cpu0 := storetest.CPU()
			for i := 0; b.Loop(); i++ {
				if err := put(fmt.Sprintf("live/f/%d", i)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric((storetest.CPU()-cpu0).Seconds()/(float64(len(whole)*b.N)/1e9), "cpu-s/GB")
		})
	}
}

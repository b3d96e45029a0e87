package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/shared/store"
)

// newStore starts an embedded S3 server and returns a Store on it: the
// same aws-sdk-go-v2 code path that runs against S3.
func newStore(t *testing.T) *store.Store {
	t.Helper()
	ctx := context.Background()
	srv, err := s3local.Start(ctx, s3local.Options{Addr: "127.0.0.1:0", Bucket: "smoothcast-test", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(ctx) })
	st, err := store.New(ctx, store.Config{Bucket: "smoothcast-test", Endpoint: srv.URL, AccessKey: s3local.AccessKey, SecretKey: s3local.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestPutAndGet(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	etag, err := st.Put(ctx, "live/a", []byte("0123456789"), store.PutOptions{
		ContentType: "video/mp4", CacheControl: store.CacheImmutable, Metadata: map[string]string{"prev": "42"},
	})
	if err != nil || etag == "" {
		t.Fatalf("Put: %q, %v", etag, err)
	}
	obj, err := st.Get(ctx, "live/a")
	if err != nil {
		t.Fatal(err)
	}
	if string(obj.Body) != "0123456789" || obj.ETag != etag || obj.ContentType != "video/mp4" || obj.Metadata["prev"] != "42" || obj.Size != 10 {
		t.Fatalf("Get: %+v", obj)
	}
	head, err := st.GetRange(ctx, "live/a", 2, 4)
	if err != nil || string(head.Body) != "234" || head.Size != 10 {
		t.Fatalf("GetRange(2, 4): %q of %d, %v", head.Body, head.Size, err)
	}
	long, err := st.GetRange(ctx, "live/a", 0, 1<<20)
	if err != nil || string(long.Body) != "0123456789" {
		t.Fatalf("GetRange past the end: %q, %v", long.Body, err)
	}
	if _, err := st.Get(ctx, "live/missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
	}
	if _, err := st.GetRange(ctx, "live/missing", 0, 10); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetRange of a missing key: %v, want ErrNotFound", err)
	}
}

// PutParts stores the concatenation of its parts, with the options Put
// takes; a refused conditional write leaves the object as it was.
func TestPutParts(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	parts := [][]byte{[]byte("moof+"), []byte("mdat"), []byte(" payload")}
	if _, err := st.PutParts(ctx, "live/f", parts, store.PutOptions{ContentType: "video/mp4", IfNoneMatch: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutParts(ctx, "live/f", [][]byte{[]byte("other")}, store.PutOptions{IfNoneMatch: true}); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("second conditional PutParts: %v, want ErrPreconditionFailed", err)
	}
	obj, err := st.Get(ctx, "live/f")
	if err != nil || string(obj.Body) != "moof+mdat payload" || obj.ContentType != "video/mp4" {
		t.Fatalf("Get: %q %q, %v", obj.Body, obj.ContentType, err)
	}
}

// Conditional writes behave as S3's: If-None-Match: * refuses to replace
// an object, If-Match refuses a stale ETag, both with ErrPreconditionFailed
// and without touching the object.
func TestConditionalWrites(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	first, err := st.Put(ctx, "state/x", []byte("v1"), store.PutOptions{IfNoneMatch: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "state/x", []byte("v1 again"), store.PutOptions{IfNoneMatch: true}); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("If-None-Match on an existing key: %v, want ErrPreconditionFailed", err)
	}
	second, err := st.Put(ctx, "state/x", []byte("v2"), store.PutOptions{IfMatch: first})
	if err != nil {
		t.Fatalf("If-Match with the current ETag: %v", err)
	}
	if _, err := st.Put(ctx, "state/x", []byte("v3"), store.PutOptions{IfMatch: first}); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("If-Match with a stale ETag: %v, want ErrPreconditionFailed", err)
	}
	obj, err := st.Get(ctx, "state/x")
	if err != nil || string(obj.Body) != "v2" || obj.ETag != second {
		t.Fatalf("after refused writes: %q (%s), %v; want v2 (%s)", obj.Body, obj.ETag, err, second)
	}
}

// recorder is an HTTP transport that keeps every request it is sent and
// answers it as S3 answers a successful one, without a network.
type recorder struct {
	mu   sync.Mutex
	sent []*http.Request
	body [][]byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
	}
	r.mu.Lock()
	r.sent, r.body = append(r.sent, req), append(r.body, body)
	r.mu.Unlock()
	resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: req}
	if req.Method == http.MethodPut {
		resp.Header.Set("ETag", `"e"`)
	} else {
		resp.Header.Set("Content-Type", "application/xml")
		resp.Body = io.NopCloser(strings.NewReader(`<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></DeleteResult>`))
	}
	return resp, nil
}

func (r *recorder) last() (*http.Request, []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent[len(r.sent)-1], r.body[len(r.body)-1]
}

// A write carries what S3 requires of it, signed: SigV4 over the headers
// with UNSIGNED-PAYLOAD (S3 takes it over TLS; the store sends it to
// plain-HTTP endpoints too) and the condition; and no checksum: no
// aws-chunked body, no trailer, no x-amz-checksum-* header, the bytes
// as they are. DeleteObjects, which S3 refuses without one, still gets a
// checksum. On AWS, over TLS, as on any endpoint.
func TestWritesSendNoChecksumButWhatS3Requires(t *testing.T) {
	ctx := context.Background()
	parts := [][]byte{[]byte("moof...."), []byte("mdat"), bytes.Repeat([]byte{7}, 100<<10)}
	whole := bytes.Join(parts, nil)
	// The SDK refuses a CA bundle from the environment with a client of
	// our own, and this one never dials.
	t.Setenv("AWS_CA_BUNDLE", "")
	for _, tc := range []struct {
		name, endpoint, scheme string
	}{
		{"AWS", "", "https"},
		{"TLS endpoint", "https://s3.example.net", "https"},
		{"plain-HTTP endpoint", "http://127.0.0.1:9000", "http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			st, err := store.New(ctx, store.Config{Bucket: "b", Endpoint: tc.endpoint, AccessKey: "a", SecretKey: "s", HTTPClient: &http.Client{Transport: rec}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.PutParts(ctx, "live/c/f", parts, store.PutOptions{ContentType: "video/mp4", IfNoneMatch: true}); err != nil {
				t.Fatal(err)
			}
			req, body := rec.last()
			if req.URL.Scheme != tc.scheme {
				t.Errorf("PUT went to %s", req.URL)
			}
			if got := req.Header.Get("X-Amz-Content-Sha256"); got != "UNSIGNED-PAYLOAD" {
				t.Errorf("x-amz-content-sha256 %q, want UNSIGNED-PAYLOAD", got)
			}
			auth := req.Header.Get("Authorization")
			if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=a/") {
				t.Errorf("Authorization %q is not SigV4 with the access key", auth)
			}
			for _, h := range []string{"host", "if-none-match", "x-amz-content-sha256", "x-amz-date"} {
				if !strings.Contains(auth, h) {
					t.Errorf("%s is not signed: %q", h, auth)
				}
			}
			if got := req.Header.Get("If-None-Match"); got != "*" {
				t.Errorf("If-None-Match %q, want *", got)
			}
			if req.ContentLength != int64(len(whole)) || !bytes.Equal(body, whole) {
				t.Errorf("body of %d bytes (Content-Length %d), want the %d bytes of the parts as they are", len(body), req.ContentLength, len(whole))
			}
			for name := range req.Header {
				if l := strings.ToLower(name); strings.HasPrefix(l, "x-amz-checksum-") || l == "x-amz-trailer" || l == "x-amz-sdk-checksum-algorithm" || l == "x-amz-decoded-content-length" || l == "content-md5" {
					t.Errorf("PUT carries %s: %q", name, req.Header.Get(name))
				}
			}
			if enc := req.Header.Get("Content-Encoding"); enc != "" {
				t.Errorf("Content-Encoding %q", enc)
			}

			if err := st.Delete(ctx, []string{"live/c/f"}); err != nil {
				t.Fatal(err)
			}
			req, _ = rec.last()
			summed := req.Header.Get("Content-MD5") != "" || strings.HasPrefix(strings.ToLower(req.Header.Get("X-Amz-Trailer")), "x-amz-checksum-")
			for name := range req.Header {
				summed = summed || strings.HasPrefix(strings.ToLower(name), "x-amz-checksum-")
			}
			if !summed {
				t.Errorf("DeleteObjects carries no checksum, which S3 requires: %v", req.Header)
			}
		})
	}
}

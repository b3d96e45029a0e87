package store_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
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

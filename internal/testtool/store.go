package testtool

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/shared/store"
)

// Store starts an embedded S3 server with one bucket and no event
// notifications (tests deliver events themselves), and a store client for
// it; both stop when the test ends.
func Store(t testing.TB, bucket string) (*s3local.Server, *store.Store) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := s3local.Start(context.Background(), s3local.Options{Addr: "127.0.0.1:0", Bucket: bucket, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	st, err := store.New(context.Background(), store.Config{Bucket: bucket, Endpoint: srv.URL, AccessKey: s3local.AccessKey, SecretKey: s3local.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return srv, st
}

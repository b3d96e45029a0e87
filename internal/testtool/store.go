package testtool

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/smoothcast/smoothcast/local/s3local"
	"github.com/smoothcast/smoothcast/shared/store"
)

// FaultSeedEnv replays the faults a unit test injected into its embedded
// S3 server (Store): run the test again with the seed it logged.
const FaultSeedEnv = "SMOOTHCAST_FAULT_SEED"

// Store starts an embedded S3 server with one bucket and no event
// notifications (tests deliver events themselves), and a store client for
// it; both stop when the test ends. The server's faults (SetFaults) draw
// from a seed the test logs (FaultSeed, from FaultSeedEnv).
func Store(t testing.TB, bucket string) (*s3local.Server, *store.Store) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := s3local.Start(context.Background(), s3local.Options{Addr: "127.0.0.1:0", Bucket: bucket, Log: quiet, FaultSeed: FaultSeed(t, FaultSeedEnv)})
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

// FaultSeed returns the seed for a test's injected faults
// (s3local.Options.FaultSeed): the value of the environment variable env
// when it is set, to replay a run, else a new random one. It logs the
// seed and how to replay it either way.
func FaultSeed(t testing.TB, env string) uint64 {
	t.Helper()
	if v := os.Getenv(env); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want the unsigned decimal seed a test logged", env, v)
		}
		t.Logf("fault seed %d (from %s)", seed, env)
		return seed
	}
	seed := rand.Uint64()
	t.Logf("fault seed %d (replay: %s=%d)", seed, env, seed)
	return seed
}

package integration_test

import (
	"bytes"
	"context"
	"flag"
	"maps"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/internal/testtool/bucket"
	"github.com/smoothcast/smoothcast/shared/layout"
)

var update = flag.Bool("update", false, "write the fixtures this package guards")

// handlerFixture is what the manifest function's tests read: the objects
// the relay stores for a recorded ffmpeg push, keys relative to
// live/{channel}.isml/.
const handlerFixture = "../functions/manifest/handler/testdata/stored-push.json"

// The manifest function's tests read what the relay stores for a recorded
// ffmpeg push, from a file, without running the relay: the file must be
// exactly what the relay stores (keys, content types, metadata, bytes).
// `go test ./integration -update` writes it again after a change to what
// the relay stores.
func TestRelayStoresTheHandlersFixture(t *testing.T) {
	body, err := os.ReadFile("../shared/ingest/testdata/ffmpeg-isml.ismv")
	if err != nil {
		t.Fatal(err)
	}
	_, st := testtool.Store(t, "fixture")
	hs := httptest.NewServer(relay.New(st, relay.DefaultConfig(), quiet).Handler())
	defer hs.Close()
	if code, msg := testtool.Do(t, "POST", hs.URL+"/live/ch.isml/Streams(enc1)", body, true); code != 200 {
		t.Fatalf("push: %d %s", code, msg)
	}
	got, err := bucket.Read(context.Background(), st, layout.LivePrefix+"ch.isml/")
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := bucket.Save(handlerFixture, got); err != nil {
			t.Fatal(err)
		}
	}
	want, err := bucket.Load(handlerFixture)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("the relay stores %d objects, the fixture holds %d (go test ./integration -update)", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Key != w.Key || g.ContentType != w.ContentType || !maps.Equal(g.Metadata, w.Metadata) || !bytes.Equal(g.Body, w.Body) {
			t.Errorf("object %d: the relay stores %s (%s, %v, %d bytes), the fixture holds %s (%s, %v, %d bytes) (go test ./integration -update)",
				i, g.Key, g.ContentType, g.Metadata, len(g.Body), w.Key, w.ContentType, w.Metadata, len(w.Body))
		}
	}
}

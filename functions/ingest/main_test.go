package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/s3local"
	"github.com/smoothcast/smoothcast/shared/store"
)

// The relay binary as make build-relay ships it (linux/arm64, static,
// stripped), run under qemu-aarch64 with the configuration the stack's
// systemd unit gives it (SMOOTHCAST_BUCKET, AWS_REGION, -addr), takes a
// recorded ffmpeg push and stores its init segments, fragments and end
// markers.
func TestShippedRelayBinaryStoresAPush(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the relay: skipped with -short")
	}
	qemu := testtool.Require(t, "qemu-aarch64")
	bin := filepath.Join(t.TempDir(), "smoothcast-ingest")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	srv, st := testtool.Store(t, "relay-binary-test")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(qemu, bin, "-addr", addr, "-endpoint", srv.URL)
	cmd.Env = append(os.Environ(), "SMOOTHCAST_BUCKET=relay-binary-test", "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID="+s3local.AccessKey, "AWS_SECRET_ACCESS_KEY="+s3local.SecretKey)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatalf("the relay does not listen\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	body, err := os.ReadFile("../../shared/ism/testdata/ffmpeg-isml.ismv")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+addr+"/live/arm.isml/Streams(enc1)", "video/mp4", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("push: %s\n%s", resp.Status, stderr.String())
	}
	kinds := map[layout.ObjectKind]int{}
	err = st.List(context.Background(), layout.LivePrefix, func(page []store.Listed) error {
		for _, o := range page {
			obj, _ := layout.Parse(o.Key)
			kinds[obj.Kind]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if kinds[layout.KindInit] != 3 || kinds[layout.KindFragment] != 6 || kinds[layout.KindEnd] != 3 {
		t.Fatalf("stored %v, want 3 init segments, 6 fragments, 3 end markers\n%s", kinds, stderr.String())
	}
}

package main

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/cloudwatch"
	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/internal/testtool/logtest"
	"github.com/smoothcast/smoothcast/shared/store/storetest"
)

// The CloudWatch flags are read as every flag is; without a namespace
// nothing is published, and a namespace needs the relay's name.
func TestCloudWatchOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		want    cloudwatch.Config
		wantErr string
	}{
		{name: "off by default"},
		{name: "from the environment, as the stack's unit sets them",
			env:  map[string]string{"SMOOTHCAST_CLOUDWATCH_NAMESPACE": "Smoothcast/Relay", "SMOOTHCAST_CLOUDWATCH_RELAY": "b"},
			want: cloudwatch.Config{Namespace: "Smoothcast/Relay", Relay: "b", Interval: time.Minute}},
		{name: "the interval",
			args: []string{"-cloudwatch-namespace", "N", "-cloudwatch-relay", "a", "-cloudwatch-interval", "10s"},
			want: cloudwatch.Config{Namespace: "N", Relay: "a", Interval: 10 * time.Second}},
		{name: "a namespace needs the relay's name", args: []string{"-cloudwatch-namespace", "N"}, wantErr: "-cloudwatch-relay"},
		{name: "not an AWS namespace", args: []string{"-cloudwatch-namespace", "AWS/EC2", "-cloudwatch-relay", "a"}, wantErr: "AWS/"},
		{name: "a bad interval names the variable", env: map[string]string{"SMOOTHCAST_CLOUDWATCH_INTERVAL": "often"}, wantErr: "SMOOTHCAST_CLOUDWATCH_INTERVAL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseWithEnv(tc.args, tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || o.metrics.Namespace != tc.want.Namespace || o.metrics.Relay != tc.want.Relay || o.metrics.Interval != tc.want.Interval {
				t.Fatalf("%+v, %v; want %+v", o.metrics, err, tc.want)
			}
		})
	}
}

// The relay's publisher takes its AWS configuration as the SDK finds it
// (here, the endpoint from AWS_ENDPOINT_URL_CLOUDWATCH) and publishes a
// last time when stopped.
func TestCloudWatchPublishesWhenStopped(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/service/GraniteServiceVersion20100801/operation/PutMetricData" {
			calls.Add(1)
		}
		w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
		w.Header().Set("Content-Type", "application/cbor")
		_, _ = w.Write([]byte{0xa0}) // {}
	}))
	t.Cleanup(srv.Close)
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_CLOUDWATCH": srv.URL, "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
	} {
		t.Setenv(k, v)
	}
	rec := logtest.New()
	rl := relay.New(&storetest.Mem{}, relay.DefaultConfig(), slog.New(rec))
	stop := startCloudWatch(slog.New(rec), rl.Registry(), cloudwatch.Config{Namespace: "N", Relay: "a", Interval: time.Hour}, "eu-west-1")
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d publishes before the first interval, want none", n)
	}
	stop()
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d publishes when stopped, want 1\n%s", n, strings.Join(rec.Lines(), "\n"))
	}
	if off := startCloudWatch(slog.New(rec), rl.Registry(), cloudwatch.Config{}, "eu-west-1"); off != nil {
		off()
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d publishes without a namespace, want none", n-1)
	}
}

package main

import (
	"errors"
	"flag"
	"io"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/awsctl"
)

func TestAWSCommandLineTakesASubcommandAndItsFlags(t *testing.T) {
	defaults := awsctl.Wait{On: true, Timeout: 15 * time.Minute}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    awsOptions
		wantErr error
	}{
		{name: "no subcommand", args: nil, wantErr: errUsage},
		{name: "unknown subcommand", args: []string{"restart"}, wantErr: errUsage},
		{name: "help", args: []string{"-h"}, wantErr: flag.ErrHelp},
		{name: "a subcommand's help", args: []string{"stop", "-h"}, wantErr: flag.ErrHelp},
		{name: "stop waits by default", args: []string{"stop"}, want: awsOptions{command: "stop", stack: "Smoothcast", wait: defaults}},
		{
			name: "start with flags", args: []string{"start", "-stack", "Smoothcast-Staging", "-region", "eu-west-1", "-wait=false", "-timeout", "5m"},
			want: awsOptions{command: "start", stack: "Smoothcast-Staging", region: "eu-west-1", wait: awsctl.Wait{Timeout: 5 * time.Minute}},
		},
		{
			name: "flags from the environment", args: []string{"stop"}, env: map[string]string{"SMOOTHCAST_AWS_STACK": "Other", "SMOOTHCAST_AWS_TIMEOUT": "2m"},
			want: awsOptions{command: "stop", stack: "Other", wait: awsctl.Wait{On: true, Timeout: 2 * time.Minute}},
		},
		{name: "status does not wait", args: []string{"status", "-wait"}, wantErr: errUsage},
		{name: "status", args: []string{"status", "-region", "us-east-1"}, want: awsOptions{command: "status", stack: "Smoothcast", region: "us-east-1"}},
		{name: "stray argument", args: []string{"stop", "now"}, wantErr: errUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			got, err := parseAWS(tt.args, io.Discard)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

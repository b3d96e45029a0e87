package awsctl

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	_ "embed"
	"encoding/pem"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testCert is a certificate made by `openssl req -x509 -newkey ec`, whose
// `openssl x509 -noout -fingerprint -sha256` is certFingerprint.
//
//go:embed testdata/relay-cert.pem
var testCert string

const certFingerprint = "sha256 Fingerprint=F2:45:E1:FB:A7:5A:7A:B9:84:0A:EB:50:11:47:47:5A:E8:3C:C5:5C:1A:BD:FB:56:8B:C0:0A:18:DF:82:5E:3E"

var (
	groupNames = []string{"Smoothcast-RelayGroupA-1X2Y3Z", "Smoothcast-RelayGroupB-4U5V6W"}
	alarmNames = []string{"Smoothcast-RelayANotInService", "Smoothcast-RelayBNotInService"}
	zones      = []string{"us-east-1a", "us-east-1b"}
	ingestURLs = []string{"https://203.0.113.10", "https://203.0.113.20"}
)

// channel deploys the stack "Smoothcast" with relays relays into the
// fake, each running or stopped (its alarms' actions on or off to match).
func channel(f *fakeAWS, relays int, running bool) {
	f.stacks["Smoothcast"] = map[string]string{
		OutputRelayGroups: strings.Join(groupNames[:relays], ","),
		OutputRelayAlarms: strings.Join(alarmNames[:relays], ","),
		"IngestUrl":       ingestURLs[0],
		"RtmpUrl":         "rtmps://203.0.113.10/live",
		"SrtUrl":          "srt://203.0.113.10:9000",
		"DistributionUrl": "https://d111111abcdef8.cloudfront.net",
	}
	if relays == 2 {
		f.stacks["Smoothcast"]["IngestUrlB"] = ingestURLs[1]
	}
	for i := range relays {
		f.group(groupNames[i], zones[i], running)
		f.alarms[alarmNames[i]] = running
	}
}

// control is a Control of the fake's stack, polling every 5 s on a fake
// clock.
func control(f *fakeAWS, stack string) (*Control, *bytes.Buffer, *fakeClock) {
	out := &bytes.Buffer{}
	c := New(f.cfg, stack, out)
	clock := &fakeClock{now: time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)}
	c.Clock, c.Poll = clock, 5*time.Second
	return c, out, clock
}

func TestStopAndStartScaleTheGroupsAndSilenceTheAlarmsMeanwhile(t *testing.T) {
	on := Wait{On: true, Timeout: 10 * time.Minute}
	tests := []struct {
		name      string
		relays    int
		running   bool
		stuck     bool // the groups' instances never reach InService
		op        string
		wait      Wait
		wantCalls []string
		wantErr   error
		wantOut   []string
		wantState State
	}{
		{
			name: "stop one relay: alarms silenced first, group to 0, waits until its instance is gone", relays: 1, running: true, op: "stop", wait: on,
			wantCalls: []string{"DisableAlarmActions " + alarmNames[0], "UpdateAutoScalingGroup " + groupNames[0] + " 0/0/0"},
			wantOut:   []string{"Terminating in us-east-1a", "SIGTERM", "relay group " + groupNames[0] + ": stopped", "stack Smoothcast: stopped"},
			wantState: Stopped,
		},
		{
			name: "stop two relays", relays: 2, running: true, op: "stop", wait: on,
			wantCalls: []string{"DisableAlarmActions " + strings.Join(alarmNames, ","), "UpdateAutoScalingGroup " + groupNames[0] + " 0/0/0", "UpdateAutoScalingGroup " + groupNames[1] + " 0/0/0"},
			wantOut:   []string{"relay group " + groupNames[0] + ": stopped", "relay group " + groupNames[1] + ": stopped", "stack Smoothcast: stopped"},
			wantState: Stopped,
		},
		{
			name: "stop an already stopped channel changes no group", relays: 2, running: false, op: "stop", wait: on,
			wantCalls: []string{"DisableAlarmActions " + strings.Join(alarmNames, ",")},
			wantOut:   []string{"stack Smoothcast: already stopped"},
			wantState: Stopped,
		},
		{
			name: "stop without waiting leaves the instance shutting down", relays: 1, running: true, op: "stop", wait: Wait{},
			wantCalls: []string{"DisableAlarmActions " + alarmNames[0], "UpdateAutoScalingGroup " + groupNames[0] + " 0/0/0"},
			wantOut:   []string{"not waiting"},
			wantState: Stopping,
		},
		{
			name: "start one relay: group to 1, waits until in service, then alarms on and the ingest URLs", relays: 1, running: false, op: "start", wait: on,
			wantCalls: []string{"UpdateAutoScalingGroup " + groupNames[0] + " 1/1/1", "EnableAlarmActions " + alarmNames[0]},
			wantOut:   []string{"Pending in us-east-1a", "relay group " + groupNames[0] + ": running", "IngestUrl   " + ingestURLs[0], "RtmpUrl     rtmps://", "SrtUrl      srt://"},
			wantState: Running,
		},
		{
			name: "start two relays prints both ingest URLs", relays: 2, running: false, op: "start", wait: on,
			wantCalls: []string{"UpdateAutoScalingGroup " + groupNames[0] + " 1/1/1", "UpdateAutoScalingGroup " + groupNames[1] + " 1/1/1", "EnableAlarmActions " + strings.Join(alarmNames, ",")},
			wantOut:   []string{"relay group " + groupNames[1] + ": running", "IngestUrl   " + ingestURLs[0], "IngestUrlB  " + ingestURLs[1]},
			wantState: Running,
		},
		{
			name: "start a running channel only enables the alarms", relays: 2, running: true, op: "start", wait: on,
			wantCalls: []string{"EnableAlarmActions " + strings.Join(alarmNames, ",")},
			wantOut:   []string{"stack Smoothcast: running"},
			wantState: Running,
		},
		{
			name: "start without waiting leaves the alarms silenced", relays: 1, running: false, op: "start", wait: Wait{},
			wantCalls: []string{"UpdateAutoScalingGroup " + groupNames[0] + " 1/1/1"},
			wantOut:   []string{"alarms' actions stay disabled"},
			wantState: Starting,
		},
		{
			name: "start a group that never reaches InService times out with the alarms silenced", relays: 2, running: false, stuck: true, op: "start", wait: Wait{On: true, Timeout: time.Minute},
			wantCalls: []string{"UpdateAutoScalingGroup " + groupNames[0] + " 1/1/1", "UpdateAutoScalingGroup " + groupNames[1] + " 1/1/1"},
			wantErr:   ErrTimeout,
			wantOut:   []string{"Pending in us-east-1b"},
			wantState: Starting,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			channel(f, tt.relays, tt.running)
			for _, g := range f.groups {
				g.stuck = tt.stuck
			}
			c, out, clock := control(f, "Smoothcast")
			start := clock.Now()
			op := c.Stop
			if tt.op == "start" {
				op = c.Start
			}
			err := op(context.Background(), tt.wait)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("%s: err %v, want %v\noutput:\n%s", tt.op, err, tt.wantErr, out)
			}
			if tt.wantErr != nil {
				for _, g := range groupNames[:tt.relays] {
					if !strings.Contains(err.Error(), g) {
						t.Errorf("error %q does not name group %s", err, g)
					}
				}
				if waited := clock.Now().Sub(start); waited != tt.wait.Timeout {
					t.Errorf("gave up after %s of polling, want the timeout %s", waited, tt.wait.Timeout)
				}
			}
			if got := f.mutations(); !slices.Equal(got, tt.wantCalls) {
				t.Errorf("calls:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.wantCalls, "\n  "))
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			st, err := c.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range st.Groups {
				if g.State != tt.wantState {
					t.Errorf("after %s: group %s is %s, want %s", tt.op, g.Name, g.State, tt.wantState)
				}
			}
		})
	}
}

func TestErrorsNameTheStackOrGroupAndChangeNothing(t *testing.T) {
	tests := []struct {
		name    string
		stack   string
		drop    string // a group the stack names but that does not exist
		wantErr error
		want    []string
	}{
		{name: "stack missing", stack: "Smoothcast-Staging", wantErr: ErrStackNotFound, want: []string{"Smoothcast-Staging", "us-east-1", "-stack", "-region"}},
		{name: "group missing", stack: "Smoothcast", drop: groupNames[1], wantErr: ErrGroupNotFound, want: []string{"Smoothcast", groupNames[1]}},
	}
	for _, tt := range tests {
		for _, op := range []string{"stop", "start", "status"} {
			t.Run(tt.name+"/"+op, func(t *testing.T) {
				f := newFake(t)
				channel(f, 2, true)
				delete(f.groups, tt.drop)
				c, _, _ := control(f, tt.stack)
				var err error
				switch op {
				case "stop":
					err = c.Stop(context.Background(), Wait{On: true})
				case "start":
					err = c.Start(context.Background(), Wait{On: true})
				default:
					_, err = c.Status(context.Background())
				}
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				if m := f.mutations(); len(m) > 0 {
					t.Errorf("changed %q before failing", m)
				}
			})
		}
	}
}

func TestStatusShowsGroupsAlarmsURLsAndTheCertificateFingerprintNeverTheKey(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	tests := []struct {
		name    string
		param   string // the parameter's value; "": ingest is plain
		want    []string
		notWant []string
	}{
		{
			name: "TLS: fingerprint as openssl prints it", param: keyPEM + testCert,
			want: []string{certFingerprint, "CN=smoothcast relay test", "valid until 2036-12-04", "TLS certificate (/smoothcast/Smoothcast/ingest-tls)"},
			// The key's PEM body, line by line: none may show.
			notWant: append([]string{"PRIVATE KEY"}, strings.Split(strings.TrimSpace(keyPEM), "\n")[1:4]...),
		},
		{name: "plain ingest: no certificate", notWant: []string{"TLS certificate", "Fingerprint"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			channel(f, 2, true)
			f.groups[groupNames[1]] = &fakeGroup{zone: zones[1]} // B stopped
			f.alarms[alarmNames[1]] = false
			if tt.param != "" {
				f.stacks["Smoothcast"][OutputTLSCertificateParameter] = "/smoothcast/Smoothcast/ingest-tls"
				f.params["/smoothcast/Smoothcast/ingest-tls"] = tt.param
			}
			c, _, _ := control(f, "Smoothcast")
			st, err := c.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := st.WriteText(&out); err != nil {
				t.Fatal(err)
			}
			want := append([]string{
				"stack Smoothcast (us-east-1)",
				groupNames[0] + "  running  i-00000000000000001  us-east-1a  InService Healthy",
				groupNames[1] + "  stopped  -",
				alarmNames[0] + ": OK, actions enabled",
				alarmNames[1] + ": OK, actions disabled",
				"IngestUrl   " + ingestURLs[0], "IngestUrlB  " + ingestURLs[1],
			}, tt.want...)
			for _, w := range want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("status lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range append(tt.notWant, "DistributionUrl") {
				if strings.Contains(out.String(), w) {
					t.Errorf("status shows %q:\n%s", w, out.String())
				}
			}
			if tt.param != "" && !slices.Contains(f.allCalls(), "GetParameter /smoothcast/Smoothcast/ingest-tls decrypt=true") {
				t.Errorf("the parameter was not read with decryption: %q", f.calls)
			}
			if m := f.mutations(); len(m) > 0 {
				t.Errorf("status changed %q", m)
			}
		})
	}
}

func TestLoadConfigSaysWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
		"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	tests := []struct {
		name, region, keyID, want string
	}{
		{name: "no region", want: "no AWS region: give -region"},
		{name: "no credentials", region: "us-east-1", want: "no AWS credentials"},
		{name: "both", region: "eu-west-1", keyID: "AKIDTEST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("AWS_ACCESS_KEY_ID", tt.keyID)
			t.Setenv("AWS_SECRET_ACCESS_KEY", tt.keyID)
			cfg, err := LoadConfig(context.Background(), tt.region)
			switch {
			case tt.want == "" && err != nil:
				t.Fatal(err)
			case tt.want == "" && cfg.Region != tt.region:
				t.Errorf("region %q, want %q", cfg.Region, tt.region)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
}

func TestParseCertificate(t *testing.T) {
	c, err := ParseCertificate([]byte(testCert))
	if err != nil {
		t.Fatal(err)
	}
	if c.Fingerprint != certFingerprint {
		t.Errorf("fingerprint %s, openssl says %s", c.Fingerprint, certFingerprint)
	}
	if _, err := ParseCertificate([]byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")); err == nil {
		t.Error("a key alone parsed as a certificate")
	}
}

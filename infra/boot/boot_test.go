package boot

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/smoothcast/smoothcast/internal/testtool"
)

// relays are the settings the tests boot with: plain ingest, and TLS
// with a certificate the first relay makes.
var relays = map[string]Relay{
	"plain": {
		Name: "a", Stack: "Smoothcast", Region: "eu-west-1", Resource: "RelayASG1234",
		BinaryURL: "s3://cdk-assets/abc.bin", BinaryHash: "abc", AllocationID: "eipalloc-0abc",
		Bucket: "media-bucket", SecretParameter: "/smoothcast/ingest-secret",
		IngestPort: 8080, RTMPPort: 1935, RTMPSPort: 1936, SRTPort: 9000,
	},
	"tls": {
		Name: "b", Stack: "Smoothcast", Region: "eu-west-1", Resource: "RelayBASG1234",
		BinaryURL: "s3://cdk-assets/abc.bin", BinaryHash: "abc", AllocationID: "eipalloc-0def",
		Bucket: "media-bucket", SecretParameter: "/smoothcast/ingest-secret",
		IngestPort: 443, RTMPPort: 1935, RTMPSPort: 1936, SRTPort: 9000,
		TLS: &TLS{CertParameter: "/smoothcast/Smoothcast/tls", Generate: true, Names: []string{"198.51.100.7", "198.51.100.8", "ingest.example.com"},
			SRTPassphraseParameter: "/smoothcast/srt-passphrase"},
		MetricsNamespace: "Smoothcast/Relay",
	},
}

func userData(t *testing.T, r Relay) string {
	t.Helper()
	ud, err := UserData(r)
	if err != nil {
		t.Fatal(err)
	}
	return "#!/bin/bash\n" + ud // as CDK's UserData.forLinux starts it
}

func TestBootScriptPassesShellcheck(t *testing.T) {
	shellcheck := testtool.Require(t, "shellcheck")
	for name, r := range relays {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "user-data.sh")
			if err := os.WriteFile(f, []byte(userData(t, r)), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(shellcheck, "--shell=bash", "--severity=style", f).CombinedOutput(); err != nil {
				t.Errorf("shellcheck: %v\n%s", err, out)
			}
		})
	}
}

// TestUnitVerifies runs systemd-analyze verify on the unit and its TLS
// drop-in, in a root of its own that holds the system's units (which
// the relay's unit is ordered after) and the relay's binary.
func TestUnitVerifies(t *testing.T) {
	analyze := testtool.Require(t, "systemd-analyze")
	root := t.TempDir()
	units := "/usr/lib/systemd/system"
	if _, err := os.Stat(units); err != nil {
		t.Fatalf("%s: systemd's units, which the relay's unit names: %v", units, err)
	}
	if out, err := exec.Command("cp", "-a", units, filepath.Join(root, "usr/lib/systemd")+"/").CombinedOutput(); err != nil {
		// (cp -a needs the parent first)
		_ = os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755)
		if out, err = exec.Command("cp", "-a", units, filepath.Join(root, "usr/lib/systemd")+"/").CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
	}
	unitFile, dropIn := Unit()
	for path, text := range map[string]string{
		"etc/systemd/system/smoothcast-ingest.service":            unitFile,
		"etc/systemd/system/smoothcast-ingest.service.d/tls.conf": dropIn,
		"etc/smoothcast/relay.env":                                strings.Join(relays["tls"].Environment(), "\n") + "\n",
		"usr/local/bin/smoothcast-ingest":                         "#!/bin/sh\n",
	} {
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(path, "usr/local/bin/") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(analyze, "verify", "--root="+root, filepath.Join(root, "etc/systemd/system/smoothcast-ingest.service")).CombinedOutput()
	// A warning (an unknown key, a bad value) is not an error to
	// systemd-analyze, but it is to us.
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// boot runs the relay's user data as cloud-init would, in a root of its
// own, with stand-ins for aws, curl, systemctl, journalctl and sleep
// (testdata/standin.sh) set by env.
type boot struct {
	root, standin string
	err           error
	out           string
}

func runBoot(t *testing.T, r Relay, env ...string) boot {
	t.Helper()
	b := boot{root: t.TempDir(), standin: t.TempDir()}
	bin := filepath.Join(b.standin, "bin")
	for _, d := range []string{bin, filepath.Join(b.standin, "parameters"), filepath.Join(b.root, "usr/local/bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	standin, err := filepath.Abs("testdata/standin.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"aws", "curl", "systemctl", "journalctl", "sleep"} {
		if err := os.Symlink(standin, filepath.Join(bin, c)); err != nil {
			t.Fatal(err)
		}
	}
	script := filepath.Join(b.standin, "user-data.sh")
	if err := os.WriteFile(script, []byte(userData(t, r)), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", script)
	cmd.Env = append([]string{"PATH=" + bin + ":" + os.Getenv("PATH"), "SC_ROOT=" + b.root, "STANDIN=" + b.standin, "HOME=" + b.standin}, env...)
	out, err := cmd.CombinedOutput()
	b.out, b.err = string(out), err
	return b
}

// calls are the stand-ins' calls, one per line ("aws s3 cp ...").
func (b boot) calls(prefix string) []string {
	data, _ := os.ReadFile(filepath.Join(b.standin, "calls"))
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// slept is the seconds the script slept, in all.
func (b boot) slept() int {
	data, _ := os.ReadFile(filepath.Join(b.standin, "slept"))
	n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return n
}

func (b boot) signals() []string {
	var s []string
	for _, c := range b.calls("aws cloudformation signal-resource") {
		s = append(s, c[strings.LastIndex(c, " ")+1:])
	}
	return s
}

func TestBootScript(t *testing.T) {
	testtool.Require(t, "openssl")
	for _, tc := range []struct {
		name  string
		relay string
		env   []string
		// want: the one signal sent; slept at least/most.
		want               string
		minSlept, maxSlept int
		check              func(t *testing.T, b boot)
	}{
		{name: "a relay that answers at once is installed, takes its address and signals success", relay: "plain", want: "SUCCESS", check: func(t *testing.T, b boot) {
			if got := b.calls("systemctl"); !slices.Equal(got, []string{"systemctl daemon-reload", "systemctl enable --now smoothcast-ingest"}) {
				t.Errorf("systemctl calls %q", got)
			}
			if got := b.calls("aws ec2 associate-address"); len(got) != 1 || !strings.Contains(got[0], "--instance-id i-0123456789abcdef0 --allocation-id eipalloc-0abc") {
				t.Errorf("associate-address calls %q", got)
			}
			env := b.file(t, "etc/smoothcast/relay.env")
			for _, want := range []string{"SMOOTHCAST_BUCKET=media-bucket", "SMOOTHCAST_ADDR=:8080", "SMOOTHCAST_RTMP_ADDR=:1935"} {
				if !strings.Contains(env, want+"\n") {
					t.Errorf("relay.env lacks %q:\n%s", want, env)
				}
			}
			if unitFile, _ := Unit(); b.file(t, "etc/systemd/system/smoothcast-ingest.service") != unitFile {
				t.Error("the unit installed is not the embedded one")
			}
			if b.file(t, "usr/local/bin/smoothcast-ingest") != "relay binary" {
				t.Error("relay binary not installed")
			}
			if _, err := os.Stat(filepath.Join(b.root, "etc/systemd/system/smoothcast-ingest.service.d")); err == nil {
				t.Error("plain ingest has the TLS drop-in")
			}
		}},
		{name: "a secret made minutes late: the script waits for the relay and succeeds", relay: "plain", env: []string{"HEALTH_FAILS=90"},
			want: "SUCCESS", minSlept: 450, maxSlept: 460},
		{name: "a relay that never answers: the script waits ten minutes, then signals failure", relay: "plain", env: []string{"HEALTH_FAILS=1000"},
			want: "FAILURE", minSlept: WaitSeconds - 5, maxSlept: WaitSeconds, check: func(t *testing.T, b boot) {
				if len(b.calls("journalctl")) != 1 {
					t.Error("the relay's log was not shown")
				}
				if len(b.calls("aws ec2 associate-address")) != 0 {
					t.Error("a relay that never answered took the address")
				}
			}},
		{name: "a download that fails twice is retried", relay: "plain", env: []string{"S3_FAILS=2"}, want: "SUCCESS", minSlept: 6, maxSlept: 6},
		{name: "a replacement the group launched: in service once the relay answers", relay: "plain", env: []string{"HOOK_WAITS=1", "HEALTH_FAILS=3"}, want: "SUCCESS", minSlept: 15, maxSlept: 15},
		{name: "a replacement whose relay never answers is abandoned", relay: "plain", env: []string{"HOOK_WAITS=1", "HEALTH_FAILS=1000"}, want: "FAILURE", minSlept: WaitSeconds - 5, maxSlept: WaitSeconds},
		{name: "a download that keeps failing signals failure", relay: "plain", env: []string{"S3_FAILS=100"}, want: "FAILURE", minSlept: 27, maxSlept: 27,
			check: func(t *testing.T, b boot) {
				if n := len(b.calls("aws s3 cp")); n != 10 {
					t.Errorf("%d downloads, want 10", n)
				}
				if len(b.calls("systemctl")) != 0 {
					t.Error("the relay was started without its binary")
				}
			}},
		{name: "an address that cannot be taken yet is retried", relay: "plain", env: []string{"ASSOCIATE_FAILS=3"}, want: "SUCCESS", minSlept: 6, maxSlept: 6},
		{name: "TLS: the first relay makes the certificate, keeps it in its parameter and hands it to the relay", relay: "tls", want: "SUCCESS", check: func(t *testing.T, b boot) {
			pem := b.file(t, "etc/smoothcast/tls.pem")
			if !strings.Contains(pem, "BEGIN CERTIFICATE") || !strings.Contains(pem, "PRIVATE KEY") {
				t.Errorf("tls.pem holds no certificate and key:\n%s", pem)
			}
			if fi, err := os.Stat(filepath.Join(b.root, "etc/smoothcast/tls.pem")); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("tls.pem mode %v, %v; want 0600", fi.Mode().Perm(), err)
			}
			if kept, _ := os.ReadFile(filepath.Join(b.standin, "parameters", "_smoothcast_Smoothcast_tls")); string(kept) != pem {
				t.Error("the certificate installed is not the one kept in the parameter")
			}
			out, err := exec.Command("openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", filepath.Join(b.root, "etc/smoothcast/tls.pem")).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "IP Address:198.51.100.7, IP Address:198.51.100.8, DNS:ingest.example.com") {
				t.Errorf("the certificate's names: %v\n%s", err, out)
			}
			// Its own root, as -ca_file and the systems' trust stores want.
			out, err = exec.Command("openssl", "x509", "-noout", "-ext", "basicConstraints", "-in", filepath.Join(b.root, "etc/smoothcast/tls.pem")).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "CA:TRUE") {
				t.Errorf("the certificate is not its own root: %v\n%s", err, out)
			}
			_, dropIn := Unit()
			if b.file(t, "etc/systemd/system/smoothcast-ingest.service.d/tls.conf") != dropIn {
				t.Error("TLS drop-in missing")
			}
			env := b.file(t, "etc/smoothcast/relay.env")
			for _, want := range []string{"SMOOTHCAST_RTMP_ADDR=", "SMOOTHCAST_TLS_CERT=" + CredentialsDir + "/tls.pem", "SMOOTHCAST_SRT_PASSPHRASE_PARAMETER=/smoothcast/srt-passphrase"} {
				if !strings.Contains(env, want+"\n") {
					t.Errorf("relay.env lacks %q:\n%s", want, env)
				}
			}
		}},
		{name: "TLS: of two relays booting at once, the second takes the first's certificate", relay: "tls", env: []string{"PUT_RACE=testdata/other.pem"}, want: "SUCCESS",
			check: func(t *testing.T, b boot) {
				other, _ := os.ReadFile("testdata/other.pem")
				if b.file(t, "etc/smoothcast/tls.pem") != strings.TrimRight(string(other), "\n")+"\n" {
					t.Error("the relay did not take the certificate the other relay put")
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			for i, e := range env {
				if v, ok := strings.CutPrefix(e, "PUT_RACE="); ok {
					abs, _ := filepath.Abs(v)
					env = slices.Clone(env)
					env[i] = "PUT_RACE=" + abs
				}
			}
			b := runBoot(t, relays[tc.relay], env...)
			if got := b.signals(); !slices.Equal(got, []string{tc.want}) {
				t.Fatalf("signals %q, want [%s]; exit %v; output:\n%s", got, tc.want, b.err, b.out)
			}
			if (b.err == nil) != (tc.want == "SUCCESS") {
				t.Errorf("exit %v after %s", b.err, tc.want)
			}
			// A failed boot makes the group replace the instance, also
			// when no deploy waits for the signal: it abandons the launch
			// hook, or (none waiting) marks the instance unhealthy.
			failed := map[bool]int{true: 0, false: 1}[tc.want == "SUCCESS"]
			hook := slices.Contains(tc.env, "HOOK_WAITS=1")
			if got, want := len(b.calls("aws autoscaling set-instance-health --instance-id i-0123456789abcdef0 --health-status Unhealthy")), map[bool]int{true: 0, false: failed}[hook]; got != want {
				t.Errorf("%d calls marking the instance unhealthy, want %d", got, want)
			}
			result := map[bool]string{true: "CONTINUE", false: "ABANDON"}[tc.want == "SUCCESS"]
			if got := b.calls("aws autoscaling complete-lifecycle-action --lifecycle-hook-name " + LaunchHook + " --auto-scaling-group-name RelayGroup-123 --instance-id i-0123456789abcdef0 --lifecycle-action-result " + result); len(got) != 1 {
				t.Errorf("the launch hook ended with %s %d times, want once: %q", result, len(got), b.calls("aws autoscaling"))
			}
			if s := b.slept(); s < tc.minSlept || s > tc.maxSlept {
				t.Errorf("slept %d s, want %d to %d", s, tc.minSlept, tc.maxSlept)
			}
			if tc.check != nil {
				tc.check(t, b)
			}
		})
	}
}

func (b boot) file(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(b.root, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestUserDataRefusesWhatTheScriptCannotCarry(t *testing.T) {
	for name, spoil := range map[string]func(*Relay){
		"a quote in a script setting":     func(r *Relay) { r.Stack = "x'; rm -rf /; echo '" },
		"a line break in a relay setting": func(r *Relay) { r.SecretParameter = "/x\nSMOOTHCAST_ADDR=:1" },
	} {
		r := relays["plain"]
		spoil(&r)
		if _, err := UserData(r); err == nil {
			t.Errorf("%s was accepted", name)
		}
	}
}

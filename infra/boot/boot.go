// Package boot is what the stack puts on a relay instance: its boot
// script (relay-boot.sh), its systemd unit (smoothcast-ingest.service,
// with the drop-in tls.conf when ingest is TLS), and its settings (the
// relay's environment, SMOOTHCAST_<FLAG> for each flag). The files are
// embedded as they are, so that make test checks exactly what is
// deployed: shellcheck on the script, systemd-analyze verify on the
// unit, and the script run with stand-ins for aws, curl and systemctl.
package boot

import (
	_ "embed"
	"fmt"
	"strconv"
	"strings"
)

var (
	//go:embed relay-boot.sh
	script string
	//go:embed smoothcast-ingest.service
	unit string
	//go:embed tls.conf
	tlsDropIn string
)

// LaunchHook is the name of the relay groups' launch lifecycle hook: a
// new instance stays out of service until its boot script ends the hook
// (CONTINUE once the relay answers, ABANDON if the boot fails).
const LaunchHook = "relay-ready"

// CredentialsDir is where systemd hands the relay its credentials
// (LoadCredential in tls.conf).
const CredentialsDir = "/run/credentials/smoothcast-ingest.service"

// AdminAddr is the relay's admin listener on the instance (loopback
// only): the boot script waits for its /healthz.
const AdminAddr = "127.0.0.1:9090"

// WaitSeconds is how long the boot script waits for the relay to answer
// (SignalTimeout leaves the rest of the boot time to spare).
const WaitSeconds = 600

// SignalTimeout is how long the Auto Scaling group's creation and update
// policies wait for the boot script's signal, in minutes: the relay's
// wait and five minutes for the rest (the download, the certificate, the
// address).
const SignalTimeout = WaitSeconds/60 + 5

// Relay is one relay instance's settings. String fields may hold CDK
// tokens (the bucket's name, the Elastic IP's allocation ID): the stack
// resolves them in the user data.
type Relay struct {
	// Name tells the stack's relays apart ("a", "b"): the CloudWatch
	// dimension, the log lines.
	Name string
	// Stack and Region are the stack's; Resource is the logical ID of the
	// relay's Auto Scaling group, which the script signals.
	Stack, Region, Resource string
	// BinaryURL is the relay asset's s3:// URL, BinaryHash its hash (a
	// new binary is a new launch template version, which replaces the
	// instance).
	BinaryURL, BinaryHash string
	// AllocationID is the relay's Elastic IP, which the script takes over.
	AllocationID string
	// Bucket is the media bucket; SecretParameter the ingest secret's SSM
	// parameter.
	Bucket, SecretParameter string
	// IngestPort, RTMPPort, RTMPSPort and SRTPort are the listening ports.
	IngestPort, RTMPPort, RTMPSPort, SRTPort int
	// TLS, when set, makes every way in encrypted: HTTPS, RTMPS (no plain
	// RTMP), SRT with a passphrase.
	TLS *TLS
	// MetricsNamespace, when set, is where the relay publishes its
	// health to CloudWatch.
	MetricsNamespace string
	// Keys, when set, encrypts channels (issue 20).
	Keys *Keys
}

// Keys is where a relay gets its channels' keys: the relay's
// -key-parameter, or -speke-url and its companions.
type Keys struct {
	Parameter, Scheme                     string
	SPEKEURL, SPEKESystems, SPEKEChannels string
	// SigV4Region signs the key server's requests (API Gateway).
	SigV4Region string
	RotateEvery int
}

// TLS is how a relay gets its certificate and SRT passphrase.
type TLS struct {
	// CertParameter is the SSM parameter (SecureString) holding the PEM
	// certificate chain and its key.
	CertParameter string
	// Generate lets the first relay make a self-signed certificate for
	// Names and put it in CertParameter when there is none.
	Generate bool
	// Names are the relays' addresses (IPs or host names) the generated
	// certificate names.
	Names []string
	// SRTPassphraseParameter is the SSM parameter (SecureString) holding
	// the SRT passphrase callers must encrypt with.
	SRTPassphraseParameter string
}

// Environment is the relay's settings, as lines KEY=value of the unit's
// EnvironmentFile.
func (r Relay) Environment() []string {
	env := []string{
		"AWS_REGION=" + r.Region,
		"SMOOTHCAST_BUCKET=" + r.Bucket,
		"SMOOTHCAST_INGEST_SECRET_PARAMETER=" + r.SecretParameter,
		"SMOOTHCAST_ADDR=:" + strconv.Itoa(r.IngestPort),
		"SMOOTHCAST_ADMIN_ADDR=" + AdminAddr,
		"SMOOTHCAST_SRT_ADDR=:" + strconv.Itoa(r.SRTPort),
	}
	if r.TLS == nil {
		env = append(env, "SMOOTHCAST_RTMP_ADDR=:"+strconv.Itoa(r.RTMPPort))
	} else {
		cert := CredentialsDir + "/tls.pem"
		env = append(env,
			"SMOOTHCAST_RTMP_ADDR=",
			"SMOOTHCAST_RTMPS_ADDR=:"+strconv.Itoa(r.RTMPSPort),
			"SMOOTHCAST_TLS_CERT="+cert,
			"SMOOTHCAST_TLS_KEY="+cert,
			"SMOOTHCAST_SRT_PASSPHRASE_PARAMETER="+r.TLS.SRTPassphraseParameter)
	}
	if r.MetricsNamespace != "" {
		env = append(env, "SMOOTHCAST_CLOUDWATCH_NAMESPACE="+r.MetricsNamespace, "SMOOTHCAST_CLOUDWATCH_RELAY="+r.Name)
	}
	if k := r.Keys; k != nil {
		for _, v := range []struct{ name, value string }{
			{"KEY_PARAMETER", k.Parameter}, {"ENCRYPTION_SCHEME", k.Scheme}, {"SPEKE_URL", k.SPEKEURL},
			{"SPEKE_SYSTEMS", k.SPEKESystems}, {"SPEKE_CHANNELS", k.SPEKEChannels}, {"SPEKE_SIGV4_REGION", k.SigV4Region},
		} {
			if v.value != "" {
				env = append(env, "SMOOTHCAST_"+v.name+"="+v.value)
			}
		}
		if k.RotateEvery > 0 {
			env = append(env, "SMOOTHCAST_KEY_ROTATION_FRAGMENTS="+strconv.Itoa(k.RotateEvery))
		}
	}
	return env
}

// UserData is the relay instance's user data: the settings, then the
// boot script. It refuses a setting the script could not carry (a
// quote or a line break).
func UserData(r Relay) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "# smoothcast relay %s; smoothcast-ingest asset %s\n", r.Name, r.BinaryHash)
	var names []string
	generate := "0"
	tlsParameter := ""
	if r.TLS != nil {
		names, tlsParameter = r.TLS.Names, r.TLS.CertParameter
		if r.TLS.Generate {
			generate = "1"
		}
	}
	for _, v := range []struct{ name, value string }{
		{"SC_STACK", r.Stack}, {"SC_REGION", r.Region}, {"SC_RESOURCE", r.Resource},
		{"SC_BINARY_URL", r.BinaryURL}, {"SC_ALLOCATION_ID", r.AllocationID},
		{"SC_TLS_PARAMETER", tlsParameter}, {"SC_TLS_GENERATE", generate}, {"SC_TLS_NAMES", strings.Join(names, " ")},
		{"SC_HEALTH_URL", "http://" + AdminAddr + "/healthz"}, {"SC_HOOK", LaunchHook}, {"SC_WAIT_SECONDS", strconv.Itoa(WaitSeconds)},
	} {
		if strings.ContainsAny(v.value, "'\n") {
			return "", fmt.Errorf("relay %s: %s %q: no quote or line break allowed", r.Name, v.name, v.value)
		}
		fmt.Fprintf(&b, "%s='%s'\n", v.name, v.value)
	}
	for _, line := range r.Environment() {
		if strings.Contains(line, "\n") {
			return "", fmt.Errorf("relay %s: setting %q: no line break allowed", r.Name, line)
		}
	}
	env := strings.Join(r.Environment(), "\n")
	for _, v := range []struct{ name, text string }{{"SC_ENV", env}, {"SC_UNIT", unit}, {"SC_TLS_DROPIN", tlsDropIn}} {
		if strings.Contains(v.text, "\nSC_END") || strings.HasPrefix(v.text, "SC_END") {
			return "", fmt.Errorf("relay %s: %s holds the heredoc's end marker", r.Name, v.name)
		}
		fmt.Fprintf(&b, "%s=$(cat <<'SC_END'\n%s\nSC_END\n)\n", v.name, strings.TrimRight(v.text, "\n"))
	}
	b.WriteString(script)
	return b.String(), nil
}

// Unit is the relay's systemd unit, TLSDropIn its drop-in for TLS.
func Unit() (unitFile, tlsDropInFile string) { return unit, tlsDropIn }

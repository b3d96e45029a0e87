package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/smoothcast/smoothcast/shared/layout"
)

// Config is what a deployment chooses, read from CDK context (`cdk deploy
// -c key=value`, or cdk.json); every field has a default.
type Config struct {
	// Channels get playback URLs in the stack outputs (any channel name
	// works; these are the ones the outputs spell out).
	Channels []string
	// DVRWindow is how much of a live stream manifests list.
	DVRWindow time.Duration
	// Retention is how long fragments are kept (the bucket's lifecycle
	// rule, in whole days, at least one).
	Retention time.Duration
	// IngestCIDRs may reach the relays' ingest ports (IPv4: the VPC has
	// no IPv6). The default is a documentation range that nobody is in:
	// set yours.
	IngestCIDRs []netip.Prefix
	// IngestPort is the relay's listening port for pushes and uploads
	// (HTTPS, or HTTP with PlainIngest); a port below 1024 is fine.
	IngestPort int
	// RTMPPort takes RTMP publishes (PlainIngest only); RTMPSPort RTMPS
	// (unless PlainIngest).
	RTMPPort, RTMPSPort int
	// SRTPort is the relay's SRT port (UDP), open to IngestCIDRs too.
	SRTPort int
	// Relays is how many relays run, 1 or 2: two are in two Availability
	// Zones, each with its own address and ingest URLs, for encoders that
	// push the same stream to both.
	Relays int
	// PlainIngest turns TLS off: HTTP, RTMP and SRT without encryption,
	// the ingest secret in clear. Off by default.
	PlainIngest bool
	// TLSCertParameter names the SSM parameter (SecureString) holding the
	// PEM certificate chain and key of TLS ingest (HTTPS and RTMPS). When
	// empty, the first relay makes a self-signed certificate for the
	// relays' addresses and keeps it in GeneratedCertParameter.
	TLSCertParameter string
	// SRTPassphraseParameter names the SSM parameter (SecureString)
	// holding the SRT passphrase (10 to 79 characters) encoders must
	// encrypt with, unless PlainIngest.
	SRTPassphraseParameter string
	// InstanceType runs the relay (arm64: Graviton).
	InstanceType string
	// IngestSecretParameter names the SSM parameter (SecureString) that
	// holds the ingest secret; the relay reads it at start. It is never in
	// the template.
	IngestSecretParameter string
	// OriginShieldRegion, when set, puts Origin Shield in front of the
	// manifest origin.
	OriginShieldRegion string
	// Assets are the built binaries: Assets/manifest/bootstrap (the
	// Lambda) and Assets/ingest/smoothcast-ingest (the relay), both
	// linux/arm64 (make build).
	Assets string
	// StaleAlarmSeconds is how long a live channel of Channels may go
	// without a published fragment before its alarm fires: 10, 30 or a
	// multiple of 60 (periods both CloudWatch alarms and the CDK take).
	StaleAlarmSeconds int
	// AlarmEmail, when set, is subscribed to the alarms' SNS topic (the
	// address must confirm the subscription).
	AlarmEmail string
	// Encryption is how the relays encrypt channels (issue 20); zero: in
	// the clear.
	Encryption Encryption
}

// Encryption is the relays' encryption: static keys from an SSM
// parameter, or a SPEKE v2 key server (docs/operations.md, "Encrypted
// channels").
type Encryption struct {
	// KeyParameter names the SSM parameter (SecureString) holding the
	// key file's lines, {channel}={KID hex}:{key hex}.
	KeyParameter string
	// Scheme is cbcs (default) or cenc.
	Scheme string
	// SPEKEURL is the key server's URL; a URL of API Gateway
	// (execute-api) is called with SigV4, the relay role allowed to invoke it.
	SPEKEURL string
	// SPEKESystems and SPEKEChannels are the relay's -speke-systems and
	// -speke-channels (empty: its defaults).
	SPEKESystems, SPEKEChannels string
	// RotateEvery is -key-rotation-fragments.
	RotateEvery int
}

// DefaultConfig returns the defaults documented in docs/operations.md.
func DefaultConfig() Config {
	return Config{
		Channels:               []string{"demo"},
		DVRWindow:              30 * time.Minute,
		Retention:              24 * time.Hour,
		IngestCIDRs:            []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		IngestPort:             8080,
		RTMPPort:               1935,
		RTMPSPort:              1936,
		SRTPort:                9000,
		Relays:                 1,
		SRTPassphraseParameter: "/smoothcast/srt-passphrase",
		InstanceType:           "t4g.small",
		IngestSecretParameter:  "/smoothcast/ingest-secret",
		Assets:                 "build",
		StaleAlarmSeconds:      60,
	}
}

// FromContext reads the configuration from context values (strings, as
// -c gives them); lookup returns "" for an unset key.
func FromContext(lookup func(key string) string) (Config, error) {
	c := DefaultConfig()
	var errs []string
	bad := func(key, v, want string) { errs = append(errs, fmt.Sprintf("context %s=%q: %s", key, v, want)) }
	if v := lookup("channels"); v != "" {
		c.Channels = strings.Split(v, ",")
	}
	for key, dst := range map[string]*time.Duration{"dvrWindow": &c.DVRWindow, "retention": &c.Retention} {
		if v := lookup(key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				bad(key, v, "want a positive Go duration such as 30m or 72h")
				continue
			}
			*dst = d
		}
	}
	if v := lookup("ingestCidrs"); v != "" {
		c.IngestCIDRs = nil
		for _, s := range strings.Split(v, ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(s))
			if err != nil {
				bad("ingestCidrs", v, "want comma-separated CIDRs such as 203.0.113.0/24")
				break
			}
			if !p.Addr().Is4() {
				bad("ingestCidrs", s, "want IPv4 CIDRs: the relays' VPC has no IPv6, so an IPv6 range would match nothing")
				break
			}
			c.IngestCIDRs = append(c.IngestCIDRs, p.Masked())
		}
	}
	if v := lookup("relays"); v != "" {
		if v != "1" && v != "2" {
			bad("relays", v, "want 1, or 2 for two relays in two Availability Zones")
		} else {
			c.Relays = int(v[0] - '0')
		}
	}
	if v := lookup("plainIngest"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad("plainIngest", v, "want true or false")
		}
		c.PlainIngest = b
	}
	if v := lookup("rtmpsCertParameter"); v != "" {
		bad("rtmpsCertParameter", v, "renamed tlsCertParameter: one certificate serves HTTPS and RTMPS")
	}
	for key, dst := range map[string]*int{"ingestPort": &c.IngestPort, "rtmpPort": &c.RTMPPort, "rtmpsPort": &c.RTMPSPort} {
		if v := lookup(key); v != "" {
			if _, err := fmt.Sscanf(v, "%d", dst); err != nil || *dst < 1 || *dst > 65535 {
				bad(key, v, "want a TCP port")
			}
		}
	}
	if v := lookup("srtPort"); v != "" {
		if _, err := fmt.Sscanf(v, "%d", &c.SRTPort); err != nil || c.SRTPort < 1 || c.SRTPort > 65535 {
			bad("srtPort", v, "want a UDP port")
		}
	}
	if v := lookup("staleAlarmSeconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || !validAlarmPeriod(n) {
			bad("staleAlarmSeconds", v, "want 10, 30 or a multiple of 60 up to 86400 (the periods of a CloudWatch alarm)")
		} else {
			c.StaleAlarmSeconds = n
		}
	}
	if v := lookup("alarmEmail"); v != "" {
		local, domain, ok := strings.Cut(v, "@")
		if !ok || local == "" || !strings.Contains(domain, ".") || strings.ContainsAny(v, " ,;<>\t") || strings.Count(v, "@") != 1 {
			bad("alarmEmail", v, "want one e-mail address such as ops@example.com")
		} else {
			c.AlarmEmail = v
		}
	}
	for key, dst := range map[string]*string{"instanceType": &c.InstanceType, "ingestSecretParameter": &c.IngestSecretParameter,
		"originShieldRegion": &c.OriginShieldRegion, "assets": &c.Assets, "tlsCertParameter": &c.TLSCertParameter,
		"srtPassphraseParameter": &c.SRTPassphraseParameter, "keyParameter": &c.Encryption.KeyParameter,
		"encryptionScheme": &c.Encryption.Scheme, "spekeUrl": &c.Encryption.SPEKEURL, "spekeSystems": &c.Encryption.SPEKESystems,
		"spekeChannels": &c.Encryption.SPEKEChannels} {
		if v := lookup(key); v != "" {
			*dst = v
		}
	}
	// The relay's image is Amazon Linux for arm64: a Graviton type (t4g,
	// c7g, m7gd...), or every launch fails and the deploy rolls back.
	if !gravitonType.MatchString(c.InstanceType) {
		bad("instanceType", c.InstanceType, "want a Graviton (arm64) type such as t4g.small, c7g.large or m8g.medium")
	}
	for _, ch := range c.Channels {
		if !layout.ValidName(ch) {
			bad("channels", ch, "want names of 1-64 characters from [A-Za-z0-9_-]")
		}
	}
	if c.Retention < c.DVRWindow+layout.RetentionMargin {
		errs = append(errs, fmt.Sprintf("retention %v must be at least the DVR window (%v) plus %s", c.Retention, c.DVRWindow, strings.TrimSuffix(layout.RetentionMargin.String(), "0s"))) // "10m"
	}
	if !strings.HasPrefix(c.IngestSecretParameter, "/") {
		bad("ingestSecretParameter", c.IngestSecretParameter, "want an SSM parameter name starting with /")
	}
	if v := lookup("keyRotationFragments"); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 1 {
			bad("keyRotationFragments", v, "want a number of fragments, 1 or more")
		} else {
			c.Encryption.RotateEvery = n
		}
	}
	if e := c.Encryption; e.KeyParameter != "" && e.SPEKEURL != "" {
		errs = append(errs, "keyParameter and spekeUrl: give one (static keys, or a key server)")
	}
	if e := c.Encryption; e.RotateEvery > 0 && e.SPEKEURL == "" {
		bad("keyRotationFragments", strconv.Itoa(e.RotateEvery), "key rotation needs a key server (spekeUrl)")
	}
	if v := c.Encryption.Scheme; v != "" && v != "cbcs" && v != "cenc" {
		bad("encryptionScheme", v, "want cbcs or cenc")
	}
	if v := c.Encryption.SPEKEURL; v != "" && !strings.HasPrefix(v, "https://") {
		bad("spekeUrl", v, "want an https:// URL")
	}
	for key, v := range map[string]string{"tlsCertParameter": c.TLSCertParameter, "srtPassphraseParameter": c.SRTPassphraseParameter, "keyParameter": c.Encryption.KeyParameter} {
		if v != "" && !strings.HasPrefix(v, "/") {
			bad(key, v, "want an SSM parameter name starting with /")
		}
	}
	if ports := map[int]bool{c.IngestPort: true, c.RTMPPort: true, c.RTMPSPort: true}; len(ports) != 3 {
		errs = append(errs, fmt.Sprintf("ingestPort %d, rtmpPort %d and rtmpsPort %d must differ", c.IngestPort, c.RTMPPort, c.RTMPSPort))
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("smoothcast configuration:\n  %s", strings.Join(errs, "\n  "))
	}
	return c, nil
}

// gravitonType matches EC2's arm64 instance types: a family whose
// generation is followed by g (t4g, c7gn, m8gd, x2gd, im4gn, is4gen).
var gravitonType = regexp.MustCompile(`^[a-z]+[0-9]+g[a-z]*\.[a-z0-9]+$`)

// CheckAssets tells, in one line, what to run when the built binaries
// are missing (a clean checkout, before make build).
func (c Config) CheckAssets() error {
	for _, f := range []string{filepath.Join(c.Assets, "manifest", "bootstrap"), filepath.Join(c.Assets, "ingest", "smoothcast-ingest")} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("smoothcast: %s is missing: run make build (make synth and make deploy do), or give the built binaries' folder with -c assets=DIR", f)
		}
	}
	return nil
}

// GeneratedCertParameter is the SSM parameter that keeps the self-signed
// certificate the first relay of stack makes, when no TLSCertParameter
// is given.
func GeneratedCertParameter(stack string) string { return "/smoothcast/" + stack + "/tls-certificate" }

// CertParameter is the parameter TLS ingest reads its certificate from
// (empty with PlainIngest).
func (c Config) CertParameter(stack string) string {
	switch {
	case c.PlainIngest:
		return ""
	case c.TLSCertParameter != "":
		return c.TLSCertParameter
	}
	return GeneratedCertParameter(stack)
}

// validAlarmPeriod reports whether a CloudWatch alarm (and the CDK's
// metric) takes a period of n seconds, within a day. 10 and 30 need
// high-resolution metrics, which FragmentsPublished and StreamsEnded are.
func validAlarmPeriod(n int) bool {
	return n == 10 || n == 30 || n > 0 && n%60 == 0 && n <= 86400
}

// RetentionDays is the lifecycle rule's expiration: the retention rounded
// up to whole days.
func (c Config) RetentionDays() int {
	return int((c.Retention + 24*time.Hour - 1) / (24 * time.Hour))
}

// StateRetentionDays is the state's lifecycle rule's expiration: the
// media's and layout.StateGrace more.
func (c Config) StateRetentionDays() int {
	return c.RetentionDays() + int(layout.StateGrace/(24*time.Hour))
}

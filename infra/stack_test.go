package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/layout"
)

// synthesized is the template of a stack synthesized once for all tests,
// with the AWS Solutions checks applied.
type synthesized struct {
	resources map[string]resource
	outputs   map[string]any
	nagErrors []string
}

type resource struct {
	Type       string         `json:"Type"`
	Properties map[string]any `json:"Properties"`
}

var (
	synthOnce sync.Once
	synthOut  synthesized
	synthErr  error
)

func synth(t *testing.T) synthesized {
	t.Helper()
	testtool.Require(t, "node") // the CDK's jsii runtime runs on Node.js
	synthOnce.Do(func() {
		dir, err := os.MkdirTemp("", "smoothcast-assets")
		if err != nil {
			synthErr = err
			return
		}
		for _, f := range []string{"manifest/bootstrap", "ingest/smoothcast-ingest"} {
			p := filepath.Join(dir, f)
			_ = os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte("binary"), 0o755); err != nil {
				synthErr = err
				return
			}
		}
		cfg := DefaultConfig()
		cfg.Assets = dir
		cfg.IngestCIDRs = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32")}
		cfg.Channels = []string{"demo", "news-1"}
		app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(filepath.Join(dir, "cdk.out"))})
		s := NewOriginStack(app, "Test", &OriginStackProps{Config: cfg})
		awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(nil), nil)
		tpl := assertions.Template_FromStack(s.Stack, nil).ToJSON()
		b, _ := json.Marshal(tpl)
		var doc struct {
			Resources map[string]resource `json:"Resources"`
			Outputs   map[string]any      `json:"Outputs"`
		}
		if synthErr = json.Unmarshal(b, &doc); synthErr != nil {
			return
		}
		synthOut.resources, synthOut.outputs = doc.Resources, doc.Outputs
		ann := assertions.Annotations_FromStack(s.Stack)
		for _, m := range *ann.FindError(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))) {
			synthOut.nagErrors = append(synthOut.nagErrors, *m.Id+": "+toString(m.Entry.Data))
		}
		for _, m := range *ann.FindWarning(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))) {
			synthOut.nagErrors = append(synthOut.nagErrors, *m.Id+" (warning): "+toString(m.Entry.Data))
		}
	})
	if synthErr != nil {
		t.Fatal(synthErr)
	}
	return synthOut
}

func toString(v any) string {
	if s, ok := v.(*string); ok && s != nil {
		return *s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// of returns the resources of one type.
func (s synthesized) of(typ string) map[string]resource {
	out := map[string]resource{}
	for id, r := range s.resources {
		if r.Type == typ {
			out[id] = r
		}
	}
	return out
}

// one returns the only resource of a type whose logical id starts with
// prefix.
func (s synthesized) one(t *testing.T, typ, prefix string) resource {
	t.Helper()
	var found []resource
	for id, r := range s.of(typ) {
		if strings.HasPrefix(id, prefix) {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s resources named %s*, want 1", len(found), typ, prefix)
	}
	return found[0]
}

// js is a JSON rendering of v, for substring checks on nested properties.
func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestNoUnsuppressedNagFindings(t *testing.T) {
	s := synth(t)
	for _, e := range s.nagErrors {
		t.Error(e)
	}
}

func TestMediaBucket(t *testing.T) {
	s := synth(t)
	b := s.one(t, "AWS::S3::Bucket", "Media")
	p := js(b.Properties)
	for _, want := range []string{
		`"BlockPublicAcls":true`, `"BlockPublicPolicy":true`, `"IgnorePublicAcls":true`, `"RestrictPublicBuckets":true`,
		`"SSEAlgorithm":"AES256"`,
		`"ExpirationInDays":1`, `"TagFilters":[{"Key":"smoothcast-expire","Value":"true"}]`,
		`"LoggingConfiguration"`,
	} {
		if !strings.Contains(p, want) {
			t.Errorf("media bucket lacks %s:\n%s", want, p)
		}
	}
	if !strings.Contains(layout.ExpireTag, "smoothcast-expire=true") {
		t.Fatal("the relay's tag and the lifecycle rule's differ")
	}
	policies := js(s.of("AWS::S3::BucketPolicy"))
	for _, want := range []string{`"aws:SecureTransport":"false"`, `/state/*`, `/live/*/End(*`, `"Effect":"Deny"`} {
		if !strings.Contains(policies, want) {
			t.Errorf("bucket policies lack %s", want)
		}
	}
}

func TestManifestFunction(t *testing.T) {
	s := synth(t)
	fn := s.one(t, "AWS::Lambda::Function", "Manifest")
	p := fn.Properties
	if p["Runtime"] != "provided.al2023" || p["Handler"] != "bootstrap" || js(p["Architectures"]) != `["arm64"]` {
		t.Errorf("function: runtime %v handler %v architectures %v", p["Runtime"], p["Handler"], p["Architectures"])
	}
	env := js(p["Environment"])
	for _, k := range []string{"SMOOTHCAST_BUCKET", "SMOOTHCAST_DVR_WINDOW", "SMOOTHCAST_RETENTION"} {
		if !strings.Contains(env, k) {
			t.Errorf("environment lacks %s: %s", k, env)
		}
	}
	inv := js(s.of("AWS::Lambda::EventInvokeConfig"))
	if !strings.Contains(inv, `"MaximumRetryAttempts":2`) || !strings.Contains(inv, `"OnFailure"`) {
		t.Errorf("no on-failure destination: %s", inv)
	}
	if lg := js(s.one(t, "AWS::Logs::LogGroup", "ManifestLogs").Properties); !strings.Contains(lg, `"RetentionInDays":30`) {
		t.Errorf("log retention: %s", lg)
	}
	n := js(s.of("Custom::S3BucketNotifications"))
	for _, want := range []string{`"Name":"prefix","Value":"live/"`, `"Name":"suffix","Value":")"`, `"s3:ObjectCreated:*"`} {
		if !strings.Contains(n, want) {
			t.Errorf("notification lacks %s: %s", want, n)
		}
	}
	perms := js(s.of("AWS::Lambda::Permission"))
	for _, want := range []string{`"Action":"lambda:InvokeFunctionUrl"`, `"Action":"lambda:InvokeFunction"`, `"InvokedViaFunctionUrl":true`, `"Principal":"cloudfront.amazonaws.com"`, `"Principal":"s3.amazonaws.com"`} {
		if !strings.Contains(perms, want) {
			t.Errorf("function permissions lack %s: %s", want, perms)
		}
	}
	if u := js(s.of("AWS::Lambda::Url")); !strings.Contains(u, `"AuthType":"AWS_IAM"`) {
		t.Errorf("function URL: %s", u)
	}
	if oac := js(s.of("AWS::CloudFront::OriginAccessControl")); !strings.Contains(oac, `"OriginAccessControlOriginType":"lambda"`) ||
		!strings.Contains(oac, `"OriginAccessControlOriginType":"s3"`) {
		t.Errorf("origin access controls: %s", oac)
	}
}

func TestDistribution(t *testing.T) {
	s := synth(t)
	d := s.one(t, "AWS::CloudFront::Distribution", "Cdn").Properties["DistributionConfig"].(map[string]any)
	def := d["DefaultCacheBehavior"].(map[string]any)
	if def["ViewerProtocolPolicy"] != "redirect-to-https" || def["ResponseHeadersPolicyId"] == nil {
		t.Errorf("default behaviour: %s", js(def))
	}
	var patterns []string
	for _, b := range d["CacheBehaviors"].([]any) {
		b := b.(map[string]any)
		patterns = append(patterns, b["PathPattern"].(string))
		if b["PathPattern"] == "live/*/FragmentInfo(*" {
			// Media, as the default behaviour, with the path rewritten.
			if b["CachePolicyId"] != def["CachePolicyId"] || b["Compress"] != false || !strings.Contains(js(b["FunctionAssociations"]), "viewer-request") {
				t.Errorf("FragmentInfo behaviour: %s", js(b))
			}
			continue
		}
		if b["ViewerProtocolPolicy"] != "redirect-to-https" || b["ResponseHeadersPolicyId"] == nil || b["Compress"] != true ||
			!strings.Contains(js(b["FunctionAssociations"]), "viewer-request") {
			t.Errorf("manifest behaviour %v: %s", b["PathPattern"], js(b))
		}
	}
	slices.Sort(patterns)
	if want := []string{"live/*.m3u8", "live/*.mpd", "live/*/FragmentInfo(*", "live/*/Manifest", "time"}; !slices.Equal(patterns, want) {
		t.Errorf("behaviours %v, want %v", patterns, want)
	}
	for _, e := range d["CustomErrorResponses"].([]any) {
		if ttl := e.(map[string]any)["ErrorCachingMinTTL"]; ttl != float64(1) {
			t.Errorf("error response %s: cached %v s, want 1", js(e), ttl)
		}
	}
	if len(d["CustomErrorResponses"].([]any)) < 6 || d["Logging"] == nil {
		t.Errorf("error responses %s, logging %v", js(d["CustomErrorResponses"]), d["Logging"])
	}
	cp := js(s.of("AWS::CloudFront::CachePolicy"))
	for _, want := range []string{`"DefaultTTL":1`, `"MaxTTL":2`, `"MinTTL":0`, `"QueryStringBehavior":"whitelist"`, `"QueryStrings":["start","end"]`, `"EnableAcceptEncodingGzip":true`} {
		if !strings.Contains(cp, want) {
			t.Errorf("manifest cache policy lacks %s: %s", want, cp)
		}
	}
	orp := js(s.of("AWS::CloudFront::OriginRequestPolicy"))
	if !strings.Contains(orp, layout.ViewerHostHeader) {
		t.Errorf("the origin request policy does not forward %s: %s", layout.ViewerHostHeader, orp)
	}
	if f := js(s.of("AWS::CloudFront::Function")); !strings.Contains(f, layout.ViewerHostHeader) {
		t.Errorf("the viewer function does not set %s: %s", layout.ViewerHostHeader, f)
	}
}

func TestRelay(t *testing.T) {
	s := synth(t)
	var ingress []string
	for _, sg := range s.of("AWS::EC2::SecurityGroup") {
		for _, r := range sg.Properties["SecurityGroupIngress"].([]any) {
			r := r.(map[string]any)
			cidr, _ := r["CidrIp"].(string)
			if cidr == "" {
				cidr, _ = r["CidrIpv6"].(string)
			}
			ingress = append(ingress, cidr)
			if r["FromPort"] != float64(8080) || r["ToPort"] != float64(8080) {
				t.Errorf("ingress rule %s: want port 8080 only", js(r))
			}
		}
	}
	slices.Sort(ingress)
	if want := []string{"2001:db8::/32", "203.0.113.0/24"}; !slices.Equal(ingress, want) {
		t.Errorf("ingress from %v, want %v", ingress, want)
	}
	asg := s.one(t, "AWS::AutoScaling::AutoScalingGroup", "Relay").Properties
	if asg["MinSize"] != "1" || asg["MaxSize"] != "1" {
		t.Errorf("relay group %v..%v, want 1..1", asg["MinSize"], asg["MaxSize"])
	}
	lt := js(s.one(t, "AWS::EC2::LaunchTemplate", "RelayTemplate").Properties)
	for _, want := range []string{`"InstanceType":"t4g.small"`, `"HttpTokens":"required"`, `"Encrypted":true`, "arm64"} {
		if !strings.Contains(lt, want) {
			t.Errorf("launch template lacks %s", want)
		}
	}
	for _, want := range []string{"systemctl enable --now smoothcast-ingest", "Restart=on-failure", "associate-address", "export AWS_DEFAULT_REGION=", "SMOOTHCAST_INGEST_SECRET_PARAMETER=/smoothcast/ingest-secret"} {
		if !strings.Contains(lt, want) {
			t.Errorf("user data lacks %q", want)
		}
	}
	if len(s.of("AWS::EC2::EIP")) != 1 {
		t.Error("no fixed ingest address")
	}
}

// No policy grants s3:* or all actions, and no S3 permission is on "*"
// where a bucket or prefix fits.
func TestLeastPrivilege(t *testing.T) {
	s := synth(t)
	for id, p := range s.of("AWS::IAM::Policy") {
		doc := p.Properties["PolicyDocument"].(map[string]any)
		for _, st := range doc["Statement"].([]any) {
			st := st.(map[string]any)
			actions := asList(st["Action"])
			resources := asList(st["Resource"])
			for _, a := range actions {
				if a == "*" || a == "s3:*" {
					t.Errorf("%s grants %s", id, a)
				}
				if strings.HasPrefix(a, "s3:") && slices.Contains(resources, "*") {
					t.Errorf("%s grants %s on every resource", id, a)
				}
			}
		}
	}
	relay := ""
	for id, p := range s.of("AWS::IAM::Policy") {
		if strings.HasPrefix(id, "RelayRole") {
			relay = js(p.Properties)
		}
	}
	if !strings.Contains(relay, `/live/*`) || !strings.Contains(relay, `/state/*/clock.json`) || strings.Contains(relay, "s3:DeleteObject") {
		t.Errorf("relay policy: %s", relay)
	}
}

func asList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			} else {
				out = append(out, js(x))
			}
		}
		return out
	}
	return []string{js(v)}
}

func TestOutputs(t *testing.T) {
	s := synth(t)
	for _, id := range []string{"IngestUrl", "PlayerUrl", "PlaySmoothdemo", "PlayHLSdemo", "PlayDASHdemo", "PlaySmoothnews1", "PlayHLSnews1", "PlayDASHnews1"} {
		if _, ok := s.outputs[id]; !ok {
			t.Errorf("no output %s (have %v)", id, keys(s.outputs))
		}
	}
	if !strings.Contains(js(s.outputs["IngestUrl"]), "/live/{channel}.isml/Streams({stream})") {
		t.Errorf("ingest URL output: %s", js(s.outputs["IngestUrl"]))
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestConfigFromContext(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  map[string]string
		want func(Config) bool
		err  string
	}{
		{"defaults", nil, func(c Config) bool {
			return c.DVRWindow == 30*time.Minute && c.RetentionDays() == 1 && c.InstanceType == "t4g.small" && c.IngestCIDRs[0].String() == "192.0.2.0/24"
		}, ""},
		{"everything set", map[string]string{"channels": "a,b", "dvrWindow": "2h", "retention": "72h", "ingestCidrs": "203.0.113.7/24, 198.51.100.0/24",
			"ingestPort": "9000", "instanceType": "c7g.large", "originShieldRegion": "eu-west-1"}, func(c Config) bool {
			return len(c.Channels) == 2 && c.RetentionDays() == 3 && c.IngestCIDRs[0].String() == "203.0.113.0/24" && c.IngestPort == 9000 && c.OriginShieldRegion == "eu-west-1"
		}, ""},
		{"retention shorter than the window", map[string]string{"dvrWindow": "2h", "retention": "1h"}, nil, "retention"},
		{"bad CIDR", map[string]string{"ingestCidrs": "10.0.0.0/33"}, nil, "ingestCidrs"},
		{"bad duration", map[string]string{"dvrWindow": "soon"}, nil, "dvrWindow"},
		{"bad channel", map[string]string{"channels": "a/b"}, nil, "channels"},
		{"bad port", map[string]string{"ingestPort": "70000"}, nil, "ingestPort"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := FromContext(func(k string) string { return tc.ctx[k] })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil || !tc.want(c) {
				t.Fatalf("config %+v, %v", c, err)
			}
		})
	}
}

// The CloudFront functions' code, run in Node.js on the events CloudFront
// would give them: FragmentInfo paths become the fragment's key, and the
// manifest function learns the viewer's host.
func TestCloudFrontFunctions(t *testing.T) {
	s := synth(t)
	node := testtool.Require(t, "node")
	v := layout.TrackID{Name: "video", Bitrate: 800000}
	for _, tc := range []struct {
		id       string
		uri      string
		wantURI  string
		wantHost string // the viewer-host header the function adds
	}{
		{"FragmentInfo", "/" + layout.FragmentInfoPath("demo", v, 20000000), "/" + layout.FragmentKey("demo", v, 20000000), ""},
		{"FragmentInfo", "/" + layout.FragmentKey("demo", v, 7), "/" + layout.FragmentKey("demo", v, 7), ""},
		{"ViewerHost", "/" + layout.SmoothManifestPath("demo"), "/" + layout.SmoothManifestPath("demo"), "d111.cloudfront.net"},
	} {
		t.Run(tc.id+tc.uri, func(t *testing.T) {
			code, _ := s.one(t, "AWS::CloudFront::Function", tc.id).Properties["FunctionCode"].(string)
			if code == "" {
				t.Fatalf("function %s has no inline code", tc.id)
			}
			event := map[string]any{"request": map[string]any{
				"method": "GET", "uri": tc.uri, "querystring": map[string]any{},
				"headers": map[string]any{"host": map[string]any{"value": "d111.cloudfront.net"}},
			}}
			ev, _ := json.Marshal(event)
			script := code + "\nconsole.log(JSON.stringify(handler(" + string(ev) + ")));"
			out, err := exec.Command(node, "-e", script).Output()
			if err != nil {
				t.Fatalf("node: %v", err)
			}
			var got struct {
				URI     string                       `json:"uri"`
				Headers map[string]map[string]string `json:"headers"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("function output %q: %v", out, err)
			}
			if got.URI != tc.wantURI || got.Headers[layout.ViewerHostHeader]["value"] != tc.wantHost {
				t.Errorf("uri %q, viewer host %q; want %q, %q", got.URI, got.Headers[layout.ViewerHostHeader]["value"], tc.wantURI, tc.wantHost)
			}
		})
	}
}

package main

import (
	"encoding/json"
	"fmt"
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
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/constructs-go/constructs/v10"
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
	// tpl is the template for assertions' matchers; stack is what
	// synthesized it (for logical IDs).
	tpl   assertions.Template
	stack *OriginStack
}

type resource struct {
	Type       string         `json:"Type"`
	Properties map[string]any `json:"Properties"`
}

var (
	tempDirs               []string // removed by TestMain
	synthOnce, variantOnce sync.Once
	synthOut, variantOut   synthesized
	synthErr, variantErr   error
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range tempDirs {
		_ = os.RemoveAll(d)
	}
	os.Exit(code)
}

// synth is the stack as the tests configure it, checked by cdk-nag.
func synth(t *testing.T) synthesized {
	t.Helper()
	testtool.Require(t, "node") // the CDK's jsii runtime runs on Node.js
	synthOnce.Do(func() {
		cfg := DefaultConfig()
		cfg.IngestCIDRs = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32")}
		cfg.Channels = []string{"demo", "news-1"}
		cfg.AlarmEmail = "ops@example.com"
		synthOut, synthErr = synthStack(cfg, "binary", true)
	})
	if synthErr != nil {
		t.Fatal(synthErr)
	}
	return synthOut
}

// variant is the stack with Origin Shield on, another relay binary, a
// 30 s stale-channel alarm and RTMPS (without cdk-nag: one synthesis
// less).
func variant(t *testing.T) synthesized {
	t.Helper()
	testtool.Require(t, "node")
	variantOnce.Do(func() {
		cfg := DefaultConfig()
		cfg.OriginShieldRegion = "eu-west-1"
		cfg.StaleAlarmSeconds = 30
		cfg.RTMPSCertParameter = "/smoothcast/rtmps-cert"
		variantOut, variantErr = synthStack(cfg, "another binary", false)
	})
	if variantErr != nil {
		t.Fatal(variantErr)
	}
	return variantOut
}

// synthStack synthesizes the stack "Test" with cfg, its assets holding
// binary, and with the AWS Solutions checks if checked.
func synthStack(cfg Config, binary string, checked bool) (synthesized, error) {
	var out synthesized
	dir, err := os.MkdirTemp("", "smoothcast-assets")
	if err != nil {
		return out, err
	}
	tempDirs = append(tempDirs, dir)
	for _, f := range []string{"manifest/bootstrap", "ingest/smoothcast-ingest"} {
		p := filepath.Join(dir, f)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(binary), 0o755); err != nil {
			return out, err
		}
	}
	cfg.Assets = dir
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(filepath.Join(dir, "cdk.out"))})
	s := NewOriginStack(app, "Test", &OriginStackProps{Config: cfg})
	out.stack = s
	if checked {
		out.tpl, out.nagErrors = nagChecked(app, s.Stack)
	} else {
		out.tpl = assertions.Template_FromStack(s.Stack, nil)
	}
	b, _ := json.Marshal(out.tpl.ToJSON())
	var doc struct {
		Resources map[string]resource `json:"Resources"`
		Outputs   map[string]any      `json:"Outputs"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return out, err
	}
	out.resources, out.outputs = doc.Resources, doc.Outputs
	return out, nil
}

// nagChecked applies cdk-nag's AwsSolutions pack to app, synthesizes
// stack, and returns its template and the unsuppressed findings (errors
// and warnings), each as "path: rule: text".
func nagChecked(app awscdk.App, stack awscdk.Stack) (assertions.Template, []string) {
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(nil), nil)
	tpl := assertions.Template_FromStack(stack, nil)
	var findings []string
	ann := assertions.Annotations_FromStack(stack)
	for _, m := range *ann.FindError(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))) {
		findings = append(findings, *m.Id+": "+toString(m.Entry.Data))
	}
	for _, m := range *ann.FindWarning(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))) {
		findings = append(findings, *m.Id+" (warning): "+toString(m.Entry.Data))
	}
	return tpl, findings
}

// match runs an assertions check and reports a mismatch as a test error.
func match(t *testing.T, what string, check func()) {
	t.Helper()
	if err := try(check); err != nil {
		// The message shows the closest candidates; the first few are
		// enough.
		msg := err.Error()
		if len(msg) > 6000 {
			msg = msg[:6000] + "\n..."
		}
		t.Errorf("%s: %s", what, msg)
	}
}

// try runs f and returns what it panics with: assertions' checks throw
// on a mismatch, which jsii turns into a panic.
func try(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	f()
	return nil
}

// logicalID is the template's logical ID of a construct's resource.
func logicalID(stack awscdk.Stack, c constructs.IConstruct) string {
	if el, ok := c.Node().DefaultChild().(awscdk.CfnElement); ok {
		return *stack.GetLogicalId(el)
	}
	return *stack.GetLogicalId(c.(awscdk.CfnElement))
}

// Shorthands for assertions' matchers.
type obj = map[string]any

func like(m obj) assertions.Matcher    { return assertions.Match_ObjectLike(&m) }
func with(v ...any) assertions.Matcher { return assertions.Match_ArrayWith(&v) }
func re(p string) assertions.Matcher   { return assertions.Match_StringLikeRegexp(jsii.String(p)) }
func not(v any) assertions.Matcher     { return assertions.Match_Not(v) }
func getAtt(id, attr string) obj       { return obj{"Fn::GetAtt": []any{id, attr}} }
func ref(id string) obj                { return obj{"Ref": id} }
func join(parts ...any) obj            { return obj{"Fn::Join": []any{"", parts}} }
func absent() assertions.Matcher       { return assertions.Match_Absent() }

// hasProps checks that some resource of type typ has properties like m.
func hasProps(s synthesized, typ string, m obj) func() {
	return func() { s.tpl.HasResourceProperties(jsii.String(typ), like(m)) }
}

// userDataHas checks that a part of the relay's user data (an
// Fn::Join of literal text and references) matches each of parts, in
// order.
func userDataHas(s synthesized, parts ...any) func() {
	return hasProps(s, "AWS::EC2::LaunchTemplate", obj{"LaunchTemplateData": like(obj{
		"UserData": obj{"Fn::Base64": obj{"Fn::Join": []any{"", with(parts...)}}},
	})})
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

// The nag checker finds what it should: a bucket without access logs or
// TLS enforcement, run through the same helper, is reported, and the
// stack's suppression helper silences exactly the rule it names.
func TestNagPositiveControl(t *testing.T) {
	testtool.Require(t, "node")
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	stack := awscdk.NewStack(app, jsii.String("Control"), nil)
	awss3.NewBucket(stack, jsii.String("Bare"), nil)
	nag(awss3.NewBucket(stack, jsii.String("Excused"), nil), "AwsSolutions-S1", "the positive control's suppression")
	_, findings := nagChecked(app, stack)
	found := func(path, rule string) bool {
		for _, f := range findings {
			if strings.HasPrefix(f, "/Control/"+path+"/") && strings.Contains(f, rule+":") {
				return true
			}
		}
		return false
	}
	for _, want := range []struct {
		path, rule string
		found      bool
	}{
		{"Bare", "AwsSolutions-S1", true}, {"Bare", "AwsSolutions-S10", true},
		{"Excused", "AwsSolutions-S1", false}, {"Excused", "AwsSolutions-S10", true},
	} {
		if found(want.path, want.rule) != want.found {
			t.Errorf("%s %s: found %v, want %v; findings:\n%s", want.path, want.rule, !want.found, want.found, strings.Join(findings, "\n"))
		}
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
		`"Id":"expire-state"`, `"ExpirationInDays":2`, `"TagFilters":[{"Key":"smoothcast-expire","Value":"state"}]`,
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
	for _, want := range []string{`/state/*`, `/live/*/End(*`, `"Effect":"Deny"`} {
		if !strings.Contains(policies, want) {
			t.Errorf("bucket policies lack %s", want)
		}
	}
	// TLS only, in the media bucket's own policy (the log bucket has one
	// too, which must not stand in for it).
	media := logicalID(s.stack.Stack, s.stack.Media)
	match(t, "the media bucket's policy denies requests without TLS", hasProps(s, "AWS::S3::BucketPolicy", obj{
		"Bucket": ref(media),
		"PolicyDocument": like(obj{"Statement": with(like(obj{
			"Effect":    "Deny",
			"Principal": obj{"AWS": "*"},
			"Action":    "s3:*",
			"Condition": obj{"Bool": obj{"aws:SecureTransport": "false"}},
			"Resource":  []any{getAtt(media, "Arn"), join(getAtt(media, "Arn"), "/*")},
		}))}),
	}))
}

func TestManifestFunction(t *testing.T) {
	s := synth(t)
	fn := s.one(t, "AWS::Lambda::Function", "Manifest")
	p := fn.Properties
	match(t, "the manifest function's size", hasProps(s, "AWS::Lambda::Function", obj{
		"Handler": "bootstrap", "Runtime": "provided.al2023", "Architectures": []any{"arm64"},
		"MemorySize": 256, "Timeout": 30,
	}))
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
	// The state is written with the tag of its lifecycle rule.
	fnPolicy := ""
	for id, p := range s.of("AWS::IAM::Policy") {
		if strings.HasPrefix(id, "ManifestServiceRole") {
			fnPolicy = js(p.Properties)
		}
	}
	if !strings.Contains(fnPolicy, `"s3:PutObjectTagging"`) || !strings.Contains(fnPolicy, `/state/*`) {
		t.Errorf("the function may not tag its state: %s", fnPolicy)
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
	// Every behaviour answers with the CORS headers of the managed
	// SimpleCORS policy; media is cached with the managed
	// CachingOptimized policy, manifests with their own.
	const (
		simpleCORS       = "60669652-455b-4ae9-85a4-c4c02393f86c"
		cachingOptimized = "658327ea-f89d-4fab-a63d-7e88639e58f6"
	)
	manifestCache := ref(logicalID(s.stack.Stack, s.stack.Node().FindChild(jsii.String("ManifestCache"))))
	match(t, "default behaviour", hasProps(s, "AWS::CloudFront::Distribution", obj{"DistributionConfig": like(obj{
		"DefaultCacheBehavior": like(obj{"ResponseHeadersPolicyId": simpleCORS, "CachePolicyId": cachingOptimized}),
	})}))
	for pattern, cache := range map[string]any{
		"live/*/FragmentInfo(*": cachingOptimized,
		"live/*/Manifest":       manifestCache,
		"live/*.m3u8":           manifestCache,
		"live/*.mpd":            manifestCache,
		"time":                  manifestCache,
	} {
		match(t, "behaviour "+pattern, hasProps(s, "AWS::CloudFront::Distribution", obj{"DistributionConfig": like(obj{
			"CacheBehaviors": with(like(obj{"PathPattern": pattern, "ResponseHeadersPolicyId": simpleCORS, "CachePolicyId": cache})),
		})}))
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
	// The ingest port (8080), RTMP's (1935) and SRT's (UDP 9000) from the
	// encoders' CIDRs only; RTMPS only with its certificate (TestRTMPS).
	if ingress, want := ingressRules(s), []string{"2001:db8::/32 1935", "2001:db8::/32 8080", "2001:db8::/32 udp 9000",
		"203.0.113.0/24 1935", "203.0.113.0/24 8080", "203.0.113.0/24 udp 9000"}; !slices.Equal(ingress, want) {
		t.Errorf("ingress %v, want %v", ingress, want)
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
	for _, want := range []string{"systemctl enable --now smoothcast-ingest", "Restart=on-failure", "associate-address", "export AWS_DEFAULT_REGION=", "SMOOTHCAST_INGEST_SECRET_PARAMETER=/smoothcast/ingest-secret",
		"-srt-addr :9000"} {
		if !strings.Contains(lt, want) {
			t.Errorf("user data lacks %q", want)
		}
	}
	if len(s.of("AWS::EC2::EIP")) != 1 {
		t.Error("no fixed ingest address")
	}

	// Amazon Linux 2023 for arm64, the latest at each deploy.
	images := s.tpl.FindParameters(jsii.String("*"), obj{
		"Type":    "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
		"Default": re(`^/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-[0-9.]+-arm64$`),
	})
	if len(*images) != 1 {
		t.Fatalf("%d Amazon Linux 2023 arm64 image parameters, want 1", len(*images))
	}
	for image := range *images {
		match(t, "the relay's image", hasProps(s, "AWS::EC2::LaunchTemplate", obj{"LaunchTemplateData": like(obj{"ImageId": ref(image)})}))
	}

	// A new launch template version (the user data names the relay
	// asset) replaces the instance, which must signal that it is up.
	group := logicalID(s.stack.Stack, s.stack.Relay)
	template := logicalID(s.stack.Stack, s.stack.Node().FindChild(jsii.String("RelayTemplate")))
	match(t, "the relay group's update policy", func() {
		s.tpl.HasResource(jsii.String("AWS::AutoScaling::AutoScalingGroup"), like(obj{
			"Properties": like(obj{"LaunchTemplate": obj{
				"LaunchTemplateId": ref(template), "Version": getAtt(template, "LatestVersionNumber"),
			}}),
			"UpdatePolicy": like(obj{"AutoScalingRollingUpdate": obj{
				"MaxBatchSize": 1, "MinInstancesInService": 0, "WaitOnResourceSignals": true, "PauseTime": "PT10M",
			}}),
			"CreationPolicy": obj{"ResourceSignal": obj{"Count": 1, "Timeout": "PT10M"}},
		}))
	})
	hash := *s.stack.RelayBinary.AssetHash()
	match(t, "user data: the asset's hash", userDataHas(s, re(`^# smoothcast-ingest asset `+hash+`$`)))
	match(t, "user data: the relay binary copied from the asset", userDataHas(s,
		re(`^aws s3 cp $`),
		obj{"Fn::Sub": re(`^s3://cdk-[a-z0-9]+-assets-\$\{AWS::AccountId\}-\$\{AWS::Region\}/` + hash + `[.a-z0-9]*$`)},
		re(`^ /usr/local/bin/smoothcast-ingest\nchmod 755 /usr/local/bin/smoothcast-ingest$`),
	))
	// systemd restarts the relay for ever, every 5 s: the start limit is
	// off in [Unit] (where systemd reads it).
	match(t, "user data: no start limit", userDataHas(s, re(`\[Unit\]\n(?:[^\[\n][^\n]*\n)*StartLimitIntervalSec=0\n(?:[^\[\n][^\n]*\n)*\[Service\]\n`)))
	match(t, "user data: restart on failure", userDataHas(s, re(`^Restart=on-failure\nRestartSec=5$`)))
	match(t, "user data: signals", userDataHas(s,
		re(`^signal\(\) \{ aws cloudformation signal-resource --stack-name Test --logical-resource-id `+group+
			` --unique-id "\$IID" --status "\$1" \|\| true; \}\ntrap 'signal FAILURE' ERR$`),
		re(`^retry 60 curl -so /dev/null http://127.0.0.1:8080/\nretry 30 aws ec2 associate-address --allow-reassociation --instance-id "\$IID" --allocation-id $`),
		getAtt("IngestAddress", "AllocationId"),
		re(`^\nsignal SUCCESS$`),
	))
	// The instance carries the tag that lets it take the address.
	tag := obj{"Key": RelayTagKey, "Value": "Test"}
	match(t, "the launch template tags the instance", hasProps(s, "AWS::EC2::LaunchTemplate", obj{"LaunchTemplateData": like(obj{
		"TagSpecifications": with(obj{"ResourceType": "instance", "Tags": with(tag)}),
	})}))
	match(t, "the group propagates the tag", hasProps(s, "AWS::AutoScaling::AutoScalingGroup", obj{
		"Tags": with(obj{"Key": RelayTagKey, "Value": "Test", "PropagateAtLaunch": true}),
	}))
}

// ingressRules lists the security groups' ingress rules, "CIDR port",
// sorted; a rule over more than one port fails the test.
func ingressRules(s synthesized) []string {
	var out []string
	for _, sg := range s.of("AWS::EC2::SecurityGroup") {
		for _, r := range sg.Properties["SecurityGroupIngress"].([]any) {
			r := r.(map[string]any)
			cidr, _ := r["CidrIp"].(string)
			if cidr == "" {
				cidr, _ = r["CidrIpv6"].(string)
			}
			port := fmt.Sprint(r["FromPort"])
			if r["IpProtocol"] == "udp" {
				port = "udp " + port
			}
			if r["FromPort"] != r["ToPort"] || r["IpProtocol"] != "tcp" && r["IpProtocol"] != "udp" {
				port = "range " + js(r)
			}
			out = append(out, cidr+" "+port)
		}
	}
	slices.Sort(out)
	return out
}

// RTMP listens on its port; RTMPS, once its certificate's parameter is
// set, on its own, with the certificate copied from the parameter at boot
// and handed to the relay's dynamic user by systemd; the role may read
// that parameter.
func TestRTMPS(t *testing.T) {
	s := synth(t)
	match(t, "RTMP on :1935, no RTMPS", userDataHas(s, re(`ExecStart=/usr/local/bin/smoothcast-ingest -addr :8080 -rtmp-addr :1935 -srt-addr :9000\n`)))
	if lt := js(s.one(t, "AWS::EC2::LaunchTemplate", "RelayTemplate").Properties); strings.Contains(lt, "rtmps") {
		t.Errorf("RTMPS without a certificate: %s", lt)
	}
	v := variant(t)
	if ingress, want := ingressRules(v), []string{"192.0.2.0/24 1935", "192.0.2.0/24 1936", "192.0.2.0/24 8080", "192.0.2.0/24 udp 9000"}; !slices.Equal(ingress, want) {
		t.Errorf("ingress %v, want %v", ingress, want)
	}
	match(t, "the certificate copied at boot", userDataHas(v, re(`\ninstall -d -m 700 /etc/smoothcast\nretry 30 aws ssm get-parameter --with-decryption --name /smoothcast/rtmps-cert --query Parameter.Value --output text > /etc/smoothcast/rtmps.pem\nchmod 600 /etc/smoothcast/rtmps.pem\n`)))
	match(t, "the relay's RTMPS flags", userDataHas(v, re(`\nLoadCredential=rtmps.pem:/etc/smoothcast/rtmps.pem\nExecStart=/usr/local/bin/smoothcast-ingest -addr :8080 -rtmp-addr :1935 -rtmps-addr :1936 -rtmps-cert %d/rtmps.pem -rtmps-key %d/rtmps.pem -srt-addr :9000\n`)))
	policy := ""
	for id, p := range v.of("AWS::IAM::Policy") {
		if strings.HasPrefix(id, "RelayRole") {
			policy = js(p.Properties)
		}
	}
	if !strings.Contains(policy, ":parameter/smoothcast/rtmps-cert") || !strings.Contains(policy, ":parameter/smoothcast/ingest-secret") {
		t.Errorf("the relay may not read both parameters: %s", policy)
	}
	if _, ok := v.outputs["RtmpsUrl"]; !ok || !strings.Contains(js(v.outputs["RtmpsUrl"]), ":1936/live") {
		t.Errorf("RTMPS output: %s", js(v.outputs["RtmpsUrl"]))
	}
}

// A new relay binary is a new launch template version: the user data
// names the asset.
func TestRelayUserDataFollowsTheAsset(t *testing.T) {
	a, b := synth(t), variant(t)
	ha, hb := *a.stack.RelayBinary.AssetHash(), *b.stack.RelayBinary.AssetHash()
	if ha == hb {
		t.Fatal("two binaries, one asset hash")
	}
	userData := func(s synthesized) string {
		return js(s.one(t, "AWS::EC2::LaunchTemplate", "RelayTemplate").Properties["LaunchTemplateData"].(map[string]any)["UserData"])
	}
	if userData(a) == userData(b) {
		t.Error("the user data does not change with the relay binary")
	}
	match(t, "user data: the other asset's hash", userDataHas(b, re(`^# smoothcast-ingest asset `+hb+`$`)))
}

// Origin Shield is on the manifest origin when originShieldRegion is
// set, and off without it; never on the bucket's origin.
func TestOriginShield(t *testing.T) {
	for _, tc := range []struct {
		name   string
		s      synthesized
		shield obj
	}{
		{"default", synth(t), obj{"Enabled": false, "OriginShieldRegion": absent()}},
		{"originShieldRegion=eu-west-1", variant(t), obj{"Enabled": true, "OriginShieldRegion": "eu-west-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oacs := tc.s.tpl.FindResources(jsii.String("AWS::CloudFront::OriginAccessControl"), like(obj{
				"Properties": like(obj{"OriginAccessControlConfig": like(obj{"OriginAccessControlOriginType": "lambda"})}),
			}))
			if len(*oacs) != 1 {
				t.Fatalf("%d origin access controls for Lambda, want 1", len(*oacs))
			}
			for oac := range *oacs {
				match(t, "the manifest origin", hasProps(tc.s, "AWS::CloudFront::Distribution", obj{"DistributionConfig": like(obj{
					"Origins": with(like(obj{"OriginAccessControlId": getAtt(oac, "Id"), "OriginShield": tc.shield})),
				})}))
			}
			match(t, "the bucket origin", hasProps(tc.s, "AWS::CloudFront::Distribution", obj{"DistributionConfig": like(obj{
				"Origins": with(like(obj{"S3OriginConfig": assertions.Match_AnyValue(), "OriginShield": absent()})),
			})}))
		})
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
	if !strings.Contains(relay, `/live/*`) || !strings.Contains(relay, `/state/*/clock.json`) || !strings.Contains(relay, `/state/*/uploads.json`) || strings.Contains(relay, "s3:DeleteObject") {
		t.Errorf("relay policy: %s", relay)
	}

	// The relay may move the stack's address only, onto an instance
	// tagged as this stack's relay only.
	role := ref(logicalID(s.stack.Stack, s.stack.Node().FindChild(jsii.String("RelayRole"))))
	arn := func(resource string, name ...any) obj { // arn:${Partition}:ec2:${Region}:${Account}:resource...
		return join(append([]any{"arn:", ref("AWS::Partition"), ":ec2:", ref("AWS::Region"), ":", ref("AWS::AccountId"), ":" + resource}, name...)...)
	}
	relayPolicy := func(statements assertions.Matcher) func() {
		return hasProps(s, "AWS::IAM::Policy", obj{"Roles": []any{role}, "PolicyDocument": like(obj{"Statement": statements})})
	}
	match(t, "AssociateAddress on the stack's Elastic IP", relayPolicy(with(obj{
		"Effect": "Allow", "Action": "ec2:AssociateAddress", "Resource": arn("elastic-ip/", getAtt("IngestAddress", "AllocationId")),
	})))
	match(t, "AssociateAddress on the tagged relay instance", relayPolicy(with(obj{
		"Effect": "Allow", "Action": "ec2:AssociateAddress", "Resource": arn("instance/*"),
		"Condition": obj{"StringEquals": obj{"aws:ResourceTag/" + RelayTagKey: "Test"}},
	})))
	for _, all := range []any{"*", with("*")} {
		match(t, "no AssociateAddress on every resource", relayPolicy(not(with(like(obj{
			"Action": "ec2:AssociateAddress", "Resource": all,
		})))))
	}
	match(t, "SignalResource on this stack", relayPolicy(with(obj{
		"Effect": "Allow", "Action": "cloudformation:SignalResource", "Resource": ref("AWS::StackId"),
	})))
	match(t, "the wildcard's reason", func() {
		s.tpl.HasResource(jsii.String("AWS::IAM::Policy"), like(obj{
			"Properties": like(obj{"Roles": []any{role}}),
			"Metadata": obj{"cdk_nag": obj{"rules_to_suppress": with(like(obj{
				"id": "AwsSolutions-IAM5", "reason": re(`Elastic IP.*instance/\*.*` + RelayTagKey + `=Test`),
			}))}},
		}))
	})
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
	for _, id := range []string{"IngestUrl", "RtmpUrl", "SrtUrl", "PlayerUrl", "PlaySmoothdemo", "PlayHLSdemo", "PlayDASHdemo", "PlaySmoothnews1", "PlayHLSnews1", "PlayDASHnews1"} {
		if _, ok := s.outputs[id]; !ok {
			t.Errorf("no output %s (have %v)", id, keys(s.outputs))
		}
	}
	if !strings.Contains(js(s.outputs["IngestUrl"]), "/live/{channel}.isml/Streams({stream})") {
		t.Errorf("ingest URL output: %s", js(s.outputs["IngestUrl"]))
	}
	if o := js(s.outputs["RtmpUrl"]); !strings.Contains(o, `"rtmp://"`) || !strings.Contains(o, `":1935/live"`) {
		t.Errorf("RTMP URL output: %s", o)
	}
	if _, ok := s.outputs["RtmpsUrl"]; ok {
		t.Error("an RTMPS URL without a certificate")
	}
	if !strings.Contains(js(s.outputs["SrtUrl"]), ":9000?streamid=#!::r={channel},m=publish,smoothcast_secret={secret}") {
		t.Errorf("SRT URL output: %s", js(s.outputs["SrtUrl"]))
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
			"ingestPort": "9000", "instanceType": "c7g.large", "originShieldRegion": "eu-west-1", "rtmpPort": "1940", "rtmpsPort": "443", "rtmpsCertParameter": "/x/cert",
			"srtPort": "9999"}, func(c Config) bool {
			return len(c.Channels) == 2 && c.RetentionDays() == 3 && c.IngestCIDRs[0].String() == "203.0.113.0/24" && c.IngestPort == 9000 && c.OriginShieldRegion == "eu-west-1" &&
				c.RTMPPort == 1940 && c.RTMPSPort == 443 && c.RTMPSCertParameter == "/x/cert" && c.SRTPort == 9999
		}, ""},
		{"retention shorter than the window", map[string]string{"dvrWindow": "2h", "retention": "1h"}, nil, "retention"},
		{"bad CIDR", map[string]string{"ingestCidrs": "10.0.0.0/33"}, nil, "ingestCidrs"},
		{"bad duration", map[string]string{"dvrWindow": "soon"}, nil, "dvrWindow"},
		{"bad channel", map[string]string{"channels": "a/b"}, nil, "channels"},
		{"bad port", map[string]string{"ingestPort": "70000"}, nil, "ingestPort"},
		{"bad RTMP port", map[string]string{"rtmpPort": "0"}, nil, "rtmpPort"},
		{"one port for two listeners", map[string]string{"rtmpsPort": "8080"}, nil, "must differ"},
		{"a certificate parameter that is not one", map[string]string{"rtmpsCertParameter": "cert"}, nil, "rtmpsCertParameter"},
		{"bad SRT port", map[string]string{"srtPort": "0"}, nil, "srtPort"},
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

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

	"github.com/smoothcast/smoothcast/infra/boot"
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
	// file holds the template, for cfn-lint.
	file string
}

type resource struct {
	Type       string         `json:"Type"`
	Properties map[string]any `json:"Properties"`
}

var (
	tempDirs                          []string // removed by TestMain
	synthOnce, variantOnce, plainOnce sync.Once
	synthOut, variantOut, plainOut    synthesized
	synthErr, variantErr, plainErr    error
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
		cfg.IngestCIDRs = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("198.51.100.0/24")}
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
// 30 s stale-channel alarm, two relays, a certificate of the operator's
// and ingest on port 443, checked by cdk-nag too.
func variant(t *testing.T) synthesized {
	t.Helper()
	testtool.Require(t, "node")
	variantOnce.Do(func() {
		variantOut, variantErr = synthStack(variantConfig(), "another binary", true)
	})
	if variantErr != nil {
		t.Fatal(variantErr)
	}
	return variantOut
}

func variantConfig() Config {
	cfg := DefaultConfig()
	cfg.OriginShieldRegion = "eu-west-1"
	cfg.StaleAlarmSeconds = 30
	cfg.Relays = 2
	cfg.TLSCertParameter = "/smoothcast/ingest-cert"
	cfg.IngestPort = 443
	cfg.Encryption = Encryption{SPEKEURL: "https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod/copyProtection", SPEKESystems: "widevine,playready", RotateEvery: 30}
	return cfg
}

// plain is the stack with plain ingest (HTTP, RTMP, SRT in clear).
func plain(t *testing.T) synthesized {
	t.Helper()
	testtool.Require(t, "node")
	plainOnce.Do(func() {
		cfg := DefaultConfig()
		cfg.PlainIngest = true
		cfg.Encryption = Encryption{KeyParameter: "/smoothcast/keys", Scheme: "cenc"}
		plainOut, plainErr = synthStack(cfg, "binary", true)
	})
	if plainErr != nil {
		t.Fatal(plainErr)
	}
	return plainOut
}

// featureFlags are cdk.json's feature flags, which cdk synth and deploy
// give the app: the tests synthesize the template that is deployed.
func featureFlags() (map[string]any, error) {
	data, err := os.ReadFile("../cdk.json")
	if err != nil {
		return nil, err
	}
	var doc struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("cdk.json: %w", err)
	}
	flags := map[string]any{}
	for k, v := range doc.Context {
		if strings.HasPrefix(k, "@aws-cdk") {
			flags[k] = v
		}
	}
	if len(flags) == 0 {
		return nil, errors.New("cdk.json sets no feature flag")
	}
	return flags, nil
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
	flags, err := featureFlags()
	if err != nil {
		return out, err
	}
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(filepath.Join(dir, "cdk.out")), Context: &flags})
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
	out.file = filepath.Join(dir, "template.json")
	return out, os.WriteFile(out.file, b, 0o644)
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
		if strings.HasPrefix(id, "ManifestRole") {
			fnPolicy = js(p.Properties)
		}
	}
	if !strings.Contains(fnPolicy, `"s3:PutObjectTagging"`) || !strings.Contains(fnPolicy, `/state/*`) {
		t.Errorf("the function may not tag its state: %s", fnPolicy)
	}
	// Its own log group, and no managed policy (AWSLambdaBasicExecutionRole
	// would let it write every log group).
	logs := ref(logicalID(s.stack.Stack, s.stack.Node().FindChild(jsii.String("ManifestLogs"))))
	if !strings.Contains(fnPolicy, `"logs:CreateLogStream","logs:PutLogEvents"`) || !strings.Contains(fnPolicy, js(getAtt(logs["Ref"].(string), "Arn"))) {
		t.Errorf("the function's log permissions: %s", fnPolicy)
	}
	if r := js(s.one(t, "AWS::IAM::Role", "ManifestRole").Properties); strings.Contains(r, "ManagedPolicyArns") {
		t.Errorf("the function's role has a managed policy: %s", r)
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
		if b["PathPattern"] == "live/*/FragmentInfo*" {
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
	if want := []string{"live/*.m3u8", "live/*.mpd", "live/*/FragmentInfo*", "live/*/Manifest", "time"}; !slices.Equal(patterns, want) {
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
		"live/*/FragmentInfo*": cachingOptimized,
		"live/*/Manifest":      manifestCache,
		"live/*.m3u8":          manifestCache,
		"live/*.mpd":           manifestCache,
		"time":                 manifestCache,
	} {
		match(t, "behaviour "+pattern, hasProps(s, "AWS::CloudFront::Distribution", obj{"DistributionConfig": like(obj{
			"CacheBehaviors": with(like(obj{"PathPattern": pattern, "ResponseHeadersPolicyId": simpleCORS, "CachePolicyId": cache})),
		})}))
	}
	cp := js(s.of("AWS::CloudFront::CachePolicy"))
	for _, want := range []string{`"DefaultTTL":1`, `"MaxTTL":60`, `"MinTTL":0`, `"QueryStringBehavior":"whitelist"`, `"QueryStrings":["start","end","markers"]`, `"EnableAcceptEncodingGzip":true`} {
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
	// HTTPS (8080), RTMPS (1936) and SRT (UDP 9000) from the encoders'
	// CIDRs only; no plain RTMP (TestPlainIngest).
	if ingress, want := ingressRules(s), []string{"198.51.100.0/24 1936", "198.51.100.0/24 8080", "198.51.100.0/24 udp 9000",
		"203.0.113.0/24 1936", "203.0.113.0/24 8080", "203.0.113.0/24 udp 9000"}; !slices.Equal(ingress, want) {
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
	// The user data is infra/boot's (tested there): the stack's settings,
	// then the embedded script and unit.
	unit, dropIn := boot.Unit()
	for _, want := range []string{"systemctl enable --now smoothcast-ingest", "SMOOTHCAST_INGEST_SECRET_PARAMETER=/smoothcast/ingest-secret",
		"SMOOTHCAST_SRT_ADDR=:9000", "SMOOTHCAST_ADDR=:8080", "SC_STACK='Test'", js(unit)[1 : len(js(unit))-1], js(dropIn)[1 : len(js(dropIn))-1]} {
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
	// asset) replaces the instance, which must signal that it is up;
	// CloudFormation waits for the boot script's ten minutes and more.
	group := logicalID(s.stack.Stack, s.stack.Relays[0].Group)
	template := logicalID(s.stack.Stack, s.stack.Node().FindChild(jsii.String("RelayTemplate")))
	wait := fmt.Sprintf("PT%dM", boot.SignalTimeout)
	if boot.SignalTimeout*60 < boot.WaitSeconds+120 {
		t.Errorf("CloudFormation waits %d min for a boot script that waits %d s for the relay", boot.SignalTimeout, boot.WaitSeconds)
	}
	match(t, "the relay group's update policy", func() {
		s.tpl.HasResource(jsii.String("AWS::AutoScaling::AutoScalingGroup"), like(obj{
			"Properties": like(obj{"LaunchTemplate": obj{
				"LaunchTemplateId": ref(template), "Version": getAtt(template, "LatestVersionNumber"),
			}}),
			"UpdatePolicy": like(obj{"AutoScalingRollingUpdate": obj{
				"MaxBatchSize": 1, "MinInstancesInService": 0, "WaitOnResourceSignals": true, "PauseTime": wait,
			}}),
			"CreationPolicy": obj{"ResourceSignal": obj{"Count": 1, "Timeout": wait}},
		}))
	})
	// The instance boots once its subnet routes to the internet (it
	// downloads the relay and reads its parameters).
	match(t, "the group waits for the internet gateway and the route", func() {
		s.tpl.HasResource(jsii.String("AWS::AutoScaling::AutoScalingGroup"), like(obj{
			"DependsOn": with(re(`^VpcpublicSubnet1DefaultRoute`)), // which depends on the gateway's attachment
		}))
	})
	hash := *s.stack.RelayBinary.AssetHash()
	match(t, "user data: the asset's hash", userDataHas(s, re(`# smoothcast relay a; smoothcast-ingest asset `+hash+`\n`)))
	match(t, "user data: the relay binary copied from the asset, the group signalled, the address taken", userDataHas(s,
		re(`SC_RESOURCE='`+group+`'\nSC_BINARY_URL='$`),
		obj{"Fn::Sub": re(`^s3://cdk-[a-z0-9]+-assets-\$\{AWS::AccountId\}-\$\{AWS::Region\}/` + hash + `[.a-z0-9]*$`)},
		re(`^'\nSC_ALLOCATION_ID='$`),
		getAtt("IngestAddress", "AllocationId"),
	))
	// The instance carries the tag that lets it take the address.
	tag := obj{"Key": RelayTagKey, "Value": "Test"}
	match(t, "the launch template tags the instance", hasProps(s, "AWS::EC2::LaunchTemplate", obj{"LaunchTemplateData": like(obj{
		"TagSpecifications": with(obj{"ResourceType": "instance", "Tags": with(tag)}),
	})}))
	match(t, "the group propagates the tag", hasProps(s, "AWS::AutoScaling::AutoScalingGroup", obj{
		"Tags": with(obj{"Key": RelayTagKey, "Value": "Test", "PropagateAtLaunch": true}),
	}))
	// Rejected traffic is logged for a month, and goes with the stack.
	match(t, "flow logs", func() {
		s.tpl.HasResource(jsii.String("AWS::Logs::LogGroup"), like(obj{
			"Properties": obj{"RetentionInDays": 30}, "DeletionPolicy": "Delete",
		}))
		s.tpl.HasResourceProperties(jsii.String("AWS::EC2::FlowLog"), like(obj{
			"TrafficType": "REJECT", "LogGroupName": ref(logicalID(s.stack.Stack, s.stack.Node().FindChild(jsii.String("VpcFlowLogs")))),
		}))
	})
}

// Two relays: one per Availability Zone (subnet), each with its own
// address, template (its own address and group in the user data),
// alarms and outputs; one role, one security group, one certificate.
func TestTwoRelays(t *testing.T) {
	v := variant(t)
	if len(v.stack.Relays) != 2 || len(v.of("AWS::EC2::EIP")) != 2 || len(v.of("AWS::AutoScaling::AutoScalingGroup")) != 2 {
		t.Fatalf("%d relays, %d addresses, %d groups; want 2 each", len(v.stack.Relays), len(v.of("AWS::EC2::EIP")), len(v.of("AWS::AutoScaling::AutoScalingGroup")))
	}
	subnets := map[string]bool{}
	for _, g := range v.of("AWS::AutoScaling::AutoScalingGroup") {
		subnets[js(g.Properties["VPCZoneIdentifier"])] = true
	}
	if len(subnets) != 2 {
		t.Errorf("the groups share their subnets: %v", subnets)
	}
	for i, r := range v.stack.Relays {
		tpl := "RelayTemplate"
		if i == 1 {
			tpl = "RelayBTemplate"
		}
		ud := js(v.one(t, "AWS::EC2::LaunchTemplate", tpl).Properties)
		for _, want := range []string{"SC_RESOURCE='" + logicalID(v.stack.Stack, r.Group) + "'", js(getAtt(logicalID(v.stack.Stack, r.Address), "AllocationId")),
			"SMOOTHCAST_CLOUDWATCH_RELAY=" + r.Name} {
			if !strings.Contains(ud, want) {
				t.Errorf("relay %s's user data lacks %s", r.Name, want)
			}
		}
		// Each relay's certificate names both addresses: one certificate.
		for _, a := range v.stack.Relays {
			if !strings.Contains(ud, js(getAtt(logicalID(v.stack.Stack, a.Address), "PublicIp"))) {
				t.Errorf("relay %s's certificate does not name relay %s's address", r.Name, a.Name)
			}
		}
	}
	for _, id := range []string{"IngestUrl", "IngestUrlB", "RtmpUrl", "RtmpUrlB", "SrtUrl", "SrtUrlB"} {
		if _, ok := v.outputs[id]; !ok {
			t.Errorf("no output %s", id)
		}
	}
	if o := js(v.outputs["IngestUrlB"]); !strings.Contains(o, js(getAtt("IngestBAddress", "PublicIp"))) || !strings.Contains(o, `":443/live/{channel}.isml/Streams({stream})"`) {
		t.Errorf("IngestUrlB: %s", o)
	}
	if n := len(v.of("AWS::IAM::Role")); n > len(synth(t).of("AWS::IAM::Role")) {
		t.Errorf("two relays, %d roles: one more than one relay", n)
	}
	// Updated one after the other: the redundant encoder keeps a relay.
	groupB := js((*v.tpl.ToJSON())["Resources"].(map[string]any)[logicalID(v.stack.Stack, v.stack.Relays[1].Group)])
	if !strings.Contains(groupB, `"DependsOn":[`) || !strings.Contains(groupB, `"`+logicalID(v.stack.Stack, v.stack.Relays[0].Group)+`"`) {
		t.Errorf("relay b's group does not wait for relay a's: %s", groupB)
	}
	alarms := js(v.outputs["RelayAlarms"])
	for _, a := range v.stack.Monitoring.Relays {
		if !strings.Contains(alarms, logicalID(v.stack.Stack, a.InService)) {
			t.Errorf("RelayAlarms lacks relay %s's: %s", a.Name, alarms)
		}
	}
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

// relayPolicy is the relay role's policy document, as JSON.
func relayPolicy(s synthesized) string {
	for id, p := range s.of("AWS::IAM::Policy") {
		if strings.HasPrefix(id, "RelayRole") {
			return js(p.Properties)
		}
	}
	return ""
}

// Ingest is TLS by default: HTTPS, RTMPS and SRT with a passphrase,
// with a certificate the first relay makes and keeps in a parameter of
// the stack's (or the operator's, TestTwoRelays' variant); plainIngest
// turns it off: HTTP, RTMP, SRT in clear.
func TestTLSIngest(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    synthesized
		// env: in the relay's environment; outputs: URLs' schemes and
		// ports; readable and puttable parameters.
		env, notEnv       []string
		outputs, noOutput []string
		readable          []string
		puttable          string
		ingress           []string
	}{
		{name: "default: TLS with a certificate the first relay makes", s: synth(t),
			env:      []string{"SMOOTHCAST_RTMP_ADDR=\\n", "SMOOTHCAST_RTMPS_ADDR=:1936", "SMOOTHCAST_TLS_CERT=" + boot.CredentialsDir + "/tls.pem", "SMOOTHCAST_SRT_PASSPHRASE_PARAMETER=/smoothcast/srt-passphrase", "SC_TLS_PARAMETER='/smoothcast/Test/tls-certificate'", "SC_TLS_GENERATE='1'"},
			outputs:  []string{`"https://"`, `"rtmps://"`, `":1936/live"`, `passphrase={passphrase}`, `/smoothcast/Test/tls-certificate`},
			readable: []string{"parameter/smoothcast/ingest-secret", "parameter/smoothcast/Test/tls-certificate", "parameter/smoothcast/srt-passphrase"},
			puttable: "parameter/smoothcast/Test/tls-certificate",
		},
		{name: "an operator's certificate", s: variant(t),
			env:      []string{"SC_TLS_PARAMETER='/smoothcast/ingest-cert'", "SC_TLS_GENERATE='0'", "SMOOTHCAST_ADDR=:443"},
			outputs:  []string{`"https://"`, `/smoothcast/ingest-cert`},
			readable: []string{"parameter/smoothcast/ingest-cert"},
			ingress:  []string{"192.0.2.0/24 1936", "192.0.2.0/24 443", "192.0.2.0/24 udp 9000"},
		},
		{name: "plainIngest", s: plain(t),
			env: []string{"SMOOTHCAST_RTMP_ADDR=:1935", "SC_TLS_PARAMETER=''"}, notEnv: []string{"SMOOTHCAST_TLS_CERT=", "SMOOTHCAST_SRT_PASSPHRASE_PARAMETER="},
			outputs: []string{`"http://"`, `"rtmp://"`, `":1935/live"`}, noOutput: []string{"TlsCertificateParameter"},
			readable: []string{"parameter/smoothcast/ingest-secret"},
			ingress:  []string{"192.0.2.0/24 1935", "192.0.2.0/24 8080", "192.0.2.0/24 udp 9000"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lt := js(tc.s.one(t, "AWS::EC2::LaunchTemplate", "RelayTemplate").Properties)
			for _, want := range tc.env {
				if !strings.Contains(lt, want) {
					t.Errorf("user data lacks %q", want)
				}
			}
			for _, not := range tc.notEnv {
				if strings.Contains(lt, not) {
					t.Errorf("user data has %q", not)
				}
			}
			outputs := js(tc.s.outputs)
			for _, want := range tc.outputs {
				if !strings.Contains(outputs, want) {
					t.Errorf("outputs lack %s: %s", want, outputs)
				}
			}
			for _, o := range tc.noOutput {
				if _, ok := tc.s.outputs[o]; ok {
					t.Errorf("output %s", o)
				}
			}
			policy := relayPolicy(tc.s)
			for _, p := range tc.readable {
				if !strings.Contains(policy, p) {
					t.Errorf("the relay may not read %s: %s", p, policy)
				}
			}
			if put := strings.Contains(policy, "ssm:PutParameter"); put != (tc.puttable != "") || put && !strings.Contains(policy, tc.puttable) {
				t.Errorf("ssm:PutParameter %v, want it on %q only: %s", put, tc.puttable, policy)
			}
			if tc.ingress != nil {
				if got := ingressRules(tc.s); !slices.Equal(got, tc.ingress) {
					t.Errorf("ingress %v, want %v", got, tc.ingress)
				}
			}
		})
	}
}

// The relays get their encryption settings, and may read what they need
// and no more: static keys from their SSM parameter (plain's), or a
// SPEKE key server behind API Gateway, invoked with the relay role's
// SigV4 (variant's); without either (the default), neither.
func TestEncryptionSettings(t *testing.T) {
	for _, tc := range []struct {
		name      string
		s         synthesized
		env       []string
		policy    []string
		notPolicy []string
	}{
		{name: "none", s: synth(t), policy: nil, notPolicy: []string{"execute-api", "parameter/smoothcast/keys"}},
		{name: "static keys", s: plain(t), env: []string{"SMOOTHCAST_KEY_PARAMETER=/smoothcast/keys", "SMOOTHCAST_ENCRYPTION_SCHEME=cenc"},
			policy: []string{"parameter/smoothcast/keys"}, notPolicy: []string{"execute-api"}},
		{name: "SPEKE behind API Gateway", s: variant(t),
			env: []string{"SMOOTHCAST_SPEKE_URL=https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod/copyProtection", "SMOOTHCAST_SPEKE_SYSTEMS=widevine,playready",
				"SMOOTHCAST_SPEKE_SIGV4_REGION=eu-west-1", "SMOOTHCAST_KEY_ROTATION_FRAGMENTS=30"},
			policy: []string{"execute-api:Invoke", "arn:aws:execute-api:eu-west-1:*:abc123defg/prod/POST/*"}, notPolicy: []string{"parameter/smoothcast/keys"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lt := js(tc.s.one(t, "AWS::EC2::LaunchTemplate", "RelayTemplate").Properties)
			for _, want := range tc.env {
				if !strings.Contains(lt, want) {
					t.Errorf("user data lacks %q", want)
				}
			}
			if len(tc.env) == 0 && strings.Contains(lt, "SMOOTHCAST_KEY_") || len(tc.env) == 0 && strings.Contains(lt, "SMOOTHCAST_SPEKE_") {
				t.Errorf("user data has encryption settings: %s", lt)
			}
			policy := relayPolicy(tc.s)
			for _, want := range tc.policy {
				if !strings.Contains(policy, want) {
					t.Errorf("the relay policy lacks %s: %s", want, policy)
				}
			}
			for _, not := range tc.notPolicy {
				if strings.Contains(policy, not) {
					t.Errorf("the relay policy has %s: %s", not, policy)
				}
			}
		})
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
	match(t, "user data: the other asset's hash", userDataHas(b, re(`# smoothcast relay a; smoothcast-ingest asset `+hb+`\n`)))
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
	for _, id := range []string{"IngestUrl", "RtmpUrl", "SrtUrl", "PlayerUrl", "PlaySmoothdemo", "PlayHLSdemo", "PlayDASHdemo", "PlaySmoothnews1", "PlayHLSnews1", "PlayDASHnews1",
		"RelayGroups", "RelayAlarms", "TlsCertificateParameter"} {
		if _, ok := s.outputs[id]; !ok {
			t.Errorf("no output %s (have %v)", id, keys(s.outputs))
		}
	}
	if o := js(s.outputs["IngestUrl"]); !strings.Contains(o, `"https://"`) || !strings.Contains(o, ":8080/live/{channel}.isml/Streams({stream})") {
		t.Errorf("ingest URL output: %s", o)
	}
	if o := js(s.outputs["RtmpUrl"]); !strings.Contains(o, `"rtmps://"`) || !strings.Contains(o, `":1936/live"`) {
		t.Errorf("RTMP URL output: %s", o)
	}
	if !strings.Contains(js(s.outputs["SrtUrl"]), ":9000?streamid=#!::r={channel},m=publish,smoothcast_secret={secret}\\u0026passphrase={passphrase}") {
		t.Errorf("SRT URL output: %s", js(s.outputs["SrtUrl"]))
	}
	if o := js(s.outputs["RelayGroups"]); !strings.Contains(o, js(ref(logicalID(s.stack.Stack, s.stack.Relays[0].Group)))) {
		t.Errorf("RelayGroups: %s", o)
	}
	if o := js(s.outputs["RelayAlarms"]); !strings.Contains(o, logicalID(s.stack.Stack, s.stack.Monitoring.Relays[0].InService)) {
		t.Errorf("RelayAlarms: %s", o)
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
			"ingestPort": "9000", "instanceType": "c7g.large", "originShieldRegion": "eu-west-1", "rtmpPort": "1940", "rtmpsPort": "443", "tlsCertParameter": "/x/cert",
			"srtPort": "9999", "relays": "2", "srtPassphraseParameter": "/x/srt"}, func(c Config) bool {
			return len(c.Channels) == 2 && c.RetentionDays() == 3 && c.IngestCIDRs[0].String() == "203.0.113.0/24" && c.IngestPort == 9000 && c.OriginShieldRegion == "eu-west-1" &&
				c.RTMPPort == 1940 && c.RTMPSPort == 443 && c.TLSCertParameter == "/x/cert" && c.SRTPort == 9999 && c.Relays == 2 && c.SRTPassphraseParameter == "/x/srt" &&
				!c.PlainIngest && c.CertParameter("S") == "/x/cert"
		}, ""},
		{"TLS by default, a certificate the stack makes", nil, func(c Config) bool {
			return !c.PlainIngest && c.CertParameter("S") == "/smoothcast/S/tls-certificate" && c.Relays == 1
		}, ""},
		{"plain ingest", map[string]string{"plainIngest": "true"}, func(c Config) bool { return c.PlainIngest && c.CertParameter("S") == "" }, ""},
		{"a port below 1024", map[string]string{"ingestPort": "443"}, func(c Config) bool { return c.IngestPort == 443 }, ""},
		{"IPv6 ranges match nothing in the VPC", map[string]string{"ingestCidrs": "203.0.113.0/24,2001:db8::/32"}, nil, "IPv4"},
		{"three relays", map[string]string{"relays": "3"}, nil, "relays"},
		{"an x86 instance type for an arm64 image", map[string]string{"instanceType": "t3.small"}, nil, "Graviton"},
		{"another Graviton type", map[string]string{"instanceType": "m7gd.large"}, func(c Config) bool { return c.InstanceType == "m7gd.large" }, ""},
		{"bad plainIngest", map[string]string{"plainIngest": "maybe"}, nil, "plainIngest"},
		{"the old RTMPS certificate key", map[string]string{"rtmpsCertParameter": "/x/cert"}, nil, "renamed tlsCertParameter"},
		{"retention shorter than the window", map[string]string{"dvrWindow": "2h", "retention": "1h"}, nil, "retention"},
		{"bad CIDR", map[string]string{"ingestCidrs": "10.0.0.0/33"}, nil, "ingestCidrs"},
		{"bad duration", map[string]string{"dvrWindow": "soon"}, nil, "dvrWindow"},
		{"bad channel", map[string]string{"channels": "a/b"}, nil, "channels"},
		{"bad port", map[string]string{"ingestPort": "70000"}, nil, "ingestPort"},
		{"bad RTMP port", map[string]string{"rtmpPort": "0"}, nil, "rtmpPort"},
		{"one port for two listeners", map[string]string{"rtmpsPort": "8080"}, nil, "must differ"},
		{"a certificate parameter that is not one", map[string]string{"tlsCertParameter": "cert"}, nil, "tlsCertParameter"},
		{"bad SRT port", map[string]string{"srtPort": "0"}, nil, "srtPort"},
		{"static keys", map[string]string{"keyParameter": "/x/keys", "encryptionScheme": "cenc"}, func(c Config) bool {
			return c.Encryption.KeyParameter == "/x/keys" && c.Encryption.Scheme == "cenc"
		}, ""},
		{"a key server with rotation", map[string]string{"spekeUrl": "https://keys.example.com/speke/v2", "keyRotationFragments": "30", "spekeSystems": "widevine"}, func(c Config) bool {
			return c.Encryption.SPEKEURL == "https://keys.example.com/speke/v2" && c.Encryption.RotateEvery == 30 && c.Encryption.SPEKESystems == "widevine"
		}, ""},
		{"static keys and a key server", map[string]string{"keyParameter": "/x/keys", "spekeUrl": "https://keys.example.com/"}, nil, "give one"},
		{"rotation without a key server", map[string]string{"keyParameter": "/x/keys", "keyRotationFragments": "10"}, nil, "keyRotationFragments"},
		{"bad scheme", map[string]string{"keyParameter": "/x/keys", "encryptionScheme": "aes"}, nil, "encryptionScheme"},
		{"a key server in clear", map[string]string{"spekeUrl": "http://keys.example.com/"}, nil, "spekeUrl"},
		{"a key parameter that is not one", map[string]string{"keyParameter": "keys"}, nil, "keyParameter"},
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

// Every configuration the issue names passes CloudFormation's linter
// (no error; a warning is shown) and cdk-nag (no unsuppressed finding):
// the first deploy must not roll back on what can be checked offline.
func TestTemplatesPassCfnLintAndNag(t *testing.T) {
	cfnLint := testtool.Require(t, "cfn-lint")
	port := DefaultConfig()
	port.IngestPort = 443
	port.Channels = []string{"demo"}
	for _, tc := range []struct {
		name string
		s    func(t *testing.T) synthesized
	}{
		{"default: one relay, TLS with a generated certificate", synth},
		{"two relays, an operator's certificate, port 443, Origin Shield", variant},
		{"plain ingest", plain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s(t)
			for _, e := range s.nagErrors {
				t.Errorf("cdk-nag: %s", e)
			}
			out, err := exec.Command(cfnLint, "--format", "parseable", s.file).CombinedOutput()
			var exit *exec.ExitError
			if errors.As(err, &exit) && exit.ExitCode()&2 == 0 {
				t.Logf("cfn-lint warnings:\n%s", out) // 4: warnings, 8: informational
			} else if err != nil {
				t.Errorf("cfn-lint: %v\n%s", err, out)
			}
		})
	}
}

// The defects a review of the first template found, each asserted on
// the template (the rest: TestRelay, TestTLSIngest, TestDistribution,
// TestConfigFromContext, infra/boot).
func TestFirstDeployDefectsStayFixed(t *testing.T) {
	s := synth(t)
	// EC2 refuses an apostrophe in a security group's description.
	for id, sg := range s.of("AWS::EC2::SecurityGroup") {
		if d, _ := sg.Properties["GroupDescription"].(string); !regexp.MustCompile(`^[a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]*$`).MatchString(d) {
			t.Errorf("%s: description %q has a character EC2 refuses", id, d)
		}
	}
	// CloudFront's path patterns: A-Z a-z 0-9 _ - . * $ / ~ " ' @ : + &.
	d := s.one(t, "AWS::CloudFront::Distribution", "Cdn").Properties["DistributionConfig"].(map[string]any)
	for _, b := range d["CacheBehaviors"].([]any) {
		if p := b.(map[string]any)["PathPattern"].(string); !regexp.MustCompile(`^[A-Za-z0-9_\-.*$/~"'@:+&]+$`).MatchString(p) {
			t.Errorf("path pattern %q has a character CloudFront refuses", p)
		}
	}
	// The relay reads its own asset, not the CDK's whole assets bucket.
	for id, p := range s.of("AWS::IAM::Policy") {
		if !strings.HasPrefix(id, "RelayRole") {
			continue
		}
		doc := js(p.Properties)
		for _, wide := range []string{"s3:GetBucket", "s3:List*", "s3:GetObject*"} {
			if strings.Contains(doc, wide) {
				t.Errorf("the relay's role grants %s: %s", wide, doc)
			}
		}
		if !strings.Contains(doc, *s.stack.RelayBinary.AssetHash()) {
			t.Errorf("the relay may not read its asset: %s", doc)
		}
	}
	// A replacement is in service once its relay answers (a launch hook
	// the boot script ends), and one whose boot fails is abandoned.
	match(t, "the launch hook", hasProps(s, "AWS::AutoScaling::LifecycleHook", obj{
		"LifecycleHookName": boot.LaunchHook, "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING", "DefaultResult": "ABANDON",
		"HeartbeatTimeout": boot.SignalTimeout * 60, "AutoScalingGroupName": ref(logicalID(s.stack.Stack, s.stack.Relays[0].Group)),
	}))
	// The relay reads its own parameters, not every one of the account
	// (AmazonSSMManagedInstanceCore allows ssm:GetParameter* on *).
	if r := js(s.one(t, "AWS::IAM::Role", "RelayRole").Properties); strings.Contains(r, "ManagedPolicyArns") {
		t.Errorf("the relay's role has a managed policy: %s", r)
	}
	for id, p := range s.of("AWS::IAM::Policy") {
		for _, st := range p.Properties["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			st := st.(map[string]any)
			for _, a := range asList(st["Action"]) {
				if strings.HasPrefix(a, "ssm:GetParameter") && slices.Contains(asList(st["Resource"]), "*") {
					t.Errorf("%s grants %s on every parameter", id, a)
				}
			}
		}
	}
	// CloudFront's names are the account's: each carries the region.
	for _, typ := range []string{"AWS::CloudFront::OriginAccessControl", "AWS::CloudFront::OriginRequestPolicy", "AWS::CloudFront::CachePolicy", "AWS::CloudFront::Function"} {
		for id, r := range s.of(typ) {
			if !strings.Contains(js(r.Properties), `{"Ref":"AWS::Region"}`) {
				t.Errorf("%s %s: a name without the region: %s", typ, id, js(r.Properties))
			}
		}
	}
	// Finished time-shift manifests are cached as long as they say.
	if cp := js(s.one(t, "AWS::CloudFront::CachePolicy", "ManifestCache").Properties); !strings.Contains(cp, fmt.Sprintf(`"MaxTTL":%d`, int(layout.FinishedRangeMaxAge.Seconds()))) {
		t.Errorf("manifest cache policy caps what the function says: %s", cp)
	}
	// The logs bucket keeps CloudFront's ACL-based delivery but sets no
	// legacy AccessControl (S3 access logs: a bucket policy).
	if b := js(s.one(t, "AWS::S3::Bucket", "Logs").Properties); strings.Contains(b, "AccessControl") {
		t.Errorf("the logs bucket uses the legacy AccessControl: %s", b)
	}
	// No managed policy on the function's role: the old suppression's
	// reason ("own log group only") was not what the policy granted.
	if strings.Contains(js(s.tpl.ToJSON()), "AWSLambdaBasicExecutionRole for its own log group only") {
		t.Error("a suppression reason claims what the policy does not do")
	}
}

// cdk.json's app runs on a clean checkout: make builds the assets first;
// and the app alone, without them, says in one line what to run.
func TestAppWithoutAssetsSaysWhatToRun(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Assets = t.TempDir()
	err := cfg.CheckAssets()
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "make build") {
		t.Fatalf("error %v: want one line naming make build", err)
	}
	data, err := os.ReadFile("../cdk.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ App string }
	if err := json.Unmarshal(data, &doc); err != nil || !strings.HasPrefix(doc.App, "make ") || !strings.HasSuffix(doc.App, " cdk-app") {
		t.Fatalf("cdk.json's app %q, want make's cdk-app (which builds the assets)", doc.App)
	}
	mk, _ := os.ReadFile("../Makefile")
	if !regexp.MustCompile(`(?m)^cdk-app: build-lambda build-relay\n\t\$\(GO\) run \./infra$`).Match(mk) {
		t.Error("the Makefile's cdk-app does not build the assets before it runs the app")
	}
}

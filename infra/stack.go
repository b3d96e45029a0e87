package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudfront"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudfrontorigins"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdadestinations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3assets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3notifications"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/smoothcast/smoothcast/infra/boot"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/metricname"
)

// OriginStackProps are the stack's properties.
type OriginStackProps struct {
	awscdk.StackProps
	Config Config
}

// OriginStack is the whole origin: the media bucket, the manifest function
// and its Function URL, the CloudFront distribution, the ingest relay, and
// their alarms and dashboard.
type OriginStack struct {
	awscdk.Stack
	Media    awss3.Bucket
	Function awslambda.Function
	// Failures is the function's on-failure queue.
	Failures     awssqs.Queue
	Distribution awscloudfront.Distribution
	// Relays are the ingest relays (one, or two in two zones),
	// RelayBinary the relay's asset.
	Relays      []Relay
	RelayBinary awss3assets.Asset
	Monitoring  *Monitoring
}

// RelayTagKey tags the relay's instance with the stack's name; the relay
// role may associate the ingest address only with an instance so tagged.
const RelayTagKey = "smoothcast:relay"

// manifestTTL is how long CloudFront keeps a manifest: half a 2 s fragment.
const manifestTTL = 1

// NewOriginStack defines the origin.
func NewOriginStack(scope constructs.Construct, id string, props *OriginStackProps) *OriginStack {
	stack := awscdk.NewStack(scope, jsii.String(id), &props.StackProps)
	cfg := props.Config
	s := &OriginStack{Stack: stack}

	logs := awss3.NewBucket(stack, jsii.String("Logs"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:        jsii.Bool(true),
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		// CloudFront standard logs are delivered with ACLs.
		ObjectOwnership: awss3.ObjectOwnership_OBJECT_WRITER,
		LifecycleRules:  &[]*awss3.LifecycleRule{{Id: jsii.String("expire-logs"), Expiration: awscdk.Duration_Days(jsii.Number(90))}},
		RemovalPolicy:   awscdk.RemovalPolicy_RETAIN,
	})
	nag(logs, "AwsSolutions-S1", "This is the access-log bucket; logging it into itself would loop.")

	media := awss3.NewBucket(stack, jsii.String("Media"), &awss3.BucketProps{
		BlockPublicAccess:      awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:             jsii.Bool(true),
		Encryption:             awss3.BucketEncryption_S3_MANAGED,
		ServerAccessLogsBucket: logs,
		ServerAccessLogsPrefix: jsii.String("s3/"),
		LifecycleRules: &[]*awss3.LifecycleRule{{
			// Fragments and end markers carry the tag; init segments,
			// which a live track needs however old, do not.
			Id:         jsii.String("expire-media"),
			Expiration: awscdk.Duration_Days(jsii.Number(cfg.RetentionDays())),
			TagFilters: &map[string]interface{}{layout.ExpireTagKey: layout.ExpireTagValue},
		}, {
			// The function's state (a channel's index and its track
			// states) goes a day after the media it lists: a live
			// channel's state is written at every event (its index every
			// layout.StateRefresh), so only a channel whose media expired
			// loses it.
			Id:         jsii.String("expire-state"),
			Expiration: awscdk.Duration_Days(jsii.Number(cfg.StateRetentionDays())),
			TagFilters: &map[string]interface{}{layout.ExpireTagKey: layout.StateExpireTagValue},
		}, {
			Id:                                  jsii.String("abort-uploads"),
			AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(1)),
		}},
		// Kept when the stack goes, but not when its first create rolls
		// back (nothing is in it yet).
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN_ON_UPDATE_OR_DELETE,
	})
	s.Media = media

	s.Function, s.Failures = manifestFunction(stack, cfg, media)
	s.Distribution = distribution(stack, cfg, media, s.Function, logs)
	s.Relays, s.RelayBinary = relays(stack, cfg, media)
	s.Monitoring = monitoring(stack, cfg, s.Function, s.Failures, s.Relays)

	for _, ch := range cfg.Channels {
		for _, o := range []struct{ name, path string }{{"Smooth", "Manifest"}, {"HLS", "master.m3u8"}, {"DASH", "manifest.mpd"}} {
			awscdk.NewCfnOutput(stack, jsii.String(outputID(ch, o.name)), &awscdk.CfnOutputProps{
				Description: jsii.String(o.name + " playback URL of channel " + ch),
				Value:       awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("https://"), s.Distribution.DistributionDomainName(), jsii.String("/live/" + ch + ".isml/" + o.path)}),
			})
		}
	}
	ingestOutputs(stack, cfg, s.Relays, s.Monitoring)
	awscdk.NewCfnOutput(stack, jsii.String("PlayerUrl"), &awscdk.CfnOutputProps{
		Description: jsii.String("Give the local player page this base (smoothcast run, /player/?base=...)"),
		Value:       awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("https://"), s.Distribution.DistributionDomainName()}),
	})
	return s
}

// ingestOutputs are each relay's URLs (the second relay's keys end in
// B), and what `smoothcast aws` reads: the groups, the alarms that a
// stopped relay would set off, the certificate's parameter.
func ingestOutputs(stack awscdk.Stack, cfg Config, rs []Relay, m *Monitoring) {
	scheme, rtmp, rtmpPort, srtQuery := "https://", "rtmps://", cfg.RTMPSPort, "&passphrase={passphrase}"
	if cfg.PlainIngest {
		scheme, rtmp, rtmpPort, srtQuery = "http://", "rtmp://", cfg.RTMPPort, ""
	}
	url := func(r Relay, prefix, suffix string) *string {
		return awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String(prefix), r.Address.AttrPublicIp(), jsii.String(suffix)})
	}
	var groups, alarms []*string
	for i, r := range rs {
		key, which := "", ""
		if i > 0 {
			key, which = strings.ToUpper(r.Name), " (relay "+r.Name+", in another Availability Zone)"
		}
		awscdk.NewCfnOutput(stack, jsii.String("IngestUrl"+key), &awscdk.CfnOutputProps{
			Description: jsii.String("Encoders push Smooth or CMAF here (POST or PUT, chunked), or upload DASH or HLS files under /live/{channel}.isml/; {channel} and {stream} are names of [A-Za-z0-9_-]" + which),
			Value:       url(r, scheme, ":"+strconv.Itoa(cfg.IngestPort)+"/live/{channel}.isml/Streams({stream})"),
		})
		awscdk.NewCfnOutput(stack, jsii.String("RtmpUrl"+key), &awscdk.CfnOutputProps{
			Description: jsii.String("RTMP(S) encoders (OBS: Settings > Stream, Service Custom) take this as Server, and {channel}?secret={secret} as Stream Key" + which),
			Value:       url(r, rtmp, ":"+strconv.Itoa(rtmpPort)+"/live"),
		})
		awscdk.NewCfnOutput(stack, jsii.String("SrtUrl"+key), &awscdk.CfnOutputProps{
			Description: jsii.String("SRT callers publish here (MPEG-TS; docs/encoders.md): the stream ID names the channel and carries its ingest secret" + which),
			Value:       url(r, "srt://", ":"+strconv.Itoa(cfg.SRTPort)+"?streamid=#!::r={channel},m=publish,smoothcast_secret={secret}"+srtQuery),
		})
		groups = append(groups, r.Group.AutoScalingGroupName())
	}
	for _, a := range m.Relays {
		alarms = append(alarms, a.InService.AlarmName(), a.Silent.AlarmName())
	}
	awscdk.NewCfnOutput(stack, jsii.String("RelayGroups"), &awscdk.CfnOutputProps{
		Description: jsii.String("The relays' Auto Scaling groups (smoothcast aws stop/start)"),
		Value:       awscdk.Fn_Join(jsii.String(","), &groups),
	})
	awscdk.NewCfnOutput(stack, jsii.String("RelayAlarms"), &awscdk.CfnOutputProps{
		Description: jsii.String("Alarms that a stopped relay sets off (smoothcast aws stop silences them, start enables them)"),
		Value:       awscdk.Fn_Join(jsii.String(","), &alarms),
	})
	if p := cfg.CertParameter(*awscdk.Stack_Of(stack).StackName()); p != "" {
		awscdk.NewCfnOutput(stack, jsii.String("TlsCertificateParameter"), &awscdk.CfnOutputProps{
			Description: jsii.String("The ingest certificate and key (SSM SecureString); smoothcast aws status prints its SHA-256 fingerprint"),
			Value:       jsii.String(p),
		})
	}
}

func outputID(channel, format string) string {
	return "Play" + format + strings.NewReplacer("-", "", "_", "").Replace(channel)
}

// manifestFunction is the Lambda that handles the bucket's fragment events
// and serves manifests through its Function URL, and its on-failure queue.
func manifestFunction(stack awscdk.Stack, cfg Config, media awss3.Bucket) (awslambda.Function, awssqs.Queue) {
	failures := awssqs.NewQueue(stack, jsii.String("ManifestFailures"), &awssqs.QueueProps{
		EnforceSSL:      jsii.Bool(true),
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})
	nag(failures, "AwsSolutions-SQS3", "This queue is the manifest function's on-failure destination: a dead-letter queue needs none of its own.")
	logGroup := awslogs.NewLogGroup(stack, jsii.String("ManifestLogs"), &awslogs.LogGroupProps{
		Retention:     awslogs.RetentionDays_ONE_MONTH,
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	// A role of its own: its log group only (AWSLambdaBasicExecutionRole,
	// the default, may write every log group of the account).
	role := awsiam.NewRole(stack, jsii.String("ManifestRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("smoothcast manifest function: reads media, keeps channel state, writes its own log group"),
	})
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions: jsii.Strings("logs:CreateLogStream", "logs:PutLogEvents"),
		// (The log group's Arn attribute ends in :*, which covers its
		// streams.)
		Resources: jsii.Strings(*logGroup.LogGroupArn()),
	}))
	fn := awslambda.NewFunction(stack, jsii.String("Manifest"), &awslambda.FunctionProps{
		Role:         role,
		Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture: awslambda.Architecture_ARM_64(),
		Handler:      jsii.String("bootstrap"),
		Code:         awslambda.Code_FromAsset(jsii.String(filepath.Join(cfg.Assets, "manifest")), nil),
		// The bootstrap peaks at about 16 MB resident (measured by the
		// runtime-API test); 256 MB is for CPU share (Lambda's CPU grows
		// with memory: about 0.15 vCPU here), which keeps an event (one
		// ranged GET, one conditional PUT) to a few milliseconds; 30 s
		// covers the store's retries.
		MemorySize: jsii.Number(256),
		Timeout:    awscdk.Duration_Seconds(jsii.Number(30)),
		LogGroup:   logGroup,
		Environment: &map[string]*string{
			"SMOOTHCAST_BUCKET":     media.BucketName(),
			"SMOOTHCAST_DVR_WINDOW": jsii.String(cfg.DVRWindow.String()),
			"SMOOTHCAST_RETENTION":  jsii.String(cfg.Retention.String()),
		},
		RetryAttempts: jsii.Number(2),
		OnFailure:     awslambdadestinations.NewSqsDestination(failures),
	})
	// Least privilege: read the media, read and write the state, list the
	// bucket (so that a missing state document is a 404, not a 403).
	fn.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("s3:GetObject"),
		Resources: jsii.Strings(*media.ArnForObjects(jsii.String(layout.LivePrefix + "*"))),
	}))
	// (s3:PutObjectTagging: the state is written with the tag of its
	// lifecycle rule.)
	fn.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("s3:GetObject", "s3:PutObject", "s3:PutObjectTagging"),
		Resources: jsii.Strings(*media.ArnForObjects(jsii.String(layout.StatePrefix + "*"))),
	}))
	fn.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("s3:ListBucket"),
		Resources: jsii.Strings(*media.BucketArn()),
	}))
	// Fragments and end markers (layout.EventPrefix: init segments and the
	// function's own writes send none); the local stack filters the same.
	media.AddEventNotification(awss3.EventType_OBJECT_CREATED, awss3notifications.NewLambdaDestination(fn),
		&awss3.NotificationKeyFilter{Prefix: jsii.String(layout.EventPrefix), Suffix: jsii.String(layout.EventSuffix)})
	// CDK's own handler that configures the bucket's notifications.
	if h := stack.Node().TryFindChild(jsii.String("BucketNotificationsHandler050a0587b7544547bf325f094a3db834")); h != nil {
		nag(h, "AwsSolutions-IAM4", "CDK's bucket-notification handler runs once at deploy with AWSLambdaBasicExecutionRole for its logs.")
	}
	nag(role, "AwsSolutions-IAM5", "Object access is scoped to the live/ and state/ prefixes of the media bucket; log streams to the function's own log group.")
	return fn, failures
}

// distribution is CloudFront in front of the bucket (fragments, init
// segments) and the Function URL (manifests, time).
func distribution(stack awscdk.Stack, cfg Config, media awss3.Bucket, fn awslambda.Function, logs awss3.Bucket) awscloudfront.Distribution {
	url := fn.AddFunctionUrl(&awslambda.FunctionUrlOptions{AuthType: awslambda.FunctionUrlAuthType_AWS_IAM})
	// CloudFront's names are the account's, not the region's: each
	// carries the stack's name and region, so that a second deployment
	// elsewhere does not clash.
	cfName := func(what string) *string {
		return awscdk.Fn_Join(jsii.String("-"), &[]*string{awscdk.Stack_Of(stack).StackName(), awscdk.Stack_Of(stack).Region(), jsii.String(what)})
	}
	s3Origin := awscloudfrontorigins.S3BucketOrigin_WithOriginAccessControl(media, &awscloudfrontorigins.S3BucketOriginWithOACProps{
		OriginAccessLevels: &[]awscloudfront.AccessLevel{awscloudfront.AccessLevel_READ},
		OriginAccessControl: awscloudfront.NewS3OriginAccessControl(stack, jsii.String("MediaAccess"), &awscloudfront.S3OriginAccessControlProps{
			OriginAccessControlName: cfName("media"),
		}),
	})
	// The state is never served: CloudFront may read live/ only.
	media.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Effect:     awsiam.Effect_DENY,
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudfront.amazonaws.com"), nil)},
		Actions:    jsii.Strings("s3:GetObject"),
		// The state, and the relay's end-of-connection markers.
		Resources: jsii.Strings(*media.ArnForObjects(jsii.String(layout.StatePrefix + "*")), *media.ArnForObjects(jsii.String(layout.LivePrefix + "*/End(*"))),
	}))
	var shield *string
	if cfg.OriginShieldRegion != "" {
		shield = jsii.String(cfg.OriginShieldRegion)
	}
	fnOrigin := awscloudfrontorigins.FunctionUrlOrigin_WithOriginAccessControl(url, &awscloudfrontorigins.FunctionUrlOriginWithOACProps{
		OriginAccessControl: awscloudfront.NewFunctionUrlOriginAccessControl(stack, jsii.String("ManifestAccess"), &awscloudfront.FunctionUrlOriginAccessControlProps{
			OriginAccessControlName: cfName("manifests"),
		}),
		OriginShieldRegion:  shield,
		OriginShieldEnabled: jsii.Bool(shield != nil),
	})
	manifests := awscloudfront.NewCachePolicy(stack, jsii.String("ManifestCache"), &awscloudfront.CachePolicyProps{
		Comment:    jsii.String("smoothcast manifests: half a fragment; time-shift queries in the key"),
		MinTtl:     awscdk.Duration_Seconds(jsii.Number(0)),
		DefaultTtl: awscdk.Duration_Seconds(jsii.Number(manifestTTL)),
		// Live manifests say max-age=1; a time-shift manifest of a range
		// long finished says more, and is kept as long.
		MaxTtl:                     awscdk.Duration_Seconds(jsii.Number(layout.FinishedRangeMaxAge.Seconds())),
		QueryStringBehavior:        awscloudfront.CacheQueryStringBehavior_AllowList(*jsii.Strings(layout.ManifestQueries()...)...),
		HeaderBehavior:             awscloudfront.CacheHeaderBehavior_None(),
		CookieBehavior:             awscloudfront.CacheCookieBehavior_None(),
		EnableAcceptEncodingGzip:   jsii.Bool(true),
		EnableAcceptEncodingBrotli: jsii.Bool(true),
	})
	forward := awscloudfront.NewOriginRequestPolicy(stack, jsii.String("ManifestRequest"), &awscloudfront.OriginRequestPolicyProps{
		OriginRequestPolicyName: cfName("manifest-request"),
		Comment:                 jsii.String("smoothcast manifests: the viewer's host (absolute URLs), the time-shift and marker queries"),
		QueryStringBehavior:     awscloudfront.OriginRequestQueryStringBehavior_AllowList(*jsii.Strings(layout.ManifestQueries()...)...),
		HeaderBehavior:          awscloudfront.OriginRequestHeaderBehavior_AllowList(jsii.String(layout.ViewerHostHeader)),
		CookieBehavior:          awscloudfront.OriginRequestCookieBehavior_None(),
	})
	viewerHost := awscloudfront.NewFunction(stack, jsii.String("ViewerHost"), &awscloudfront.FunctionProps{
		Comment: jsii.String("Tell the manifest function which host viewers use"),
		Runtime: awscloudfront.FunctionRuntime_JS_2_0(),
		Code: awscloudfront.FunctionCode_FromInline(jsii.String(fmt.Sprintf(
			`function handler(event) { var r = event.request; r.headers[%q] = { value: r.headers.host.value }; return r; }`, layout.ViewerHostHeader))),
	})
	cors := awscloudfront.ResponseHeadersPolicy_CORS_ALLOW_ALL_ORIGINS()
	manifestBehavior := &awscloudfront.BehaviorOptions{
		Origin:                fnOrigin,
		ViewerProtocolPolicy:  awscloudfront.ViewerProtocolPolicy_REDIRECT_TO_HTTPS,
		AllowedMethods:        awscloudfront.AllowedMethods_ALLOW_GET_HEAD_OPTIONS(),
		CachePolicy:           manifests,
		OriginRequestPolicy:   forward,
		ResponseHeadersPolicy: cors,
		Compress:              jsii.Bool(true),
		FunctionAssociations: &[]*awscloudfront.FunctionAssociation{{
			EventType: awscloudfront.FunctionEventType_VIEWER_REQUEST, Function: viewerHost,
		}},
	}
	// Errors (a fragment asked for a moment early) expire in a second, not
	// CloudFront's default ten.
	var errorResponses []*awscloudfront.ErrorResponse
	for _, code := range []float64{400, 403, 404, 405, 500, 502, 503, 504} {
		errorResponses = append(errorResponses, &awscloudfront.ErrorResponse{HttpStatus: jsii.Number(code), Ttl: awscdk.Duration_Seconds(jsii.Number(1))})
	}
	// Fragments and init segments: immutable, cached as the origin says
	// (a year).
	mediaBehavior := &awscloudfront.BehaviorOptions{
		Origin:                s3Origin,
		ViewerProtocolPolicy:  awscloudfront.ViewerProtocolPolicy_REDIRECT_TO_HTTPS,
		AllowedMethods:        awscloudfront.AllowedMethods_ALLOW_GET_HEAD_OPTIONS(),
		CachePolicy:           awscloudfront.CachePolicy_CACHING_OPTIMIZED(),
		ResponseHeadersPolicy: cors,
		Compress:              jsii.Bool(false), // media does not compress
	}
	// A Smooth FragmentInfo request (dash.js sends them after a pause or a
	// seek in a live stream) is answered with the fragment itself: the
	// function rewrites the path before the cache key is made, so both
	// names share one cached object.
	fragmentInfo := awscloudfront.NewFunction(stack, jsii.String("FragmentInfo"), &awscloudfront.FunctionProps{
		Comment: jsii.String("Serve Smooth FragmentInfo requests with the fragment"),
		Runtime: awscloudfront.FunctionRuntime_JS_2_0(),
		Code: awscloudfront.FunctionCode_FromInline(jsii.String(
			`function handler(event) { var r = event.request; r.uri = r.uri.replace("/FragmentInfo(", "/Fragments("); return r; }`)),
	})
	fragmentInfoBehavior := *mediaBehavior
	fragmentInfoBehavior.FunctionAssociations = &[]*awscloudfront.FunctionAssociation{{
		EventType: awscloudfront.FunctionEventType_VIEWER_REQUEST, Function: fragmentInfo,
	}}
	dist := awscloudfront.NewDistribution(stack, jsii.String("Cdn"), &awscloudfront.DistributionProps{
		Comment:         jsii.String("smoothcast: live Smooth Streaming, HLS and DASH"),
		DefaultBehavior: mediaBehavior,
		AdditionalBehaviors: &map[string]*awscloudfront.BehaviorOptions{
			// CloudFront's path patterns take no parenthesis.
			"live/*/FragmentInfo*": &fragmentInfoBehavior,
			"live/*/Manifest":      manifestBehavior,
			"live/*.m3u8":          manifestBehavior,
			"live/*.mpd":           manifestBehavior,
			"time":                 manifestBehavior,
		},
		ErrorResponses: &errorResponses,
		PriceClass:     awscloudfront.PriceClass_PRICE_CLASS_100,
		HttpVersion:    awscloudfront.HttpVersion_HTTP2_AND_3,
		EnableLogging:  jsii.Bool(true),
		LogBucket:      logs,
		LogFilePrefix:  jsii.String("cloudfront/"),
	})
	// Function URLs now also need lambda:InvokeFunction, limited to calls
	// made through the URL, for the distribution's signed requests.
	awslambda.NewCfnPermission(stack, jsii.String("CdnInvokesManifest"), &awslambda.CfnPermissionProps{
		Action:                jsii.String("lambda:InvokeFunction"),
		FunctionName:          fn.FunctionArn(),
		Principal:             jsii.String("cloudfront.amazonaws.com"),
		SourceArn:             dist.DistributionArn(),
		InvokedViaFunctionUrl: jsii.Bool(true),
	})
	nag(dist, "AwsSolutions-CFR1", "A live origin serves every country; restrict with a geo rule if the rights demand it.")
	nag(dist, "AwsSolutions-CFR2", "WAF is optional: fragments are public media behind immutable caching; add a web ACL if the audience needs one.")
	nag(dist, "AwsSolutions-CFR4", "The distribution uses the default cloudfront.net certificate, whose TLS policy CloudFront sets; a custom domain brings its own.")
	return dist
}

// Relay is one ingest relay: an Auto Scaling group of one Graviton
// instance in one Availability Zone, with a fixed address of its own.
type Relay struct {
	// Name is "a" or "b": the relay's CloudWatch dimension.
	Name    string
	Group   awsautoscaling.AutoScalingGroup
	Address awsec2.CfnEIP
}

// relayID is the construct ID prefix of relay i: "Relay" for the first
// (the logical IDs of a stack of one relay), "RelayB" for the second.
func relayID(i int) string {
	if i == 0 {
		return "Relay"
	}
	return "Relay" + strings.ToUpper(relayName(i))
}

func relayName(i int) string { return string(rune('a' + i)) }

// relays are the ingest relays, cfg.Relays of them, one per Availability
// Zone, each an Auto Scaling group of one (replaced if it fails, or when
// its launch template changes) with its own address, running the relay
// binary under systemd (infra/boot). They share the bucket, the role and
// the security group.
func relays(stack awscdk.Stack, cfg Config, media awss3.Bucket) ([]Relay, awss3assets.Asset) {
	flowLogs := awslogs.NewLogGroup(stack, jsii.String("VpcFlowLogs"), &awslogs.LogGroupProps{
		Retention:     awslogs.RetentionDays_ONE_MONTH,
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	vpc := awsec2.NewVpc(stack, jsii.String("Vpc"), &awsec2.VpcProps{
		MaxAzs:      jsii.Number(2),
		NatGateways: jsii.Number(0),
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{{
			Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC, CidrMask: jsii.Number(24),
		}},
		FlowLogs: &map[string]*awsec2.FlowLogOptions{
			"Rejected": {TrafficType: awsec2.FlowLogTrafficType_REJECT, Destination: awsec2.FlowLogDestination_ToCloudWatchLogs(flowLogs, nil)},
		},
	})
	sg := awsec2.NewSecurityGroup(stack, jsii.String("IngestSecurity"), &awsec2.SecurityGroupProps{
		Vpc: vpc,
		// EC2 takes only [a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*] here.
		Description:      jsii.String("smoothcast ingest: encoder networks only"),
		AllowAllOutbound: jsii.Bool(true),
	})
	type port struct {
		p    awsec2.Port
		what string
	}
	ports := []port{{awsec2.Port_Tcp(jsii.Number(cfg.IngestPort)), "encoders (HTTPS)"}, {awsec2.Port_Tcp(jsii.Number(cfg.RTMPSPort)), "RTMPS encoders"}, {awsec2.Port_Udp(jsii.Number(cfg.SRTPort)), "SRT encoders"}}
	if cfg.PlainIngest {
		ports = []port{{awsec2.Port_Tcp(jsii.Number(cfg.IngestPort)), "encoders (HTTP)"}, {awsec2.Port_Tcp(jsii.Number(cfg.RTMPPort)), "RTMP encoders"}, {awsec2.Port_Udp(jsii.Number(cfg.SRTPort)), "SRT encoders"}}
	}
	for _, p := range cfg.IngestCIDRs {
		for _, port := range ports {
			sg.AddIngressRule(awsec2.Peer_Ipv4(jsii.String(p.String())), port.p, jsii.String(port.what), nil)
		}
	}
	stackName := *awscdk.Stack_Of(stack).StackName()
	region := *awscdk.Stack_Of(stack).Region()
	var addresses []awsec2.CfnEIP
	for i := range cfg.Relays {
		addresses = append(addresses, awsec2.NewCfnEIP(stack, jsii.String(strings.Replace(relayID(i), "Relay", "Ingest", 1)+"Address"), &awsec2.CfnEIPProps{Domain: jsii.String("vpc")}))
	}

	role := awsiam.NewRole(stack, jsii.String("RelayRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("ec2.amazonaws.com"), nil),
		Description: jsii.String("smoothcast relay: writes media, reads the channel clock"),
	})
	// Session Manager instead of SSH (no port 22 anywhere): its agent's
	// actions only. AmazonSSMManagedInstanceCore would also let the
	// instance read every parameter of the account.
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions: jsii.Strings("ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
			"ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel", "ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage",
			"ec2messages:FailMessage", "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply"),
		Resources: jsii.Strings("*"), // these actions have no resource type
	}))
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("s3:PutObject", "s3:PutObjectTagging"),
		Resources: jsii.Strings(*media.ArnForObjects(jsii.String(layout.LivePrefix + "*"))),
	}))
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		// The channel clock: the channel index and track states (read),
		// the clock record (read and write); the uploads record (read and
		// write).
		Actions:   jsii.Strings("s3:GetObject"),
		Resources: jsii.Strings(*media.ArnForObjects(jsii.String(layout.StatePrefix + "*"))),
	}))
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		// Of the state, the relay writes only the clock record and the
		// record of a channel's uploads (their init segments, for a relay
		// started again), with the tag that expires them with the channel
		// (layout.StateExpireTag).
		Actions: jsii.Strings("s3:PutObject", "s3:PutObjectTagging"),
		Resources: jsii.Strings(*media.ArnForObjects(jsii.String(layout.StatePrefix + "*/clock.json")),
			*media.ArnForObjects(jsii.String(layout.StatePrefix + "*/uploads.json"))),
	}))
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("s3:ListBucket"),
		Resources: jsii.Strings(*media.BucketArn()),
	}))
	parameterArn := func(name string) *string {
		return awscdk.Stack_Of(stack).FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("ssm"), Resource: jsii.String("parameter"), ResourceName: jsii.String(strings.TrimPrefix(name, "/")),
		})
	}
	readable := []*string{parameterArn(cfg.IngestSecretParameter)}
	certParameter := cfg.CertParameter(stackName)
	if !cfg.PlainIngest {
		readable = append(readable, parameterArn(certParameter), parameterArn(cfg.SRTPassphraseParameter))
	}
	if cfg.Encryption.KeyParameter != "" {
		readable = append(readable, parameterArn(cfg.Encryption.KeyParameter))
	}
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("ssm:GetParameter"),
		Resources: &readable,
	}))
	if api, ok := executeAPI(cfg.Encryption.SPEKEURL); ok {
		// The key server behind API Gateway with IAM authorization:
		// the relay may POST to its copyProtection resources only.
		role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Actions:   jsii.Strings("execute-api:Invoke"),
			Resources: jsii.Strings(api.arn),
		}))
	}
	if !cfg.PlainIngest && cfg.TLSCertParameter == "" {
		// The first relay keeps the certificate it made (put without
		// --overwrite: it cannot replace one).
		role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Actions:   jsii.Strings("ssm:PutParameter"),
			Resources: &[]*string{parameterArn(certParameter)},
		}))
	}
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:    jsii.Strings("cloudwatch:PutMetricData"),
		Resources:  jsii.Strings("*"), // PutMetricData has no resource: the namespace condition holds it
		Conditions: &map[string]interface{}{"StringEquals": map[string]interface{}{"cloudwatch:namespace": metricname.RelayNamespace}},
	}))
	// A replacement instance takes its relay's address over: these
	// addresses only, and only onto an instance of this stack's relay
	// groups. The instance's ID is not known until the group launches it,
	// so the instance ARN is a wildcard held to the tag the launch
	// template puts on the instance at launch (the role cannot tag
	// anything).
	var allocations []*string
	for _, a := range addresses {
		allocations = append(allocations, awscdk.Stack_Of(stack).FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("ec2"), Resource: jsii.String("elastic-ip"), ResourceName: a.AttrAllocationId(),
		}))
	}
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("ec2:AssociateAddress"),
		Resources: &allocations,
	}))
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions: jsii.Strings("ec2:AssociateAddress"),
		Resources: jsii.Strings(*awscdk.Stack_Of(stack).FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("ec2"), Resource: jsii.String("instance"), ResourceName: jsii.String("*"),
		})),
		Conditions: &map[string]interface{}{
			"StringEquals": map[string]interface{}{"aws:ResourceTag/" + RelayTagKey: stackName},
		},
	}))
	// A new instance ends its group's launch hook when the relay answers,
	// or tells the group it is unhealthy (boot.LaunchHook): its own group
	// only (the tag), found by its instance ID (Describe has no resource).
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("autoscaling:CompleteLifecycleAction", "autoscaling:SetInstanceHealth"),
		Resources: jsii.Strings("*"),
		Conditions: &map[string]interface{}{
			"StringEquals": map[string]interface{}{"autoscaling:ResourceTag/" + RelayTagKey: stackName},
		},
	}))
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("autoscaling:DescribeAutoScalingInstances"),
		Resources: jsii.Strings("*"),
	}))
	// The instance tells CloudFormation when the relay answers (the
	// group's creation and update policies wait for it).
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("cloudformation:SignalResource"),
		Resources: jsii.Strings(*awscdk.Aws_STACK_ID()),
	}))
	binary := awss3assets.NewAsset(stack, jsii.String("RelayBinary"), &awss3assets.AssetProps{
		Path: jsii.String(filepath.Join(cfg.Assets, "ingest", "smoothcast-ingest")),
	})
	// The relay's own object, not the whole assets bucket (every stack's
	// code in the account and region).
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("s3:GetObject"),
		Resources: jsii.Strings(*binary.Bucket().ArnForObjects(binary.S3ObjectKey())),
	}))

	var names []string
	for _, a := range addresses {
		names = append(names, *a.AttrPublicIp())
	}
	subnets := vpc.PublicSubnets()
	var out []Relay
	for i := range cfg.Relays {
		id, name := relayID(i), relayName(i)
		subnet := (*subnets)[i]
		lt := awsec2.NewLaunchTemplate(stack, jsii.String(id+"Template"), &awsec2.LaunchTemplateProps{
			MachineImage:  awsec2.MachineImage_LatestAmazonLinux2023(&awsec2.AmazonLinux2023ImageSsmParameterProps{CpuType: awsec2.AmazonLinuxCpuType_ARM_64}),
			InstanceType:  awsec2.NewInstanceType(jsii.String(cfg.InstanceType)),
			Role:          role,
			SecurityGroup: sg,
			UserData:      awsec2.UserData_ForLinux(nil),
			RequireImdsv2: jsii.Bool(true),
			BlockDevices: &[]*awsec2.BlockDevice{{
				DeviceName: jsii.String("/dev/xvda"),
				Volume:     awsec2.BlockDeviceVolume_Ebs(jsii.Number(8), &awsec2.EbsDeviceOptions{Encrypted: jsii.Bool(true), VolumeType: awsec2.EbsDeviceVolumeType_GP3}),
			}},
			AssociatePublicIpAddress: jsii.Bool(true),
		})
		// On the instance from its launch (the launch template's tag
		// specifications), which the AssociateAddress condition needs.
		awscdk.Tags_Of(lt).Add(jsii.String(RelayTagKey), jsii.String(stackName), nil)
		asg := awsautoscaling.NewAutoScalingGroup(stack, jsii.String(id), &awsautoscaling.AutoScalingGroupProps{
			Vpc:            vpc,
			VpcSubnets:     &awsec2.SubnetSelection{Subnets: &[]awsec2.ISubnet{subnet}},
			LaunchTemplate: lt,
			MinCapacity:    jsii.Number(1),
			MaxCapacity:    jsii.Number(1),
			HealthChecks:   awsautoscaling.HealthChecks_Ec2(&awsautoscaling.Ec2HealthChecksOptions{GracePeriod: awscdk.Duration_Minutes(jsii.Number(2))}),
			// A new launch template version (new user data: a new relay
			// asset, or a new AMI) replaces the instance: the old one
			// stops, the new one takes the address and must signal that
			// its relay answers, or the update rolls back (to an instance
			// of the old version, which takes the address in turn). A
			// group of one cannot keep an instance in service
			// (MinInstancesInService must be below MaxSize), so this
			// relay's ingest pauses for one boot (with two relays, the
			// other takes the redundant encoder's stream meanwhile: they
			// are updated one after the other); a replacing update would
			// shorten that pause but, rolled back after the new instance
			// took the address, would leave the old instance without it.
			UpdatePolicy: awsautoscaling.UpdatePolicy_RollingUpdate(&awsautoscaling.RollingUpdateOptions{
				MaxBatchSize:          jsii.Number(1),
				MinInstancesInService: jsii.Number(0),
				WaitOnResourceSignals: jsii.Bool(true),
				PauseTime:             awscdk.Duration_Minutes(jsii.Number(boot.SignalTimeout)),
			}),
			Signals: awsautoscaling.Signals_WaitForAll(&awsautoscaling.SignalsOptions{Timeout: awscdk.Duration_Minutes(jsii.Number(boot.SignalTimeout))}),
			// GroupInServiceInstances and the rest, every minute (free),
			// for the relay-down alarm and the dashboard.
			GroupMetrics: &[]awsautoscaling.GroupMetrics{awsautoscaling.GroupMetrics_All()},
		})
		// A replacement the group launches on its own (a failed health
		// check, smoothcast aws start) is in service once its relay
		// answers; a boot that fails abandons it, and the group launches
		// another.
		asg.AddLifecycleHook(jsii.String("Ready"), &awsautoscaling.BasicLifecycleHookProps{
			LifecycleHookName:   jsii.String(boot.LaunchHook),
			LifecycleTransition: awsautoscaling.LifecycleTransition_INSTANCE_LAUNCHING,
			DefaultResult:       awsautoscaling.DefaultResult_ABANDON,
			HeartbeatTimeout:    awscdk.Duration_Minutes(jsii.Number(boot.SignalTimeout)),
		})
		// Two relays are updated one after the other: the redundant
		// encoder's stream goes on through the one not being replaced.
		if i > 0 {
			asg.Node().AddDependency(out[i-1].Group)
		}
		// The boot script downloads the relay and reads its parameters
		// through the internet gateway: the instance must not boot before
		// the subnet's route to it exists (or a deleted stack's group
		// would outlive its route).
		asg.Node().AddDependency(subnet.InternetConnectivityEstablished())
		// And on the group, which propagates it to what it launches.
		awscdk.Tags_Of(asg).Add(jsii.String(RelayTagKey), jsii.String(stackName), &awscdk.TagProps{ApplyToLaunchedInstances: jsii.Bool(true)})
		r := boot.Relay{
			Name: name, Stack: stackName, Region: region,
			Resource:   *awscdk.Stack_Of(stack).GetLogicalId(asg.Node().DefaultChild().(awscdk.CfnElement)),
			BinaryURL:  *binary.S3ObjectUrl(),
			BinaryHash: *binary.AssetHash(), AllocationID: *addresses[i].AttrAllocationId(),
			Bucket: *media.BucketName(), SecretParameter: cfg.IngestSecretParameter,
			IngestPort: cfg.IngestPort, RTMPPort: cfg.RTMPPort, RTMPSPort: cfg.RTMPSPort, SRTPort: cfg.SRTPort,
			MetricsNamespace: metricname.RelayNamespace,
		}
		if e := cfg.Encryption; e.KeyParameter != "" || e.SPEKEURL != "" {
			api, _ := executeAPI(e.SPEKEURL)
			r.Keys = &boot.Keys{Parameter: e.KeyParameter, Scheme: e.Scheme, SPEKEURL: e.SPEKEURL, SPEKESystems: e.SPEKESystems,
				SPEKEChannels: e.SPEKEChannels, SigV4Region: api.region, RotateEvery: e.RotateEvery}
		}
		if !cfg.PlainIngest {
			r.TLS = &boot.TLS{CertParameter: certParameter, Generate: cfg.TLSCertParameter == "", Names: names, SRTPassphraseParameter: cfg.SRTPassphraseParameter}
		}
		script, err := boot.UserData(r)
		if err != nil {
			panic(err) // the configuration was checked: a bug
		}
		lt.UserData().AddCommands(jsii.String(script))
		nag(asg, "AwsSolutions-AS3", "Scaling notifications would tell of one instance replaced; the group's metrics and the relay alarms (RelayNotInService, RelayStatusCheckFailed) cover it.")
		out = append(out, Relay{Name: name, Group: asg, Address: addresses[i]})
	}
	nag(role, "AwsSolutions-IAM5", "Object access is scoped to the live/ and state/ prefixes; ec2:AssociateAddress names the stack's Elastic IPs, and instance/* only for instances tagged "+RelayTagKey+"="+stackName+
		" (the group's instance, whose ID is not known before launch; the role cannot tag); autoscaling:CompleteLifecycleAction and SetInstanceHealth only on groups so tagged; the Session Manager agent's actions, autoscaling:DescribeAutoScalingInstances and cloudwatch:PutMetricData have no resource type (PutMetricData is held to the namespace "+metricname.RelayNamespace+"); with a SPEKE key server behind API Gateway, execute-api:Invoke is POST on its stage in any account (the key provider's).")
	nag(sg, "AwsSolutions-EC23", "Ingress is limited to the configured encoder CIDRs (context ingestCidrs), on the ingest, RTMP(S) and SRT ports.")
	return out, binary
}

// nag suppresses a cdk-nag rule on a construct and its children, with
// the reason it does not apply.
func nag(c constructs.IConstruct, rule, reason string) {
	cdknag.NagSuppressions_AddResourceSuppressions(c, &[]*cdknag.NagPackSuppression{{Id: jsii.String(rule), Reason: jsii.String(reason)}}, jsii.Bool(true))
}

// keyServerAPI is a key server behind API Gateway: its region, and the
// ARN the relay role may invoke.
type keyServerAPI struct{ region, arn string }

// executeAPI reads an API Gateway URL
// (https://{api}.execute-api.{region}.amazonaws.com/{stage}/…): a key
// server the relay calls with SigV4. The ARN allows POST on the stage's
// resources in any account (the key provider's API is usually in its
// own).
func executeAPI(u string) (keyServerAPI, bool) {
	host, rest, ok := strings.Cut(strings.TrimPrefix(u, "https://"), "/")
	if !ok || !strings.HasPrefix(u, "https://") {
		return keyServerAPI{}, false
	}
	labels := strings.Split(host, ".")
	if len(labels) != 5 || labels[1] != "execute-api" || labels[3] != "amazonaws" || labels[4] != "com" {
		return keyServerAPI{}, false
	}
	stage, _, _ := strings.Cut(rest, "/")
	if stage == "" {
		return keyServerAPI{}, false
	}
	return keyServerAPI{region: labels[2], arn: fmt.Sprintf("arn:aws:execute-api:%s:*:%s/%s/POST/*", labels[2], labels[0], stage)}, true
}

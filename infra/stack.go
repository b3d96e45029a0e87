package main

import (
	"fmt"
	"path/filepath"
	"slices"
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

	"github.com/smoothcast/smoothcast/shared/layout"
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
	// Relay is the ingest relay's group, RelayBinary the relay's asset.
	Relay       awsautoscaling.AutoScalingGroup
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
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	s.Media = media

	s.Function, s.Failures = manifestFunction(stack, cfg, media)
	s.Distribution = distribution(stack, cfg, media, s.Function, logs)
	ingest, group, binary := relay(stack, cfg, media)
	s.Relay, s.RelayBinary = group, binary
	s.Monitoring = monitoring(stack, cfg, s.Function, s.Failures, group)

	for _, ch := range cfg.Channels {
		for _, o := range []struct{ name, path string }{{"Smooth", "Manifest"}, {"HLS", "master.m3u8"}, {"DASH", "manifest.mpd"}} {
			awscdk.NewCfnOutput(stack, jsii.String(outputID(ch, o.name)), &awscdk.CfnOutputProps{
				Description: jsii.String(o.name + " playback URL of channel " + ch),
				Value:       awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("https://"), s.Distribution.DistributionDomainName(), jsii.String("/live/" + ch + ".isml/" + o.path)}),
			})
		}
	}
	awscdk.NewCfnOutput(stack, jsii.String("IngestUrl"), &awscdk.CfnOutputProps{
		Description: jsii.String("Encoders push Smooth or CMAF here (POST or PUT, chunked), or upload DASH or HLS files under /live/{channel}.isml/; {channel} and {stream} are names of [A-Za-z0-9_-]"),
		Value: awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("http://"), ingest.AttrPublicIp(),
			jsii.String(":" + strconv.Itoa(cfg.IngestPort) + "/live/{channel}.isml/Streams({stream})")}),
	})
	awscdk.NewCfnOutput(stack, jsii.String("RtmpUrl"), &awscdk.CfnOutputProps{
		Description: jsii.String("RTMP encoders (OBS: Settings > Stream, Service Custom) take this as Server, and {channel}?secret={secret} as Stream Key"),
		Value: awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("rtmp://"), ingest.AttrPublicIp(),
			jsii.String(":" + strconv.Itoa(cfg.RTMPPort) + "/live")}),
	})
	if cfg.RTMPSCertParameter != "" {
		awscdk.NewCfnOutput(stack, jsii.String("RtmpsUrl"), &awscdk.CfnOutputProps{
			Description: jsii.String("RTMPS encoders take this as Server (with the host name the certificate names instead of the address), and {channel}?secret={secret} as Stream Key"),
			Value: awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("rtmps://"), ingest.AttrPublicIp(),
				jsii.String(":" + strconv.Itoa(cfg.RTMPSPort) + "/live")}),
		})
	}
	awscdk.NewCfnOutput(stack, jsii.String("SrtUrl"), &awscdk.CfnOutputProps{
		Description: jsii.String("SRT callers publish here (MPEG-TS; docs/encoders.md): the stream ID names the channel and carries its ingest secret"),
		Value: awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("srt://"), ingest.AttrPublicIp(),
			jsii.String(":" + strconv.Itoa(cfg.SRTPort) + "?streamid=#!::r={channel},m=publish,smoothcast_secret={secret}")}),
	})
	awscdk.NewCfnOutput(stack, jsii.String("PlayerUrl"), &awscdk.CfnOutputProps{
		Description: jsii.String("Give the local player page this base (smoothcast run, /player/?base=...)"),
		Value:       awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("https://"), s.Distribution.DistributionDomainName()}),
	})
	return s
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
	fn := awslambda.NewFunction(stack, jsii.String("Manifest"), &awslambda.FunctionProps{
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
	nag(fn, "AwsSolutions-IAM4", "The function's role uses AWSLambdaBasicExecutionRole for its own log group only.")
	nag(fn, "AwsSolutions-IAM5", "Object access is scoped to the live/ and state/ prefixes of the media bucket.")
	return fn, failures
}

// distribution is CloudFront in front of the bucket (fragments, init
// segments) and the Function URL (manifests, time).
func distribution(stack awscdk.Stack, cfg Config, media awss3.Bucket, fn awslambda.Function, logs awss3.Bucket) awscloudfront.Distribution {
	url := fn.AddFunctionUrl(&awslambda.FunctionUrlOptions{AuthType: awslambda.FunctionUrlAuthType_AWS_IAM})
	s3Origin := awscloudfrontorigins.S3BucketOrigin_WithOriginAccessControl(media, &awscloudfrontorigins.S3BucketOriginWithOACProps{
		OriginAccessLevels: &[]awscloudfront.AccessLevel{awscloudfront.AccessLevel_READ},
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
		OriginShieldRegion:  shield,
		OriginShieldEnabled: jsii.Bool(shield != nil),
	})
	manifests := awscloudfront.NewCachePolicy(stack, jsii.String("ManifestCache"), &awscloudfront.CachePolicyProps{
		Comment:                    jsii.String("smoothcast manifests: half a fragment; time-shift queries in the key"),
		MinTtl:                     awscdk.Duration_Seconds(jsii.Number(0)),
		DefaultTtl:                 awscdk.Duration_Seconds(jsii.Number(manifestTTL)),
		MaxTtl:                     awscdk.Duration_Seconds(jsii.Number(2)),
		QueryStringBehavior:        awscloudfront.CacheQueryStringBehavior_AllowList(jsii.String("start"), jsii.String("end")),
		HeaderBehavior:             awscloudfront.CacheHeaderBehavior_None(),
		CookieBehavior:             awscloudfront.CacheCookieBehavior_None(),
		EnableAcceptEncodingGzip:   jsii.Bool(true),
		EnableAcceptEncodingBrotli: jsii.Bool(true),
	})
	forward := awscloudfront.NewOriginRequestPolicy(stack, jsii.String("ManifestRequest"), &awscloudfront.OriginRequestPolicyProps{
		Comment:             jsii.String("smoothcast manifests: the viewer's host (absolute URLs) and the time-shift query"),
		QueryStringBehavior: awscloudfront.OriginRequestQueryStringBehavior_AllowList(jsii.String("start"), jsii.String("end")),
		HeaderBehavior:      awscloudfront.OriginRequestHeaderBehavior_AllowList(jsii.String(layout.ViewerHostHeader)),
		CookieBehavior:      awscloudfront.OriginRequestCookieBehavior_None(),
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
			"live/*/FragmentInfo(*": &fragmentInfoBehavior,
			"live/*/Manifest":       manifestBehavior,
			"live/*.m3u8":           manifestBehavior,
			"live/*.mpd":            manifestBehavior,
			"time":                  manifestBehavior,
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

// relay is the ingest relay: one Graviton instance in an Auto Scaling
// group of one (replaced if it fails, or when its launch template
// changes), with a fixed address, running the relay binary under
// systemd.
func relay(stack awscdk.Stack, cfg Config, media awss3.Bucket) (awsec2.CfnEIP, awsautoscaling.AutoScalingGroup, awss3assets.Asset) {
	vpc := awsec2.NewVpc(stack, jsii.String("Vpc"), &awsec2.VpcProps{
		MaxAzs:      jsii.Number(2),
		NatGateways: jsii.Number(0),
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{{
			Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC, CidrMask: jsii.Number(24),
		}},
		FlowLogs: &map[string]*awsec2.FlowLogOptions{
			"Rejected": {TrafficType: awsec2.FlowLogTrafficType_REJECT},
		},
	})
	sg := awsec2.NewSecurityGroup(stack, jsii.String("IngestSecurity"), &awsec2.SecurityGroupProps{
		Vpc:              vpc,
		Description:      jsii.String("smoothcast ingest: the encoders' networks only"),
		AllowAllOutbound: jsii.Bool(true),
	})
	for _, p := range cfg.IngestCIDRs {
		var peer awsec2.IPeer
		if p.Addr().Is6() {
			peer = awsec2.Peer_Ipv6(jsii.String(p.String()))
		} else {
			peer = awsec2.Peer_Ipv4(jsii.String(p.String()))
		}
		sg.AddIngressRule(peer, awsec2.Port_Tcp(jsii.Number(cfg.IngestPort)), jsii.String("encoders"), nil)
		sg.AddIngressRule(peer, awsec2.Port_Tcp(jsii.Number(cfg.RTMPPort)), jsii.String("RTMP encoders"), nil)
		if cfg.RTMPSCertParameter != "" {
			sg.AddIngressRule(peer, awsec2.Port_Tcp(jsii.Number(cfg.RTMPSPort)), jsii.String("RTMPS encoders"), nil)
		}
		sg.AddIngressRule(peer, awsec2.Port_Udp(jsii.Number(cfg.SRTPort)), jsii.String("SRT encoders"), nil)
	}
	eip := awsec2.NewCfnEIP(stack, jsii.String("IngestAddress"), &awsec2.CfnEIPProps{Domain: jsii.String("vpc")})

	role := awsiam.NewRole(stack, jsii.String("RelayRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("ec2.amazonaws.com"), nil),
		Description: jsii.String("smoothcast relay: writes media, reads the channel clock"),
		// Session Manager instead of SSH: no port 22 anywhere.
		ManagedPolicies: &[]awsiam.IManagedPolicy{awsiam.ManagedPolicy_FromAwsManagedPolicyName(jsii.String("AmazonSSMManagedInstanceCore"))},
	})
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
	parameters := []string{cfg.IngestSecretParameter}
	if cfg.RTMPSCertParameter != "" {
		parameters = append(parameters, cfg.RTMPSCertParameter) // the boot script reads it
	}
	var parameterArns []*string
	for _, p := range parameters {
		parameterArns = append(parameterArns, awscdk.Stack_Of(stack).FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("ssm"), Resource: jsii.String("parameter"), ResourceName: jsii.String(strings.TrimPrefix(p, "/")),
		}))
	}
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("ssm:GetParameter"),
		Resources: &parameterArns,
	}))
	// A replacement instance takes the ingest address over: this address
	// only, and only onto an instance of this stack's relay group. The
	// instance's ID is not known until the group launches it, so the
	// instance ARN is a wildcard held to the tag the launch template puts
	// on the instance at launch (the role cannot tag anything).
	stackName := *awscdk.Stack_Of(stack).StackName()
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions: jsii.Strings("ec2:AssociateAddress"),
		Resources: jsii.Strings(*awscdk.Stack_Of(stack).FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("ec2"), Resource: jsii.String("elastic-ip"), ResourceName: eip.AttrAllocationId(),
		})),
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
	// The instance tells CloudFormation when the relay answers (the
	// group's creation and update policies wait for it).
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("cloudformation:SignalResource"),
		Resources: jsii.Strings(*awscdk.Aws_STACK_ID()),
	}))
	binary := awss3assets.NewAsset(stack, jsii.String("RelayBinary"), &awss3assets.AssetProps{
		Path: jsii.String(filepath.Join(cfg.Assets, "ingest", "smoothcast-ingest")),
	})
	binary.GrantRead(role)

	ud := awsec2.UserData_ForLinux(nil)
	lt := awsec2.NewLaunchTemplate(stack, jsii.String("RelayTemplate"), &awsec2.LaunchTemplateProps{
		MachineImage:  awsec2.MachineImage_LatestAmazonLinux2023(&awsec2.AmazonLinux2023ImageSsmParameterProps{CpuType: awsec2.AmazonLinuxCpuType_ARM_64}),
		InstanceType:  awsec2.NewInstanceType(jsii.String(cfg.InstanceType)),
		Role:          role,
		SecurityGroup: sg,
		UserData:      ud,
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
	asg := awsautoscaling.NewAutoScalingGroup(stack, jsii.String("Relay"), &awsautoscaling.AutoScalingGroupProps{
		Vpc:            vpc,
		VpcSubnets:     &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PUBLIC},
		LaunchTemplate: lt,
		MinCapacity:    jsii.Number(1),
		MaxCapacity:    jsii.Number(1),
		HealthChecks:   awsautoscaling.HealthChecks_Ec2(&awsautoscaling.Ec2HealthChecksOptions{GracePeriod: awscdk.Duration_Minutes(jsii.Number(2))}),
		// A new launch template version (new user data: a new relay
		// asset, or a new AMI) replaces the instance: the old one stops,
		// the new one takes the address and must signal that its relay
		// answers, or the update rolls back (to an instance of the old
		// version, which takes the address in turn). A group of one
		// cannot keep an instance in service (MinInstancesInService must
		// be below MaxSize), so ingest pauses for one boot; a replacing
		// update would shorten that pause but, rolled back after the new
		// instance took the address, would leave the old instance
		// without it.
		UpdatePolicy: awsautoscaling.UpdatePolicy_RollingUpdate(&awsautoscaling.RollingUpdateOptions{
			MaxBatchSize:          jsii.Number(1),
			MinInstancesInService: jsii.Number(0),
			WaitOnResourceSignals: jsii.Bool(true),
			PauseTime:             awscdk.Duration_Minutes(jsii.Number(10)),
		}),
		Signals: awsautoscaling.Signals_WaitForAll(&awsautoscaling.SignalsOptions{Timeout: awscdk.Duration_Minutes(jsii.Number(10))}),
		// GroupInServiceInstances and the rest, every minute (free), for
		// the relay-down alarm and the dashboard.
		GroupMetrics: &[]awsautoscaling.GroupMetrics{awsautoscaling.GroupMetrics_All()},
	})
	// And on the group, which propagates it to what it launches.
	awscdk.Tags_Of(asg).Add(jsii.String(RelayTagKey), jsii.String(stackName), &awscdk.TagProps{ApplyToLaunchedInstances: jsii.Bool(true)})
	asgID := awscdk.Stack_Of(stack).GetLogicalId(asg.Node().DefaultChild().(awscdk.CfnElement))
	port := strconv.Itoa(cfg.IngestPort)
	// RTMP, and RTMPS with the certificate the boot script copies from
	// its parameter into a file only root reads; systemd hands the
	// relay's dynamic user a copy of it (LoadCredential, %d).
	rtmpFlags, rtmpsCert, rtmpsUnit := " -rtmp-addr :"+strconv.Itoa(cfg.RTMPPort), []string{}, []string{}
	if cfg.RTMPSCertParameter != "" {
		rtmpFlags += " -rtmps-addr :" + strconv.Itoa(cfg.RTMPSPort) + " -rtmps-cert %d/rtmps.pem -rtmps-key %d/rtmps.pem"
		rtmpsCert = []string{
			"install -d -m 700 /etc/smoothcast",
			"retry 30 aws ssm get-parameter --with-decryption --name " + cfg.RTMPSCertParameter + " --query Parameter.Value --output text > /etc/smoothcast/rtmps.pem",
			"chmod 600 /etc/smoothcast/rtmps.pem",
		}
		rtmpsUnit = []string{"LoadCredential=rtmps.pem:/etc/smoothcast/rtmps.pem"}
	}
	for _, c := range slices.Concat([]string{
		"set -eu",
		// The relay asset's hash: a new binary is a new launch template
		// version, so the update policy replaces the instance.
		"# smoothcast-ingest asset " + *binary.AssetHash(),
		"export AWS_DEFAULT_REGION=" + *awscdk.Stack_Of(stack).Region(),
		"TOKEN=$(curl -sX PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')",
		"IID=$(curl -sH \"X-aws-ec2-metadata-token: $TOKEN\" http://169.254.169.254/latest/meta-data/instance-id)",
		*awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("signal() { aws cloudformation signal-resource --stack-name " + stackName + " --logical-resource-id "), asgID,
			jsii.String(" --unique-id \"$IID\" --status \"$1\" || true; }")}),
		"trap 'signal FAILURE' ERR",
		"retry() { n=$1; shift; for i in $(seq \"$n\"); do \"$@\" && return 0; sleep 2; done; return 1; }",
		*awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("aws s3 cp "), binary.S3ObjectUrl(), jsii.String(" /usr/local/bin/smoothcast-ingest")}),
		"chmod 755 /usr/local/bin/smoothcast-ingest",
	}, rtmpsCert, []string{
		"cat > /etc/systemd/system/smoothcast-ingest.service <<'UNIT'",
		"[Unit]",
		"Description=smoothcast ingest relay",
		"After=network-online.target",
		"Wants=network-online.target",
		// Restart for ever (the default gives up after 5 starts in 10 s,
		// for instance while the secret parameter is missing).
		"StartLimitIntervalSec=0",
		"[Service]",
		"DynamicUser=yes",
		*awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("Environment=SMOOTHCAST_BUCKET="), media.BucketName()}),
		"Environment=AWS_REGION=" + *awscdk.Stack_Of(stack).Region(),
		"Environment=SMOOTHCAST_INGEST_SECRET_PARAMETER=" + cfg.IngestSecretParameter,
	}, rtmpsUnit, []string{
		"ExecStart=/usr/local/bin/smoothcast-ingest -addr :" + port + rtmpFlags + " -srt-addr :" + strconv.Itoa(cfg.SRTPort),
		"Restart=on-failure",
		"RestartSec=5",
		"LimitNOFILE=65536",
		"[Install]",
		"WantedBy=multi-user.target",
		"UNIT",
		"systemctl daemon-reload",
		"systemctl enable --now smoothcast-ingest",
		// The relay listens once it has read its secret: then it takes
		// the address over and tells CloudFormation it is up.
		"retry 60 curl -so /dev/null http://127.0.0.1:" + port + "/",
		*awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("retry 30 aws ec2 associate-address --allow-reassociation --instance-id \"$IID\" --allocation-id "), eip.AttrAllocationId()}),
		"signal SUCCESS",
	}) {
		ud.AddCommands(jsii.String(c))
	}
	nag(role, "AwsSolutions-IAM4", "AmazonSSMManagedInstanceCore gives operators Session Manager instead of SSH.")
	nag(role, "AwsSolutions-IAM5", "Object access is scoped to the live/ and state/ prefixes; the asset read comes from the CDK grant; ec2:AssociateAddress names the stack's Elastic IP, and instance/* only for instances tagged "+RelayTagKey+"="+stackName+" (the group's instance, whose ID is not known before launch; the role cannot tag).")
	nag(asg, "AwsSolutions-AS3", "Scaling notifications would tell of one instance replaced; the group's metrics and the relay alarms (RelayNotInService, RelayStatusCheckFailed) cover it.")
	nag(sg, "AwsSolutions-EC23", "Ingress is limited to the configured encoder CIDRs (context ingestCidrs), on the ingest, RTMP and RTMPS ports.")
	return eip, asg, binary
}

// nag suppresses a cdk-nag rule on a construct and its children, with
// the reason it does not apply.
func nag(c constructs.IConstruct, rule, reason string) {
	cdknag.NagSuppressions_AddResourceSuppressions(c, &[]*cdknag.NagPackSuppression{{Id: jsii.String(rule), Reason: jsii.String(reason)}}, jsii.Bool(true))
}

// Command infra is the CDK app of smoothcast: one stack with the media
// bucket, the manifest function and its Function URL, the CloudFront
// distribution, the ingest relay, and their alarms (an SNS topic) and
// CloudWatch dashboard. `go run ./infra` synthesizes it
// (CDK_OUTDIR says where) from the assets make build built; `cdk deploy`
// (cdk.json at the repository root, whose app builds them first) deploys
// it. Configuration comes from CDK context (see Config).
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	cfg, err := FromContext(func(key string) string {
		if v, ok := app.Node().TryGetContext(jsii.String(key)).(string); ok {
			return v
		}
		return ""
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := cfg.CheckAssets(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	props := awscdk.StackProps{
		Description: jsii.String("smoothcast: serverless live origin (Smooth Streaming ingest; Smooth, HLS and DASH out)"),
	}
	// The CLI sets the target account and region; offline synthesis
	// (go run ./infra) leaves the stack environment-agnostic.
	if account, region := os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION"); account != "" && region != "" {
		props.Env = &awscdk.Environment{Account: jsii.String(account), Region: jsii.String(region)}
	}
	NewOriginStack(app, "Smoothcast", &OriginStackProps{StackProps: props, Config: cfg})
	// Every resource is checked against AWS Solutions rules at synth.
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	app.Synth(nil)
}

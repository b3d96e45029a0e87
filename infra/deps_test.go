package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/smoothcast/smoothcast/internal/testtool"
)

const module = "github.com/smoothcast/smoothcast/"

// What each deployable may import (docs/architecture.md, "Packages"):
// the binaries that run on the hot path carry no CDK or jsii (the
// Lambda's size and cold start), nor the local stand-ins; the CDK app
// carries no function code and no S3 SDK (it shares only names with the
// function: shared/metricname, shared/layout). And each function's tests
// run without the other: what tests both lives in integration/.
func TestDependencies(t *testing.T) {
	gobin := testtool.Require(t, "go")
	for _, tc := range []struct {
		name      string
		pkgs      string
		tests     bool // the packages' tests' imports too
		forbidden func(dep string) bool
	}{
		{"the functions import no CDK or jsii", "./functions/...", false, func(dep string) bool {
			return strings.HasPrefix(dep, "github.com/aws/aws-cdk-go/") || strings.HasPrefix(dep, "github.com/aws/jsii-runtime-go") ||
				strings.HasPrefix(dep, "github.com/aws/constructs-go/") || strings.HasPrefix(dep, "github.com/cdklabs/")
		}},
		{"the functions import none of the local stand-ins", "./functions/...", false, func(dep string) bool {
			return strings.HasPrefix(dep, module+"local/")
		}},
		{"the CDK app imports no function", "./infra", false, func(dep string) bool {
			return strings.HasPrefix(dep, module+"functions/") || strings.HasPrefix(dep, module+"local/")
		}},
		{"the CDK app imports no S3 SDK", "./infra", false, func(dep string) bool {
			return dep == "github.com/aws/aws-sdk-go-v2/service/s3" || strings.HasPrefix(dep, "github.com/aws/aws-sdk-go-v2/service/s3/")
		}},
		{"the relay's tests run without the manifest function", "./functions/ingest/...", true, func(dep string) bool {
			return strings.HasPrefix(dep, module+"functions/manifest")
		}},
		{"the manifest function's tests run without the relay", "./functions/manifest/...", true, func(dep string) bool {
			return strings.HasPrefix(dep, module+"functions/ingest")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"list", "-deps"}
			if tc.tests {
				args = append(args, "-test")
			}
			cmd := exec.Command(gobin, append(args, tc.pkgs)...)
			cmd.Dir = ".."
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", tc.pkgs, err)
			}
			deps := strings.Fields(string(out))
			if len(deps) < 10 {
				t.Fatalf("go list -deps %s listed %d packages: %q", tc.pkgs, len(deps), deps)
			}
			for _, dep := range deps {
				if tc.forbidden(dep) {
					t.Errorf("go list -deps %s: %s", tc.pkgs, dep)
				}
			}
		})
	}
}

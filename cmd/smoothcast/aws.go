package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/smoothcast/smoothcast/internal/awsctl"
	"github.com/smoothcast/smoothcast/shared/config"
)

const awsUsage = `usage: smoothcast aws stop|start|status [-stack Smoothcast] [-region R] [-wait=true] [-timeout 15m]

Stops a deployed stack's relays between events, so that the channel costs
storage only, and starts them again; the ingest URLs do not change (each
relay keeps its Elastic IP).

  stop     silences the relays' alarms, scales each relay's Auto Scaling
           group to 0 (min, max and desired) and waits until no instance is
           left. Each relay stores the fragment in hand when its instance
           shuts down (SIGTERM): stop the encoders first.
  start    scales each group to 1, waits until its instance is InService (the
           relay is ready by then), enables the alarms' actions again and
           prints the ingest URLs. With -wait=false the alarms stay silenced
           until a start that waits.
  status   per relay: running, starting, stopping or stopped, its instance
           and zone; the alarms; the ingest URLs; with TLS ingest, the
           certificate's SHA-256 fingerprint as 'openssl x509 -fingerprint
           -sha256' prints it (never the key).

Credentials and region come from the AWS SDK's default chain (AWS_PROFILE,
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ~/.aws, SSO, an instance's
role); -region overrides the region. The caller needs
cloudformation:DescribeStacks, autoscaling:DescribeAutoScalingGroups and
UpdateAutoScalingGroup, cloudwatch:DescribeAlarms, DisableAlarmActions and
EnableAlarmActions, and for status with TLS ingest ssm:GetParameter (and
kms:Decrypt on the parameter's key).

Every flag can also be set as SMOOTHCAST_AWS_<FLAG> (upper case, '-' as '_').

Flags:
`

// awsOptions are the command line of `smoothcast aws`.
type awsOptions struct {
	command, stack, region string
	wait                   awsctl.Wait
}

// parseAWS reads `smoothcast aws`'s subcommand and flags; status takes no
// -wait nor -timeout.
func parseAWS(args []string, stderr io.Writer) (awsOptions, error) {
	if len(args) == 0 || (args[0] != "stop" && args[0] != "start" && args[0] != "status") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stderr, awsUsage)
			return awsOptions{}, flag.ErrHelp
		}
		fmt.Fprint(stderr, awsUsage)
		return awsOptions{}, errUsage
	}
	o := awsOptions{command: args[0]}
	fs := config.New("aws "+o.command, config.Prefix+"AWS_")
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), awsUsage); fs.PrintDefaults() }
	fs.StringVar(&o.stack, "stack", "Smoothcast", "the CloudFormation stack's name")
	fs.StringVar(&o.region, "region", "", "AWS region (empty: AWS_REGION or the profile's)")
	if o.command != "status" {
		fs.BoolVar(&o.wait.On, "wait", true, "wait until the relays are stopped (stop) or in service (start)")
		fs.DurationVar(&o.wait.Timeout, "timeout", 15*time.Minute, "how long to wait (0: no limit)")
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return o, err
	}
	return o, nil
}

// awsCmd runs `smoothcast aws`.
func awsCmd(args []string) error {
	o, err := parseAWS(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := awsctl.LoadConfig(ctx, o.region)
	if err != nil {
		return fmt.Errorf("stack %s: %w", o.stack, err)
	}
	c := awsctl.New(cfg, o.stack, os.Stdout)
	switch o.command {
	case "stop":
		return c.Stop(ctx, o.wait)
	case "start":
		return c.Start(ctx, o.wait)
	}
	st, err := c.Status(ctx)
	if st.Stack != "" {
		if werr := st.WriteText(os.Stdout); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

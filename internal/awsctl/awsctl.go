// Package awsctl stops and starts a deployed smoothcast stack's relays
// between events, and reports their state: what `smoothcast aws stop`,
// `start` and `status` do.
//
// It reads what it needs from the CloudFormation stack's outputs (the keys
// below), scales each relay's Auto Scaling group between 0 and 1, and
// silences the relays' alarms while the channel is stopped on purpose. A
// relay keeps its Elastic IP while stopped, so the ingest URLs do not
// change.
package awsctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
)

// The stack outputs this package reads.
const (
	// OutputRelayGroups lists the relays' Auto Scaling group names,
	// separated by commas.
	OutputRelayGroups = "RelayGroups"
	// OutputRelayAlarms lists the alarms that fire when a relay is down,
	// separated by commas: silenced while the channel is stopped.
	OutputRelayAlarms = "RelayAlarms"
	// OutputTLSCertificateParameter names the SSM parameter holding the
	// ingest's PEM certificate and key (absent when ingest is plain).
	OutputTLSCertificateParameter = "TlsCertificateParameter"
)

// IngestOutputs are the outputs that hold ingest URLs, in the order they
// are printed; those the stack lacks are left out.
var IngestOutputs = []string{"IngestUrl", "IngestUrlB", "RtmpUrl", "RtmpUrlB", "SrtUrl", "SrtUrlB"}

// DefaultPoll is how often a wait asks for the groups' state.
const DefaultPoll = 5 * time.Second

var (
	// ErrStackNotFound: no stack of that name in the region.
	ErrStackNotFound = errors.New("stack not found")
	// ErrGroupNotFound: a group the stack names does not exist.
	ErrGroupNotFound = errors.New("auto scaling group not found")
	// ErrTimeout: a wait ran out before the groups got where they should.
	ErrTimeout = errors.New("timed out")
)

// Clock is the time a wait reads and sleeps on (a fake one in tests).
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Control acts on one stack's relays.
type Control struct {
	// Stack is the CloudFormation stack's name.
	Stack string
	// Out receives the progress and the results, for a person to read.
	Out io.Writer
	// Poll is the interval between two looks at the groups (0: DefaultPoll).
	Poll time.Duration
	// Clock times the waits (nil: the system's).
	Clock Clock

	region string
	cfn    *cloudformation.Client
	asg    *autoscaling.Client
	cw     *cloudwatch.Client
	ssm    *ssm.Client
}

// New returns a Control of the named stack, whose clients use cfg (its
// region, credentials and, in tests, BaseEndpoint).
func New(cfg aws.Config, stack string, out io.Writer) *Control {
	return &Control{
		Stack: stack, Out: out, region: cfg.Region,
		cfn: cloudformation.NewFromConfig(cfg),
		asg: autoscaling.NewFromConfig(cfg),
		cw:  cloudwatch.NewFromConfig(cfg),
		ssm: ssm.NewFromConfig(cfg),
	}
}

// LoadConfig loads the SDK's default configuration (environment, shared
// files, SSO, the instance's role), with region when it is not empty,
// and checks that it has a region and credentials, with an error that
// says how to give each.
func LoadConfig(ctx context.Context, region string) (aws.Config, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return cfg, fmt.Errorf("AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return cfg, errors.New("no AWS region: give -region, or set AWS_REGION or the profile's region")
	}
	if cfg.Credentials == nil {
		return cfg, errors.New("no AWS credentials")
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return cfg, fmt.Errorf("no AWS credentials (set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, run `aws configure` or `aws sso login`, or run on an instance with a role): %w", err)
	}
	return cfg, nil
}

// Wait says whether stop and start wait for the groups, and how long.
type Wait struct {
	// On: wait until every group is stopped (or, for start, in service).
	On bool
	// Timeout bounds the wait (0: none).
	Timeout time.Duration
}

// stack is what the commands read from the stack's outputs.
type stack struct {
	outputs map[string]string
	groups  []string
	alarms  []string
}

// describeStack reads the stack's outputs.
func (c *Control) describeStack(ctx context.Context) (stack, error) {
	out, err := c.cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(c.Stack)})
	if err != nil {
		var api smithy.APIError
		if errors.As(err, &api) && api.ErrorCode() == "ValidationError" && strings.Contains(api.ErrorMessage(), "does not exist") {
			return stack{}, fmt.Errorf("stack %s in %s: %w (another name: -stack; another region: -region)", c.Stack, c.region, ErrStackNotFound)
		}
		return stack{}, fmt.Errorf("stack %s in %s: %w", c.Stack, c.region, err)
	}
	if len(out.Stacks) == 0 {
		return stack{}, fmt.Errorf("stack %s in %s: %w", c.Stack, c.region, ErrStackNotFound)
	}
	s := stack{outputs: map[string]string{}}
	for _, o := range out.Stacks[0].Outputs {
		s.outputs[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	s.groups, s.alarms = splitList(s.outputs[OutputRelayGroups]), splitList(s.outputs[OutputRelayAlarms])
	if len(s.groups) == 0 {
		return s, fmt.Errorf("stack %s (%s) has no %s output: deploy this version's stack first", c.Stack, out.Stacks[0].StackStatus, OutputRelayGroups)
	}
	return s, nil
}

// relays reads the stack's outputs and its relay groups.
func (c *Control) relays(ctx context.Context) (stack, []astypes.AutoScalingGroup, error) {
	s, err := c.describeStack(ctx)
	if err != nil {
		return s, nil, err
	}
	groups, err := c.describeGroups(ctx, s.groups)
	return s, groups, err
}

// splitList splits an output's comma-separated names, dropping blanks.
func splitList(v string) []string {
	var names []string
	for n := range strings.SplitSeq(v, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// describeGroups returns the named groups in that order, or an error
// naming those that do not exist.
func (c *Control) describeGroups(ctx context.Context, names []string) ([]astypes.AutoScalingGroup, error) {
	byName := map[string]astypes.AutoScalingGroup{}
	p := autoscaling.NewDescribeAutoScalingGroupsPaginator(c.asg, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: names})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("stack %s: relay groups %s: %w", c.Stack, strings.Join(names, ", "), err)
		}
		for _, g := range page.AutoScalingGroups {
			byName[aws.ToString(g.AutoScalingGroupName)] = g
		}
	}
	groups := make([]astypes.AutoScalingGroup, 0, len(names))
	var missing []string
	for _, n := range names {
		g, ok := byName[n]
		if !ok {
			missing = append(missing, n)
		}
		groups = append(groups, g)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("stack %s: relay group %s: %w (deleted by hand? redeploy the stack)", c.Stack, strings.Join(missing, ", "), ErrGroupNotFound)
	}
	return groups, nil
}

// State is a relay group's state, as status prints it.
type State string

// A group's states.
const (
	Stopped  State = "stopped"  // no instance, none wanted
	Stopping State = "stopping" // none wanted, one still shutting down
	Starting State = "starting" // one wanted, none in service yet
	Running  State = "running"  // as many in service as wanted
)

// live are the group's instances that are not gone.
func live(g astypes.AutoScalingGroup) []astypes.Instance {
	return slices.DeleteFunc(slices.Clone(g.Instances), func(i astypes.Instance) bool {
		return i.LifecycleState == astypes.LifecycleStateTerminated
	})
}

// stateOf tells a group's state from its desired capacity and instances.
func stateOf(g astypes.AutoScalingGroup) State {
	desired, inst := aws.ToInt32(g.DesiredCapacity), live(g)
	inService := 0
	for _, i := range inst {
		if i.LifecycleState == astypes.LifecycleStateInService {
			inService++
		}
	}
	switch {
	case desired == 0 && len(inst) == 0:
		return Stopped
	case desired == 0:
		return Stopping
	case int32(inService) >= desired:
		return Running
	default:
		return Starting
	}
}

// describe is a group's progress line: its state and each instance's.
func describe(g astypes.AutoScalingGroup) string {
	line := fmt.Sprintf("relay group %s: %s", aws.ToString(g.AutoScalingGroupName), stateOf(g))
	for _, i := range live(g) {
		line += fmt.Sprintf(", %s %s in %s", aws.ToString(i.InstanceId), i.LifecycleState, aws.ToString(i.AvailabilityZone))
	}
	return line
}

// scale sets every group to size (min = max = desired), skipping those
// already there; it returns whether any changed.
func (c *Control) scale(ctx context.Context, groups []astypes.AutoScalingGroup, size int32) (bool, error) {
	changed := false
	for _, g := range groups {
		name := aws.ToString(g.AutoScalingGroupName)
		if aws.ToInt32(g.MinSize) == size && aws.ToInt32(g.MaxSize) == size && aws.ToInt32(g.DesiredCapacity) == size {
			continue
		}
		_, err := c.asg.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
			AutoScalingGroupName: aws.String(name),
			MinSize:              aws.Int32(size), MaxSize: aws.Int32(size), DesiredCapacity: aws.Int32(size),
		})
		if err != nil {
			return changed, fmt.Errorf("stack %s: relay group %s: set to %d: %w", c.Stack, name, size, err)
		}
		fmt.Fprintf(c.Out, "relay group %s: min %d, max %d, desired %d\n", name, size, size, size)
		changed = true
	}
	return changed, nil
}

// waitFor polls the groups until every one is in state want, printing
// each group's line when it changes.
func (c *Control) waitFor(ctx context.Context, names []string, want State, w Wait) error {
	clock := c.Clock
	if clock == nil {
		clock = realClock{}
	}
	poll := c.Poll
	if poll <= 0 {
		poll = DefaultPoll
	}
	start := clock.Now()
	last := map[string]string{}
	for {
		groups, err := c.describeGroups(ctx, names)
		if err != nil {
			return err
		}
		var behind []string
		for _, g := range groups {
			name := aws.ToString(g.AutoScalingGroupName)
			if line := describe(g); line != last[name] {
				fmt.Fprintln(c.Out, line)
				last[name] = line
			}
			if stateOf(g) != want {
				behind = append(behind, last[name])
			}
		}
		if len(behind) == 0 {
			return nil
		}
		waited := clock.Now().Sub(start)
		if w.Timeout > 0 && waited >= w.Timeout {
			return fmt.Errorf("stack %s: not %s after %s: %s: %w", c.Stack, want, waited, strings.Join(behind, "; "), ErrTimeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stack %s: waiting for %s: %w", c.Stack, want, ctx.Err())
		case <-clock.After(poll):
		}
	}
}

// alarmActions enables or disables the actions of the relays' alarms.
func (c *Control) alarmActions(ctx context.Context, alarms []string, enable bool) error {
	if len(alarms) == 0 {
		return nil
	}
	var err error
	verb := "enabled"
	if enable {
		_, err = c.cw.EnableAlarmActions(ctx, &cloudwatch.EnableAlarmActionsInput{AlarmNames: alarms})
	} else {
		verb = "disabled"
		_, err = c.cw.DisableAlarmActions(ctx, &cloudwatch.DisableAlarmActionsInput{AlarmNames: alarms})
	}
	if err != nil {
		return fmt.Errorf("stack %s: alarms %s: actions not %s: %w", c.Stack, strings.Join(alarms, ", "), verb, err)
	}
	fmt.Fprintf(c.Out, "alarm actions %s: %s\n", verb, strings.Join(alarms, ", "))
	return nil
}

// Stop silences the relays' alarms, then scales every relay group to
// 0 and, when w.On, waits until no instance is left. Each relay stores
// the fragment in hand when its instance shuts down (SIGTERM).
func (c *Control) Stop(ctx context.Context, w Wait) error {
	s, groups, err := c.relays(ctx)
	if err != nil {
		return err
	}
	if err := c.alarmActions(ctx, s.alarms, false); err != nil {
		return err
	}
	changed, err := c.scale(ctx, groups, 0)
	if err != nil {
		return err
	}
	if !changed && !slices.ContainsFunc(groups, func(g astypes.AutoScalingGroup) bool { return len(live(g)) > 0 }) {
		fmt.Fprintf(c.Out, "stack %s: already stopped\n", c.Stack)
		return nil
	}
	fmt.Fprintln(c.Out, "Each relay stores the fragment in hand when its instance shuts down (SIGTERM); stop the encoders first, or their last seconds are cut.")
	if !w.On {
		fmt.Fprintf(c.Out, "stack %s: stopping (not waiting; `smoothcast aws status` shows when the relays are stopped)\n", c.Stack)
		return nil
	}
	if err := c.waitFor(ctx, s.groups, Stopped, w); err != nil {
		return err
	}
	fmt.Fprintf(c.Out, "stack %s: stopped; the ingest URLs stay as they are\n", c.Stack)
	return nil
}

// Start scales every relay group to 1 and, when w.On, waits until each
// has an instance in service (the relay is ready by then), enables the
// alarms' actions again and prints the ingest URLs. Without waiting, the
// alarms stay silenced (they would fire while the relays boot): a start
// that waits enables them.
func (c *Control) Start(ctx context.Context, w Wait) error {
	s, groups, err := c.relays(ctx)
	if err != nil {
		return err
	}
	if _, err := c.scale(ctx, groups, 1); err != nil {
		return err
	}
	if !w.On {
		fmt.Fprintf(c.Out, "stack %s: starting (not waiting); the alarms' actions stay disabled until `smoothcast aws start` runs with -wait\n", c.Stack)
		return nil
	}
	if err := c.waitFor(ctx, s.groups, Running, w); err != nil {
		return fmt.Errorf("%w (the alarms' actions stay disabled)", err)
	}
	if err := c.alarmActions(ctx, s.alarms, true); err != nil {
		return err
	}
	fmt.Fprintf(c.Out, "stack %s: running\n", c.Stack)
	writeURLs(c.Out, s.outputs)
	return nil
}

// writeURLs prints the ingest URLs among the outputs.
func writeURLs(w io.Writer, outputs map[string]string) {
	fmt.Fprintln(w, "ingest:")
	for _, k := range IngestOutputs {
		if v, ok := outputs[k]; ok {
			fmt.Fprintf(w, "  %-11s %s\n", k, v)
		}
	}
}

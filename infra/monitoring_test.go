package main

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/jsii-runtime-go"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/metricname"
)

// alarmOf is a metric alarm's properties: the metric, the comparison, the
// evaluation and the missing-data treatment.
func alarmOf(namespace, metric string, dims []any, stat string, period int, op string, threshold float64, periods int, missing string) obj {
	return obj{
		"Namespace": namespace, "MetricName": metric, "Dimensions": dims, "Statistic": stat, "Period": period,
		"ComparisonOperator": op, "Threshold": threshold, "EvaluationPeriods": periods, "DatapointsToAlarm": periods,
		"TreatMissingData": missing,
	}
}

func dim(name string, value any) obj { return obj{"Name": name, "Value": value} }

// The relay, the function and the on-failure queue each have an alarm
// that notifies the topic on ALARM and on OK, with the missing-data
// treatment its metric needs.
func TestAlarms(t *testing.T) {
	s := synth(t)
	topic := ref(logicalID(s.stack.Stack, s.stack.Monitoring.Topic))
	group := ref(logicalID(s.stack.Stack, s.stack.Relays[0].Group))
	fn := ref(logicalID(s.stack.Stack, s.stack.Function))
	queue := getAtt(logicalID(s.stack.Stack, s.stack.Failures), "QueueName")
	notifies := obj{"AlarmActions": []any{topic}, "OKActions": []any{topic}}
	for _, tc := range []struct {
		name  string
		props obj
	}{
		{"relay: no instance in service for 3 minutes (missing data breaches)",
			alarmOf("AWS/AutoScaling", "GroupInServiceInstances", []any{dim("AutoScalingGroupName", group)}, "Minimum", 60, "LessThanThreshold", 1, 3, "breaching")},
		{"relay: the instance fails its status checks (no instance, no data: the other alarm)",
			alarmOf("AWS/EC2", "StatusCheckFailed", []any{dim("AutoScalingGroupName", group)}, "Maximum", 60, "GreaterThanOrEqualToThreshold", 1, 2, "notBreaching")},
		{"relay: in service but publishing no health for 3 minutes (it crash-loops or hangs; missing data breaches)",
			alarmOf(metricname.RelayNamespace, metricname.MemoryBudget, []any{dim(metricname.DimensionRelay, "a")}, "SampleCount", 60, "LessThanThreshold", 1, 3, "breaching")},
		{"function errors",
			alarmOf("AWS/Lambda", "Errors", []any{dim("FunctionName", fn)}, "Sum", 60, "GreaterThanThreshold", 0, 1, "notBreaching")},
		{"events in the on-failure queue",
			alarmOf("AWS/SQS", "ApproximateNumberOfMessagesVisible", []any{dim("QueueName", queue)}, "Maximum", 60, "GreaterThanThreshold", 0, 1, "notBreaching")},
	} {
		props := tc.props
		for k, v := range notifies {
			props[k] = v
		}
		match(t, tc.name, hasProps(s, "AWS::CloudWatch::Alarm", props))
	}
	match(t, "the relay group collects its metrics every minute", hasProps(s, "AWS::AutoScaling::AutoScalingGroup", obj{
		"MetricsCollection": []any{obj{"Granularity": "1Minute"}},
	}))
}

// Per configured channel: Stale (no fragment published for
// staleAlarmSeconds; missing data breaches, since a stalled channel sends
// none), Ended (the newest event ended the stream; missing data keeps the
// state), and the composite Stalled, which alone notifies: Stale while
// Ended is OK.
func TestChannelAlarms(t *testing.T) {
	for _, tc := range []struct {
		name     string
		s        synthesized
		channels []string
		period   int
	}{
		{"default, 60 s", synth(t), []string{"demo", "news-1"}, 60},
		{"staleAlarmSeconds=30", variant(t), []string{"demo"}, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s
			topic := ref(logicalID(s.stack.Stack, s.stack.Monitoring.Topic))
			if len(s.stack.Monitoring.Channels) != len(tc.channels) {
				t.Fatalf("alarms for %d channels, want %v", len(s.stack.Monitoring.Channels), tc.channels)
			}
			for _, ch := range tc.channels {
				c, ok := s.stack.Monitoring.Channels[ch]
				if !ok {
					t.Fatalf("no alarms for channel %s", ch)
				}
				staleProps := alarmOf("Smoothcast", "FragmentsPublished", []any{dim("Channel", ch)}, "Sum", tc.period, "LessThanThreshold", 1, 1, "breaching")
				staleProps["AlarmActions"], staleProps["OKActions"] = absent(), absent()
				match(t, ch+": stale", hasProps(s, "AWS::CloudWatch::Alarm", staleProps))
				endedProps := alarmOf("Smoothcast", "StreamsEnded", []any{dim("Channel", ch)}, "Maximum", tc.period, "GreaterThanOrEqualToThreshold", 1, 1, "ignore")
				endedProps["AlarmActions"], endedProps["OKActions"] = absent(), absent()
				match(t, ch+": ended", hasProps(s, "AWS::CloudWatch::Alarm", endedProps))
				stale, ended := logicalID(s.stack.Stack, c.Stale), logicalID(s.stack.Stack, c.Ended)
				match(t, ch+": stalled while live", hasProps(s, "AWS::CloudWatch::CompositeAlarm", obj{
					"AlarmRule":    join(`(ALARM("`, getAtt(stale, "Arn"), `") AND OK("`, getAtt(ended, "Arn"), `"))`),
					"AlarmActions": []any{topic}, "OKActions": []any{topic},
				}))
			}
		})
	}
}

// The topic takes TLS only, lets this account's alarms publish, and
// mails alarmEmail when set.
func TestAlarmTopic(t *testing.T) {
	s := synth(t)
	topic := ref(logicalID(s.stack.Stack, s.stack.Monitoring.Topic))
	match(t, "the topic's policy", hasProps(s, "AWS::SNS::TopicPolicy", obj{
		"Topics": []any{topic},
		"PolicyDocument": like(obj{"Statement": with(
			like(obj{"Effect": "Deny", "Action": "sns:Publish", "Condition": obj{"Bool": obj{"aws:SecureTransport": "false"}}}),
			like(obj{"Effect": "Allow", "Action": "sns:Publish", "Principal": obj{"Service": "cloudwatch.amazonaws.com"}, "Resource": topic,
				"Condition": like(obj{"StringEquals": obj{"aws:SourceAccount": ref("AWS::AccountId")}})}),
		)}),
	}))
	match(t, "the e-mail subscription", hasProps(s, "AWS::SNS::Subscription", obj{"Protocol": "email", "Endpoint": "ops@example.com", "TopicArn": topic}))
	if n := len(variant(t).of("AWS::SNS::Subscription")); n != 0 {
		t.Errorf("%d subscriptions without alarmEmail, want none", n)
	}
}

// The dashboard shows the function's invocations, errors and duration,
// the EMF delay (p50, p99) and events, and the relay's in-service count
// and network.
func TestDashboard(t *testing.T) {
	s := synth(t)
	d := s.one(t, "AWS::CloudWatch::Dashboard", "Dashboard")
	if d.Properties["DashboardName"] != "Test" {
		t.Errorf("dashboard name %v, want the stack's", d.Properties["DashboardName"])
	}
	body := js(d.Properties["DashboardBody"])
	for _, want := range []string{
		`\"AWS/Lambda\",\"Invocations\"`, `\"AWS/Lambda\",\"Errors\"`, `\"AWS/Lambda\",\"Duration\"`,
		`\"Smoothcast\",\"FragmentToManifestDelay\"`, `\"stat\":\"p50\"`, `\"stat\":\"p99\"`,
		`\"Smoothcast\",\"EventsProcessed\"`, `\"Smoothcast\",\"FragmentsPublished\"`, `\"Smoothcast\",\"ConflictsRetried\"`, `\"Smoothcast\",\"Errors\"`,
		`\"AWS/AutoScaling\",\"GroupInServiceInstances\"`, `\"AWS/EC2\",\"NetworkIn\"`, `\"AWS/EC2\",\"NetworkOut\"`,
		`\"type\":\"alarm\"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("dashboard lacks %s", want)
		}
	}
	if len(s.of("AWS::CloudWatch::Dashboard")) != 1 {
		t.Error("want one dashboard")
	}
}

func TestMonitoringConfig(t *testing.T) {
	for _, tc := range []struct {
		ctx     map[string]string
		seconds int
		email   string
		err     string
	}{
		{nil, 60, "", ""},
		{map[string]string{"staleAlarmSeconds": "120", "alarmEmail": "ops@example.com"}, 120, "ops@example.com", ""},
		{map[string]string{"staleAlarmSeconds": "10"}, 10, "", ""},
		{map[string]string{"staleAlarmSeconds": "20"}, 0, "", "staleAlarmSeconds"},
		{map[string]string{"staleAlarmSeconds": "45"}, 0, "", "staleAlarmSeconds"},
		{map[string]string{"staleAlarmSeconds": "0"}, 0, "", "staleAlarmSeconds"},
		{map[string]string{"staleAlarmSeconds": "soon"}, 0, "", "staleAlarmSeconds"},
		{map[string]string{"staleAlarmSeconds": "172800"}, 0, "", "staleAlarmSeconds"},
		{map[string]string{"alarmEmail": "ops"}, 0, "", "alarmEmail"},
		{map[string]string{"alarmEmail": "a@b.com,c@d.com"}, 0, "", "alarmEmail"},
	} {
		c, err := FromContext(func(k string) string { return tc.ctx[k] })
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: error %v, want one naming %s", tc.ctx, err, tc.err)
			}
			continue
		}
		if err != nil || c.StaleAlarmSeconds != tc.seconds || c.AlarmEmail != tc.email {
			t.Errorf("%v: %d %q %v, want %d %q", tc.ctx, c.StaleAlarmSeconds, c.AlarmEmail, err, tc.seconds, tc.email)
		}
	}
}

// relayHealthStack is a stack of relayHealth's alarms and widgets for
// relays in the namespace Smoothcast/Relay (with a topic and a
// dashboard as monitoring makes them), checked by cdk-nag: its findings
// on them are returned.
func relayHealthStack(t *testing.T, relays ...string) (synthesized, []string) {
	t.Helper()
	testtool.Require(t, "node")
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	stack := awscdk.NewStack(app, jsii.String("RelayHealth"), nil)
	m := &Monitoring{
		Topic:     awssns.NewTopic(stack, jsii.String("Alarms"), &awssns.TopicProps{EnforceSSL: jsii.Bool(true)}),
		Dashboard: awscloudwatch.NewDashboard(stack, jsii.String("Dashboard"), nil),
	}
	relayHealth(stack, m, metricname.RelayNamespace, relays)
	tpl, findings := nagChecked(app, stack)
	return synthesized{tpl: tpl, stack: &OriginStack{Stack: stack, Monitoring: m}}, findings
}

// Per relay, four alarms on the health it publishes, each notifying on
// ALARM and OK and quiet on missing data (a relay stopped between
// events): store errors in 3 minutes running, the memory budget 80 %
// full for 3 minutes, a burst of refusals for credentials, streams
// without bytes for 2 minutes. No cdk-nag finding.
func TestRelayHealthAlarms(t *testing.T) {
	for _, relays := range [][]string{{"a"}, {"a", "b"}} {
		t.Run(strings.Join(relays, ","), func(t *testing.T) {
			s, findings := relayHealthStack(t, relays...)
			for _, f := range findings {
				t.Error(f)
			}
			topic := ref(logicalID(s.stack.Stack, s.stack.Monitoring.Topic))
			notifies := obj{"AlarmActions": []any{topic}, "OKActions": []any{topic}}
			stat := func(relay, name, statistic string) obj {
				return obj{"MetricStat": obj{"Metric": obj{"Namespace": "Smoothcast/Relay", "MetricName": name, "Dimensions": []any{dim("Relay", relay)}},
					"Period": 60, "Stat": statistic}, "ReturnData": false}
			}
			math := func(expression string, metrics obj, threshold float64, periods int) obj {
				all := []any{like(obj{"Expression": expression, "ReturnData": true})}
				for _, id := range slices.Sorted(maps.Keys(metrics)) { // the template's order
					m := metrics[id].(obj)
					m["Id"] = id
					all = append(all, like(m))
				}
				return obj{"Metrics": assertions.Match_ArrayEquals(&all), "ComparisonOperator": "GreaterThanOrEqualToThreshold",
					"Threshold": threshold, "EvaluationPeriods": periods, "DatapointsToAlarm": periods, "TreatMissingData": "notBreaching"}
			}
			if len(s.stack.Monitoring.Health) != len(relays) {
				t.Errorf("alarms for %d relays, want %v", len(s.stack.Monitoring.Health), relays)
			}
			for _, r := range relays {
				a, ok := s.stack.Monitoring.Health[r]
				if !ok || a.StoreErrors == nil || a.MemoryNearBudget == nil || a.AuthBurst == nil || a.NoBytesIn == nil {
					t.Errorf("relay %s: alarms %+v", r, a)
				}
				for _, tc := range []struct {
					name  string
					props obj
				}{
					{"store errors in each of 3 minutes",
						alarmOf("Smoothcast/Relay", "StoreErrors", []any{dim("Relay", r)}, "Sum", 60, "GreaterThanOrEqualToThreshold", 1, 3, "notBreaching")},
					{"20 refusals for credentials in a minute",
						alarmOf("Smoothcast/Relay", "IngestErrors", []any{dim("Reason", "auth"), dim("Relay", r)}, "Sum", 60, "GreaterThanOrEqualToThreshold", 20, 1, "notBreaching")},
					{"the memory budget 80 % full for 3 minutes",
						math("IF(budget > 0, 100 * used / budget, 0)", obj{"used": stat(r, "MemoryBudgetUsed", "Maximum"), "budget": stat(r, "MemoryBudget", "Maximum")}, 80, 3)},
					{"streams without bytes for 2 minutes",
						math("IF(streams > 0 AND bytes == 0, 1, 0)", obj{"streams": stat(r, "ActiveStreams", "Maximum"), "bytes": stat(r, "BytesIn", "Sum")}, 1, 2)},
				} {
					props := tc.props
					for k, v := range notifies {
						props[k] = v
					}
					match(t, r+": "+tc.name, hasProps(s, "AWS::CloudWatch::Alarm", props))
				}
			}
			match(t, "four alarms a relay", func() {
				s.tpl.ResourceCountIs(jsii.String("AWS::CloudWatch::Alarm"), jsii.Number(float64(4*len(relays))))
			})
		})
	}
}

// The dashboard shows, per relay, its alarms, bytes in and streams (by
// kind and in all), refusals by reason, store errors and retries, and
// memory.
func TestRelayHealthDashboard(t *testing.T) {
	s, _ := relayHealthStack(t, "a", "b")
	body := js(s.tpl.FindResources(jsii.String("AWS::CloudWatch::Dashboard"), nil))
	for _, r := range []string{"a", "b"} {
		for _, want := range []string{
			`\"title\":\"Relay ` + r + `: bytes in (per minute)\"`,
			`SEARCH('{\\\"Smoothcast/Relay\\\",Relay,Kind} MetricName=\\\"BytesIn\\\" Relay=\\\"` + r + `\\\"', 'Sum', 60)`,
			`SEARCH('{\\\"Smoothcast/Relay\\\",Relay,Kind} MetricName=\\\"ActiveStreams\\\" Relay=\\\"` + r + `\\\"', 'Maximum', 60)`,
			`SEARCH('{\\\"Smoothcast/Relay\\\",Relay,Reason} MetricName=\\\"IngestErrors\\\" Relay=\\\"` + r + `\\\"', 'Sum', 60)`,
			`\"Smoothcast/Relay\",\"BytesIn\",\"Relay\",\"` + r + `\"`,
			`\"Smoothcast/Relay\",\"ActiveStreams\",\"Relay\",\"` + r + `\"`,
			`\"Smoothcast/Relay\",\"StoreErrors\",\"Relay\",\"` + r + `\"`,
			`\"Smoothcast/Relay\",\"StoreRetries\",\"Relay\",\"` + r + `\"`,
			`\"Smoothcast/Relay\",\"MemoryBudgetUsed\",\"Relay\",\"` + r + `\"`,
			`\"Smoothcast/Relay\",\"MemoryBudget\",\"Relay\",\"` + r + `\"`,
			`\"Smoothcast/Relay\",\"ResidentMemory\",\"Relay\",\"` + r + `\"`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("relay %s: the dashboard lacks %s", r, want)
			}
		}
		a := s.stack.Monitoring.Health[r]
		for _, alarm := range []awscloudwatch.Alarm{a.StoreErrors, a.MemoryNearBudget, a.AuthBurst, a.NoBytesIn} {
			if id := logicalID(s.stack.Stack, alarm); !strings.Contains(body, `{"Fn::GetAtt":["`+id+`","Arn"]}`) {
				t.Errorf("relay %s: the dashboard's alarm widget lacks %s", r, id)
			}
		}
	}
	if !strings.Contains(body, "${PROP('Dim.Kind')}") || !strings.Contains(body, "${PROP('Dim.Reason')}") {
		t.Error("the searches' lines are not named by their dimension's value")
	}
}

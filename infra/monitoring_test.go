package main

import (
	"strings"
	"testing"
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

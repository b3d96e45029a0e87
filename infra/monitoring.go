package main

import (
	"fmt"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/jsii-runtime-go"

	"github.com/smoothcast/smoothcast/shared/metricname"
)

// Monitoring is the stack's alarms, the topic they notify and the
// dashboard.
type Monitoring struct {
	Topic     awssns.Topic
	Dashboard awscloudwatch.Dashboard
	// Relays has each relay's alarms; they, FunctionErrors and
	// FailedEvents notify the topic.
	Relays                       []RelayAlarms
	FunctionErrors, FailedEvents awscloudwatch.Alarm
	// Channels has, per configured channel, the alarm that notifies
	// (Stalled) and the two it combines.
	Channels map[string]ChannelAlarms
	// Health has, per relay (its Relay dimension's value), the alarms
	// on the health it publishes (relayHealth).
	Health map[string]RelayHealthAlarms
}

// RelayAlarms watch one relay: InService is in ALARM when its group has
// no instance in service (a relay stopped on purpose too, which is why
// `smoothcast aws stop` silences it), StatusCheck when its instance
// fails EC2's status checks.
type RelayAlarms struct {
	Name                   string
	InService, StatusCheck awscloudwatch.Alarm
	// Silent is in ALARM when the relay publishes no health (a relay
	// stopped on purpose too: smoothcast aws stop silences it).
	Silent awscloudwatch.Alarm
	// inService is the metric InService watches, for the dashboard.
	inService awscloudwatch.Metric
}

// ChannelAlarms watch one channel. Stale is in ALARM when no fragment was
// published for StaleAlarmSeconds; Ended when the newest event was an end
// of stream (and, keeping its state through silence, until the channel
// publishes again). Stalled, the one that notifies, is Stale while the
// channel is live: Stale in ALARM and Ended OK.
type ChannelAlarms struct {
	Stale, Ended awscloudwatch.Alarm
	Stalled      awscloudwatch.CompositeAlarm
}

// emfMetric is one of the manifest function's EMF metrics (namespace
// metricname.Namespace): per channel, or the total over channels
// (the dimension set without dimensions) when channel is empty.
func emfMetric(name, channel, statistic string, period awscdk.Duration) awscloudwatch.Metric {
	var dims *map[string]*string
	if channel != "" {
		dims = &map[string]*string{metricname.DimensionChannel: jsii.String(channel)}
	}
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:     jsii.String(metricname.Namespace),
		MetricName:    jsii.String(name),
		DimensionsMap: dims,
		Statistic:     jsii.String(statistic),
		Period:        period,
	})
}

// labeled is m with a legend label, for the dashboard (an alarm on a
// labeled metric becomes a metric-math alarm).
func labeled(m awscloudwatch.Metric, label string) awscloudwatch.IMetric {
	return m.With(&awscloudwatch.MetricOptions{Label: jsii.String(label)})
}

// groupMetric is a metric of the relay's group: the group's own
// (AWS/AutoScaling, with group metrics collection on) or its instances'
// (AWS/EC2 aggregates by group, so the alarm follows a replaced instance).
func groupMetric(namespace, name, statistic string, group awsautoscaling.AutoScalingGroup, period awscdk.Duration) awscloudwatch.Metric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:     jsii.String(namespace),
		MetricName:    jsii.String(name),
		DimensionsMap: &map[string]*string{"AutoScalingGroupName": group.AutoScalingGroupName()},
		Statistic:     jsii.String(statistic),
		Period:        period,
	})
}

// monitoring defines the alarms (relay down, a live channel without
// fragments, function errors, failed events), the SNS topic they notify
// (with cfg.AlarmEmail subscribed) and a dashboard.
func monitoring(stack awscdk.Stack, cfg Config, fn awslambda.Function, failures awssqs.Queue, relays []Relay) *Monitoring {
	m := &Monitoring{Channels: map[string]ChannelAlarms{}}
	m.Topic = awssns.NewTopic(stack, jsii.String("Alarms"), &awssns.TopicProps{
		DisplayName: jsii.String("smoothcast alarms"),
		EnforceSSL:  jsii.Bool(true),
	})
	// The SSL policy replaces the topic's default one, which let this
	// account's CloudWatch alarms publish: allow them again, this
	// account's only.
	m.Topic.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudWatchAlarmsPublish"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("sns:Publish"),
		Resources:  jsii.Strings(*m.Topic.TopicArn()),
		Conditions: &map[string]interface{}{
			"StringEquals": map[string]interface{}{"aws:SourceAccount": awscdk.Aws_ACCOUNT_ID()},
			"ArnLike": map[string]interface{}{"aws:SourceArn": awscdk.Stack_Of(stack).FormatArn(&awscdk.ArnComponents{
				Service: jsii.String("cloudwatch"), Resource: jsii.String("alarm"), ResourceName: jsii.String("*"), ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME,
			})},
		},
	}))
	nag(m.Topic, "AwsSolutions-SNS2", "Alarm notifications carry no secrets, and CloudWatch cannot publish to a topic encrypted with the AWS-managed SNS key; a customer-managed key would cost more than the alarms.")
	if cfg.AlarmEmail != "" {
		m.Topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(cfg.AlarmEmail), nil))
	}
	notify := awscloudwatchactions.NewSnsAction(m.Topic)
	alarm := func(id, description string, metric awscloudwatch.IMetric, op awscloudwatch.ComparisonOperator, threshold float64, periods int, missing awscloudwatch.TreatMissingData) awscloudwatch.Alarm {
		return newAlarm(stack, id, description, metric, op, threshold, periods, missing)
	}
	minute := awscdk.Duration_Minutes(jsii.Number(1))

	// Relay down: no instance in service for three minutes (a deploy that
	// replaces the instance pauses ingest for about one boot, which this
	// rides out). Missing data breaches: a group that reports nothing
	// cannot show that the relay is up.
	for i, r := range relays {
		id, which := relayID(i), ""
		if len(relays) > 1 {
			which = " " + r.Name
		}
		a := RelayAlarms{Name: r.Name, inService: groupMetric("AWS/AutoScaling", "GroupInServiceInstances", "Minimum", r.Group, minute)}
		a.InService = alarm(id+"NotInService", "smoothcast: the ingest relay"+which+" has no instance in service (encoders cannot push to it)",
			a.inService, awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD, 1, 3, awscloudwatch.TreatMissingData_BREACHING)
		// Or in service but failing its status checks (the group
		// replaces it after its EC2 health check). No instance, no data:
		// the alarm above covers that.
		a.StatusCheck = alarm(id+"StatusCheckFailed", "smoothcast: the ingest relay"+which+"'s instance fails its EC2 status checks",
			groupMetric("AWS/EC2", "StatusCheckFailed", "Maximum", r.Group, minute),
			awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD, 1, 2, awscloudwatch.TreatMissingData_NOT_BREACHING)
		// A relay whose instance is in service but which publishes no
		// health (it crash-loops, or hangs) is down too. It publishes a
		// MemoryBudget every minute while it runs: missing data breaches.
		a.Silent = alarm(id+"Silent", "smoothcast: the ingest relay"+which+" has published no health for 3 minutes (it crash-loops or hangs: journalctl -u smoothcast-ingest through Session Manager)",
			awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
				Namespace: jsii.String(metricname.RelayNamespace), MetricName: jsii.String(metricname.MemoryBudget),
				DimensionsMap: &map[string]*string{metricname.DimensionRelay: jsii.String(r.Name)},
				Statistic:     jsii.String("SampleCount"), Period: minute,
			}), awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD, 1, 3, awscloudwatch.TreatMissingData_BREACHING)
		m.Relays = append(m.Relays, a)
	}
	// No invocation, no error: missing data is fine.
	m.FunctionErrors = alarm("ManifestFunctionErrors", "smoothcast: the manifest function failed invocations (Lambda retries S3 events twice, then queues them)",
		fn.MetricErrors(&awscloudwatch.MetricOptions{Statistic: jsii.String("Sum"), Period: minute}),
		awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD, 0, 1, awscloudwatch.TreatMissingData_NOT_BREACHING)
	// SQS stops reporting an idle empty queue: missing data is fine.
	m.FailedEvents = alarm("ManifestFailedEvents", "smoothcast: S3 events the manifest function gave up on wait in the on-failure queue (their fragments are not in the manifests)",
		failures.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: minute}),
		awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD, 0, 1, awscloudwatch.TreatMissingData_NOT_BREACHING)
	notifying := []awscloudwatch.Alarm{m.FunctionErrors, m.FailedEvents}
	for _, r := range m.Relays {
		notifying = append(notifying, r.InService, r.StatusCheck, r.Silent)
	}
	for _, a := range notifying {
		a.AddAlarmAction(notify)
		a.AddOkAction(notify)
	}

	// A live channel without fragments. The function publishes
	// FragmentsPublished only when an event comes, so a stalled encoder
	// (or relay, or function) shows as missing data, not as zeros: the
	// Stale alarm must treat missing data as breaching, or it would never
	// fire for the failure it is for. An ended channel is silent too, and
	// one never started since the deploy as well; CloudWatch cannot tell
	// them apart from a stall by FragmentsPublished alone, so the Ended
	// alarm remembers how the channel's newest events went: it reads
	// StreamsEnded (1 for an end of stream, 0 for every other event) and
	// ignores missing data, so that it keeps its state through any
	// silence: ALARM after an end of stream, OK once the channel publishes
	// again, INSUFFICIENT_DATA before its first event. The composite
	// Stalled alarm notifies when Stale is in ALARM while Ended is OK:
	// the channel was live and stopped without ending its stream (a
	// dropped connection counts as a stall). An ended or never-started
	// channel does not alarm.
	stale := awscdk.Duration_Seconds(jsii.Number(float64(cfg.StaleAlarmSeconds)))
	for _, ch := range cfg.Channels {
		var c ChannelAlarms
		c.Stale = alarm("ChannelStale-"+ch, fmt.Sprintf("smoothcast: channel %s published no fragment for %d s (see ChannelStalled-%s, which notifies only while the channel is live)", ch, cfg.StaleAlarmSeconds, ch),
			emfMetric(metricname.FragmentsPublished, ch, "Sum", stale), awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD, 1, 1,
			awscloudwatch.TreatMissingData_BREACHING)
		c.Ended = alarm("ChannelEnded-"+ch, "smoothcast: channel "+ch+"'s encoder ended the stream (not a fault: it keeps ChannelStalled-"+ch+" quiet)",
			emfMetric(metricname.StreamsEnded, ch, "Maximum", stale), awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD, 1, 1,
			awscloudwatch.TreatMissingData_IGNORE)
		c.Stalled = awscloudwatch.NewCompositeAlarm(stack, jsii.String("ChannelStalled-"+ch), &awscloudwatch.CompositeAlarmProps{
			AlarmDescription: jsii.String(fmt.Sprintf("smoothcast: live channel %s has published no fragment for %d s without ending its stream (encoder, relay or manifest function stalled)", ch, cfg.StaleAlarmSeconds)),
			AlarmRule: awscloudwatch.AlarmRule_AllOf(
				awscloudwatch.AlarmRule_FromAlarm(c.Stale, awscloudwatch.AlarmState_ALARM),
				awscloudwatch.AlarmRule_FromAlarm(c.Ended, awscloudwatch.AlarmState_OK)),
		})
		c.Stalled.AddAlarmAction(notify)
		c.Stalled.AddOkAction(notify)
		m.Channels[ch] = c
	}

	m.Dashboard = dashboard(stack, cfg, fn, failures, relays, m)
	var names []string
	for _, r := range relays {
		names = append(names, r.Name)
	}
	relayHealth(stack, m, metricname.RelayNamespace, names)
	return m
}

// newAlarm is a metric alarm that fires when periods evaluation periods
// in a row breach threshold (the stack's alarms all count every period).
func newAlarm(stack awscdk.Stack, id, description string, metric awscloudwatch.IMetric, op awscloudwatch.ComparisonOperator, threshold float64, periods int, missing awscloudwatch.TreatMissingData) awscloudwatch.Alarm {
	return awscloudwatch.NewAlarm(stack, jsii.String(id), &awscloudwatch.AlarmProps{
		AlarmDescription:   jsii.String(description),
		Metric:             metric,
		ComparisonOperator: op,
		Threshold:          jsii.Number(threshold),
		EvaluationPeriods:  jsii.Number(float64(periods)),
		DatapointsToAlarm:  jsii.Number(float64(periods)),
		TreatMissingData:   missing,
	})
}

// dashboard shows the function (invocations, errors, duration), the EMF
// metrics (fragment-to-manifest delay, events), the relay (in service,
// network) and the alarms.
func dashboard(stack awscdk.Stack, cfg Config, fn awslambda.Function, failures awssqs.Queue, relays []Relay, m *Monitoring) awscloudwatch.Dashboard {
	minute := awscdk.Duration_Minutes(jsii.Number(1))
	graph := func(title string, left, right []awscloudwatch.IMetric) awscloudwatch.IWidget {
		p := &awscloudwatch.GraphWidgetProps{Title: jsii.String(title), Width: jsii.Number(8), Height: jsii.Number(6), Left: &left}
		if right != nil {
			p.Right = &right
		}
		return awscloudwatch.NewGraphWidget(p)
	}
	fiveMinutes := awscdk.Duration_Minutes(jsii.Number(5)) // basic EC2 monitoring
	perChannel := []awscloudwatch.IMetric{}
	var alarms []awscloudwatch.IAlarm
	for _, ch := range cfg.Channels {
		perChannel = append(perChannel, labeled(emfMetric(metricname.FragmentsPublished, ch, "Sum", minute), ch))
		alarms = append(alarms, m.Channels[ch].Stalled)
	}
	var inService, network []awscloudwatch.IMetric
	for i, r := range m.Relays {
		alarms = append(alarms, r.InService, r.StatusCheck, r.Silent)
		inService = append(inService, labeled(r.inService, "relay "+r.Name+" in service"))
		network = append(network, labeled(groupMetric("AWS/EC2", "NetworkIn", "Sum", relays[i].Group, fiveMinutes), "relay "+r.Name+" in"),
			labeled(groupMetric("AWS/EC2", "NetworkOut", "Sum", relays[i].Group, fiveMinutes), "relay "+r.Name+" out"))
	}
	alarms = append(alarms, m.FunctionErrors, m.FailedEvents)
	fnOpts := func(stat string) *awscloudwatch.MetricOptions {
		return &awscloudwatch.MetricOptions{Statistic: jsii.String(stat), Period: minute, Label: jsii.String(stat)}
	}
	return awscloudwatch.NewDashboard(stack, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
		DashboardName:   awscdk.Stack_Of(stack).StackName(),
		DefaultInterval: awscdk.Duration_Hours(jsii.Number(3)),
		Widgets: &[]*[]awscloudwatch.IWidget{
			{awscloudwatch.NewAlarmStatusWidget(&awscloudwatch.AlarmStatusWidgetProps{Title: jsii.String("Alarms"), Alarms: &alarms, Width: jsii.Number(24), Height: jsii.Number(3)})},
			{
				graph("Manifest function: invocations and errors",
					[]awscloudwatch.IMetric{fn.MetricInvocations(fnOpts("Sum")), fn.MetricErrors(fnOpts("Sum")), fn.MetricThrottles(fnOpts("Sum"))}, nil),
				graph("Manifest function: duration (ms)",
					[]awscloudwatch.IMetric{fn.MetricDuration(fnOpts("p50")), fn.MetricDuration(fnOpts("p99")), fn.MetricDuration(fnOpts("Maximum"))}, nil),
				graph("Fragment to manifest delay (ms)",
					[]awscloudwatch.IMetric{labeled(emfMetric(metricname.FragmentToManifestDelay, "", "p50", minute), "p50"),
						labeled(emfMetric(metricname.FragmentToManifestDelay, "", "p99", minute), "p99")}, nil),
			},
			{
				graph("Events",
					[]awscloudwatch.IMetric{labeled(emfMetric(metricname.EventsProcessed, "", "Sum", minute), "events"),
						labeled(emfMetric(metricname.FragmentsPublished, "", "Sum", minute), "fragments published"),
						labeled(emfMetric(metricname.ConflictsRetried, "", "Sum", minute), "conflicts retried"),
						labeled(emfMetric(metricname.Errors, "", "Sum", minute), "errors")},
					[]awscloudwatch.IMetric{failures.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: minute, Label: jsii.String("on-failure queue")})}),
				graph("Fragments published per channel ("+strconv.Itoa(len(cfg.Channels))+" configured)", perChannel, nil),
				graph("Ingest relays: in service; network (bytes per 5 minutes)", inService, network),
			},
		},
	})
}

// RelayHealthAlarms watch one relay's health, as the relay publishes it
// (functions/ingest/cloudwatch, metric names in shared/metricname). Each
// notifies the topic; missing data (a relay stopped between events)
// breaches none.
type RelayHealthAlarms struct {
	// StoreErrors: store requests failed in each of 3 minutes running
	// (S3 refuses or times out: fragments are at risk).
	StoreErrors awscloudwatch.Alarm
	// MemoryNearBudget: the relay's buffers held MemoryAlarmPercent of
	// their budget or more for 3 minutes (next, pushes get 503).
	MemoryNearBudget awscloudwatch.Alarm
	// AuthBurst: AuthBurstPerMinute or more requests refused for their
	// credentials in a minute (someone guessing the secret, or a fleet
	// of encoders with the old one).
	AuthBurst awscloudwatch.Alarm
	// NoBytesIn: streams in progress but no byte received for 2 minutes
	// running (the relay, or its encoders, hang).
	NoBytesIn awscloudwatch.Alarm
}

// Thresholds of the relay alarms.
const (
	// MemoryAlarmPercent is how full the relay's memory budget may get
	// before RelayMemoryNearBudget.
	MemoryAlarmPercent = 80
	// AuthBurstPerMinute is how many refusals for credentials in a
	// minute make RelayAuthBurst (an encoder that retries with a wrong
	// secret tries a few times a minute).
	AuthBurstPerMinute = 20
)

// relayHealth adds the alarms and dashboard widgets on the health the
// relays publish in namespace (their -cloudwatch-namespace), one set per
// relay (relays: their -cloudwatch-relay values), to m: the alarms notify
// m.Topic and are in m.Relays, the widgets go below m.Dashboard's.
func relayHealth(stack awscdk.Stack, m *Monitoring, namespace string, relays []string) {
	minute := awscdk.Duration_Minutes(jsii.Number(1))
	metric := func(relay, name, statistic string) awscloudwatch.Metric {
		return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace: jsii.String(namespace), MetricName: jsii.String(name),
			DimensionsMap: &map[string]*string{metricname.DimensionRelay: jsii.String(relay)},
			Statistic:     jsii.String(statistic), Period: minute,
		})
	}
	// search charts a metric by its second dimension (Kind, Reason): a
	// line for each value the relay publishes.
	search := func(relay, name, dimension, statistic string) awscloudwatch.IMetric {
		return awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression: jsii.String(fmt.Sprintf(`SEARCH('{"%s",%s,%s} MetricName="%s" %s="%s"', '%s', 60)`,
				namespace, metricname.DimensionRelay, dimension, name, metricname.DimensionRelay, relay, statistic)),
			UsingMetrics: &map[string]awscloudwatch.IMetric{}, Period: minute,
			Label: jsii.String("${PROP('Dim." + dimension + "')}"), // a line per value, named by it
		})
	}
	notify := awscloudwatchactions.NewSnsAction(m.Topic)
	alarm := func(id, description string, metric awscloudwatch.IMetric, threshold float64, periods int) awscloudwatch.Alarm {
		a := newAlarm(stack, id, description, metric, awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD, threshold, periods,
			awscloudwatch.TreatMissingData_NOT_BREACHING)
		a.AddAlarmAction(notify)
		a.AddOkAction(notify)
		return a
	}
	m.Health = map[string]RelayHealthAlarms{}
	var alarms []awscloudwatch.IAlarm
	var rows []awscloudwatch.IWidget
	graph := func(title string, width int, left, right []awscloudwatch.IMetric) awscloudwatch.IWidget {
		p := &awscloudwatch.GraphWidgetProps{Title: jsii.String(title), Width: jsii.Number(float64(width)), Height: jsii.Number(6), Left: &left}
		if right != nil {
			p.Right = &right
		}
		return awscloudwatch.NewGraphWidget(p)
	}
	for _, r := range relays {
		used, budget := metric(r, metricname.MemoryBudgetUsed, "Maximum"), metric(r, metricname.MemoryBudget, "Maximum")
		streams, bytesIn := metric(r, metricname.ActiveStreams, "Maximum"), metric(r, metricname.BytesIn, "Sum")
		a := RelayHealthAlarms{
			StoreErrors: alarm("RelayStoreErrors-"+r, "smoothcast: relay "+r+"'s store requests failed in each of 3 minutes (S3 refuses or times out: fragments may be lost; see the relay's /status)",
				metric(r, metricname.StoreErrors, "Sum"), 1, 3),
			MemoryNearBudget: alarm("RelayMemoryNearBudget-"+r, fmt.Sprintf("smoothcast: relay %s's buffers held %d %% of its memory budget or more for 3 minutes (past it, pushes get 503: raise -memory-budget or the instance type)", r, MemoryAlarmPercent),
				awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
					Expression:   jsii.String("IF(budget > 0, 100 * used / budget, 0)"),
					UsingMetrics: &map[string]awscloudwatch.IMetric{"used": used, "budget": budget},
					Period:       minute, Label: jsii.String("budget used (%)"),
				}), MemoryAlarmPercent, 3),
			AuthBurst: alarm("RelayAuthBurst-"+r, fmt.Sprintf("smoothcast: relay %s refused %d or more requests for their credentials in a minute (someone guessing the ingest secret, or encoders with an old one)", r, AuthBurstPerMinute),
				awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
					Namespace: jsii.String(namespace), MetricName: jsii.String(metricname.IngestErrors),
					DimensionsMap: &map[string]*string{metricname.DimensionRelay: jsii.String(r), metricname.DimensionReason: jsii.String(metricname.ReasonAuth)},
					Statistic:     jsii.String("Sum"), Period: minute,
				}), AuthBurstPerMinute, 1),
			NoBytesIn: alarm("RelayNoBytesIn-"+r, "smoothcast: relay "+r+" has streams in progress but received nothing for 2 minutes (the relay or its encoders hang)",
				awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
					Expression:   jsii.String("IF(streams > 0 AND bytes == 0, 1, 0)"),
					UsingMetrics: &map[string]awscloudwatch.IMetric{"streams": streams, "bytes": bytesIn},
					Period:       minute, Label: jsii.String("streams without bytes"),
				}), 1, 2),
		}
		m.Health[r] = a
		alarms = append(alarms, a.StoreErrors, a.MemoryNearBudget, a.AuthBurst, a.NoBytesIn)
		rows = append(rows,
			graph("Relay "+r+": bytes in (per minute)", 8, []awscloudwatch.IMetric{search(r, metricname.BytesIn, metricname.DimensionKind, "Sum")},
				[]awscloudwatch.IMetric{labeled(bytesIn, "all")}),
			graph("Relay "+r+": streams in progress", 8, []awscloudwatch.IMetric{search(r, metricname.ActiveStreams, metricname.DimensionKind, "Maximum")},
				[]awscloudwatch.IMetric{labeled(streams, "all")}),
			graph("Relay "+r+": refused and failed, by reason (per minute)", 8, []awscloudwatch.IMetric{search(r, metricname.IngestErrors, metricname.DimensionReason, "Sum")}, nil),
			graph("Relay "+r+": store errors and retries (per minute)", 12, []awscloudwatch.IMetric{
				labeled(metric(r, metricname.StoreErrors, "Sum"), "errors"), labeled(metric(r, metricname.StoreRetries, "Sum"), "retries")}, nil),
			graph("Relay "+r+": memory (bytes)", 12, []awscloudwatch.IMetric{
				labeled(used, "budget used"), labeled(budget, "budget"), labeled(metric(r, metricname.ResidentMemory, "Maximum"), "resident")}, nil),
		)
	}
	m.Dashboard.AddWidgets(awscloudwatch.NewAlarmStatusWidget(&awscloudwatch.AlarmStatusWidgetProps{
		Title: jsii.String("Relay health alarms"), Alarms: &alarms, Width: jsii.Number(24), Height: jsii.Number(3)}))
	m.Dashboard.AddWidgets(rows...)
}

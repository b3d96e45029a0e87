// Package metricname names the manifest function's CloudWatch metrics:
// their namespace, their dimension and each metric. The function emits
// them (Embedded Metric Format, functions/manifest/handler) and the AWS
// stack alarms on them and charts them (infra), so both import this
// package, which imports nothing: the CDK app does not pull the Lambda
// handler or the S3 SDK in for a few strings. It names the relay's
// metrics too (relay.go), for the same reason.
//
// Every metric of the function is published twice: with the dimension
// DimensionChannel and without dimensions (the total over channels).
package metricname

const (
	// Namespace is the CloudWatch namespace of every metric.
	Namespace = "Smoothcast"
	// DimensionChannel is the dimension that names the channel.
	DimensionChannel = "Channel"
)

// The metrics.
const (
	// FragmentToManifestDelay (Milliseconds): for each fragment an event's
	// state write published, the time from the fragment's S3 event to
	// that write: how late manifests list it. One value per fragment
	// (several when a late fragment lets waiting ones through).
	FragmentToManifestDelay = "FragmentToManifestDelay"
	// EventsProcessed (Count): S3 events of fragments and end markers
	// handled, whatever came of them.
	EventsProcessed = "EventsProcessed"
	// ConflictsRetried (Count): conditional writes of the state
	// (If-Match, If-None-Match) that lost to a concurrent writer and were
	// retried.
	ConflictsRetried = "ConflictsRetried"
	// Errors (Count): events that failed (Lambda retries them) and
	// manifest requests answered with a server error.
	Errors = "Errors"
	// FragmentsPublished (Count, high resolution): fragments that
	// manifests list from now on. A live channel publishes one per
	// fragment duration and track; none for a while means its encoder,
	// the relay or the function stalled (or the stream ended: see
	// StreamsEnded).
	FragmentsPublished = "FragmentsPublished"
	// StreamsEnded (Count, high resolution): 1 for an end-of-stream
	// marker (the encoder ended the stream), 0 for any other event. Its
	// maximum tells an ended channel from a stalled one, which both stop
	// publishing fragments.
	StreamsEnded = "StreamsEnded"
)

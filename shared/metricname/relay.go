package metricname

// The relay's CloudWatch metrics: what functions/ingest/cloudwatch
// publishes from the relay's Prometheus registry every interval, one
// PutMetricData call, in the namespace the relay is given
// (-cloudwatch-namespace; the stack's is RelayNamespace). Each has the
// dimension DimensionRelay, which names the relay (the stack runs one or
// two); some have a second one, and are published with both and, where
// said, with DimensionRelay alone too (the total).
const (
	// RelayNamespace is the namespace the AWS stack gives its relays:
	// the relay's flag, its role's permission (the cloudwatch:namespace
	// condition) and the alarms name it from here.
	RelayNamespace = "Smoothcast/Relay"

	// DimensionRelay names the relay (-cloudwatch-relay: "a", "b").
	DimensionRelay = "Relay"
	// DimensionReason is why a request was refused or a stream ended:
	// the kind label of the relay's smoothcast_errors_total (auth,
	// limit, protocol, too_large, store, read, timeout, conflict,
	// shutdown).
	DimensionReason = "Reason"
	// DimensionKind is a stream's kind: push (Smooth or CMAF), upload
	// (DASH or HLS), rtmp or srt.
	DimensionKind = "Kind"

	// ReasonAuth is the DimensionReason of requests refused for their
	// credentials.
	ReasonAuth = "auth"
)

// The relay's metrics.
const (
	// IngestErrors (Count, DimensionRelay and DimensionReason): requests
	// refused and streams ended by an error during the interval. Reason
	// auth counts encoders refused for their credentials (a burst is
	// someone guessing), limit those refused for the memory budget or a
	// limit, store the pushes ended because a store write kept failing.
	IngestErrors = "IngestErrors"
	// StoreErrors (Count): store requests (each attempt, puts and gets)
	// that failed during the interval.
	StoreErrors = "StoreErrors"
	// StoreRetries (Count): store requests retried after a failure that
	// may pass, during the interval.
	StoreRetries = "StoreRetries"
	// ActiveStreams (Count, by DimensionKind and the total): pushes,
	// upload renditions and RTMP and SRT publishes in progress at the
	// end of the interval, over every channel.
	ActiveStreams = "ActiveStreams"
	// BytesIn (Bytes, by DimensionKind and the total): bytes received
	// from encoders during the interval.
	BytesIn = "BytesIn"
	// MemoryBudgetUsed (Bytes): what the relay's buffers hold, drawn
	// from its memory budget, at the end of the interval.
	MemoryBudgetUsed = "MemoryBudgetUsed"
	// MemoryBudget (Bytes): the relay's memory budget (0: none).
	MemoryBudget = "MemoryBudget"
	// ResidentMemory (Bytes): the relay process's resident set size.
	ResidentMemory = "ResidentMemory"
)

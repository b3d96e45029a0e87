package layout

import (
	"strings"
	"time"
)

// What happens to a key after it is written: which writes send the
// manifest function an event, and when what is written expires. The AWS
// stack (infra) and the local stack (local/stack) both configure their
// bucket from these, so that the two see the same events and keep the
// same objects.

// The bucket's event notification: an object created under EventPrefix
// whose key ends with EventSuffix sends the manifest function an event.
// That is every fragment and end marker, and nothing else the relay or
// the function writes: init segments end in ".mp4" (a track's first
// fragment registers it), the state is under StatePrefix (the function's
// own writes must not call it again).
const (
	EventPrefix = LivePrefix
	EventSuffix = ")"
)

// Notifies reports whether creating the object at key sends the manifest
// function an event (see EventPrefix).
func Notifies(key string) bool {
	return strings.HasPrefix(key, EventPrefix) && strings.HasSuffix(key, EventSuffix)
}

// ExpireTag is the object tag (URL-encoded tag set) on what the bucket's
// lifecycle rule expires after the retention period: fragments and end
// markers, not init segments, which a live track needs however old.
const ExpireTag = ExpireTagKey + "=" + ExpireTagValue

// The key and value of ExpireTag, as a lifecycle rule's filter names them.
const (
	ExpireTagKey   = "smoothcast-expire"
	ExpireTagValue = "true"
)

// RetentionMargin is how much sooner manifests stop listing a fragment
// than the retention period lets it be deleted (the lifecycle rule on
// AWS, the janitor locally): room for clock skew between writer and
// deleter, and for an encoder whose timestamps run ahead of the channel's
// clock (up to the relay's drift limit). A retention period must
// therefore be at least the DVR window plus RetentionMargin.
const RetentionMargin = 10 * time.Minute

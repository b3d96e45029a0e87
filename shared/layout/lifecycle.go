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

// StateExpireTag is the object tag on the manifest function's state (a
// channel's index and its track states), which a second lifecycle rule
// expires StateGrace after the media: a channel's state goes once its
// media are gone, and never before them.
const StateExpireTag = ExpireTagKey + "=" + StateExpireTagValue

// The key and the values of ExpireTag and StateExpireTag, as the
// lifecycle rules' filters name them.
const (
	ExpireTagKey        = "smoothcast-expire"
	ExpireTagValue      = "true"
	StateExpireTagValue = "state"
)

// StateGrace is how much longer than the media the state is kept: the
// state's lifecycle rule expires it one day (the rules' unit) later than
// the media's, counted from its last write. A track state is written at
// every event of its track, so it outlives the track's last fragment by
// at least StateGrace; a channel's index is written when a track is added,
// and again by the first event that finds it older than StateRefresh, so
// it outlives the channel's last fragment by at least StateGrace less
// StateRefresh. A channel that goes on for longer than the retention
// keeps both.
const StateGrace = 24 * time.Hour

// StateRefresh is how old a channel's index may grow while its channel
// has events before the manifest function writes it again (see
// StateGrace): one conditional write per channel per StateRefresh.
const StateRefresh = StateGrace / 2

// Lifetime says which lifecycle rule removes an object: the AWS stack
// (infra) tags each kind so, and the local janitor removes each kind as
// the rule would.
type Lifetime int

// Lifetimes of the objects in the bucket.
const (
	// Kept: no rule removes it (init segments, which a live track needs
	// however old).
	Kept Lifetime = iota
	// ExpiresWithMedia: fragments and end markers (ExpireTag), the
	// retention period after they were written.
	ExpiresWithMedia
	// ExpiresWithState: the state of a channel, the function's (its
	// index and track states) and the relay's (its clock and uploads
	// records) (StateExpireTag), the retention period plus StateGrace after
	// they were last written.
	ExpiresWithState
)

// LifetimeOf is the lifetime of the object at key.
func LifetimeOf(key string) Lifetime {
	// A state document first: its key is on every event's path, and
	// Parse would make an error to refuse it.
	rest, ok := strings.CutPrefix(key, StatePrefix)
	if !ok {
		if obj, err := Parse(key); err == nil && (obj.Kind == KindFragment || obj.Kind == KindEnd) {
			return ExpiresWithMedia
		}
		return Kept
	}
	channel, doc, ok := strings.Cut(rest, "/")
	if !ok || !ValidName(channel) {
		return Kept
	}
	switch doc {
	case "channel.json", "clock.json", "uploads.json":
		return ExpiresWithState
	}
	if track, ok := strings.CutPrefix(doc, "tracks/"); ok && strings.HasSuffix(track, ".json") && !strings.Contains(track, "/") {
		return ExpiresWithState
	}
	return Kept
}

// Tagging is the tag set (URL-encoded) that puts an object under the
// lifecycle rule of l: empty for Kept.
func (l Lifetime) Tagging() string {
	switch l {
	case ExpiresWithMedia:
		return ExpireTag
	case ExpiresWithState:
		return StateExpireTag
	}
	return ""
}

// RetentionMargin is how much sooner manifests stop listing a fragment
// than the retention period lets it be deleted (the lifecycle rule on
// AWS, the janitor locally): room for clock skew between writer and
// deleter, and for an encoder whose timestamps run ahead of the channel's
// clock (up to the relay's drift limit). A retention period must
// therefore be at least the DVR window plus RetentionMargin.
const RetentionMargin = 10 * time.Minute

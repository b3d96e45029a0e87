package layout

import (
	"testing"
	"time"
)

// The bucket notification (infra) and the local notifier (local/stack)
// call the manifest function for exactly the objects it handles: every
// fragment and end marker, no init segment and nothing under state/.
func TestNotifiesFragmentsAndEndMarkersOnly(t *testing.T) {
	v := TrackID{Name: "video", Bitrate: 800000}
	for _, tc := range []struct {
		name string
		key  string
		want bool
	}{
		{"a fragment sends an event", FragmentKey("ch1", v, 20000000), true},
		{"an end marker sends an event", EndKey("ch1", v, 40000000), true},
		{"an init segment sends none (the first fragment registers its track)", InitKey("ch1", v), false},
		{"the channel state sends none (the function's own write)", ChannelStateKey("ch1"), false},
		{"a track state sends none", TrackStateKey("ch1", v), false},
		{"the relay's clock record sends none", ClockStateKey("ch1"), false},
		{"the relay's uploads record sends none", UploadsStateKey("ch1"), false},
		{"a state key ending in ) sends none", StatePrefix + "ch1/Fragments(video=0)", false},
		{"a key outside both prefixes sends none", "other/Fragments(video=0)", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Notifies(tc.key); got != tc.want {
				t.Errorf("Notifies(%q) = %v, want %v", tc.key, got, tc.want)
			}
			if obj, err := Parse(tc.key); err == nil && tc.want != (obj.Kind == KindFragment || obj.Kind == KindEnd) {
				t.Errorf("%q parses as kind %v: the filter and Parse disagree", tc.key, obj.Kind)
			}
		})
	}
}

// Each object is under the lifecycle rule that fits it: media expire
// after the retention, the function's state a grace later, and what a
// live channel needs however old (its init segments, the relay's
// records) never.
func TestLifetimeOfEachKind(t *testing.T) {
	v := TrackID{Name: "video", Bitrate: 800000}
	for _, tc := range []struct {
		name string
		key  string
		want Lifetime
		tag  string
	}{
		{"a fragment expires with the media", FragmentKey("ch1", v, 20000000), ExpiresWithMedia, "smoothcast-expire=true"},
		{"an end marker expires with the media", EndKey("ch1", v, 40000000), ExpiresWithMedia, "smoothcast-expire=true"},
		{"an init segment is kept", InitKey("ch1", v), Kept, ""},
		{"a channel's index expires with the state", ChannelStateKey("ch1"), ExpiresWithState, "smoothcast-expire=state"},
		{"a track state expires with the state", TrackStateKey("ch1", v), ExpiresWithState, "smoothcast-expire=state"},
		{"the relay's clock record expires with the state", ClockStateKey("ch1"), ExpiresWithState, StateExpireTag},
		{"the relay's uploads record expires with the state", UploadsStateKey("ch1"), ExpiresWithState, StateExpireTag},
		{"a state key of no channel is kept", StatePrefix + "a..b/channel.json", Kept, ""},
		{"a document deeper under tracks/ is kept", StatePrefix + "ch1/tracks/x/y.json", Kept, ""},
		{"a key outside the layout is kept", "other/Fragments(video=0)", Kept, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := LifetimeOf(tc.key)
			if got != tc.want {
				t.Errorf("LifetimeOf(%q) = %v, want %v", tc.key, got, tc.want)
			}
			if tag := got.Tagging(); tag != tc.tag {
				t.Errorf("Tagging() = %q, want %q", tag, tc.tag)
			}
		})
	}
	if StateGrace < 24*time.Hour || StateRefresh > StateGrace {
		t.Errorf("grace %v, refresh %v: the state's rule is a day longer than the media's, and the index is written again within it", StateGrace, StateRefresh)
	}
}

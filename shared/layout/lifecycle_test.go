package layout

import "testing"

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

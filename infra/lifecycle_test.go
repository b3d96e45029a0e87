package main

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/shared/layout"
)

// lifecycleRule is an expiration rule of the media bucket, as the
// template states it.
type lifecycleRule struct {
	ID         string                        `json:"Id"`
	Status     string                        `json:"Status"`
	Days       int                           `json:"ExpirationInDays"`
	Prefix     string                        `json:"Prefix"`
	TagFilters []struct{ Key, Value string } `json:"TagFilters"`
}

// expiry is when S3 expires an object written at created with the tag set
// tagging under rules: the creation time plus a matching rule's days,
// rounded up to the next midnight UTC (S3's lifecycle rules); ok is false
// when no rule expires it.
func expiry(rules []lifecycleRule, key, tagging string, created time.Time) (at time.Time, ok bool) {
	tags, _ := url.ParseQuery(tagging)
	for _, r := range rules {
		if r.Status != "Enabled" || r.Days == 0 || len(key) < len(r.Prefix) || key[:len(r.Prefix)] != r.Prefix {
			continue
		}
		match := true
		for _, f := range r.TagFilters {
			match = match && tags.Get(f.Key) == f.Value
		}
		if !match {
			continue
		}
		t := created.UTC().Add(time.Duration(r.Days) * 24 * time.Hour)
		if day := t.Truncate(24 * time.Hour); !day.Equal(t) {
			t = day.Add(24 * time.Hour)
		}
		if !ok || t.Before(at) {
			at, ok = t, true
		}
	}
	return at, ok
}

// The media bucket's lifecycle rules, as synthesized, applied to what a
// channel writes (the relay's fragments with layout.ExpireTag; the
// function's track state at every fragment and its index every
// layout.StateRefresh, with the tag layout.LifetimeOf gives them, as
// handler's TestStateIsTaggedAndTheIndexWrittenAgainWhileLive shows): a
// channel live for five days, five times the retention, never loses its
// state; once it stops, and for a channel of one fragment, the state
// expires, never before the last of its media. Init segments never do.
func TestLifecycleRulesExpireStateWithItsMediaNeverWhileLive(t *testing.T) {
	s := synth(t)
	var cfg struct {
		LifecycleConfiguration struct{ Rules []lifecycleRule }
	}
	if err := json.Unmarshal([]byte(js(s.one(t, "AWS::S3::Bucket", "Media").Properties)), &cfg); err != nil {
		t.Fatal(err)
	}
	rules := cfg.LifecycleConfiguration.Rules
	v := layout.TrackID{Name: "video", Bitrate: 800000}
	tagOf := func(key string) string { return layout.LifetimeOf(key).Tagging() }
	if _, ok := expiry(rules, layout.InitKey("ch", v), tagOf(layout.InitKey("ch", v)), time.Now()); ok {
		t.Error("an init segment expires: a live track needs its own however old")
	}

	for _, tc := range []struct {
		name string
		live time.Duration
	}{
		{"a channel of one fragment", 0},
		{"a channel live for five days", 5 * 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Date(2026, 11, 25, 13, 17, 0, 0, time.UTC)
			index, track := layout.ChannelStateKey("ch"), layout.TrackStateKey("ch", v)
			indexWritten, trackWritten := start, start
			var lastMedia time.Time
			// Every 2 s fragment, sampled every 10 minutes (and the last).
			for now := start; ; now = now.Add(10 * time.Minute) {
				if now.After(start.Add(tc.live)) {
					now = start.Add(tc.live)
				}
				frag := layout.FragmentKey("ch", v, uint64(now.Sub(start)/time.Second)*10_000_000)
				fragGoes, ok := expiry(rules, frag, layout.ExpireTag, now)
				if !ok {
					t.Fatalf("fragment %s never expires", frag)
				}
				lastMedia = later(lastMedia, fragGoes)
				// The function's writes for it.
				trackWritten = now
				if now.Sub(indexWritten) >= layout.StateRefresh {
					indexWritten = now
				}
				for key, written := range map[string]time.Time{index: indexWritten, track: trackWritten} {
					goes, ok := expiry(rules, key, tagOf(key), written)
					if !ok {
						t.Fatalf("%s never expires", key)
					}
					if !goes.After(now) {
						t.Fatalf("%v after the channel started, while it is live, %s (written %v) expired at %v", now.Sub(start), key, written, goes)
					}
				}
				if !now.Before(start.Add(tc.live)) {
					break
				}
			}
			for key, written := range map[string]time.Time{index: indexWritten, track: trackWritten} {
				goes, _ := expiry(rules, key, tagOf(key), written)
				if goes.Before(lastMedia) {
					t.Errorf("%s expires at %v, before the channel's last fragment (%v)", key, goes, lastMedia)
				}
				if goes.Sub(lastMedia) > 3*24*time.Hour {
					t.Errorf("%s expires at %v, %v after the channel's last fragment", key, goes, goes.Sub(lastMedia))
				}
			}
		})
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

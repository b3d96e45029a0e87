package dash

import (
	"maps"
	"strings"
	"testing"
	"time"

	dashmpd "github.com/Eyevinn/dash-mpd/mpd"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// urls expands every segment URL of the MPD, as a client does, by
// content type.
func urls(t *testing.T, b []byte) (map[string][]string, *dashmpd.MPD) {
	t.Helper()
	m, err := Parse(b)
	if err != nil {
		t.Fatalf("MPD does not parse: %v\n%s", err, b)
	}
	out := map[string][]string{}
	for rep, tmpl := range Representations(m) {
		if tmpl == nil {
			t.Fatalf("Representation %s has no SegmentTemplate", rep.Id)
		}
		segs, err := tmpl.Segments()
		if err != nil {
			t.Fatalf("Representation %s: %v", rep.Id, err)
		}
		kind := string(rep.Parent().ContentType)
		for _, s := range segs {
			u, err := tmpl.MediaURL(s)
			if err != nil {
				t.Fatalf("Representation %s: %v", rep.Id, err)
			}
			out[kind] = append(out[kind], u)
		}
	}
	return out, m
}

func TestRenderGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    func() *timeline.Presentation
	}{
		{"live.mpd", func() *timeline.Presentation { return manifesttest.Presentation(false) }},
		{"video-lagging.mpd", func() *timeline.Presentation { return manifesttest.Presentation(true) }},
		{"codecs.mpd", manifesttest.Codecs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p()
			b, err := Render(p, Options{UTCTimingURL: layout.TimePath})
			if err != nil {
				t.Fatal(err)
			}
			manifesttest.Golden(t, tc.name, b)
			got, m := urls(t, b)
			if m.GetType() != "dynamic" || m.AvailabilityStartTime != "2026-01-02T03:04:05Z" ||
				m.TimeShiftBufferDepth == nil || time.Duration(*m.TimeShiftBufferDepth) != 1800*time.Second {
				t.Errorf("MPD type %s, availabilityStartTime %s, timeShiftBufferDepth %v", m.GetType(), m.AvailabilityStartTime, m.TimeShiftBufferDepth)
			}
			// Every URL is the key of a fragment that every rendition of
			// its group has.
			want := map[timeline.Kind]map[string]bool{}
			for _, g := range p.Groups() {
				common := p.Common(g)
				if want[g.Kind] == nil {
					want[g.Kind] = map[string]bool{}
				}
				for _, tv := range g.Views {
					for e := range common.All() {
						want[g.Kind][strings.TrimPrefix(layout.FragmentKey("ch", tv.ID, e.Start), "live/ch.isml/")] = true
					}
				}
			}
			for kind, want := range want {
				list := got[string(kind)]
				if len(list) != len(want) {
					t.Errorf("%s: %d segment URLs, want %d", kind, len(list), len(want))
				}
				for _, u := range list {
					if !want[u] {
						t.Errorf("%s: segment URL %s names no common fragment", kind, u)
					}
				}
			}
		})
	}
}

// A bitrate two groups share cannot be the Representation id of both:
// the second gets its own SegmentTemplate with the bitrate spelled out.
func TestSharedBitrateKeepsIDsUnique(t *testing.T) {
	p := manifesttest.Presentation(false)
	dub := p.Tracks[2]
	dub.ID = layout.TrackID{Name: "audio_fr", Bitrate: 96000}
	dub.Language = "fra"
	p.Tracks = append(p.Tracks, dub)
	b, err := Render(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, m := urls(t, b)
	ids := map[string]bool{}
	for _, as := range m.Periods[0].AdaptationSets {
		for _, r := range as.Representations {
			if ids[r.Id] {
				t.Errorf("Representation id %s twice", r.Id)
			}
			ids[r.Id] = true
		}
	}
	var fr int
	for _, u := range got["audio"] {
		if strings.HasPrefix(u, "QualityLevels(96000)/Fragments(audio_fr=") {
			fr++
		}
	}
	if fr != 6 || !strings.Contains(string(b), `lang="fra"`) {
		t.Errorf("%d URLs of the French track, want 6:\n%s", fr, b)
	}
}

func TestTwentyFourHoursCompactWithoutDrift(t *testing.T) {
	var st timeline.TrackState
	for i := range uint64(43200) {
		st.Timeline.Append(timeline.Fragment{Start: i * 20000000, Duration: 20000000}, false)
	}
	st.MaxDuration = 20000000
	p := &timeline.Presentation{Channel: "ch", Epoch: manifesttest.Epoch, DVRWindow: 24 * time.Hour,
		Tracks: []timeline.TrackView{{Track: timeline.Track{ID: layout.TrackID{Name: "video", Bitrate: 1}, Kind: timeline.Video, Timescale: 10000000}, State: st}}}
	b, err := Render(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := `<S t="0" d="20000000" r="43199"></S>`; !strings.Contains(string(b), want) {
		t.Errorf("24 h of 2 s fragments should compact to %s:\n%s", want, b)
	}
	if want := `publishTime="2026-01-03T03:04:05Z"`; !strings.Contains(string(b), want) {
		t.Errorf("publishTime should be the end of the last fragment, %s:\n%.600s", want, b)
	}
}

func TestFrameRate(t *testing.T) {
	for fps, want := range map[float64]string{25: "25", 24.999: "25", 29.97: "30000/1001", 59.94: "60000/1001", 12.5: "12500/1000"} {
		if got := frameRate(fps); got != want {
			t.Errorf("frameRate(%v) = %s, want %s", fps, got, want)
		}
	}
}

// restarted is a channel whose encoder restarted: three fragments, then
// (rebased by the relay to 60 s) three more after a break, video and audio
// a few samples apart.
func restarted() *timeline.Presentation {
	p := manifesttest.Presentation(false)
	for i := range p.Tracks {
		tv := &p.Tracks[i]
		var st timeline.TrackState
		d := uint64(20000000)
		for k := range uint64(3) {
			st.Timeline.Append(timeline.Fragment{Start: k * d, Duration: d}, false)
		}
		skew := uint64(0)
		if tv.Kind == timeline.Audio {
			skew = 213333 // an AAC frame
		}
		for k := range uint64(3) {
			f := timeline.Fragment{Start: 600000000 + skew + k*d, Duration: d}
			if k == 0 {
				st.Timeline.AppendBreak(f)
			} else {
				st.Timeline.Append(f, false)
			}
		}
		st.MaxDuration = d
		tv.State = st
	}
	return p
}

// A break in the encoder's timeline starts a new Period, in live and VOD
// MPDs alike, with every fragment in exactly one Period and segment times
// that map onto the Period's start.
func TestBreakStartsANewPeriod(t *testing.T) {
	for _, tc := range []struct {
		name, golden string
		vod          bool
	}{{"live", "restart.mpd", false}, {"vod", "restart-vod.mpd", true}} {
		t.Run(tc.name, func(t *testing.T) {
			p := restarted()
			p.Ended = tc.vod
			b, err := Render(p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			manifesttest.Golden(t, tc.golden, b)
			m, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			start := func(p *dashmpd.Period) time.Duration {
				if p.Start == nil {
					return -1
				}
				return time.Duration(*p.Start)
			}
			if len(m.Periods) != 2 || m.Periods[0].Id != "0" || m.Periods[1].Id != "b60000" ||
				start(m.Periods[0]) != 0 || start(m.Periods[1]) != 60*time.Second {
				t.Fatalf("periods %+v, want 0 at PT0S and b60000 at PT60S", m.Periods)
			}
			for _, as := range m.Periods[1].AdaptationSets {
				st := as.SegmentTemplate
				var pto uint64
				if st.PresentationTimeOffset != nil {
					pto = *st.PresentationTimeOffset
				}
				if pto != 600000000 || st.SegmentTimeline == nil || len(st.SegmentTimeline.S) == 0 ||
					st.SegmentTimeline.S[0].T == nil || *st.SegmentTimeline.S[0].T < pto {
					t.Errorf("second period: presentationTimeOffset %d, timeline %+v", pto, st.SegmentTimeline)
				}
			}
			urlsByKind, _ := urls(t, b)
			if n := len(urlsByKind["video"]); n != 12 {
				t.Errorf("%d video segment URLs over both periods, want 12 (6 per rendition)", n)
			}
		})
	}
}

// Each language and role (CMAF kind) of audio is an AdaptationSet of its
// own, with its lang and its Role; a track without a role is main.
func TestAudioRoles(t *testing.T) {
	p := manifesttest.Presentation(false)
	dub := p.Tracks[2]
	dub.ID.Name, dub.Language, dub.Role = "audio_spa_dub", "spa", "dub"
	p.Tracks = append(p.Tracks, dub)
	b, err := Render(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, m := urls(t, b)
	got := map[string]string{}
	for _, as := range m.Periods[0].AdaptationSets {
		if as.ContentType == "audio" {
			if len(as.Roles) != 1 || string(as.Roles[0].SchemeIdUri) != timeline.RoleScheme {
				t.Fatalf("audio AdaptationSet %s without a Role in %s", as.Lang, timeline.RoleScheme)
			}
			got[as.Lang] = as.Roles[0].Value
		}
	}
	if want := map[string]string{"": "main", "spa": "dub"}; !maps.Equal(got, want) {
		t.Errorf("audio lang: role %v, want %v\n%s", got, want, b)
	}
}

// AC-3 and E-AC-3 state their channels in Dolby's scheme, as DASH-IF IOP
// 9.2.1.2 asks: the channel map in four hex digits; every other codec, and
// Dolby audio whose map is unknown, the count in MPEG's.
func TestAudioChannelConfiguration(t *testing.T) {
	const dolby, mpeg = "tag:dolby.com,2014:dash:audio_channel_configuration:2011", "urn:mpeg:dash:23003:3:audio_channel_configuration:2011"
	for _, tc := range []struct {
		name          string
		track         timeline.Track
		scheme, value string
	}{
		{"E-AC-3 5.1", timeline.Track{Codecs: "ec-3", Channels: 6, ChannelMap: 0xF801}, dolby, "F801"},
		{"AC-3 mono", timeline.Track{Codecs: "ac-3", Channels: 1, ChannelMap: 0x4000}, dolby, "4000"},
		{"E-AC-3 7.1, back surrounds from a dependent substream", timeline.Track{Codecs: "ec-3", Channels: 8, ChannelMap: 0xFA01}, dolby, "FA01"},
		{"E-AC-3 without a channel map", timeline.Track{Codecs: "ec-3", Channels: 2}, mpeg, "2"},
		{"AAC stereo", timeline.Track{Codecs: "mp4a.40.2", Channels: 2}, mpeg, "2"},
		{"AAC with no channel count", timeline.Track{Codecs: "mp4a.40.2"}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := audioChannels(&timeline.TrackView{Track: tc.track})
			var scheme, value string
			if d != nil {
				scheme, value = d.SchemeIDURI, d.Value
			}
			if scheme != tc.scheme || value != tc.value {
				t.Errorf("AudioChannelConfiguration %q %q, want %q %q", scheme, value, tc.scheme, tc.value)
			}
		})
	}
}

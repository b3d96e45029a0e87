package hls

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// ccAt is a media playlist read back as hls.js places it: each segment's
// wall-clock start (the last EXT-X-PROGRAM-DATE-TIME plus the EXTINFs
// since) and its discontinuity sequence number (hls.js's frag.cc).
type ccAt struct {
	start, end time.Time
	cc         uint64
}

func placed(t *testing.T, b []byte) (segs []ccAt, endCC uint64) {
	t.Helper()
	pl, err := Parse(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	cc := pl.DiscontinuitySequence
	var at time.Time
	for _, s := range pl.Segments {
		if s.Discontinuity {
			cc++
		}
		if !s.ProgramDateTime.IsZero() {
			at = s.ProgramDateTime
		}
		segs = append(segs, ccAt{at, at.Add(s.Duration), cc})
		at = at.Add(s.Duration)
	}
	return segs, cc
}

// hlsjsStarts reports why hls.js 1.7 would never start the audio
// rendition audio beside the variant video, or nil. Its
// audio-stream-controller keeps an audio playlist whose last
// discontinuity sequence (endCC) is past the main playlist's waiting for
// the main one to catch up (onAudioTrackLoaded), and it loads an audio
// fragment only once the main stream has found the initPTS of the same
// discontinuity sequence (loadFragment, WAITING_INIT_PTS): an audio
// fragment whose cc no video fragment of the same time has is never
// loaded. RFC 8216 6.2.4 asks the same: matching content in the
// variant streams and renditions has matching discontinuity sequence
// numbers.
func hlsjsStarts(t *testing.T, video, audio []byte) error {
	t.Helper()
	vs, vEnd := placed(t, video)
	as, aEnd := placed(t, audio)
	if aEnd > vEnd {
		return fmt.Errorf("audio endCC %d is past video endCC %d: hls.js waits for the video playlist for ever", aEnd, vEnd)
	}
	for _, a := range as {
		for _, v := range vs {
			// The video segments this audio segment overlaps.
			if v.start.Before(a.end) && a.start.Before(v.end) && v.cc != a.cc {
				return fmt.Errorf("audio at %s has cc %d, the video beside it cc %d: hls.js waits for a video initPTS of cc %d for ever",
					a.start.Format("15:04:05.000"), a.cc, v.cc, a.cc)
			}
		}
	}
	return nil
}

// trackOf is a track of 2 s fragments from 0 to n*2 s without the
// fragments listed in missing (indexes), each published after a gap as
// the timeline's rules do once the gap timeout has passed.
func trackOf(id layout.TrackID, kind timeline.Kind, timescale uint64, n int, missing ...int) timeline.TrackView {
	var s timeline.TrackState
	d := 2 * timescale
	gap := false
	for i := range n {
		if slices.Contains(missing, i) {
			gap = true
			continue
		}
		s.Timeline.Append(timeline.Fragment{Start: uint64(i) * d, Duration: d}, gap)
		gap = false
		s.MaxDuration = d
	}
	return timeline.TrackView{Track: timeline.Track{ID: id, Kind: kind, Timescale: timescale}, State: s}
}

// A fragment lost in one track only (the relay fell behind, SRT dropped
// packets, one PUT never came) must not leave the audio and video media
// playlists with different discontinuity sequences: hls.js (what the
// browser test saw) loads the video init segment and one fragment, then
// reloads the playlists for ever without ever requesting audio, and
// reports no error. Neither while the gap is in the window nor after the
// window has slid past it.
func TestALossInOneTrackKeepsTheRenditionsAligned(t *testing.T) {
	vid := layout.TrackID{Name: "video", Bitrate: 242000}
	aud := layout.TrackID{Name: "audio", Bitrate: 100000}
	for _, tc := range []struct {
		name                       string
		videoMissing, audioMissing []int
		window                     time.Duration // 0: the whole timeline
	}{
		{name: "no loss"},
		{name: "the same fragment lost in both", videoMissing: []int{5}, audioMissing: []int{5}},
		{name: "an audio fragment lost", audioMissing: []int{5}},
		{name: "a video fragment lost", videoMissing: []int{5}},
		{name: "two audio fragments lost apart", audioMissing: []int{3, 7}},
		{name: "an audio fragment lost, then the window slid past it", audioMissing: []int{2}, window: 10 * time.Second},
		{name: "a video fragment lost, then the window slid past it", videoMissing: []int{2}, window: 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &timeline.Presentation{
				Channel: "ch", Epoch: time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC), DVRWindow: tc.window,
				Tracks: []timeline.TrackView{
					trackOf(vid, timeline.Video, 90000, 12, tc.videoMissing...),
					trackOf(aud, timeline.Audio, 48000, 12, tc.audioMissing...),
				},
			}
			video, _ := Media(p, vid)
			audio, _ := Media(p, aud)
			if err := hlsjsStarts(t, video, audio); err != nil {
				t.Errorf("%v\nvideo:\n%s\naudio:\n%s", err, video, audio)
			}
		})
	}
}

// numbered is a media playlist's segments by URI: each one's media
// sequence number and discontinuity sequence number, and whether it is a
// gap.
type numbered struct {
	seq, cc uint64
	gap     bool
}

func numberedOf(t *testing.T, b []byte) map[string]numbered {
	t.Helper()
	pl, err := Parse(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	out := map[string]numbered{}
	cc := pl.DiscontinuitySequence
	for i, s := range pl.Segments {
		if s.Discontinuity {
			cc++
		}
		out[s.URI] = numbered{pl.MediaSequence + uint64(i), cc, s.Gap}
	}
	return out
}

// As the window slides past holes and breaks (published one fragment at a
// time, the state trimmed as TrackState.Apply trims it), every segment
// keeps its media sequence number, its discontinuity sequence number and
// its EXT-X-GAP from one playlist to the next (RFC 8216 6.2.1/6.2.2: a
// client matches segments of successive playlists by them), and the
// playlists of the audio and the video stay aligned.
func TestSequencesHoldAsTheWindowSlidesPastAHole(t *testing.T) {
	vid := layout.TrackID{Name: "video", Bitrate: 242000}
	aud := layout.TrackID{Name: "audio", Bitrate: 100000}
	const n = 30
	for _, tc := range []struct {
		name                       string
		videoMissing, audioMissing []int
		breakAt                    int // a break (the encoder's clock jumped) in both tracks before this fragment; 0: none
	}{
		{name: "one audio fragment lost", audioMissing: []int{4}},
		{name: "three audio fragments lost in a row, one video", audioMissing: []int{4, 5, 6}, videoMissing: []int{12}},
		{name: "a hole, then a break in both", audioMissing: []int{4}, breakAt: 15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const window = 10 * time.Second
			tracks := []struct {
				id        layout.TrackID
				kind      timeline.Kind
				timescale uint64
				missing   []int
				state     timeline.TrackState
				seen      map[string]numbered
			}{
				{id: vid, kind: timeline.Video, timescale: 90000, missing: tc.videoMissing, seen: map[string]numbered{}},
				{id: aud, kind: timeline.Audio, timescale: 48000, missing: tc.audioMissing, seen: map[string]numbered{}},
			}
			for i := range n {
				p := &timeline.Presentation{Channel: "ch", Epoch: time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)}
				for k := range tracks {
					tr := &tracks[k]
					d := 2 * tr.timescale
					start := uint64(i) * d
					if tc.breakAt > 0 && i >= tc.breakAt {
						start += 1000 * d // the clock jumped
					}
					if !slices.Contains(tr.missing, i) {
						tl := &tr.state.Timeline
						f := timeline.Fragment{Start: start, Duration: d}
						switch {
						case i == tc.breakAt && tc.breakAt > 0:
							tl.AppendBreak(f)
						default:
							tl.Append(f, !tl.Empty() && tl.End() != start)
						}
						tr.state.MaxDuration = d
						if w := timeline.Ticks(window, tr.timescale); tl.End() > w {
							tl.TrimBefore(tl.End() - w)
						}
					}
					p.Tracks = append(p.Tracks, timeline.TrackView{Track: timeline.Track{ID: tr.id, Kind: tr.kind, Timescale: tr.timescale}, State: tr.state})
				}
				var rendered [2][]byte
				for k := range tracks {
					tr := &tracks[k]
					b, _ := Media(p, tr.id)
					rendered[k] = b
					for uri, got := range numberedOf(t, b) {
						if was, ok := tr.seen[uri]; ok && was != got {
							t.Fatalf("after fragment %d, %s %s is %+v, was %+v:\n%s", i, tr.id, uri, got, was, b)
						}
						tr.seen[uri] = got
					}
				}
				if err := hlsjsStarts(t, rendered[0], rendered[1]); err != nil {
					t.Fatalf("after fragment %d: %v\nvideo:\n%s\naudio:\n%s", i, err, rendered[0], rendered[1])
				}
			}
		})
	}
}

package manifesttest

import (
	"time"

	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// TextCaptions are the CEA-608 and CEA-708 services the videos of Text
// carry.
const TextCaptions timeline.Captions = "CC1=eng;CC3=fra;SERVICE1=eng"

// Text is Presentation's channel with captions in its videos
// (TextCaptions) and three text tracks, as fmp4.Describe describes them
// from their init segments, each with the gaps a text track has:
//
//   - text_eng: WebVTT (wvtt, no Smooth FourCC) at 1 kHz, labelled
//     "English", the default; its third and fourth fragments are missing
//     (no cue for 4 s: a pause);
//   - text_eng_caption: IMSC1 (stpp.ttml.im1t, Smooth's TTML) at 10 MHz,
//     role caption, labelled "English CC"; it ends two fragments before
//     the videos (no cue since);
//   - text_fra_forced-subtitle: WebVTT, French forced subtitles, labelled
//     "Français (forcé)"; only its second and fifth fragments exist.
func Text() *timeline.Presentation {
	p := Presentation(false)
	for i := range p.Tracks {
		if p.Tracks[i].Kind == timeline.Video {
			p.Tracks[i].Captions = TextCaptions
		}
	}
	p.Tracks = append(p.Tracks,
		timeline.TrackView{Track: timeline.Track{ID: layout.TrackID{Name: "text_eng", Bitrate: 1000}, Kind: timeline.Text, Timescale: 1000,
			Codecs: "wvtt", Language: "eng", Label: "English", Default: true}, State: textState(1000, 1000, 0, 1, 4, 5)},
		timeline.TrackView{Track: timeline.Track{ID: layout.TrackID{Name: "text_eng_caption", Bitrate: 2000}, Kind: timeline.Text, Timescale: 10000000,
			FourCC: "TTML", Codecs: "stpp.ttml.im1t", Language: "eng", Role: "caption", Label: "English CC"}, State: textState(10000000, 2000, 0, 1, 2, 3)},
		timeline.TrackView{Track: timeline.Track{ID: layout.TrackID{Name: "text_fra_forced-subtitle", Bitrate: 1000}, Kind: timeline.Text, Timescale: 1000,
			Codecs: "wvtt", Language: "fra", Role: "forced-subtitle", Label: "Français (forcé)", Forced: true}, State: textState(1000, 1000, 1, 4)},
	)
	return p
}

// textState is a text track's state of 2 s fragments (timescale ts),
// fragment i from i*2 s, for the indexes listed only: the missing ones
// between them are pauses (timeline.AppendSparse), as the manifest
// function publishes a text track.
func textState(ts uint64, bitrate int, present ...int) timeline.TrackState {
	var s timeline.TrackState
	d := 2 * ts
	for _, i := range present {
		s.Timeline.AppendSparse(timeline.Fragment{Start: uint64(i) * d, Duration: d})
		s.MaxDuration = d
		size := int64(bitrate / 8 * 2)
		s.Bytes += size
		s.Ticks += d
		s.Samples++
		s.PeakBytes, s.PeakTicks = size, d
	}
	return s
}

// TextRequest is a way to render Text: as it is (live), time-shifted
// from 3 s, or finished.
type TextRequest struct {
	Name   string
	Change func(p *timeline.Presentation)
}

// TextRequests are the ways the renderers' golden text manifests render
// Text: "live", "timeshift" and "vod".
func TextRequests() []TextRequest {
	return []TextRequest{
		{"live", func(*timeline.Presentation) {}},
		{"timeshift", func(p *timeline.Presentation) {
			p.Range = &timeline.Range{From: Epoch.Add(3 * time.Second), Query: "start=3"}
		}},
		{"vod", func(p *timeline.Presentation) { p.Ended = true }},
	}
}

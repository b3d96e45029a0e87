package manifesttest

// Presentations for the renderers' equivalence tests (each renderer
// against its encoding/xml reference): the shared Fixtures, then
// variations of them, then random ones.

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// OddStrings are attribute values that need escaping or replacing (XML's
// specials, controls, invalid UTF-8), next to plain ones.
var OddStrings = []string{
	"", "und", "fra", "spa", "main", "dub", "commentary", "a&b", `<"'>`, "x > y", "tab\there",
	"nl\nand\rcr", "\x00\x01\x1f", "\x7f", "\xff\xfe", "bad\xc3(utf8", "é中文", "\uFFFD", "\U0001F600",
	"\ufffe\uffff", "\ud7ff\ue000", "]]>", "&amp;", "&#34;", "$RepresentationID$", "{bitrate}",
}

// Fixtures are the presentations the renderers' tests use, small enough
// to fuzz from: the golden files' channel with and without a lagging
// rendition, 10 minutes of the benchmarks' channel, the codecs' and the
// text tracks' channels, the encrypted ones, and the first fragments of
// each drift case.
func Fixtures() []func() *timeline.Presentation {
	out := []func() *timeline.Presentation{
		func() *timeline.Presentation { return Presentation(false) },
		func() *timeline.Presentation { return Presentation(true) },
		func() *timeline.Presentation { return Long(10 * time.Minute) },
		Codecs,
		Text,
		func() *timeline.Presentation { return Encrypted(cenc.CBCS) },
		EncryptedPerTrack,
	}
	for _, c := range shortDriftCases() {
		out = append(out, c.Presentation)
	}
	// Protection that changes (after the drift cases: the fuzz corpus
	// names fixtures by index).
	return append(out, ProtectionChange, ProtectionChangeEncryptedFirst)
}

// shortDriftCases are the drift cases cut to their first 300 fragments.
var shortDriftCases = sync.OnceValue(func() []DriftCase {
	cases := DriftCases()
	for i := range cases {
		cases[i].Durations = cases[i].Durations[:300]
	}
	return cases
})

// aacCycles are the durations of 256 AAC fragments at 48 and 44.1 kHz.
var aacCycles = sync.OnceValue(func() [2][]uint64 {
	return [2][]uint64{AACDurations(48000, 256), AACDurations(44100, 256)}
})

// Pick returns an odd string, a plain one, or a piece of text (a fuzz
// input).
func Pick(rng *rand.Rand, text string, plain ...string) string {
	switch n := rng.IntN(10); {
	case n < 2 && text != "":
		i := rng.IntN(len(text))
		return text[i : i+rng.IntN(len(text)-i+1)]
	case n < 5 || len(plain) == 0:
		return OddStrings[rng.IntN(len(OddStrings))]
	default:
		return plain[rng.IntN(len(plain))]
	}
}

// RandomPresentation is a channel of one to seven tracks of random kinds,
// names, bitrates (often shared), timescales (now and then mixed within a
// group) and timelines: renditions of a group mostly share fragments,
// some lag, lead or miss one; durations are constant, cyclic as AAC's,
// jittered or random; there are gaps and breaks.
func RandomPresentation(rng *rand.Rand, text string) *timeline.Presentation {
	p := &timeline.Presentation{Channel: Pick(rng, text, "ch", "demo"), Epoch: Epoch}
	if rng.IntN(4) == 0 {
		p.Epoch = time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).UTC()
	}
	p.DVRWindow = []time.Duration{0, 10 * time.Second, time.Minute, 30 * time.Minute, 24 * time.Hour, time.Duration(rng.Int64N(int64(time.Hour)))}[rng.IntN(6)]
	names := []string{"video", "audio", "audio_fr", Pick(rng, text, "v"), Pick(rng, text, "a")}
	bitrates := []int{96000, 128000, 300000, 800000, 1, rng.IntN(1e7)}
	timescales := []uint64{10_000_000, 90_000, 48_000, 1000, 1 + rng.Uint64N(1e7)}
	groupScale := map[string]uint64{}
	groupFrags := map[string][]frag{}
	for range 1 + rng.IntN(7) {
		name := names[rng.IntN(len(names))]
		if _, ok := groupScale[name]; !ok {
			groupScale[name] = timescales[rng.IntN(len(timescales))]
			groupFrags[name] = randomFragments(rng, groupScale[name])
		}
		tr := randomTrack(rng, text, name, bitrates[rng.IntN(len(bitrates))])
		tr.Timescale = groupScale[name]
		if rng.IntN(30) == 0 {
			tr.Timescale = timescales[rng.IntN(len(timescales))]
		}
		frags := groupFrags[name]
		if rng.IntN(3) == 0 {
			frags = vary(rng, frags, tr.Timescale)
		}
		p.Tracks = append(p.Tracks, timeline.TrackView{Track: tr, State: randomState(rng, frags)})
	}
	return p
}

// randomTrack is a track of a random kind with random attributes.
func randomTrack(rng *rand.Rand, text, name string, bitrate int) timeline.Track {
	kinds := []timeline.Kind{timeline.Video, timeline.Video, timeline.Audio, timeline.Audio, timeline.Text}
	tr := timeline.Track{
		ID:               layout.TrackID{Name: name, Bitrate: bitrate},
		Kind:             kinds[rng.IntN(len(kinds))],
		FourCC:           Pick(rng, text, "H264", "AACL", "HVC1", "EC-3", ""),
		Codecs:           Pick(rng, text, "avc1.64001e", "mp4a.40.2", "hvc1.1.6.L93.90", "av01.0.04M.08", "ec-3", "ac-3", ""),
		CodecPrivateData: Pick(rng, text, "00000001AA0000000168", "1190"),
		Language:         Pick(rng, text, "", "und", "eng"),
		Role:             Pick(rng, text, "", "main", "alternate"),
		VideoRange:       Pick(rng, text, "", "", "PQ", "HLG"),
		Label:            Pick(rng, text, "", "", "English", "Français (forcé)"),
		Captions:         timeline.Captions(Pick(rng, text, "", "", "CC1=eng;CC3=fra", "CC1;SERVICE2=fra", "bad")),
		Default:          rng.IntN(3) == 0,
		Forced:           rng.IntN(4) == 0,
	}
	ints := []int{0, 0, 1, 2, 16, 180, 1080, 44100, 48000, 0xF801, -1, rng.IntN(1 << 20)}
	for _, f := range []*int{&tr.Width, &tr.Height, &tr.SamplingRate, &tr.Channels, &tr.BitsPerSample, &tr.PacketSize, &tr.AudioTag, &tr.ChannelMap, &tr.JOC} {
		*f = ints[rng.IntN(len(ints))]
	}
	return tr
}

// frag is a fragment to append, with the gap or break before it.
type frag struct {
	timeline.Fragment
	gap, brk bool
}

// randomFragments are up to a few thousand fragments of timescale.
func randomFragments(rng *rand.Rand, timescale uint64) []frag {
	n := []int{0, 1, 2, 3, 5, 10, 40, 300, 2000}[rng.IntN(9)]
	d := max(1, 2*timescale+uint64(rng.IntN(3))-1)
	aac := aacCycles()[rng.IntN(2)]
	mode := rng.IntN(5)
	t := []uint64{0, rng.Uint64N(1 << 20), rng.Uint64N(1 << 42)}[rng.IntN(3)]
	out := make([]frag, 0, n)
	for i := range n {
		dur := d
		switch mode {
		case 1: // AAC in 10 MHz, as ffmpeg cuts it
			dur = aac[i%len(aac)]
		case 2: // jitter
			dur = max(1, d+uint64(rng.IntN(3))-1)
		case 3:
			dur = 1 + rng.Uint64N(3*d)
		}
		f := frag{Fragment: timeline.Fragment{Start: t, Duration: dur}}
		switch rng.IntN(40) {
		case 0: // a hole, large or within rounding
			f.Start += []uint64{1, dur / 200, dur, 7 * dur}[rng.IntN(4)]
		case 1: // a gap marked where the media is contiguous
			f.gap = true
		case 2: // an encoder restart
			f.brk = true
			f.Start += []uint64{0, 10 * dur, rng.Uint64N(1 << 36)}[rng.IntN(3)]
		}
		out = append(out, f)
		t = f.End()
	}
	return out
}

// vary makes a rendition's fragments differ from its group's: it lags,
// starts later, misses one, or is shifted.
func vary(rng *rand.Rand, frags []frag, timescale uint64) []frag {
	if len(frags) == 0 {
		return frags
	}
	k := rng.IntN(min(len(frags), 4) + 1)
	switch rng.IntN(4) {
	case 0:
		return frags[:len(frags)-k]
	case 1:
		return frags[k:]
	case 2:
		i := rng.IntN(len(frags))
		return append(append([]frag(nil), frags[:i]...), frags[i+1:]...)
	}
	out := append([]frag(nil), frags...)
	for i := range out {
		out[i].Start += timescale / 100
	}
	return out
}

// randomState is a track state of frags, with counters that may or may
// not give a measured bitrate and frame rate.
func randomState(rng *rand.Rand, frags []frag) timeline.TrackState {
	var s timeline.TrackState
	for _, f := range frags {
		if f.brk {
			s.Timeline.AppendBreak(f.Fragment)
		} else {
			s.Timeline.Append(f.Fragment, f.gap)
		}
		s.MaxDuration = max(s.MaxDuration, f.Duration)
		s.Ticks += f.Duration
	}
	if rng.IntN(5) > 0 {
		s.Bytes = rng.Int64N(1 << 30)
		s.Samples = rng.Uint64N(1 << 20)
		s.PeakBytes, s.PeakTicks = rng.Int64N(1<<20), rng.Uint64N(1<<30)
	}
	if rng.IntN(8) == 0 {
		s.MaxDuration = rng.Uint64N(1 << 32)
	}
	return s
}

// Mutate changes what a request or the channel's history changes in a
// presentation: its window, a time-shift range (open, closed, VOD), the
// end of the stream, the retention cut, and now and then a language,
// role or name that needs escaping, or a track sharing another's
// bitrate.
func Mutate(rng *rand.Rand, text string, p *timeline.Presentation) {
	span := time.Hour
	for _, tv := range p.Tracks {
		if tl := tv.State.Timeline; !tl.Empty() && tv.Timescale > 0 {
			span = max(span, p.Wallclock(tl.End(), tv.Timescale).Sub(p.Epoch))
		}
	}
	at := func() time.Time { return p.Epoch.Add(time.Duration(rng.Int64N(int64(span)+1)) - time.Minute) }
	if rng.IntN(4) == 0 {
		p.DVRWindow = time.Duration(rng.Int64N(int64(span) + 1))
	}
	switch rng.IntN(5) {
	case 0:
		p.Range = &timeline.Range{From: at(), Query: Pick(rng, text, "start=0")}
	case 1:
		from, to := at(), at()
		if to.Before(from) {
			from, to = to, from
		}
		p.Range = &timeline.Range{From: from, To: to, VOD: rng.IntN(2) == 0, Query: Pick(rng, text, "start=1&end=2")}
	case 2:
		p.Range = &timeline.Range{VOD: rng.IntN(2) == 0}
	}
	p.Ended = rng.IntN(4) == 0
	if rng.IntN(6) == 0 {
		p.Oldest = at()
	}
	if len(p.Tracks) == 0 {
		return
	}
	for range rng.IntN(3) {
		tv := &p.Tracks[rng.IntN(len(p.Tracks))]
		switch rng.IntN(4) {
		case 0:
			tv.Language = Pick(rng, text)
		case 1:
			tv.Role = Pick(rng, text)
		case 2:
			tv.Codecs, tv.FourCC, tv.CodecPrivateData = Pick(rng, text), Pick(rng, text), Pick(rng, text)
		default:
			dub := *tv
			dub.ID.Name = Pick(rng, text, "audio_dub")
			p.Tracks = append(p.Tracks, dub)
		}
	}
}

// Requests are the ways a request or the stream's end change what a
// fixture renders: as it is, ended, start-over, a closed range in the
// past, a range from the oldest fragment kept, a retention cut, a short
// window, and languages and roles that need escaping.
func Requests() []func(*timeline.Presentation) {
	e := Epoch
	return []func(*timeline.Presentation){
		func(p *timeline.Presentation) {},
		func(p *timeline.Presentation) { p.Ended = true },
		func(p *timeline.Presentation) { p.Range = &timeline.Range{From: e.Add(time.Hour), Query: "start=3600"} },
		func(p *timeline.Presentation) {
			p.Range = &timeline.Range{From: e.Add(2*time.Hour + 3*time.Second), To: e.Add(5 * time.Hour), VOD: true}
		},
		func(p *timeline.Presentation) {
			p.Range = &timeline.Range{From: e.Add(5 * time.Second), To: e.Add(11 * time.Second)}
		},
		func(p *timeline.Presentation) { p.Range = &timeline.Range{VOD: true} },
		func(p *timeline.Presentation) { p.Oldest = e.Add(3 * time.Second) },
		func(p *timeline.Presentation) { p.DVRWindow = 7 * time.Second },
		func(p *timeline.Presentation) {
			for i := range p.Tracks {
				p.Tracks[i].Language, p.Tracks[i].Role = `fr&"<ca>"`, "dub'\t"
				p.Tracks[i].Label = "<Sous-titres & \"légendes\">\n"
			}
		},
	}
}

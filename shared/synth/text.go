package synth

import (
	"bytes"
	"fmt"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/timeline"
)

// TextOptions are what a text track (Kind timeline.Text) adds to Track.
type TextOptions struct {
	// Codec is "wvtt" (WebVTT in ISOBMFF, the default) or "stpp" (IMSC1
	// text in ISOBMFF, its mime box saying codecs=im1t).
	Codec string
	// Default marks the track enabled in its tkhd: shown unasked.
	Default bool
	// CueEvery puts a cue (Stream.Cue) in fragment k when k%CueEvery is
	// 0; the other fragments carry an empty sample (vtte, or a TTML
	// document without text), as encoders fill the time between cues.
	// 0 and 1: a cue in every fragment.
	CueEvery int
	// Gap is fragments the track does not send at all: no moof, nothing,
	// as a sparse track goes quiet between cues.
	Gap Gap
}

// Gap is the fragments From to From+Count-1 of a text track; a negative
// Count runs to the end of the stream (From 0: a track that sends
// nothing after its header).
type Gap struct{ From, Count int }

// Holds reports whether fragment k is in the gap.
func (g Gap) Holds(k int) bool {
	return k >= g.From && (g.Count < 0 || k < g.From+g.Count)
}

// check validates a text track's options.
func (o TextOptions) check() error {
	switch o.Codec {
	case "", "wvtt", "stpp":
	default:
		return fmt.Errorf("text codec %q (wvtt or stpp)", o.Codec)
	}
	if o.CueEvery < 0 {
		return fmt.Errorf("text track: CueEvery %d", o.CueEvery)
	}
	return nil
}

// handler is the mp4ff media type of the text track's handler: text
// (wvtt) or subt (stpp).
func (o TextOptions) handler() string {
	if o.Codec == "stpp" {
		return "subtitle"
	}
	return "wvtt"
}

// sends reports whether the track has a fragment k.
func (t *track) sends(k int) bool { return t.Kind != timeline.Text || !t.Gap.Holds(k) }

// Cue is a cue of a synthetic text track, in media time.
type Cue struct {
	Start, End time.Duration
	Text       string
}

// Cue returns the cue fragment k of track i carries: "Cue k (lang)" from
// the fragment's start for half its duration. ok is false when it
// carries none (CueEvery skips it, its Gap holds it, or track i is not
// a text track).
func (s *Stream) Cue(i, k int) (c Cue, ok bool) {
	if i < 0 || i >= len(s.tracks) || k < 0 {
		return Cue{}, false
	}
	t := s.tracks[i]
	if t.Kind != timeline.Text || t.Gap.Holds(k) || t.CueEvery > 1 && k%t.CueEvery != 0 {
		return Cue{}, false
	}
	lang := t.Language
	if lang == "" {
		lang = "und"
	}
	start := time.Duration(k) * s.cfg.FragmentDuration
	return Cue{Start: start, End: start + s.cfg.FragmentDuration/2, Text: fmt.Sprintf("Cue %d (%s)", k, lang)}, true
}

// textHeader completes a text track's trak: its sample entry, its
// declared bitrate, and its enabled flag.
func (s *Stream) textHeader(t *track, trak *mp4.TrakBox) {
	var btrt *mp4.BtrtBox
	if t.Bitrate > 0 && !s.cfg.NoBitrateBoxes {
		btrt = &mp4.BtrtBox{AvgBitrate: uint32(t.Bitrate), MaxBitrate: uint32(t.Bitrate)}
	}
	stsd := trak.Mdia.Minf.Stbl.Stsd
	if t.Codec == "stpp" {
		_ = trak.SetStppDescriptor("http://www.w3.org/ns/ttml", "", "")
		stsd.Stpp.AddChild(&mp4.MimeBox{ContentType: "application/ttml+xml;codecs=im1t"})
		if btrt != nil {
			stsd.Stpp.AddChild(btrt)
		}
	} else {
		_ = trak.SetWvttDescriptor("WEBVTT")
		if btrt != nil {
			stsd.Wvtt.AddChild(btrt)
		}
	}
	trak.Tkhd.Flags = 0x2 // in the movie
	if t.Default {
		trak.Tkhd.Flags |= 0x1
	}
}

// textSamples adds text track t's samples of fragment k with add and
// returns their duration: WebVTT a cue (vttc) for its time then an empty
// sample (vtte) for the rest, or one vtte; TTML one document for the
// whole fragment, with the cue or without text.
func (s *Stream) textSamples(t *track, k int, add func(mp4.FullSample)) uint64 {
	i := int(t.id) - 1
	base := uint64(k) * s.fragTicks
	cue, ok := s.Cue(i, k)
	sample := func(at, dur uint64, data []byte) {
		add(mp4.FullSample{
			Sample:     mp4.Sample{Flags: mp4.SyncSampleFlags, Dur: uint32(dur), Size: uint32(len(data))},
			DecodeTime: at, Data: data,
		})
	}
	if t.Codec == "stpp" {
		sample(base, s.fragTicks, ttmlDocument(t.Language, cue, ok))
		return s.fragTicks
	}
	at := base
	if ok {
		d := ticks(cue.End-cue.Start, s.cfg.Timescale)
		vttc := &mp4.VttcBox{}
		vttc.AddChild(&mp4.PaylBox{CueText: cue.Text})
		sample(at, d, encodeBox(vttc))
		at += d
	}
	if rest := base + s.fragTicks - at; rest > 0 {
		sample(at, rest, encodeBox(&mp4.VtteBox{}))
	}
	return s.fragTicks
}

// encodeBox is b's bytes.
func encodeBox(b mp4.Box) []byte {
	var buf bytes.Buffer
	_ = b.Encode(&buf)
	return buf.Bytes()
}

// ttmlDocument is an IMSC1 text document in language lang holding cue
// (when ok) at its media time: TTML in ISOBMFF times its documents on
// the track's timeline, not the sample's (ISO/IEC 14496-30 5.3).
func ttmlDocument(lang string, cue Cue, ok bool) []byte {
	if lang == "" {
		lang = "und"
	}
	body := `<body region="r1"/>`
	if ok {
		body = fmt.Sprintf(`<body region="r1"><div><p begin="%s" end="%s">%s</p></div></body>`, ttmlTime(cue.Start), ttmlTime(cue.End), cue.Text)
	}
	return fmt.Appendf(nil, `<?xml version="1.0" encoding="UTF-8"?>
<tt xmlns="http://www.w3.org/ns/ttml" xmlns:ttp="http://www.w3.org/ns/ttml#parameter" xmlns:tts="http://www.w3.org/ns/ttml#styling" ttp:profile="http://www.w3.org/ns/ttml/profile/imsc1/text" xml:lang="%s"><head><layout><region xml:id="r1" tts:origin="10%% 80%%" tts:extent="80%% 15%%"/></layout></head>%s</tt>
`, lang, body)
}

// ttmlTime is d as a TTML clock time, hours:minutes:seconds.fraction.
func ttmlTime(d time.Duration) string {
	ms := d.Milliseconds()
	return fmt.Sprintf("%02d:%02d:%02d.%03d", ms/3600000, ms/60000%60, ms/1000%60, ms%1000)
}

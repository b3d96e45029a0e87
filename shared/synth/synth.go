// Package synth is a synthetic Smooth Streaming encoder: it builds, with
// mp4ff, the byte stream an encoder pushes (ftyp, an optional live server
// manifest, a moov with every track, then a moof+mdat pair per track per
// fragment carrying a tfxd box, and an mfra at the end) for any set of
// tracks, bitrates and fragment durations, and pushes it over HTTP. Tests
// and benchmarks use it where ffmpeg would be too slow or too rigid.
//
// The media is real: video is H.264 Constrained Baseline (flat gray
// pictures, an IDR picture at the start of every fragment) and audio is
// AAC-LC stereo silence, both padded with filler so that each track carries
// the bitrate it declares. Any H.264 and AAC decoder plays it. Text tracks
// (WebVTT in wvtt, or IMSC1 in stpp) carry cues of known text (Cue) and
// may leave gaps (Track.Gap).
package synth

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/Eyevinn/mp4ff/aac"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/timeline"
)

// serverManifestUUID is the uuid of the live server manifest box, as bytes
// (ism.ServerManifestUUID spells it; ingest's tests import this package).
const serverManifestUUID = "\xa5\xd4\x0b\x30\xe8\x14\x11\xdd\xba\x2f\x08\x00\x20\x0c\x9a\x66"

// Track is one track of a synthetic stream.
type Track struct {
	Kind timeline.Kind // timeline.Video, timeline.Audio or timeline.Text
	// Bitrate is bits per second, declared and carried; a text track's
	// may be 0 (declared nowhere: the receiver measures it), and what it
	// carries is its cues, whatever it declares.
	Bitrate int
	// Name is the SMIL trackName; empty leaves it out (the relay then
	// names the track after its kind).
	Name string
	// Width and Height of a video track; 640x360 when zero.
	Width, Height int
	// Language is the track's ISO 639-2 language (mdhd); "und" when empty.
	Language string
	// Role, when set, is a DASH role (main, dub, commentary, ...) the
	// header declares in a CMAF kind box.
	Role string
	// Label, when set, is the track's name for a person, in a labl box
	// (a group label) of its udta.
	Label string
	// TextOptions are a text track's (see text.go).
	TextOptions
}

// Ladder is a broadcaster's usual ladder: five H.264 renditions from
// 1080p at 6 Mbit/s down to 270p at 0.5 Mbit/s, and AAC at 128 kbit/s (the
// benchmarks' encoder).
func Ladder() []Track {
	return []Track{
		{Kind: timeline.Video, Bitrate: 6_000_000, Width: 1920, Height: 1080},
		{Kind: timeline.Video, Bitrate: 3_500_000, Width: 1280, Height: 720},
		{Kind: timeline.Video, Bitrate: 2_000_000, Width: 960, Height: 540},
		{Kind: timeline.Video, Bitrate: 1_000_000, Width: 640, Height: 360},
		{Kind: timeline.Video, Bitrate: 500_000, Width: 480, Height: 270},
		{Kind: timeline.Audio, Bitrate: 128_000},
	}
}

// Config describes a synthetic stream.
type Config struct {
	Tracks []Track
	// FragmentDuration is the duration of every fragment, 2 s when zero.
	// Video fragments start with an IDR picture, so FragmentDuration times
	// FrameRate must be a whole number of frames.
	FragmentDuration time.Duration
	FrameRate        int    // video frames per second, 25 when zero
	SampleRate       int    // audio samples per second, 48000 when zero
	Timescale        uint32 // ticks per second of every track, 10,000,000 when zero
	// SMIL sends the live server manifest box (ffmpeg's -movflags isml).
	SMIL bool
	// NoBitrateBoxes leaves the bitrate out of the sample entries (btrt,
	// esds), so that without SMIL the receiver has to measure it.
	NoBitrateBoxes bool
	// AudioOffset shifts the audio timestamps; ffmpeg's audio starts at
	// minus one AAC frame (-21.333 ms at 48 kHz).
	AudioOffset time.Duration
	// CMAF makes the push a CMAF track as DASH-IF Live Media Ingest
	// interface 1 sends it: a cmfc ftyp and the moov of its one track
	// (the server manifest is never sent), then per fragment an styp, a
	// moof timed by tfdt (no tfxd) and the mdat. It ends with no mfra: the
	// POST just completes. Use Split for one stream per track, or Muxed.
	CMAF bool
	// Muxed puts every track in one moof per fragment, a traf per track
	// in track order, and one mdat holding their samples track after
	// track: muxed fMP4, as ffmpeg's mp4 muxer writes it with
	// frag_keyframe (and its HLS fMP4 segments without -var_stream_map).
	// With CMAF, the moov declares every track.
	Muxed bool
	// Markers are SCTE-35 ad markers sent in band (events.go).
	Markers []Marker
}

// Stream generates the bytes of one push. Its methods are not safe for
// concurrent use.
type Stream struct {
	cfg       Config
	fragTicks uint64
	tracks    []*track
	buf       bytes.Buffer
}

type track struct {
	Track
	id      uint32
	trak    *mp4.TrakBox
	avc     *avcGray
	frames  int    // video frames per fragment
	frameSz int    // bytes per video frame or AAC frame (target)
	offset  int64  // audio offset in ticks
	aacRaw  []byte // one padded silent AAC frame
}

// New validates cfg and returns a stream for it.
func New(cfg Config) (*Stream, error) {
	if cfg.FragmentDuration == 0 {
		cfg.FragmentDuration = 2 * time.Second
	}
	if cfg.FrameRate == 0 {
		cfg.FrameRate = 25
	}
	if cfg.SampleRate == 0 {
		cfg.SampleRate = 48000
	}
	if cfg.Timescale == 0 {
		cfg.Timescale = 10_000_000
	}
	if len(cfg.Tracks) == 0 {
		return nil, errors.New("synth: no tracks")
	}
	if cfg.CMAF && !cfg.Muxed && len(cfg.Tracks) != 1 {
		return nil, fmt.Errorf("synth: a CMAF stream carries one track, not %d (Config.Split, or Muxed)", len(cfg.Tracks))
	}
	if cfg.CMAF && cfg.AudioOffset < 0 {
		return nil, fmt.Errorf("synth: a CMAF track cannot start before zero (audio offset %v): tfdt is unsigned", cfg.AudioOffset)
	}
	if cfg.FragmentDuration < 100*time.Millisecond || cfg.FragmentDuration > time.Minute {
		return nil, fmt.Errorf("synth: fragment duration %v out of range 100ms..1m", cfg.FragmentDuration)
	}
	if cfg.FrameRate < 1 || cfg.FrameRate > 120 {
		return nil, fmt.Errorf("synth: frame rate %d out of range 1..120", cfg.FrameRate)
	}
	if _, ok := aacFrequencyIndex[cfg.SampleRate]; !ok {
		return nil, fmt.Errorf("synth: AAC sample rate %d not supported", cfg.SampleRate)
	}
	frames := cfg.FragmentDuration * time.Duration(cfg.FrameRate)
	if frames%time.Second != 0 {
		return nil, fmt.Errorf("synth: %v at %d fps is not a whole number of frames", cfg.FragmentDuration, cfg.FrameRate)
	}
	s := &Stream{cfg: cfg, fragTicks: ticks(cfg.FragmentDuration, cfg.Timescale)}
	for i, tr := range cfg.Tracks {
		t := &track{Track: tr, id: uint32(i + 1)}
		if tr.Bitrate < 0 || tr.Bitrate == 0 && tr.Kind != timeline.Text {
			return nil, fmt.Errorf("synth: track %d: bitrate %d", i+1, tr.Bitrate)
		}
		switch tr.Kind {
		case timeline.Video:
			if t.Width == 0 && t.Height == 0 {
				t.Width, t.Height = 640, 360
			}
			avc, err := newAVCGray(t.Width, t.Height, cfg.FrameRate)
			if err != nil {
				return nil, fmt.Errorf("synth: track %d: %w", i+1, err)
			}
			t.avc = avc
			t.frames = int(frames / time.Second)
			t.frameSz = int(int64(tr.Bitrate) * int64(cfg.FragmentDuration) / int64(8*time.Second) / int64(t.frames))
		case timeline.Audio:
			t.frameSz = max(6, int((int64(tr.Bitrate)*1024/int64(cfg.SampleRate)+4)/8))
			t.aacRaw = aacSilentFrame(t.frameSz)
			// In two parts, so that an offset of years does not overflow.
			ts := int64(cfg.Timescale)
			t.offset = int64(cfg.AudioOffset/time.Second)*ts + int64(cfg.AudioOffset%time.Second)*ts/int64(time.Second)
		case timeline.Text:
			if err := tr.TextOptions.check(); err != nil {
				return nil, fmt.Errorf("synth: track %d: %w", i+1, err)
			}
		default:
			return nil, fmt.Errorf("synth: track %d: kind %q not supported", i+1, tr.Kind)
		}
		s.tracks = append(s.tracks, t)
	}
	return s, nil
}

// Split returns one config per track, for encoders that push each track in
// a POST of its own.
func (c Config) Split() []Config {
	out := make([]Config, len(c.Tracks))
	for i, t := range c.Tracks {
		out[i] = c
		out[i].Tracks = []Track{t}
	}
	return out
}

func ticks(d time.Duration, timescale uint32) uint64 {
	return uint64(d) * uint64(timescale) / uint64(time.Second)
}

// FragmentTicks is the nominal fragment duration in timescale ticks.
func (s *Stream) FragmentTicks() uint64 { return s.fragTicks }

// Timescale is the timescale of every track.
func (s *Stream) Timescale() uint32 { return s.cfg.Timescale }

// Config returns the stream's configuration with defaults filled in.
func (s *Stream) Config() Config { return s.cfg }

var aacFrequencyIndex = map[int]bool{
	96000: true, 88200: true, 64000: true, 48000: true, 44100: true, 32000: true,
	24000: true, 22050: true, 16000: true, 12000: true, 11025: true, 8000: true,
}

// Header returns ftyp, the live server manifest box when configured, and
// the moov.
func (s *Stream) Header() ([]byte, error) {
	init := mp4.CreateEmptyInit()
	moov := init.Moov
	moov.Mvhd.Timescale = s.cfg.Timescale
	for _, t := range s.tracks {
		lang := t.Language
		if lang == "" {
			lang = "und"
		}
		media := string(t.Kind)
		if t.Kind == timeline.Text {
			media = t.handler()
		}
		trak := init.AddEmptyTrack(s.cfg.Timescale, media, lang)
		udta := &mp4.UdtaBox{}
		if t.Role != "" {
			udta.AddChild(&mp4.KindBox{SchemeURI: timeline.RoleScheme, Value: t.Role})
		}
		if t.Label != "" {
			udta.AddChild(&mp4.LablBox{Flags: mp4.LablIsGroupLabelFlag, Language: lang, Label: t.Label})
		}
		if len(udta.Children) > 0 {
			trak.AddChild(udta)
		}
		switch t.Kind {
		case timeline.Video:
			if err := trak.SetAVCDescriptor("avc1", [][]byte{t.avc.sps}, [][]byte{t.avc.pps}, true); err != nil {
				return nil, fmt.Errorf("synth: video track %d: %w", t.id, err)
			}
			if !s.cfg.NoBitrateBoxes {
				avc1 := trak.Mdia.Minf.Stbl.Stsd.AvcX
				avc1.AddChild(&mp4.BtrtBox{AvgBitrate: uint32(t.Bitrate), MaxBitrate: uint32(t.Bitrate)})
			}
		case timeline.Audio:
			if err := trak.SetAACDescriptor(aac.AAClc, s.cfg.SampleRate); err != nil {
				return nil, fmt.Errorf("synth: audio track %d: %w", t.id, err)
			}
			if !s.cfg.NoBitrateBoxes {
				dcd := trak.Mdia.Minf.Stbl.Stsd.Mp4a.Esds.DecConfigDescriptor
				dcd.AvgBitrate, dcd.MaxBitrate = uint32(t.Bitrate), uint32(t.Bitrate)
			}
		case timeline.Text:
			s.textHeader(t, trak)
		}
		t.trak = trak
	}
	var b bytes.Buffer
	ftyp := mp4.NewFtyp("isml", 1, []string{"piff", "iso2"})
	if s.cfg.CMAF {
		ftyp = mp4.NewFtyp("cmfc", 0, []string{"iso6", "cmfc"})
	}
	if err := ftyp.Encode(&b); err != nil {
		return nil, err
	}
	if s.cfg.SMIL && !s.cfg.CMAF {
		doc := s.serverManifest()
		size := 8 + 16 + 4 + len(doc)
		b.Write([]byte{byte(size >> 24), byte(size >> 16), byte(size >> 8), byte(size)})
		b.WriteString("uuid" + serverManifestUUID + "\x00\x00\x00\x00")
		b.WriteString(doc)
	}
	if err := moov.Encode(&b); err != nil {
		return nil, fmt.Errorf("synth: encode moov: %w", err)
	}
	return b.Bytes(), nil
}

// serverManifest is the SMIL document of the live server manifest box, as
// ffmpeg writes it.
func (s *Stream) serverManifest() string {
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<smil xmlns=\"http://www.w3.org/2001/SMIL20/Language\">\n<head>\n<meta name=\"creator\" content=\"smoothcast synth\" />\n</head>\n<body>\n<switch>\n")
	param := func(name, value string) {
		fmt.Fprintf(&b, "<param name=%q value=%q valuetype=\"data\"/>\n", name, value)
	}
	for _, t := range s.tracks {
		elem := string(t.Kind)
		if t.Kind == timeline.Text {
			elem = "textstream"
		}
		fmt.Fprintf(&b, "<%s systemBitrate=\"%d\">\n", elem, t.Bitrate)
		param("systemBitrate", strconv.Itoa(t.Bitrate))
		param("trackID", strconv.Itoa(int(t.id)))
		if t.Name != "" {
			param("trackName", t.Name)
		}
		fmt.Fprintf(&b, "</%s>\n", elem)
	}
	b.WriteString("</switch>\n</body>\n</smil>\n")
	return b.String()
}

// Start is the start time, in ticks, of fragment k of track i (its tfxd
// time; negative for audio with a negative offset in fragment 0).
func (s *Stream) Start(i, k int) int64 {
	t := s.tracks[i]
	if t.Kind != timeline.Audio {
		return int64(uint64(k) * s.fragTicks)
	}
	first, _ := s.audioFrames(k)
	return s.aacTime(first) + t.offset
}

// audioFrames is the range of AAC frames of fragment k: those whose
// unshifted start lies in the fragment's nominal interval.
func (s *Stream) audioFrames(k int) (first, end int64) {
	perSec := int64(s.cfg.SampleRate)
	// frame j starts at j*1024/rate seconds; the first frame at or after t
	// seconds is ceil(t*rate/1024).
	at := func(k int64) int64 {
		num := k * int64(s.cfg.FragmentDuration) * perSec
		den := int64(time.Second) * 1024
		return (num + den - 1) / den
	}
	return at(int64(k)), at(int64(k) + 1)
}

func (s *Stream) aacTime(j int64) int64 {
	return j * 1024 * int64(s.cfg.Timescale) / int64(s.cfg.SampleRate)
}

// AppendFragment appends fragment k (from 0) of every track, a moof+mdat
// pair per track in track order (with Muxed, one moof+mdat pair for all),
// to dst; a text track whose Gap holds k has none. Header must have been
// called.
func (s *Stream) AppendFragment(dst []byte, k int) ([]byte, error) {
	if k < 0 {
		return dst, fmt.Errorf("synth: fragment %d", k)
	}
	for _, t := range s.tracks {
		if t.trak == nil {
			return dst, errors.New("synth: AppendFragment before Header")
		}
	}
	if s.cfg.Muxed {
		var ids []uint32
		var sent []*track
		for _, t := range s.tracks {
			if t.sends(k) {
				ids, sent = append(ids, t.id), append(sent, t)
			}
		}
		if len(sent) == 0 {
			return dst, nil
		}
		frag, err := mp4.CreateMultiTrackFragment(uint32(k+1), ids)
		if err != nil {
			return dst, err
		}
		for i, t := range sent {
			var err error
			start, dur := s.samples(t, k, func(fs mp4.FullSample) {
				if err == nil {
					err = frag.AddFullSampleToTrack(fs, t.id)
				}
			})
			if err != nil {
				return dst, fmt.Errorf("synth: fragment %d of track %d: %w", k, t.id, err)
			}
			s.timed(frag.Moof.Trafs[i], start, dur)
		}
		return s.encode(dst, frag, k, 0)
	}
	for _, t := range s.tracks {
		if !t.sends(k) {
			continue
		}
		frag, err := mp4.CreateFragment(uint32(k+1), t.id)
		if err != nil {
			return dst, err
		}
		start, dur := s.samples(t, k, frag.AddFullSample)
		s.timed(frag.Moof.Traf, start, dur)
		if dst, err = s.encode(dst, frag, k, t.id); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// samples adds track t's samples of fragment k with add and returns the
// fragment's start (its tfxd time) and duration.
func (s *Stream) samples(t *track, k int, add func(mp4.FullSample)) (start int64, dur uint64) {
	switch t.Kind {
	case timeline.Video:
		start = int64(uint64(k) * s.fragTicks)
		base := uint64(k * t.frames)
		var data []byte
		for i := range t.frames {
			data = t.avc.picture(data[:0], i, uint(k%2))
			data = appendFiller(data, t.frameSz-len(data))
			t0 := (base + uint64(i)) * uint64(s.cfg.Timescale) / uint64(s.cfg.FrameRate)
			t1 := (base + uint64(i) + 1) * uint64(s.cfg.Timescale) / uint64(s.cfg.FrameRate)
			flags := mp4.NonSyncSampleFlags
			if i == 0 {
				flags = mp4.SyncSampleFlags
			}
			add(mp4.FullSample{
				Sample:     mp4.Sample{Flags: flags, Dur: uint32(t1 - t0), Size: uint32(len(data))},
				DecodeTime: t0, Data: bytes.Clone(data),
			})
			dur += t1 - t0
		}
	case timeline.Audio:
		first, end := s.audioFrames(k)
		start = s.aacTime(first) + t.offset
		for j := first; j < end; j++ {
			d := uint64(s.aacTime(j+1) - s.aacTime(j))
			add(mp4.FullSample{
				Sample:     mp4.Sample{Flags: mp4.SyncSampleFlags, Dur: uint32(d), Size: uint32(len(t.aacRaw))},
				DecodeTime: uint64(s.aacTime(j) + t.offset), Data: t.aacRaw,
			})
			dur += d
		}
	case timeline.Text:
		start = int64(uint64(k) * s.fragTicks)
		dur = s.textSamples(t, k, add)
	}
	return start, dur
}

// timed gives traf its time: CMAF's tfdt (from the first sample), or
// Smooth ingest's tfxd in its place.
func (s *Stream) timed(traf *mp4.TrafBox, start int64, dur uint64) {
	if s.cfg.CMAF {
		traf.Tfdt.Version = 1
		return
	}
	for i, c := range traf.Children {
		if c == mp4.Box(traf.Tfdt) {
			traf.Children = append(traf.Children[:i], traf.Children[i+1:]...)
			break
		}
	}
	traf.Tfdt = nil
	tfxd := mp4.NewTfxdBox(uint64(start), dur)
	tfxd.Tfxd.Version = 1 // 64-bit times, as encoders send them
	_ = traf.AddChild(tfxd)
}

// encode appends frag (fragment k; of track id, 0 when muxed) to dst,
// after an styp for CMAF: each fragment is a segment of its own.
func (s *Stream) encode(dst []byte, frag *mp4.Fragment, k int, id uint32) ([]byte, error) {
	s.buf.Reset()
	if s.cfg.CMAF {
		if err := mp4.NewStyp("msdh", 0, []string{"msdh", "msix", "cmfs"}).Encode(&s.buf); err != nil {
			return dst, err
		}
	}
	s.appendMarkers(k, id)
	if err := frag.Encode(&s.buf); err != nil {
		if id == 0 {
			return dst, fmt.Errorf("synth: encode muxed fragment %d: %w", k, err)
		}
		return dst, fmt.Errorf("synth: encode fragment %d of track %d: %w", k, id, err)
	}
	return append(dst, s.buf.Bytes()...), nil
}

// Trailer is the mfra box that ends a push (an encoder's end of stream);
// nothing for CMAF, whose push ends with its POST.
func (s *Stream) Trailer() []byte {
	if s.cfg.CMAF {
		return nil
	}
	// mfra holding only an mfro whose size field is the mfra size.
	return []byte{0, 0, 0, 24, 'm', 'f', 'r', 'a', 0, 0, 0, 16, 'm', 'f', 'r', 'o', 0, 0, 0, 0, 0, 0, 0, 24}
}

// Package hls renders HLS playlists (RFC 8216, version 7, fMP4 segments) of
// a live presentation: a multivariant playlist with audio as an
// EXT-X-MEDIA group, text tracks as a SUBTITLES group and the videos'
// CEA-608/708 captions as CLOSED-CAPTIONS (text.go), and a media playlist
// per track. Pure functions from a
// timeline.Presentation to bytes. Parse reads playlists back, the
// project's own and encoders' (parse.go).
package hls

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// Version is the EXT-X-VERSION the playlists declare (EXT-X-MAP with
// fMP4 segments needs 6 or more; 7 is what Apple's authoring spec asks for).
const Version = 7

const audioGroup = "audio"

// Master renders the multivariant playlist. Every video track with
// published fragments is a variant; every audio track with published
// fragments is a rendition of the one audio group, the first of the main
// role (CMAF kind) its default. A channel without video has the default
// audio's tracks as its variants (audio-only variants); a channel with
// video has none: a media playlist is either a variant or a rendition,
// never both (audioOnlyVariants).
//
// A variant's CODECS lists its video codec (avc1, hvc1, hev1, av01) and
// every codec of the audio group; an HDR video variant says its
// VIDEO-RANGE. An audio rendition's CHANNELS is its channel count, with
// LFE ("6" for 5.1), or for Dolby Atmos in E-AC-3 the complexity index
// and JOC ("16/JOC"). Text tracks and captions: textRenditions. The DRM
// systems of encrypted tracks: an EXT-X-SESSION-KEY each (protection.go).
func Master(p *timeline.Presentation) []byte {
	var video, audio []*timeline.TrackView
	for i := range p.Tracks {
		tv := &p.Tracks[i]
		if tv.State.Timeline.Empty() {
			continue
		}
		switch tv.Kind {
		case timeline.Video:
			video = append(video, tv)
		case timeline.Audio:
			audio = append(audio, tv)
		}
	}
	var b bytes.Buffer
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:" + strconv.Itoa(Version) + "\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	writeSessionKeys(&b, p, video, audio)
	audioCodecs := ""
	names, used := map[string]int{}, map[string]bool{}
	for _, a := range audio {
		names[a.ID.Name]++
	}
	// The default is the first audio of the main role (CMAF kind), else
	// the first audio.
	def := 0
	for i, a := range audio {
		if a.Role == "" || a.Role == "main" {
			def = i
			break
		}
	}
	for i, a := range audio {
		// A variant lists every codec of the group it may play with
		// (RFC 8216 4.3.4.2).
		if a.Codecs != "" && !slices.Contains(strings.Split(audioCodecs, ","), a.Codecs) {
			audioCodecs = strings.TrimPrefix(audioCodecs+","+a.Codecs, ",")
		}
		name := a.ID.Name
		if names[name] > 1 {
			name += " " + strconv.Itoa(a.ID.Bitrate/1000) + "k"
			if used[name] {
				name = a.ID.Name + " " + strconv.Itoa(a.ID.Bitrate) // NAME is unique in a group
			}
		}
		used[name] = true
		fmt.Fprintf(&b, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=%q,NAME=%q,", audioGroup, name)
		if a.Language != "" && a.Language != "und" {
			fmt.Fprintf(&b, "LANGUAGE=%q,", a.Language)
		}
		switch {
		case i == def:
			b.WriteString("DEFAULT=YES,AUTOSELECT=YES,")
		case a.Role == "commentary":
			// Chosen by the viewer only, never for a language preference.
			b.WriteString("DEFAULT=NO,AUTOSELECT=NO,")
		default:
			b.WriteString("DEFAULT=NO,AUTOSELECT=YES,")
		}
		if a.Role == "description" {
			b.WriteString(`CHARACTERISTICS="public.accessibility.describes-video",`)
		}
		switch {
		case a.JOC > 0:
			// Dolby Atmos in E-AC-3: the complexity index (the objects a
			// decoder renders) and the coding, as Apple and Dolby say.
			fmt.Fprintf(&b, "CHANNELS=\"%d/JOC\",", a.JOC)
		case a.Channels > 0:
			fmt.Fprintf(&b, "CHANNELS=\"%d\",", a.Channels)
		}
		fmt.Fprintf(&b, "URI=%q\n", mediaRef(p, a.ID))
	}
	text := textRenditions(&b, p, video)
	// A variant's bitrates add the highest of the audio renditions it may
	// play with.
	audioAvg, audioPeak := 0, 0
	for _, a := range audio {
		avg, peak := bitrates(a)
		audioAvg, audioPeak = max(audioAvg, avg), max(audioPeak, peak)
	}
	for _, v := range video {
		codecs := v.Codecs
		if audioCodecs != "" {
			codecs += "," + audioCodecs
		}
		codecs = text.addCodecs(codecs)
		avg, peak := bitrates(v)
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,AVERAGE-BANDWIDTH=%d,CODECS=%q", peak+audioPeak, avg+audioAvg, codecs)
		if v.Width > 0 && v.Height > 0 {
			fmt.Fprintf(&b, ",RESOLUTION=%dx%d", v.Width, v.Height)
		}
		if fps, ok := v.State.FrameRate(v.Timescale); ok {
			fmt.Fprintf(&b, ",FRAME-RATE=%.3f", fps)
		}
		if v.VideoRange != "" {
			// HDR (PQ, HLG); without the attribute, a variant is SDR.
			b.WriteString(",VIDEO-RANGE=" + v.VideoRange)
		}
		if len(audio) > 0 {
			fmt.Fprintf(&b, ",AUDIO=%q", audioGroup)
		}
		text.variantAttrs(&b, v)
		b.WriteString("\n" + mediaRef(p, v.ID) + "\n")
	}
	if len(video) == 0 && len(audio) > 0 {
		audioOnlyVariants(p, &b, audio, audio[def].ID.Name, len(names) > 1, text)
	}
	return b.Bytes()
}

// audioOnlyVariants writes the variants of a channel without video: the
// renditions of the default audio, name, each by its bitrate. Only the
// default audio's: a variant is chosen by bandwidth, never by language or
// role, so a dub or a commentary must not be one. They name the audio
// group when it has other names (languages, roles), so that those stay
// selectable.
//
// A channel with video has no audio-only variant. Its URI would be the
// audio rendition's, and a media playlist that is both a variant and a
// rendition is one track to VLC 3: it folds the rendition into the
// variants, plays the audio-only variant first (the lowest bandwidth) and
// drops the audio when it moves up to a video variant. With another URI
// for the same playlist, VLC starts on the audio-only variant and never
// shows video. hls.js, Shaka Player and ExoPlayer (given CODECS) skip
// audio-only variants next to video ones anyway, as their maintainers
// say (hls.js #2654, shaka-player #824, ExoPlayer #721): switching
// between audio-only and video variants is what a media source buffer
// cannot do.
func audioOnlyVariants(p *timeline.Presentation, b *bytes.Buffer, audio []*timeline.TrackView, name string, group bool, text *captionsOf) {
	for _, a := range audio {
		if a.ID.Name != name {
			continue
		}
		avg, peak := bitrates(a)
		fmt.Fprintf(b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,AVERAGE-BANDWIDTH=%d,CODECS=%q", peak, avg, text.addCodecs(a.Codecs))
		if group {
			fmt.Fprintf(b, ",AUDIO=%q", audioGroup)
		}
		text.variantAttrs(b, nil)
		b.WriteString("\n" + mediaRef(p, a.ID) + "\n")
	}
}

// bitrates are a track's average and peak bitrates as measured from the
// sizes of its published fragments, or the declared bitrate for both until
// something is published.
func bitrates(tv *timeline.TrackView) (avg, peak int) {
	if avg, peak, ok := tv.State.Bitrates(tv.Timescale); ok {
		return avg, peak
	}
	return tv.ID.Bitrate, tv.ID.Bitrate
}

// mediaRef is the URI of a media playlist, carrying a time-shift query
// and the choice of marker tags on.
func mediaRef(p *timeline.Presentation, id layout.TrackID) string {
	if q := query(p); q != "" {
		return layout.MediaPlaylistRef(id) + "?" + q
	}
	return layout.MediaPlaylistRef(id)
}

// TargetDuration is EXT-X-TARGETDURATION for fragments of at most maxDur
// ticks: RFC 8216 4.3.3.1 requires every EXTINF, rounded to the nearest
// integer, to be at most the target duration. An EXTINF (extinf) may
// print up to a microsecond more than its fragment lasts, so the rounding
// allows for that microsecond.
func TargetDuration(maxDur, timescale uint64) uint64 {
	if timescale == 0 {
		return 0
	}
	const perSec = uint64(time.Second / time.Microsecond)
	// round half up of maxDur/timescale + 1 µs, in microseconds
	us := maxDur/timescale*perSec + (maxDur%timescale*perSec+timescale-1)/timescale + 1
	td := (us + perSec/2) / perSec
	return max(td, 1)
}

// Media renders the media playlist of track id, cut to the DVR window.
// An encrypted track's key tags follow its EXT-X-MAP (protection.go): the
// init segment is clear, its media segments encrypted. A track whose
// protection changed (Entry.Init) has, after the discontinuity where a
// version begins, that version's EXT-X-MAP and key tags (writeInit).
// ok is false when the channel has no such track.
func Media(p *timeline.Presentation, id layout.TrackID) (out []byte, ok bool) {
	tv, ok := p.Track(id)
	if !ok {
		return nil, false
	}
	tl := p.Windowed(tv)
	ts := tv.Timescale
	var b bytes.Buffer
	b.Grow(64 + 64*tl.Len())
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:" + strconv.Itoa(Version) + "\n")
	if p.VOD() {
		b.WriteString("#EXT-X-PLAYLIST-TYPE:VOD\n")
	}
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", TargetDuration(tv.State.MaxDuration, ts))
	fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", tl.FirstSeq+tl.HoleSegs)
	if disc := tl.FirstDisc - tl.Holes; disc > 0 {
		fmt.Fprintf(&b, "#EXT-X-DISCONTINUITY-SEQUENCE:%d\n", disc)
	}
	b.WriteString("#EXT-X-INDEPENDENT-SEGMENTS\n")
	vtt := webVTT(tv)
	// version: the init segment version of the segments listed.
	version := ""
	if !tl.Empty() {
		version = tl.Runs[0].Init
	}
	if !vtt {
		writeInit(&b, tv, version, nil)
	}
	first := true
	var scratch []byte // one line's numbers, reused
	var prevEnd uint64
	ads := newMarkers(p)
	for e := range tl.All() {
		// A sparse track's pause between cues (no fragment) is filled as a
		// hole is: hls.js places a subtitle playlist's segments one after
		// the other.
		pause := !first && timeline.Pause(prevEnd, e.Start, e.Duration, e.Gap)
		switch {
		case e.Gap && timeline.Hole(prevEnd, e.Start, e.Break), pause:
			scratch = appendHole(scratch[:0], id, prevEnd, e.Start, e.Duration, ts, vtt)
			b.Write(scratch)
		case e.Gap:
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if e.Init != version && !vtt {
			writeInit(&b, tv, e.Init, tv.ProtectionOf(version))
			version = e.Init
		}
		prevEnd = e.End()
		if first || e.Gap || pause {
			b.WriteString("#EXT-X-PROGRAM-DATE-TIME:")
			b.WriteString(p.Wallclock(e.Start, ts).UTC().Format("2006-01-02T15:04:05.000Z07:00"))
			b.WriteByte('\n')
		}
		first = false
		b.Write(ads.before(scratch[:0], p.Wallclock(e.Start, ts), p.Wallclock(e.End(), ts)))
		b.WriteString("#EXTINF:")
		scratch = appendExtinf(scratch[:0], e.Start, e.End(), ts)
		scratch = append(scratch, ",\n"...)
		scratch = appendSegmentRef(scratch, id, e.Start, vtt)
		scratch = append(scratch, '\n')
		b.Write(scratch)
	}
	b.Write(ads.rest(scratch[:0]))
	if p.VOD() {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return b.Bytes(), true
}

// appendHole appends the EXT-X-GAP segments that fill the hole from
// prevEnd to start in track id (timescale ts), d being the duration of the
// fragment after it: timeline.HoleSegments of them, the hole split evenly.
//
// A hole is media lost while the encoder's timeline went on (a fragment
// never stored, an encoder that fell behind): it is no discontinuity, and
// must not be one. Each media playlist has its own holes, and an
// EXT-X-DISCONTINUITY in one would give it discontinuity sequence numbers
// that the others do not have at the same time, which RFC 8216 6.2.4
// forbids: hls.js then never loads the audio rendition of a channel with a
// hole in one track (its audio-stream-controller waits for a main
// playlist that reaches the audio's last discontinuity sequence, and for a
// video fragment of the same sequence number before it loads an audio
// one), for good, since the sequences never meet again. EXT-X-GAP (RFC
// 8216bis 4.4.4.7) says "no media here" with every sequence number
// unchanged; the segments' URIs are those fragments would have, never
// stored, which a client must not load.
func appendHole(dst []byte, id layout.TrackID, prevEnd, start, d, ts uint64, vtt bool) []byte {
	n := timeline.HoleSegments(prevEnd, start, d)
	for k := range n {
		from, to := timeline.HoleBoundary(prevEnd, start, k, n), timeline.HoleBoundary(prevEnd, start, k+1, n)
		dst = append(dst, "#EXT-X-GAP\n#EXTINF:"...)
		dst = appendExtinf(dst, from, to, ts)
		dst = append(dst, ",\n"...)
		dst = appendSegmentRef(dst, id, from, vtt)
		dst = append(dst, '\n')
	}
	return dst
}

// appendExtinf appends the EXTINF of the fragment from start to end (ticks of
// timescale): the difference of the two times, each rounded to the
// microsecond. A client that adds up EXTINFs to place segments (hls.js
// does, from the PROGRAM-DATE-TIME) is then never more than a microsecond
// off the media time, however many segments it adds: rounding each
// duration instead let 48 kHz AAC (2.0053333 s, printed 2.005333) drift
// 10 ms a day. A fragment's EXTINF depends only on its own times, so it
// does not change as the window slides. It allocates nothing.
func appendExtinf(dst []byte, start, end, timescale uint64) []byte {
	us := micros(end, timescale) - micros(start, timescale)
	dst = strconv.AppendUint(dst, us/1e6, 10)
	frac := us % 1e6
	dst = append(dst, '.')
	for d := uint64(100000); d > 0; d /= 10 {
		dst = append(dst, byte('0'+frac/d%10))
	}
	return dst
}

// micros is media time t (ticks of timescale) in microseconds, rounded
// half up; exact for any uint64 t and 32-bit timescale.
func micros(t, timescale uint64) uint64 {
	const perSec = uint64(time.Second / time.Microsecond)
	return t/timescale*perSec + (t%timescale*perSec+timescale/2)/timescale
}

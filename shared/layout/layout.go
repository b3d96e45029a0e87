// Package layout is the one place that knows smoothcast's object keys and
// URL paths. Keys in the bucket mirror the public URL space, so that the CDN
// can serve an object under the same path a Smooth Streaming client asks for:
//
//	live/{channel}.isml/Manifest                                   Smooth client manifest (rendered)
//	live/{channel}.isml/master.m3u8                                HLS multivariant playlist (rendered)
//	live/{channel}.isml/manifest.mpd                               DASH MPD (rendered)
//	live/{channel}.isml/QualityLevels({bitrate})/{track}.m3u8      HLS media playlist (rendered)
//	live/{channel}.isml/QualityLevels({bitrate})/Init({track}).mp4 init segment (ftyp+moov of one track)
//	live/{channel}.isml/QualityLevels({bitrate})/Fragments({track}={time})  fragment (moof+mdat)
//	live/{channel}.isml/QualityLevels({bitrate})/FragmentInfo({track}={time})  the same fragment (URL only, no key of its own)
//	live/{channel}.isml/QualityLevels({bitrate})/Fragments({track}={time}).vtt  a WebVTT text fragment as a WebVTT file (HLS)
//	live/{channel}.isml/QualityLevels({bitrate})/End({track}={time})       end of an encoder connection (marker, never served)
//	state/{channel}/...                                            internal state, never served
//
// Ingest URLs have the form /live/{channel}.isml/Streams({stream}), with an
// optional Events({event})/ segment before Streams as MS-SSTR allows.
package layout

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Prefixes of the two key spaces.
const (
	// LivePrefix holds everything a viewer may fetch (fragments, init segments).
	LivePrefix = "live/"
	// StatePrefix holds the manifest function's state; it is never served.
	StatePrefix = "state/"
)

// MaxNameLen bounds channel, stream and track names.
const MaxNameLen = 64

// ErrInvalidName is returned for a channel, stream or track name outside the
// allowed character set or length.
var ErrInvalidName = errors.New("invalid name")

// ValidName reports whether s is a usable channel, stream or track name:
// 1 to MaxNameLen characters from [A-Za-z0-9_-], not starting with '-'.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameChar(s[i]) {
			return false
		}
	}
	return true
}

func nameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// SanitizeName maps an encoder-supplied name (for example a SMIL trackName)
// onto the allowed character set: every other byte becomes '_', leading '-'
// and '_' and trailing '_' go, and the result is cut to MaxNameLen. It
// returns fallback when nothing usable is left.
func SanitizeName(s, fallback string) string {
	b := []byte(s)
	if len(b) > MaxNameLen {
		b = b[:MaxNameLen]
	}
	for i, c := range b {
		if !nameChar(c) {
			b[i] = '_'
		}
	}
	out := strings.TrimLeft(strings.Trim(string(b), "_"), "-_")
	if !ValidName(out) {
		return fallback
	}
	return out
}

// TrackID names one track (rendition) of a channel: its name in the URL
// (Smooth's trackName, for example "video") and its bitrate in bits per
// second. Several tracks may share a name (the bitrates of one video).
type TrackID struct {
	Name    string
	Bitrate int
}

// String returns "name@bitrate", for logs.
func (t TrackID) String() string { return t.Name + "@" + strconv.Itoa(t.Bitrate) }

func channelBase(channel string) string { return LivePrefix + channel + ".isml/" }

func qualityBase(channel string, t TrackID) string {
	return channelBase(channel) + "QualityLevels(" + strconv.Itoa(t.Bitrate) + ")/"
}

// FragmentKey is the key (and URL path, without the leading slash) of the
// fragment of track t that starts at time start (in the track's timescale).
func FragmentKey(channel string, t TrackID, start uint64) string {
	return qualityBase(channel, t) + "Fragments(" + t.Name + "=" + strconv.FormatUint(start, 10) + ")"
}

// The query parameters a manifest URL may carry: a time-shift range
// (QueryStart, QueryEnd: a wall-clock time in RFC 3339 or seconds since
// the stream's start) and the form of HLS ad markers (QueryMarkers).
const (
	QueryStart   = "start"
	QueryEnd     = "end"
	QueryMarkers = "markers"
)

// ManifestQueries are the query parameters that change a manifest: the
// CDN keys its cache on them and forwards them, and no other.
func ManifestQueries() []string { return []string{QueryStart, QueryEnd, QueryMarkers} }

// WebVTTKey is the key (and URL path, without the leading slash) of the
// WebVTT file that holds the cues of the wvtt fragment of track t that
// starts at start: HLS players read WebVTT subtitles as text files, not
// as fragmented MP4. The relay stores it before the fragment, so that it
// exists once a manifest lists the fragment.
func WebVTTKey(channel string, t TrackID, start uint64) string {
	return FragmentKey(channel, t, start) + ".vtt"
}

// FragmentInfoPath is the URL path (without the leading slash) a Smooth
// client asks for when it wants only a fragment's timing boxes (IIS's
// FragmentInfo request; dash.js sends it after a pause or a seek in a live
// stream, to read tfrf). It has no object of its own: the edge serves the
// fragment at FragmentKey, whose moof carries the same tfxd and tfrf.
func FragmentInfoPath(channel string, t TrackID, start uint64) string {
	return qualityBase(channel, t) + "FragmentInfo(" + t.Name + "=" + strconv.FormatUint(start, 10) + ")"
}

// EndKey is the key of the marker the relay writes when an encoder
// connection that carried track t ends: end is the end time of the last
// fragment it stored. The marker's object-created event tells the manifest
// function; its body says how the connection ended (EndMarker).
func EndKey(channel string, t TrackID, end uint64) string {
	return qualityBase(channel, t) + "End(" + t.Name + "=" + strconv.FormatUint(end, 10) + ")"
}

// InitKey is the key of the init segment (ftyp+moov of that track alone).
func InitKey(channel string, t TrackID) string { return InitKeyOf(channel, t, "") }

// InitKeyOf is the key of the init segment of track t of version v: ""
// is the track's first (InitKey); another is one whose protection
// differs from the first's (the track was encrypted, or no longer is, or
// with another scheme), named ClearInit or by its scheme, which its fragments name
// (MetaInit).
func InitKeyOf(channel string, t TrackID, v string) string {
	return qualityBase(channel, t) + initName(t.Name, v)
}

// initName is the file name of the init segment of tracks named name,
// of version v.
func initName(name, v string) string {
	if v == "" {
		return "Init(" + name + ").mp4"
	}
	return "Init(" + name + "," + v + ").mp4"
}

// ClearInit is the version of a clear init segment of a track whose
// first one is encrypted (InitKeyOf). An encrypted one of a track whose
// first one is clear, or encrypted with another scheme, is named by its
// scheme ("cbcs", "cenc").
const ClearInit = "clear"

// MetaInit is the object metadata key (x-amz-meta-init) that names the
// version of a fragment's init segment (InitKeyOf) when it is not the
// track's first; absent, the first.
const MetaInit = "init"

// SmoothManifestPath is the path of the Smooth Streaming client manifest.
func SmoothManifestPath(channel string) string { return channelBase(channel) + "Manifest" }

// DASHManifestPath is the path of the DASH MPD.
func DASHManifestPath(channel string) string { return channelBase(channel) + "manifest.mpd" }

// MasterPlaylistPath is the path of the HLS multivariant playlist.
func MasterPlaylistPath(channel string) string { return channelBase(channel) + "master.m3u8" }

// MediaPlaylistPath is the path of the HLS media playlist of track t.
func MediaPlaylistPath(channel string, t TrackID) string {
	return qualityBase(channel, t) + t.Name + ".m3u8"
}

// Paths relative to a media playlist (which sits in the QualityLevels folder).

// AppendFragmentRef appends to dst the URI of a fragment relative to the
// track's media playlist (a playlist renderer's loop, without a string per
// segment). The query string is a file-type hint only: the CDN ignores it
// (it is not part of the cache key), but ffmpeg's HLS reader refuses
// segment URLs that carry no known extension.
func AppendFragmentRef(dst []byte, t TrackID, start uint64) []byte {
	dst = append(dst, "Fragments("...)
	dst = append(dst, t.Name...)
	dst = append(dst, '=')
	dst = strconv.AppendUint(dst, start, 10)
	return append(dst, ")?.m4s"...)
}

// InitRef is the URI of the init segment relative to the track's media playlist.
func InitRef(t TrackID) string { return InitRefOf(t, "") }

// InitRefOf is InitRef of the init segment of version v (InitKeyOf).
func InitRefOf(t TrackID, v string) string { return initName(t.Name, v) }

// MediaPlaylistRef is the URI of a media playlist relative to the master playlist.
func MediaPlaylistRef(t TrackID) string {
	return "QualityLevels(" + strconv.Itoa(t.Bitrate) + ")/" + t.Name + ".m3u8"
}

// SmoothURLTemplate is the StreamIndex Url attribute for tracks named name.
func SmoothURLTemplate(name string) string {
	return FragmentPattern(name, "{bitrate}", "{start time}")
}

// FragmentPattern is the path, relative to the channel, of the fragments of
// tracks named name, with the bitrate and start time replaced by the given
// strings: placeholders of a manifest template, or values.
func FragmentPattern(name, bitrate, start string) string {
	return "QualityLevels(" + bitrate + ")/Fragments(" + name + "=" + start + ")"
}

// InitPattern is the path, relative to the channel, of the init segment of
// tracks named name, with the bitrate replaced by the given string.
func InitPattern(name, bitrate string) string { return InitPatternOf(name, bitrate, "") }

// InitPatternOf is InitPattern of the init segments of version v
// (InitKeyOf).
func InitPatternOf(name, bitrate, v string) string {
	return "QualityLevels(" + bitrate + ")/" + initName(name, v)
}

// MetaPrev is the object metadata key (x-amz-meta-prev) in which the relay
// records, on each fragment, the start time of the previous fragment of the
// same track on the same encoder connection.
const MetaPrev = "prev"

// MetaDisc is the object metadata key (x-amz-meta-disc) that marks a
// fragment before which the encoder's timeline is broken: the
// first fragment after the relay rebased a jump in the encoder's clock.
const MetaDisc = "disc"

// ClockStateKey is the key of a channel's clock record: the offset the
// relay adds to the timestamps of an encoder whose clock no longer agrees
// with the channel's (a restarted encoder), shared by all its connections.
func ClockStateKey(channel string) string { return StatePrefix + channel + "/clock.json" }

// UploadsStateKey is the key of the relay's record of a channel's
// uploads (DASH-IF ingest interface 2): the init segment of each
// rendition, so that a relay started again picks the uploads up.
func UploadsStateKey(channel string) string { return StatePrefix + channel + "/uploads.json" }

// State keys.

// ChannelStateKey is the key of a channel's index: its tracks and their
// codec parameters, and the wall-clock anchor of its media time.
func ChannelStateKey(channel string) string { return StatePrefix + channel + "/channel.json" }

// TrackStateKey is the key of one track's published timeline.
func TrackStateKey(channel string, t TrackID) string {
	return StatePrefix + channel + "/tracks/" + t.Name + "_" + strconv.Itoa(t.Bitrate) + ".json"
}

// ObjectKind tells what a key under LivePrefix names.
type ObjectKind int

// Kinds of objects and paths under the live prefix.
const (
	KindUnknown ObjectKind = iota
	KindFragment
	KindInit
	KindSmoothManifest
	KindMasterPlaylist
	KindMediaPlaylist
	KindDASHManifest
	KindEnd
	// KindFragmentInfo is a Smooth FragmentInfo request: a URL path only,
	// answered with the fragment at FragmentKey (see FragmentInfoPath).
	KindFragmentInfo
)

// TimePath is the path clients fetch the server's time from (DASH
// UTCTiming, urn:mpeg:dash:utc:http-iso:2014).
const TimePath = "/time"

// FinishedRangeMaxAge is the Cache-Control max-age of a time-shift
// manifest whose range ended more than a minute ago (it does not change
// any more); live manifests say a second. The CDN's cache policy must let
// it through (its maximum TTL at least this).
const FinishedRangeMaxAge = time.Minute

// ViewerHostHeader is the request header (lower case, as Function URLs
// deliver headers) that carries the host name viewers asked for, so that
// the manifest function can write absolute URLs. The local edge sets it;
// in AWS a CloudFront viewer-request function copies Host into it, since
// a Function URL origin sees its own host.
const ViewerHostHeader = "x-smoothcast-viewer-host"

// Object is a parsed key or URL path under the live prefix.
type Object struct {
	Kind    ObjectKind
	Channel string
	Track   TrackID // fragment, init and media playlist
	Start   uint64  // fragment: its start; end marker: the end time
	// InitVersion is an init segment's version (InitKeyOf): "" for the
	// track's first.
	InitVersion string
}

// ErrNotInLayout is returned by Parse for a key outside the layout.
var ErrNotInLayout = errors.New("key is not in the smoothcast layout")

// Parse classifies a key or URL path (with or without a leading '/').
// It accepts exactly the forms the functions above produce.
func Parse(key string) (Object, error) {
	bad := func() (Object, error) { return Object{}, fmt.Errorf("%w: %q", ErrNotInLayout, key) }
	key = strings.TrimPrefix(key, "/")
	rest, ok := strings.CutPrefix(key, LivePrefix)
	if !ok {
		return bad()
	}
	channel, rest, ok := strings.Cut(rest, ".isml/")
	if !ok || !ValidName(channel) {
		return bad()
	}
	switch rest {
	case "Manifest":
		return Object{Kind: KindSmoothManifest, Channel: channel}, nil
	case "master.m3u8":
		return Object{Kind: KindMasterPlaylist, Channel: channel}, nil
	case "manifest.mpd":
		return Object{Kind: KindDASHManifest, Channel: channel}, nil
	}
	ql, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return bad()
	}
	brs, ok := enclosed(ql, "QualityLevels(", ")")
	if !ok {
		return bad()
	}
	bitrate, err := parseDecimal(brs, 31)
	if err != nil || bitrate == 0 {
		return bad()
	}
	obj := Object{Channel: channel, Track: TrackID{Bitrate: int(bitrate)}}
	switch {
	case strings.HasPrefix(rest, "Fragments("), strings.HasPrefix(rest, "FragmentInfo("), strings.HasPrefix(rest, "End("):
		obj.Kind = KindFragment
		fn := "Fragments("
		switch {
		case strings.HasPrefix(rest, "End("):
			obj.Kind, fn = KindEnd, "End("
		case strings.HasPrefix(rest, "FragmentInfo("):
			obj.Kind, fn = KindFragmentInfo, "FragmentInfo("
		}
		inner, ok := enclosed(rest, fn, ")")
		if !ok {
			return bad()
		}
		name, ts, ok := strings.Cut(inner, "=")
		if !ok || !ValidName(name) {
			return bad()
		}
		t, err := parseDecimal(ts, 64)
		if err != nil {
			return bad()
		}
		obj.Track.Name, obj.Start = name, t
	case strings.HasPrefix(rest, "Init("):
		inner, ok := enclosed(rest, "Init(", ").mp4")
		name, v, versioned := strings.Cut(inner, ",")
		if !ok || !ValidName(name) || versioned && !ValidName(v) {
			return bad()
		}
		obj.Kind, obj.Track.Name, obj.InitVersion = KindInit, name, v
	case strings.HasSuffix(rest, ".m3u8"):
		name := strings.TrimSuffix(rest, ".m3u8")
		if !ValidName(name) {
			return bad()
		}
		obj.Kind, obj.Track.Name = KindMediaPlaylist, name
	default:
		return bad()
	}
	return obj, nil
}

func enclosed(s, prefix, suffix string) (string, bool) {
	if !strings.HasPrefix(s, prefix) || !strings.HasSuffix(s, suffix) || len(s) < len(prefix)+len(suffix) {
		return "", false
	}
	return s[len(prefix) : len(s)-len(suffix)], true
}

// parseDecimal accepts canonical decimal numbers only (no sign, no leading
// zeros), so that every number has exactly one key.
func parseDecimal(s string, bits int) (uint64, error) {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("not a canonical decimal: %q", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("not a canonical decimal: %q", s)
		}
	}
	return strconv.ParseUint(s, 10, bits)
}

// IngestPath is a parsed ingest URL path.
type IngestPath struct {
	Channel string
	Event   string // optional Events({event}) segment
	Stream  string
}

// ParseIngestPath parses /live/{channel}.isml[/Events({event})]/Streams({stream}).
func ParseIngestPath(p string) (IngestPath, error) {
	bad := func() (IngestPath, error) {
		return IngestPath{}, fmt.Errorf("%w: ingest path %q, want /live/{channel}.isml/Streams({stream})", ErrNotInLayout, p)
	}
	rest, ok := strings.CutPrefix(p, "/"+LivePrefix)
	if !ok {
		return bad()
	}
	channel, rest, ok := strings.Cut(rest, ".isml/")
	if !ok || !ValidName(channel) {
		return bad()
	}
	var ip IngestPath
	ip.Channel = channel
	if strings.HasPrefix(rest, "Events(") {
		ev, r2, ok := strings.Cut(rest, "/")
		if !ok {
			return bad()
		}
		name, ok := enclosed(ev, "Events(", ")")
		if !ok || !ValidName(name) {
			return bad()
		}
		ip.Event, rest = name, r2
	}
	stream, ok := enclosed(rest, "Streams(", ")")
	if !ok || !ValidName(stream) {
		return bad()
	}
	ip.Stream = stream
	return ip, nil
}

// MaxUploadNameLen bounds the name of a file an encoder uploads.
const MaxUploadNameLen = 128

// UploadPath is a parsed upload URL path: a file (segment, init segment or
// manifest) that an encoder PUTs under a channel, as DASH-IF Live Media
// Ingest interface 2 (ffmpeg -f dash or -f hls with -method PUT) does.
type UploadPath struct {
	Channel string
	File    string
}

// ParseUploadPath parses /live/{channel}.isml/{file}: one path segment of
// letters, digits, '_', '-' and '.', not starting with '.', that is not a
// stream (Streams(...)) or an event segment.
func ParseUploadPath(p string) (UploadPath, error) {
	bad := func() (UploadPath, error) {
		return UploadPath{}, fmt.Errorf("%w: upload path %q, want /live/{channel}.isml/{file}", ErrNotInLayout, p)
	}
	rest, ok := strings.CutPrefix(p, "/"+LivePrefix)
	if !ok {
		return bad()
	}
	channel, file, ok := strings.Cut(rest, ".isml/")
	if !ok || !ValidName(channel) || !validUploadName(file) {
		return bad()
	}
	return UploadPath{Channel: channel, File: file}, nil
}

func validUploadName(s string) bool {
	if len(s) == 0 || len(s) > MaxUploadNameLen || s[0] == '.' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameChar(s[i]) && s[i] != '.' {
			return false
		}
	}
	return true
}

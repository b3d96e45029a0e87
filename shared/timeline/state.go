package timeline

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/layout"
)

// StateVersion is the version of the state documents this package writes.
// A document with a newer version is refused rather than misread.
const StateVersion = 1

// Kind is the media type of a track.
type Kind string

// Track kinds.
const (
	Video Kind = "video"
	Audio Kind = "audio"
	Text  Kind = "text"
)

// Sparse reports whether tracks of kind k are sparse: text, whose
// encoder may send no fragment for minutes (no cue), or fragments of any
// length. Time between a sparse track's fragments is a pause, not media
// lost: its timeline lists only the fragments that came, with no hole
// (Timeline.AppendSparse, Rules.Sparse); it neither holds back nor ends
// the channel (Presentation.Finished), and its window slides with the
// channel's other tracks (Presentation.Windowed).
func (k Kind) Sparse() bool { return k == Text }

// Track describes one track of a channel as its init segment and the
// encoder declared it: everything a manifest needs besides the timeline.
type Track struct {
	ID               layout.TrackID `json:"id"`
	Kind             Kind           `json:"kind"`
	Timescale        uint64         `json:"timescale"`
	FourCC           string         `json:"fourcc"`             // Smooth FourCC: H264, AACL, ...; "" when Smooth cannot carry the track (AV1)
	Codecs           string         `json:"codecs"`             // RFC 6381, e.g. avc1.64001e, mp4a.40.2
	CodecPrivateData string         `json:"cpd"`                // hex, as the Smooth manifest wants it
	Language         string         `json:"lang,omitempty"`     // ISO 639-2/T or BCP 47
	Role             string         `json:"role,omitempty"`     // DASH role (urn:mpeg:dash:role:2011) from a CMAF kind box; empty is main
	Width            int            `json:"width,omitempty"`    // video
	Height           int            `json:"height,omitempty"`   // video
	SamplingRate     int            `json:"rate,omitempty"`     // audio, Hz
	Channels         int            `json:"channels,omitempty"` // audio
	BitsPerSample    int            `json:"bits,omitempty"`     // audio
	PacketSize       int            `json:"packet,omitempty"`   // audio (block align)
	AudioTag         int            `json:"tag,omitempty"`      // audio, 255 for AAC, 65534 (WAVE_FORMAT_EXTENSIBLE) for AC-3 and E-AC-3
	// ChannelMap is the channel layout of AC-3 and E-AC-3 audio: the
	// chanmap of ETSI TS 102 366 Table E.1.4 (bit 15 L, 14 C, 13 R, 12
	// Ls, 11 Rs, ... 0 LFE; 0xF801 for 5.1), which DASH's Dolby channel
	// configuration scheme carries. 0 for other codecs.
	ChannelMap int `json:"chmap,omitempty"`
	// JOC is the complexity index (1 to 16) of E-AC-3 carrying Dolby
	// Atmos as joint object coding, 0 without.
	JOC int `json:"joc,omitempty"`
	// VideoRange is video's HDR transfer function, "PQ" (SMPTE ST 2084)
	// or "HLG", as HLS's VIDEO-RANGE names them; "" is SDR.
	VideoRange string `json:"range,omitempty"`
	// Label is the track's name for a person (HLS NAME, DASH Label), as
	// the encoder gave it (a labl box in the trak's udta, an uploaded
	// playlist's NAME); "" names it after its ID.
	Label string `json:"label,omitempty"`
	// Default says a player should show this text track unasked (a text
	// track whose tkhd is enabled, HLS DEFAULT=YES).
	Default bool `json:"default,omitempty"`
	// Forced says the text track holds forced subtitles only: what is
	// shown even with subtitles off (role forced-subtitle, HLS
	// FORCED=YES).
	Forced bool `json:"forced,omitempty"`
	// Captions lists the CEA-608/708 caption services a video track
	// carries in its SEI, as Captions.Services reads them: "CC1=eng;SERVICE1".
	Captions Captions `json:"cc,omitempty"`
	// Protection is how the track's media is encrypted (Common
	// Encryption, from its first init segment's sinf and pssh boxes); nil
	// for a clear track.
	Protection *Protection `json:"protection,omitempty"`
	// Inits are the protections of the track's later init segments, by
	// version (layout.InitKeyOf; v != ""): a track whose protection
	// changed (clear to encrypted, encrypted to clear, another scheme)
	// has one for each change, nil for a clear one. Its fragments name
	// their version (Arrival.Init, Run.Init).
	Inits map[string]*Protection `json:"inits,omitempty"`
}

// ProtectionOf is the protection of the track's init segment of version
// v: Protection for "" (its first), else Inits[v] (nil: clear, or a
// version not registered).
func (t *Track) ProtectionOf(v string) *Protection {
	if v == "" {
		return t.Protection
	}
	return t.Inits[v]
}

// Protection is a track's Common Encryption (ISO/IEC 23001-7), as its
// init segment declares it: what the manifests signal (DASH
// ContentProtection, HLS EXT-X-KEY, Smooth ProtectionHeader).
type Protection struct {
	Scheme  string             `json:"scheme"`            // cbcs or cenc
	KID     string             `json:"kid"`               // default KID (tenc), UUID form
	Systems []ProtectionSystem `json:"systems,omitempty"` // from the init's pssh boxes, in their order
}

// ProtectionSystem is one DRM system a protected track is signalled for:
// a pssh box of its init segment.
type ProtectionSystem struct {
	ID   string `json:"id"`   // system ID, UUID form
	PSSH []byte `json:"pssh"` // the whole pssh box
}

// Data is the data of the system's pssh box: the system's own header (a
// PlayReady Object, a Widevine header; FairPlay's, smoothcast's
// convention, the skd:// key URI). nil when PSSH is not a pssh box.
func (s ProtectionSystem) Data() []byte {
	box, err := mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(s.PSSH))
	if p, ok := box.(*mp4.PsshBox); ok && err == nil {
		return p.Data
	}
	return nil
}

// Equal reports whether p and q describe the same protection (both nil:
// two clear tracks).
func (p *Protection) Equal(q *Protection) bool {
	if p == nil || q == nil {
		return p == q
	}
	return p.Scheme == q.Scheme && p.KID == q.KID && slices.EqualFunc(p.Systems, q.Systems, func(a, b ProtectionSystem) bool {
		return a.ID == b.ID && bytes.Equal(a.PSSH, b.PSSH)
	})
}

// System returns the system of ID id (UUID form), if p has it.
func (p *Protection) System(id string) (ProtectionSystem, bool) {
	if p != nil {
		for _, s := range p.Systems {
			if strings.EqualFold(s.ID, id) {
				return s, true
			}
		}
	}
	return ProtectionSystem{}, false
}

// Equal reports whether t and u describe the same track: the fields
// compared with ==, the protections (Protection, Inits) with
// Protection.Equal.
func (t Track) Equal(u Track) bool {
	tp, up := t.Protection, u.Protection
	ti, ui := t.Inits, u.Inits
	t.Protection, u.Protection, t.Inits, u.Inits = nil, nil, nil, nil
	// Every other field is comparable: DeepEqual is == on them.
	return reflect.DeepEqual(t, u) && tp.Equal(up) && maps.EqualFunc(ti, ui, (*Protection).Equal)
}

// RoleScheme is the scheme of the track roles (Track.Role) a CMAF kind
// box may carry that the manifests understand: DASH's Role values
// (ISO/IEC 23009-1 5.8.5.5), such as main, alternate, commentary, dub and
// description.
const RoleScheme = "urn:mpeg:dash:role:2011"

// Channel is a channel's index: the wall-clock time of media time zero, and
// its tracks. It changes when a track appears, and is written again
// while the channel has events once it is layout.StateRefresh old, so
// that the state's lifecycle rule never removes a live channel's index.
type Channel struct {
	Version int    `json:"v"`
	Name    string `json:"name"`
	// Epoch is the wall-clock time at media time zero (UTC). Program date
	// times are Epoch + t/timescale.
	Epoch  time.Time `json:"epoch"`
	Tracks []Track   `json:"tracks"`
	// Touched is when the index was last written (zero in an index
	// written before it was kept).
	Touched time.Time `json:"touched,omitzero"`
}

// Track returns the track with the given ID.
func (c *Channel) Track(id layout.TrackID) (Track, bool) {
	for _, t := range c.Tracks {
		if t.ID == id {
			return t, true
		}
	}
	return Track{}, false
}

// AddTrack adds t (replacing a track of the same ID) and keeps the tracks
// in a stable order: by kind, then name, then bitrate from high to low.
// It reports whether anything changed.
func (c *Channel) AddTrack(t Track) bool {
	for i, old := range c.Tracks {
		if old.ID == t.ID {
			if old.Equal(t) {
				return false
			}
			c.Tracks[i] = t
			return true
		}
	}
	c.Tracks = append(c.Tracks, t)
	slices.SortStableFunc(c.Tracks, func(a, b Track) int {
		if a.Kind != b.Kind {
			return kindOrder(a.Kind) - kindOrder(b.Kind)
		}
		if a.ID.Name != b.ID.Name {
			if a.ID.Name < b.ID.Name {
				return -1
			}
			return 1
		}
		return b.ID.Bitrate - a.ID.Bitrate
	})
	return true
}

func kindOrder(k Kind) int {
	switch k {
	case Video:
		return 0
	case Audio:
		return 1
	case Text:
		return 2
	}
	return 3
}

// Arrival is a fragment that has been stored, as one object-created event
// reports it.
type Arrival struct {
	Fragment
	// HasPrev tells whether Prev is set: the start time of the fragment that
	// came before this one on the same encoder connection. A fragment without
	// one starts a connection.
	HasPrev bool
	Prev    uint64
	// Size is the object's size in bytes.
	Size int64
	// Samples is the number of samples (video frames) in the fragment.
	Samples int `json:"samples,omitempty"`
	// Disc marks a break in the encoder's timeline before this fragment
	// (the relay rebased a jump in the encoder's clock): it is published
	// after a discontinuity even if it starts where the timeline ends.
	Disc bool `json:"disc,omitempty"`
	// Init is the version of the fragment's init segment, as its object
	// metadata names it (layout.MetaInit): "" the track's first,
	// layout.ClearInit or the scheme for one whose protection
	// changed. A fragment whose Init is not the last published run's is
	// published after a break (Run.Break), Disc or not.
	Init string `json:"init,omitempty"`
}

// End is the end of an encoder connection, as the relay's marker reports
// it.
type End struct {
	// Time is the end of the last fragment the connection stored.
	Time uint64
	// Stream tells that the encoder ended the stream (an mfra, or the
	// request completed) rather than the connection dropping.
	Stream bool
}

// Ending is a connection end that nothing published has followed yet.
type Ending struct {
	Time   uint64    `json:"t"`
	Stream bool      `json:"eos,omitempty"`
	At     time.Time `json:"at"` // when the marker's event came
}

// Pending is an arrival that waits for the fragments before it.
type Pending struct {
	Arrival
	At time.Time `json:"at"`
}

// TrackState is the stored state of one track: what is published, and what
// arrived early and waits.
type TrackState struct {
	Version  int       `json:"v"`
	Timeline Timeline  `json:"timeline"`
	Pending  []Pending `json:"pending,omitempty"`
	// MaxDuration is the longest fragment ever published (timescale units):
	// HLS's EXT-X-TARGETDURATION must not shrink.
	MaxDuration uint64 `json:"maxd"`
	// Bytes and Ticks total what was published, for the measured bitrate;
	// Samples counts its samples, for the frame rate.
	Bytes   int64  `json:"bytes"`
	Ticks   uint64 `json:"ticks"`
	Samples uint64 `json:"samples,omitempty"`
	// PeakBytes and PeakTicks are the size and duration of the fragment
	// with the highest bitrate published: HLS BANDWIDTH is a peak.
	PeakBytes int64  `json:"peakb,omitempty"`
	PeakTicks uint64 `json:"peakt,omitempty"`
	// Ends are the ends of encoder connections that no published fragment
	// follows yet, in time order: at most a few (reconnects in flight).
	Ends []Ending `json:"ends,omitempty"`
	// Epoch is the epoch of the channel index this state was written
	// under (zero in a state written before it was kept): see Belongs.
	Epoch time.Time `json:"epoch,omitzero"`
	// Events are the in-band events (ad markers) of the track's
	// fragments, in time order (AddEvents).
	Events []Event `json:"events,omitempty"`
}

// Belongs reports whether the state belongs to the channel whose index
// has epoch: it does unless it was written under another one. The state
// of a channel whose media all expired goes in no fixed order (the
// lifecycle rule removes objects when it gets to them), and the channel
// may start again meanwhile with a new epoch: a track state left from
// its earlier life counts its times from the old epoch and must be read
// as no state at all.
func (s *TrackState) Belongs(epoch time.Time) bool {
	return s.Epoch.IsZero() || s.Epoch.Equal(epoch)
}

// Finished reports whether the track's stream has ended for good at time
// now: an encoder ended it, everything before the end is published, and
// for two fragment durations nothing has continued it (a redundant
// encoder may still be pushing).
func (s *TrackState) Finished(now time.Time, timescale uint64) bool {
	if len(s.Ends) == 0 || len(s.Pending) > 0 || timescale == 0 {
		return false
	}
	e := s.Ends[len(s.Ends)-1]
	if !e.Stream || s.Timeline.End() < e.Time {
		return false
	}
	grace := 2 * time.Duration(float64(s.MaxDuration)/float64(timescale)*float64(time.Second))
	return now.Sub(e.At) >= grace
}

// ApplyEnd records the end of an encoder connection at time now (the
// marker's event time) and publishes what that lets through: the first
// fragment of a later connection need not wait for a gap timeout once
// everything the ended one stored is published. An end that something
// published already follows changes nothing; neither does a repeated one.
func (s *TrackState) ApplyEnd(e End, now time.Time, rules Rules) (changed bool) {
	s.Version = StateVersion
	if s.Timeline.End() > e.Time {
		return false // stale: a later connection went on
	}
	i, found := slices.BinarySearchFunc(s.Ends, e.Time, func(x Ending, t uint64) int { return cmp.Compare(x.Time, t) })
	switch {
	case !found:
		s.Ends = slices.Insert(s.Ends, i, Ending{Time: e.Time, Stream: e.Stream, At: now})
		changed = true
	case e.Stream && !s.Ends[i].Stream:
		// Redundant encoders ending at the same time: one ended the stream.
		s.Ends[i].Stream = true
		changed = true
	}
	if s.drain(now, rules) {
		changed = true
	}
	return changed
}

// Bitrates returns the measured average and peak bitrates of what was
// published, in bits per second; ok is false before anything was.
func (s *TrackState) Bitrates(timescale uint64) (avg, peak int, ok bool) {
	if s.Ticks == 0 || s.PeakTicks == 0 || timescale == 0 {
		return 0, 0, false
	}
	rate := func(bytes int64, ticks uint64) int {
		return int(float64(bytes) * 8 * float64(timescale) / float64(ticks))
	}
	return rate(s.Bytes, s.Ticks), rate(s.PeakBytes, s.PeakTicks), true
}

// FrameRate is the measured number of samples per second (video frames);
// ok is false before anything with samples was published.
func (s *TrackState) FrameRate(timescale uint64) (fps float64, ok bool) {
	if s.Ticks == 0 || s.Samples == 0 || timescale == 0 {
		return 0, false
	}
	return float64(s.Samples) * float64(timescale) / float64(s.Ticks), true
}

// Rules are the parameters of Apply.
type Rules struct {
	// GapTimeout is how long a fragment waits for the ones before it before
	// the missing media is declared a gap.
	GapTimeout time.Duration
	// Window is how much of the timeline the state keeps, in the track's
	// timescale (0: everything).
	Window uint64
	// Sparse: the track is sparse (Kind.Sparse): a fragment that does not
	// start where the timeline ends follows a pause, not lost media, and
	// is published without a gap marker (Timeline.AppendSparse). A break
	// in the encoder's timeline (Arrival.Disc) is still one.
	Sparse bool
}

// Outcome says what Apply did with an arrival.
type Outcome int

// Outcomes of Apply.
const (
	// Duplicate: the fragment was already published or pending.
	Duplicate Outcome = iota
	// Stale: the fragment lies before the published end; it is ignored.
	Stale
	// Published: the fragment (and maybe pending ones after it) was published.
	Published
	// Waiting: the fragment waits for earlier ones.
	Waiting
)

// String names the outcome, for logs.
func (o Outcome) String() string {
	switch o {
	case Duplicate:
		return "duplicate"
	case Stale:
		return "stale"
	case Published:
		return "published"
	case Waiting:
		return "waiting"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// ErrBadArrival is returned for an arrival that cannot be a fragment.
var ErrBadArrival = errors.New("fragment has zero duration")

// Apply adds an arrival to the state at time now (the event's time) and
// publishes every fragment that has become publishable. Fragments are
// published in time order only: a fragment is published when it continues
// the timeline (it starts at the published end, or its encoder connection's
// previous fragment is the last published one), when it starts a connection
// on an empty timeline, when it starts a connection after one that ended
// (ApplyEnd) with everything it stored published, or when it has waited
// GapTimeout. A fragment marked Disc, or one that does not start where the
// timeline ends without continuing its connection, is published after a
// discontinuity (a gap); one whose Init differs from the last published
// fragment's, after a break (its protection changed: HLS
// EXT-X-DISCONTINUITY, DASH a new Period). Nothing already published changes except by the
// window sliding past it. Applying the same arrival again is a no-op, and
// any order of arrivals and ends gives the state of in-order delivery.
//
// changed reports whether the state must be written back.
func (s *TrackState) Apply(a Arrival, now time.Time, rules Rules) (out Outcome, changed bool, err error) {
	if a.Duration == 0 {
		return Stale, false, ErrBadArrival
	}
	s.Version = StateVersion
	switch {
	case s.Timeline.Contains(a.Start):
		out = Duplicate
	case !s.Timeline.Empty() && a.Start < s.Timeline.End():
		out = Stale
	default:
		i, found := slices.BinarySearchFunc(s.Pending, a.Start, func(p Pending, t uint64) int {
			switch {
			case p.Start < t:
				return -1
			case p.Start > t:
				return 1
			}
			return 0
		})
		if found {
			out = Duplicate
		} else {
			s.Pending = slices.Insert(s.Pending, i, Pending{Arrival: a, At: now})
			out, changed = Waiting, true
		}
	}
	before := s.Timeline.Len()
	if s.drain(now, rules) {
		changed = true
	}
	if out == Waiting && s.Timeline.Len() > before && s.Timeline.Contains(a.Start) {
		out = Published
	}
	return out, changed, nil
}

// Settle publishes, at time now, what has waited out the gap timeout
// since the last event: a reader that renders the state applies it, so
// that a fragment whose predecessor never came is listed even when no
// event follows it (the end of a stream). It reports whether anything
// changed.
func (s *TrackState) Settle(now time.Time, rules Rules) bool { return s.drain(now, rules) }

// drain publishes pending fragments while the head of the queue may go.
func (s *TrackState) drain(now time.Time, rules Rules) (changed bool) {
	for len(s.Pending) > 0 {
		p := s.Pending[0]
		last, hasLast := s.Timeline.Last()
		switch {
		case hasLast && p.Start < s.Timeline.End():
			// Overtaken by a gap declaration or an overlapping fragment.
			s.Pending = s.Pending[1:]
			changed = true
			continue
		case !hasLast && !p.HasPrev && !p.Disc, // a Disc fragment follows something
			hasLast && p.Start == last.End(),
			hasLast && p.HasPrev && p.Prev == last.Start:
			s.publish(p.Arrival, hasLast && p.Disc, rules)
		case hasLast && !p.HasPrev && s.endedBefore(p.Start, last.End()):
			// A new connection after one that ended with everything it
			// stored published: nothing earlier can still come.
			s.publish(p.Arrival, true, rules)
		case now.Sub(p.At) >= rules.GapTimeout:
			s.publish(p.Arrival, hasLast, rules)
		default:
			return changed
		}
		s.Pending = s.Pending[1:]
		changed = true
	}
	if len(s.Pending) == 0 {
		s.Pending = nil
	}
	return changed
}

// endedBefore reports whether the latest connection end at or before t is
// at or before published, the end of the published timeline.
func (s *TrackState) endedBefore(t, published uint64) bool {
	i, _ := slices.BinarySearchFunc(s.Ends, t+1, func(x Ending, t uint64) int { return cmp.Compare(x.Time, t) })
	return i > 0 && s.Ends[i-1].Time <= published
}

// publish appends a to the timeline and slides the window: after every
// fragment, so that the state depends only on what was published, not on
// how many fragments one event let through.
func (s *TrackState) publish(a Arrival, gap bool, rules Rules) {
	switch {
	case a.Disc, !s.Timeline.Empty() && s.Timeline.lastInit() != a.Init:
		s.Timeline.addBreak(a.Fragment, a.Init)
	case rules.Sparse:
		s.Timeline.addSparse(a.Fragment, a.Init)
	default:
		s.Timeline.add(a.Fragment, gap, a.Init)
	}
	if rules.Window > 0 && s.Timeline.End() > rules.Window {
		s.Timeline.TrimBefore(s.Timeline.End() - rules.Window)
	}
	s.trimEvents()
	// Ends at or before a are followed now: the stream went on.
	s.Ends = slices.DeleteFunc(s.Ends, func(e Ending) bool { return e.Time <= a.Start })
	if len(s.Ends) == 0 {
		s.Ends = nil
	}
	s.MaxDuration = max(s.MaxDuration, a.Duration)
	s.Bytes += a.Size
	s.Ticks += a.Duration
	s.Samples += uint64(a.Samples)
	// a's rate beats the peak's when Size/Duration > PeakBytes/PeakTicks.
	if a.Duration > 0 && (s.PeakTicks == 0 || uint64(a.Size)*s.PeakTicks > uint64(s.PeakBytes)*a.Duration) {
		s.PeakBytes, s.PeakTicks = a.Size, a.Duration
	}
}

// MarshalTrackState encodes a track state document.
func MarshalTrackState(s *TrackState) ([]byte, error) { return json.Marshal(s) }

// UnmarshalTrackState decodes a track state document.
func UnmarshalTrackState(b []byte) (*TrackState, error) {
	var s TrackState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode track state: %w", err)
	}
	if s.Version > StateVersion {
		return nil, fmt.Errorf("track state version %d is newer than this code (%d)", s.Version, StateVersion)
	}
	for _, r := range s.Timeline.Runs {
		if err := r.validate(); err != nil {
			return nil, fmt.Errorf("decode track state: %w", err)
		}
	}
	return &s, nil
}

// MarshalChannel encodes a channel index document.
func MarshalChannel(c *Channel) ([]byte, error) { return json.Marshal(c) }

// UnmarshalChannel decodes a channel index document.
func UnmarshalChannel(b []byte) (*Channel, error) {
	var c Channel
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("decode channel: %w", err)
	}
	if c.Version > StateVersion {
		return nil, fmt.Errorf("channel version %d is newer than this code (%d)", c.Version, StateVersion)
	}
	return &c, nil
}

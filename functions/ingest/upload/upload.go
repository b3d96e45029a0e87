// Package upload is the ingest source for DASH-IF Live Media Ingest
// interface 2, as ffmpeg's dash and hls muxers send it with -method PUT:
// the encoder PUTs files under a channel, /live/{channel}.isml/{file}: an
// init segment per rendition, then its media segments (CMAF: styp, moof
// with tfdt, mdat), and its own MPD or HLS playlists, rewritten as it
// goes. Files are told apart by their content, not their names.
//
// Each rendition (one init segment) feeds a session of its own (Sessions:
// the relay's, the one a push feeds), segment by segment, so that an
// upload is stored, rewritten, deduplicated, rebased and ended exactly as
// a push is. A segment is answered once it is stored. The encoder's
// manifests are hints (see hints.go); the channel's own Smooth, HLS and
// DASH manifests are built from the segments, as for any push.
//
// Who owns what: each channel's uploads are one goroutine's (channel.run):
// its renditions, the hints, the segments held for an init segment or a
// manifest, the reorder waits, the timers and the record of its init
// segments; requests, timers and workers send it messages. Each
// rendition's session is one worker goroutine's (rendition.work), fed
// segments in media time. Uploads.mu guards only the map of channels and
// the count of requests on their way into each, and is never held while
// sending to a channel. A channel with nothing left (no rendition,
// nothing held, nothing recording or restoring, no request on its way in)
// frees all its state once it has been quiet for Config.Forget.
//
// # MPEG-TS segments
//
// HLS uploads whose segments are MPEG-TS (ffmpeg's -f hls by default):
// video and audio muxed in each .ts file, no init segment (ts.go).
//
// A TS rendition is the media playlist that lists its segments: its key is
// the playlist's file name (index.m3u8, stream_0.m3u8), and it is the name
// of its session's stream (upload:index.m3u8). A TS segment goes to the
// rendition of the media playlist that lists it, or, before a playlist
// lists it, of the playlist whose name, less its extension, is the
// segment's name less a number (ffmpeg's hls muxer: index.m3u8, index7.ts;
// stream_1.m3u8, stream_17.ts), when exactly one does. A segment nothing
// places yet waits for the playlist (held, answered 202, as an fMP4
// segment waits for its init segment): ffmpeg uploads each media
// playlist right after its segment. A segment's own name alone does not
// place it: the names of -var_stream_map's variants run together
// (stream_10.ts is segment 0 of variant 1 and stream_010.ts segment 10
// of variant 0).
//
// # MPEG-TS: order and restarts
//
// A rendition's segments go to its session in media time, by the same
// rules as fMP4 segments (a resend answered with its outcome, one older
// than the newest refused, a gap waited for): a segment's start and end
// are read from its PES headers (tsdemux.Span; 33-bit timestamps taken
// nearest to the rendition's previous segment), not from the playlist's
// EXTINF and media sequence, which arrive after the segment, nor from the
// segment's number, which not every encoder puts in its names.
//
// An encoder that starts again (ffmpeg restarted: its timestamps start
// again at 1.4 s) sends a segment that starts at or before the
// rendition's first, or further back than four of its segments, or where
// a segment the relay has started but with other bytes, and is not a
// resend: the rendition ends (as a drop) and a new one starts with that
// segment at once (there is no init segment to wait for, as an fMP4
// rendition does), its session rebased by the channel clock (one
// discontinuity). An encoder restarted that sends the same segments
// again (the same bytes at the same times, among the last few the relay
// has) is a reconnect that resends: those are answered as resends, and
// the stream goes on without a discontinuity. A segment for a rendition that ended (EXT-X-ENDLIST,
// idle) starts a new one unless it is a late one of the ended run.
//
// # MPEG-TS: packaging
//
// Each rendition's worker demultiplexes its segments with one
// tsdemux.Demuxer (the program, the tracks and the timestamps carry from
// segment to segment) and packages them with one packager.Packager with
// Options.OnCut, cut at each segment's end: one fragment per track per
// segment, the muxed video and audio becoming tracks of one session,
// named as any upload's (video, audio, audio_{language}). The packager's
// init segment, at the rendition's first segment, and each segment's
// fragments are fed to the session as an fMP4 upload's are. A segment is
// demultiplexed whole before the packager gets any of it, and the
// packager drops what it held when it refuses a segment, so a refused
// segment stores nothing. A segment whose video does not start with a key
// frame is refused (400) with packager.ErrNoKeyFrame and what to do.
//
// # MPEG-TS: bitrates
//
// A track's bitrate (its key, QualityLevels({bitrate})) is fixed at its
// rendition's first segment, in this order: the bitrates the rendition's
// previous session used, when the tracks are the same (an encoder that
// reconnects or restarts keeps its tracks' keys: MPEG-TS declares no
// bitrate, and one measured again would differ); else the variant's
// BANDWIDTH from the multivariant playlist, if the relay has it by then:
// BANDWIDTH covers a muxed variant's video and audio together, so each
// audio track gets its bitrate measured from the segment and the video
// track what is left (an audio-only variant's one audio track gets it
// all); else measured from the first segment (its bytes over its
// duration, to the kbit/s). ffmpeg uploads its multivariant playlist
// after each variant's first segment, so ffmpeg's TS renditions are
// measured; the bitrates are remembered per rendition for as long as the
// channel's upload state lives, and recorded with the init segments
// (record.go: the packaged init segment, as "ts:" and the playlist's
// name), so that a relay started again keeps them too.
package upload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/smoothcast/smoothcast/shared/store"
)

// Errors a file is refused with (wrapped with the reason); the relay
// turns each into its status.
var (
	// ErrNotMedia: neither an init segment, a media segment, an HLS
	// playlist nor an MPD.
	ErrNotMedia = errors.New("not an init segment, a media segment (fMP4, MPEG-TS or WebVTT), an HLS playlist or an MPD")
	// ErrMalformed: media that is not whole boxes, or an MPD that does not
	// parse.
	ErrMalformed = errors.New("malformed upload")
	// ErrTooLarge: a playlist or MPD over 1 MiB.
	ErrTooLarge = errors.New("manifest too large")
	// ErrConflict: a segment older than its rendition's newest, or for a
	// rendition that ended or was replaced meanwhile.
	ErrConflict = errors.New("upload conflict")
	// ErrBusy: too many segments wait (for their init segment or a
	// manifest, or in one rendition's queue).
	ErrBusy = errors.New("too many segments wait")
	// ErrIdle ends a rendition whose encoder sent nothing for Config.Idle.
	ErrIdle = errors.New("upload idle")
	// ErrReplaced ends a rendition whose init segment was uploaded again.
	ErrReplaced = errors.New("its init segment was uploaded again")
	// ErrClosed: the uploads are shutting down.
	ErrClosed = errors.New("uploads closed")
)

// Sessions opens the session a rendition feeds.
type Sessions interface {
	// Open starts a session for rendition (its init segment's file name)
	// of channel, uploaded from remote. An error (a limit) refuses the
	// init segment with it.
	Open(channel, rendition, remote string) (Session, error)
}

// Session is one rendition's way into the store. One goroutine at a time
// uses it: the rendition's worker.
type Session interface {
	// Feed stores one uploaded file of the rendition, whole boxes: its
	// init segment first, then media segments in media time.
	Feed(ctx context.Context, s Segment) error
	// Close ends the session, cleanly (the encoder's manifest said the
	// stream ended) or as a drop (why), and writes what ends it.
	Close(clean bool, why error)
}

// Segment is one uploaded file as a session is fed it.
type Segment struct {
	File     string
	Body     []byte
	Received time.Time
	// Held says no request waits for the outcome (a segment held for its
	// init segment, answered 202): a failure is the session's to report.
	Held bool
}

// Store is what the uploads need of the store: the channel's record of
// init segments (see record.go).
type Store interface {
	Get(ctx context.Context, key string) (store.Object, error)
	Put(ctx context.Context, key string, body []byte, o store.PutOptions) (string, error)
}

// Config tunes the uploads.
type Config struct {
	// ReorderWait is how long a segment that would leave a gap after its
	// rendition's newest waits for the segments before it: an encoder
	// uploads on parallel connections, and the segment it sent first may
	// arrive second. Zero stores it at once.
	ReorderWait time.Duration
	// Idle ends, as a drop, a rendition that got no segment for this long
	// (0: never).
	Idle time.Duration
	// Linger is how long a rendition whose end the encoder's manifest
	// announced still takes segments (ffmpeg's dash muxer uploads its last
	// segments and its final, static MPD at the same time); default 2 s.
	Linger time.Duration
	// Hold is how long a segment that nothing places waits for its init
	// segment or manifest before it is dropped; default Idle, else 30 s.
	Hold time.Duration
	// MaxHeld bounds, per channel, the segments that wait to be placed
	// (default 16) and their bytes (MaxHeldBytes, default 64 MiB).
	MaxHeld, MaxHeldBytes int
	// Forget is how long a channel with nothing in flight (no rendition,
	// nothing held) keeps what its encoder's manifests said before it
	// frees its state; default Idle, else 30 s.
	Forget time.Duration
	// Live reports whether a channel is live (see record.go); nil: never.
	Live func(ctx context.Context, channel string) (bool, error)
	Log  *slog.Logger
}

// Result is what became of a file that was not refused.
type Result int

const (
	// Done: stored, or learned from.
	Done Result = iota
	// Held: a media segment waits for the init segment or manifest that
	// places it (the relay answers 202).
	Held
)

// File is one uploaded file, its body whole in hand.
type File struct {
	Channel, Name, Remote string
	Body                  []byte
	Received              time.Time
	// Release, when set, is called once the uploads are done with Body
	// (stored, refused, or dropped after being held): the relay gives its
	// memory back to its budget then.
	Release func()
}

// Uploads is the upload source of one relay: every channel's uploads.
type Uploads struct {
	cfg      Config
	sessions Sessions
	store    Store
	ctx      context.Context // the workers' and the restores'; Abort ends it
	abort    context.CancelFunc

	// onTake, set by tests before the first Put, hears of every file a
	// channel goroutine takes, in the order it takes them; now, the clock
	// of the record's age (time.Now unless a test sets another).
	onTake func(File)
	now    func() time.Time

	mu     sync.Mutex // guards chans, closed and each channel's coming
	chans  map[string]*channel
	closed bool
}

// New returns the uploads of a relay whose sessions come from sessions and
// whose records of init segments live in st.
func New(sessions Sessions, st Store, cfg Config) *Uploads {
	if cfg.Linger <= 0 {
		cfg.Linger = 2 * time.Second
	}
	if cfg.Hold <= 0 {
		cfg.Hold = cmpOr(cfg.Idle, 30*time.Second)
	}
	if cfg.Forget <= 0 {
		cfg.Forget = cmpOr(cfg.Idle, 30*time.Second)
	}
	if cfg.MaxHeld <= 0 {
		cfg.MaxHeld = 16
	}
	if cfg.MaxHeldBytes <= 0 {
		cfg.MaxHeldBytes = 64 << 20
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Uploads{cfg: cfg, sessions: sessions, store: st, ctx: ctx, abort: cancel, chans: map[string]*channel{}, now: time.Now}
}

func cmpOr[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}

// Put takes one file an encoder uploaded and returns once it is stored
// (Done), held (Held) or refused (an error wrapping one of this package's
// Err values, or what the session or the store said).
func (u *Uploads) Put(f File) (Result, error) {
	p := &put{file: f, release: f.Release, reply: make(chan putResult, 1)}
	r, err := u.put(p)
	if err != nil {
		p.free()
	}
	return r, err
}

func (u *Uploads) put(p *put) (Result, error) {
	f := p.file
	k := classify(f.Body)
	switch k {
	case unknown:
		return 0, fmt.Errorf("channel %s: %s (%d bytes): %w", f.Channel, f.Name, len(f.Body), ErrNotMedia)
	case initSegment, mediaSegment:
		if err := wholeBoxes(f.Body, k); err != nil {
			return 0, fmt.Errorf("channel %s: %s: %w", f.Channel, f.Name, err)
		}
	case tsSegment:
		if err := wholePackets(f.Body); err != nil {
			return 0, fmt.Errorf("channel %s: %s: %w", f.Channel, f.Name, err)
		}
	case vttSegment:
		if err := checkWebVTT(f.Body); err != nil {
			return 0, fmt.Errorf("channel %s: %s: %w", f.Channel, f.Name, err)
		}
	case playlist, mpd:
		if len(f.Body) > maxManifest {
			return 0, fmt.Errorf("channel %s: %s of %d bytes, limit %d: %w", f.Channel, f.Name, len(f.Body), maxManifest, ErrTooLarge)
		}
	}
	if f.Received.IsZero() {
		f.Received = time.Now()
	}
	c := u.acquire(f.Channel)
	if c == nil {
		return 0, fmt.Errorf("channel %s: %s: %w", f.Channel, f.Name, ErrClosed)
	}
	p.file.Received, p.kind = f.Received, k
	c.inbox <- p
	r := <-p.reply
	return r.result, r.err
}

// Channels is how many channels have upload state: for tests and status.
func (u *Uploads) Channels() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.chans)
}

// Close ends every rendition as a drop (ErrClosed: the encoders may come
// back, to another relay), answers every request still waiting, and waits
// until every session has written what ends it. Puts after Close are
// refused.
func (u *Uploads) Close() {
	u.mu.Lock()
	u.closed = true
	var all []*channel
	for _, c := range u.chans {
		c.coming++ // the closeAll below
		all = append(all, c)
	}
	u.mu.Unlock()
	var dones []chan struct{}
	for _, c := range all {
		done := make(chan struct{})
		c.inbox <- &closeAll{done: done}
		dones = append(dones, done)
	}
	for _, done := range dones {
		<-done
	}
}

// Abort cancels what the sessions are doing (their store requests), so
// that a Close in progress ends soon: for a shutdown whose time is up.
func (u *Uploads) Abort() { u.abort() }

// acquire returns the channel's state, made if need be, counting one more
// request on its way in; nil once closed.
func (u *Uploads) acquire(name string) *channel {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil
	}
	c := u.chans[name]
	if c == nil {
		c = newChannel(u, name)
		u.chans[name] = c
		go c.run()
	}
	c.coming++
	return c
}

// arrived is the channel goroutine counting a request in.
func (u *Uploads) arrived(c *channel) {
	u.mu.Lock()
	defer u.mu.Unlock()
	c.coming--
}

// retire is the channel goroutine, which has nothing left, asking to end:
// it may unless a request is on its way in. A request that comes later
// makes the channel anew.
func (u *Uploads) retire(c *channel) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if c.coming > 0 {
		return false
	}
	delete(u.chans, c.name)
	return true
}

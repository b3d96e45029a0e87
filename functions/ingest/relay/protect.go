package relay

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/keys"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// Encryption (issue 20): a channel the relay's key source has a plan for
// has every audio and video track encrypted before anything of it
// reaches the store; its text and data tracks stay clear. Everything
// written is a function of the clear input and the key period (the IVs
// are derived, the period comes from media time), so a relay started
// again, or a redundant one, writes the same objects.
//
// A track's protection may change (encryption turned on for a channel
// already published, or off, or another scheme): its fragments already
// stored stay as they are, and the session's init segment is stored as
// a version of its own that its fragments name, where the manifests
// start a new Period (storeInit). A player is never given a clear
// fragment where the manifest promised encryption, nor one it cannot
// decrypt with the init segment the manifest gives it.

// keyError is a key the relay could not get: the key source failed and
// had no earlier key of the channel to go on with. The fragment is not
// stored (never in the clear): the encoder's request fails with 503.
type keyError struct{ err error }

func (e *keyError) Error() string { return e.err.Error() }
func (e *keyError) Unwrap() error { return e.err }

// protectedTrack is one encrypted track of a session: the sink's, used by
// the session's goroutine only.
type protectedTrack struct {
	// enc encrypts the track; it holds the clear init segment until the
	// first fragment says which key period the protected one is for.
	enc *cenc.Track
	// stored: the protected init segment is stored (or found stored), and
	// defaultKID is its tenc's default KID.
	stored     bool
	defaultKID cenc.KID
	// timescale is the track's: key periods are whole seconds of it.
	timescale uint32
	// period is the key period of the last fragment, and stale whether
	// its key was the last one the source had rather than its own: a
	// change of either is logged once.
	period uint64
	stale  bool
}

// protection is what the sink knows of its channel's encryption.
type protection struct {
	src  keys.Source
	plan keys.Plan
	on   bool // the channel has a plan: its audio and video are encrypted
	// tracks are the session's encrypted tracks.
	tracks map[layout.TrackID]*protectedTrack
}

// newProtection reads the channel's plan from src (nil: no encryption).
func newProtection(src keys.Source, channel string) protection {
	p := protection{src: src}
	if src != nil {
		p.plan, p.on = src.Plan(channel)
	}
	return p
}

// encryptable reports whether a track of kind k is encrypted on an
// encrypted channel.
func encryptable(k timeline.Kind) bool { return k == timeline.Video || k == timeline.Audio }

// protectInit takes a track's clear init segment on an encrypted
// channel: it is stored at the track's first fragment (protectFragment),
// once the fragment's key period is known. It reports whether the track
// is encrypted; a track the scheme cannot encrypt is an error (a codec
// outside Common Encryption's: stored clear it would be clear where the
// channel promises protection).
func (s *storeSink) protectInit(h ingest.TrackHeader) (bool, error) {
	if !s.prot.on || !encryptable(h.Kind) {
		return false, nil
	}
	enc, err := cenc.NewTrack(h.Init, s.prot.plan.Scheme)
	if err != nil {
		return false, &ingest.ProtocolError{Err: fmt.Errorf("channel %s track %s: encrypt (%s): %w", s.channel, h.ID, s.prot.plan.Scheme, err)}
	}
	if s.prot.tracks == nil {
		s.prot.tracks = map[layout.TrackID]*protectedTrack{}
	}
	s.prot.tracks[h.ID] = &protectedTrack{enc: enc, timescale: h.Timescale}
	return true, nil
}

// keyPeriod is the key period of a fragment of a track of timescale:
// with rotation every n fragments, its start over n times its duration
// rounded to whole seconds (at least one). The rounding gives every
// track of a channel the same periods, and periods that only rise: AAC
// fragments last 1.984 or 2.005 s by turns, and a start over each one's
// own duration would fall back now and then.
func keyPeriod(f ingest.Fragment, n int, timescale uint32) uint64 {
	if n <= 0 || timescale == 0 {
		return 0
	}
	ts := uint64(timescale)
	seconds := max((f.Duration+ts/2)/ts, 1)
	return f.Start / (uint64(n) * seconds * ts)
}

// protectFragment encrypts f if its track is encrypted, storing the
// track's protected init segment first at its first fragment.
func (s *storeSink) protectFragment(ctx context.Context, f *ingest.Fragment) error {
	pt, ok := s.prot.tracks[f.ID]
	if !ok {
		return nil
	}
	n := keyPeriod(*f, s.prot.plan.RotateEvery, pt.timescale)
	p, err := s.prot.src.Period(ctx, s.channel, n)
	var stale *keys.StaleError
	switch {
	case errors.As(err, &stale):
		// The key server failed: go on with the last key, and say so:
		// smoothcast_errors_total{kind="key"} counts each fragment so
		// written, /status shows the stream's error, and the log and
		// /status's recent errors have it once per key period.
		s.st.failed(errKey, err)
		if !pt.stale || pt.period != n {
			s.log.Error("key server failed: going on with the channel's last key", "track", f.ID.String(), "period", n, "key", p.Key, "err", err)
			s.rl.streamError(s.st, errKey, err)
		} else {
			s.rl.metrics.errors.WithLabelValues(errKey).Inc() // each fragment with the last key counts
		}
	case err != nil:
		return &keyError{fmt.Errorf("channel %s track %s fragment %d: key period %d: %w", s.channel, f.ID, f.Start, n, err)}
	case pt.stale:
		s.log.Info("key server answers again", "track", f.ID.String(), "period", n, "key", p.Key)
	}
	if pt.stored && pt.period != n {
		s.log.Info("key rotated", "track", f.ID.String(), "period", n, "key", p.Key)
	}
	pt.period, pt.stale = n, stale != nil
	if !pt.stored {
		if err := s.storeProtectedInit(ctx, f, pt, p); err != nil {
			return err
		}
	}
	head, payload, err := pt.enc.Fragment(f.Head, f.Payload, p, pt.defaultKID)
	if err != nil {
		return &ingest.ProtocolError{Err: fmt.Errorf("channel %s track %s fragment %d: encrypt: %w", s.channel, f.ID, f.Start, err)}
	}
	if len(head) > fmp4.MaxMoof {
		// What the manifest function reads of a fragment: encryption's
		// boxes (8 bytes or so per sample) must not take a moof taken
		// just under the limit over it.
		return &ingest.ProtocolError{Err: fmt.Errorf("channel %s track %s fragment %d: encrypted, its head is %d bytes, over %d: %w", s.channel, f.ID, f.Start, len(head), fmp4.MaxMoof, mp4box.ErrTooLarge)}
	}
	f.Head, f.Payload = head, payload
	return nil
}

// storeProtectedInit stores the track's protected init segment, whose
// default KID is the key of period p, the period of its first fragment.
// One stored before with the same protection (by an earlier session, or
// a redundant relay) stays: its default KID is the one fragments are
// told apart from.
func (s *storeSink) storeProtectedInit(ctx context.Context, f *ingest.Fragment, pt *protectedTrack, p cenc.Period) error {
	init, err := pt.enc.Init(p)
	if err != nil {
		return &ingest.ProtocolError{Err: fmt.Errorf("channel %s track %s: protect the init segment: %w", s.channel, f.ID, err)}
	}
	v, stored, err := s.storeInit(ctx, f.ID, f.Kind, init, string(s.prot.plan.Scheme))
	if err != nil {
		return err
	}
	pt.defaultKID = p.Key.KID
	if stored != nil {
		_, kid, _, err := cenc.InitProtection(stored)
		if err != nil {
			return &storeError{fmt.Errorf("channel %s track %s: the stored init segment: %w", s.channel, f.ID, err)}
		}
		pt.defaultKID = kid
	}
	pt.stored = true
	s.log.Info("track encrypted", "track", f.ID.String(), "scheme", string(s.prot.plan.Scheme), "default_kid", pt.defaultKID.UUID(),
		"period", pt.period, "init_version", v)
	s.st.protected(f.ID, string(s.prot.plan.Scheme)+" "+pt.defaultKID.UUID())
	return nil
}

// storeInit stores a track's init segment, whose protection is
// protection ("" clear, else its scheme), where its fragments will find
// it, and notes its version for them (initVersion). The track's first
// init segment (InitKey) decides: one of the same protection stays as it
// is (the session's fragments continue the track); with another, the
// track's protection changes here, and the session's init segment is
// stored as a version of its own (layout.InitKeyOf: "clear", or the
// scheme), which each of its fragments names (layout.MetaInit) and the
// manifests start a Period (HLS: a discontinuity, EXT-X-MAP and key
// tags) at. Fragments already stored stay as they are. It returns the
// version and the init segment stored before at its key (nil when this
// session stored it).
func (s *storeSink) storeInit(ctx context.Context, id layout.TrackID, kind timeline.Kind, init []byte, protection string) (string, []byte, error) {
	first, err := s.putInit(ctx, id, kind, "", init)
	if err != nil || first == nil {
		return "", nil, err
	}
	scheme, _, encrypted, err := cenc.InitProtection(first)
	if err != nil {
		return "", nil, &storeError{fmt.Errorf("channel %s track %s: the stored init segment: %w", s.channel, id, err)}
	}
	if !encrypted && protection == "" || encrypted && string(scheme) == protection {
		return "", first, nil
	}
	v := cmp.Or(protection, layout.ClearInit)
	stored, err := s.putInit(ctx, id, kind, v, init)
	if err != nil {
		return "", nil, err
	}
	if s.initVersion == nil {
		s.initVersion = map[layout.TrackID]string{}
	}
	s.initVersion[id] = v
	was := cmp.Or(string(scheme), layout.ClearInit)
	s.log.Info("track protection changes", "track", id.String(), "from", was, "to", v)
	return v, stored, nil
}

// putInit stores an init segment, the track's of version v (InitKeyOf),
// unless one is stored: then it returns the stored one.
func (s *storeSink) putInit(ctx context.Context, id layout.TrackID, kind timeline.Kind, v string, init []byte) ([]byte, error) {
	key := layout.InitKeyOf(s.channel, id, v)
	_, err := s.store.Put(ctx, key, init, store.PutOptions{
		ContentType: contentType(kind), CacheControl: store.CacheImmutable, IfNoneMatch: true,
	})
	if err == nil {
		return nil, nil
	}
	if !errors.Is(err, store.ErrPreconditionFailed) {
		return nil, &storeError{fmt.Errorf("channel %s track %s: %w", s.channel, id, err)}
	}
	s.log.Debug("init segment exists", "track", id.String(), "version", v)
	obj, err := s.store.Get(ctx, key)
	if err != nil {
		return nil, &storeError{fmt.Errorf("channel %s track %s: read the stored init segment: %w", s.channel, id, err)}
	}
	return obj.Body, nil
}

package relay

import (
	"context"
	"errors"
	"fmt"

	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/keys"
	"github.com/smoothcast/smoothcast/shared/layout"
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
// A track is clear or encrypted for its whole life: the init segment
// stored first decides. A session that would add encrypted fragments to
// a track stored clear, or clear ones to a track stored encrypted, is
// refused (errProtection) before it stores anything of that track: a
// player is never given clear fragments where encrypted ones were
// promised, nor fragments it cannot decrypt with the init it has.

// errProtection refuses a session whose protection is not its track's.
var errProtection = errors.New("protection")

// keyError is a key the relay could not get: the key source failed and
// had no earlier key of the channel to go on with. The fragment is not
// stored (never in the clear): the encoder's request fails with 503.
type keyError struct{ err error }

func (e *keyError) Error() string { return e.err.Error() }
func (e *keyError) Unwrap() error { return e.err }

// protectedTrack is one encrypted track of a session: the sink's, used by
// the session's goroutine only.
type protectedTrack struct {
	enc *cenc.Track
	// init is the clear init segment, until the first fragment says which
	// key period the protected one is written for.
	init []byte
	// stored: the protected init segment is stored (or found stored), and
	// defaultKID is its tenc's default KID.
	stored     bool
	defaultKID cenc.KID
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
	s.prot.tracks[h.ID] = &protectedTrack{enc: enc, init: append([]byte(nil), h.Init...)}
	return true, nil
}

// keyPeriod is the key period of a fragment: with rotation every n
// fragments, its start over n fragment durations, in its timescale.
func keyPeriod(f ingest.Fragment, n int) uint64 {
	if n <= 0 || f.Duration == 0 {
		return 0
	}
	return f.Start / (uint64(n) * f.Duration)
}

// protectFragment encrypts f if its track is encrypted, storing the
// track's protected init segment first at its first fragment.
func (s *storeSink) protectFragment(ctx context.Context, f *ingest.Fragment) error {
	pt, ok := s.prot.tracks[f.ID]
	if !ok {
		return nil
	}
	n := keyPeriod(*f, s.prot.plan.RotateEvery)
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
	f.Head, f.Payload = head, payload
	return nil
}

// storeProtectedInit stores the track's protected init segment, whose
// default KID is the key of period p, the period of its first fragment.
// One stored before (by an earlier session, or a redundant relay) stays:
// its default KID is the one fragments are told apart from, and it must
// be encrypted with the same scheme.
func (s *storeSink) storeProtectedInit(ctx context.Context, f *ingest.Fragment, pt *protectedTrack, p cenc.Period) error {
	init, err := pt.enc.Init(p)
	if err != nil {
		return &ingest.ProtocolError{Err: fmt.Errorf("channel %s track %s: protect the init segment: %w", s.channel, f.ID, err)}
	}
	stored, err := s.putInit(ctx, f.ID, f.Kind, init)
	if err != nil {
		return err
	}
	pt.defaultKID = p.Key.KID
	if stored != nil {
		scheme, kid, ok, err := cenc.InitProtection(stored)
		switch {
		case err != nil:
			return &storeError{fmt.Errorf("channel %s track %s: the stored init segment: %w", s.channel, f.ID, err)}
		case !ok:
			return fmt.Errorf("channel %s track %s is stored in the clear: its fragments cannot continue encrypted (encrypt a new channel, or this one once its archive has expired): %w", s.channel, f.ID, errProtection)
		case scheme != s.prot.plan.Scheme:
			return fmt.Errorf("channel %s track %s is stored encrypted with %s, not %s: %w", s.channel, f.ID, scheme, s.prot.plan.Scheme, errProtection)
		}
		pt.defaultKID = kid
	}
	pt.stored, pt.init = true, nil
	s.log.Info("track encrypted", "track", f.ID.String(), "scheme", string(s.prot.plan.Scheme), "default_kid", pt.defaultKID.UUID(), "period", keyPeriod(*f, s.prot.plan.RotateEvery))
	s.st.protected(f.ID, string(s.prot.plan.Scheme)+" "+pt.defaultKID.UUID())
	return nil
}

// checkClear refuses a clear track whose stored init segment (stored is
// it, nil when this session stored its own) is encrypted: its channel
// had keys, and has none now.
func (s *storeSink) checkClear(id layout.TrackID, stored []byte) error {
	if stored == nil {
		return nil
	}
	if _, kid, ok, err := cenc.InitProtection(stored); err == nil && ok {
		return fmt.Errorf("channel %s track %s is stored encrypted (key %s) and the relay has no key for the channel: its fragments cannot continue in the clear: %w", s.channel, id, kid.UUID(), errProtection)
	}
	return nil
}

// putInit stores an init segment unless one is stored: then it returns
// the stored one.
func (s *storeSink) putInit(ctx context.Context, id layout.TrackID, kind timeline.Kind, init []byte) ([]byte, error) {
	key := layout.InitKey(s.channel, id)
	_, err := s.store.Put(ctx, key, init, store.PutOptions{
		ContentType: contentType(kind), CacheControl: store.CacheImmutable, IfNoneMatch: true,
	})
	if err == nil {
		return nil, nil
	}
	if !errors.Is(err, store.ErrPreconditionFailed) {
		return nil, &storeError{fmt.Errorf("channel %s track %s: %w", s.channel, id, err)}
	}
	s.log.Debug("init segment exists", "track", id.String())
	obj, err := s.store.Get(ctx, key)
	if err != nil {
		return nil, &storeError{fmt.Errorf("channel %s track %s: read the stored init segment: %w", s.channel, id, err)}
	}
	return obj.Body, nil
}

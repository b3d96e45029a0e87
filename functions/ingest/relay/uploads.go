package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/smoothcast/smoothcast/functions/ingest/upload"
	"github.com/smoothcast/smoothcast/shared/layout"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// serveUpload takes a file an encoder PUTs (or POSTs, or DELETEs) under a
// channel (DASH-IF ingest interface 2; see package upload): it reads the
// body whole (up to MaxBox bytes) and hands it to the upload source, which
// answers once the file is stored (200), held for the init segment or
// manifest that places it (202), or refused. DELETEs are answered and
// ignored: the retention decides what goes, so that nothing inside the
// DVR window goes missing when the encoder's own window slides.
func (rl *Relay) serveUpload(w http.ResponseWriter, r *http.Request, up layout.UploadPath, token string) {
	log := rl.Log.With("channel", up.Channel, "file", up.File, "remote", r.RemoteAddr)
	switch r.Method {
	case http.MethodPut, http.MethodPost, http.MethodDelete:
	default:
		w.Header().Set("Allow", "PUT, POST, DELETE")
		refuse(w, "method not allowed: upload with PUT or POST", http.StatusMethodNotAllowed)
		return
	}
	if err := rl.authorize(r, up.Channel, token); err != nil {
		rl.refuseBefore(w, r, log, "upload", up.Channel, up.File, err)
		return
	}
	if r.Method == http.MethodDelete {
		log.Debug("upload delete ignored")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var body io.Reader = r.Body
	if rl.Cfg.ReadTimeout > 0 || rl.Cfg.MinRate > 0 {
		body = &deadlineReader{r: r.Body, rc: http.NewResponseController(w), d: rl.Cfg.ReadTimeout,
			minRate: rl.Cfg.MinRate, window: rl.Cfg.RateWindow, since: time.Now()}
	}
	b, release, err := rl.mem.readAll(body, rl.Cfg.MaxBox, int(min(r.ContentLength, int64(rl.Cfg.MaxBox)+1)))
	received := time.Now()
	rl.metrics.bytes.WithLabelValues(kindUpload).Add(float64(len(b)))
	if err == nil && len(b) > rl.Cfg.MaxBox {
		err = fmt.Errorf("upload larger than %d bytes: %w", rl.Cfg.MaxBox, upload.ErrTooLarge)
	}
	if err == nil && len(b) == 0 {
		release()
		w.WriteHeader(http.StatusOK) // an encoder's probe
		return
	}
	res := upload.Done
	if err == nil {
		// The upload source gives the body's memory back once it is done
		// with it: stored, refused, or dropped after being held.
		res, err = rl.uploads.Put(upload.File{Channel: up.Channel, Name: up.File, Remote: r.RemoteAddr, Body: b, Received: received, Release: release})
	} else {
		release()
	}
	if err != nil {
		o := outcomeOf(err)
		log.Warn("upload "+o.what, "err", err)
		rl.noteError(o.kind, up.Channel, up.File, r.RemoteAddr, err)
		if o.status == http.StatusServiceUnavailable || o.status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "5")
		}
		refuse(w, err.Error(), o.status)
		return
	}
	if res == upload.Held {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// CloseUploads ends every upload rendition (as drops: the encoders may
// come back) and waits for their last writes. Call it when the relay
// stops, after its server has stopped taking requests.
func (rl *Relay) CloseUploads() { rl.uploads.Close() }

// UploadChannels counts the channels the relay holds upload state for.
func (rl *Relay) UploadChannels() int { return rl.uploads.Channels() }

// Open is upload.Sessions: an upload rendition's session, the relay's own
// (stored, rebased and ended as a push's), counted and shown as a stream.
func (rl *Relay) Open(channel, rendition, remote string) (upload.Session, error) {
	if err := rl.admit(channel); err != nil {
		return nil, err
	}
	st := &stream{channel: channel, name: "upload:" + rendition, kind: kindUpload, remote: remote, started: time.Now()}
	rl.register(st, nil)
	s := &uploadSession{}
	s.run = rl.newRun(st, rl.Log.With("channel", channel, "stream", st.name, "remote", remote), func() time.Time { return s.received })
	return s, nil
}

// uploadSession is an upload rendition's run; its rendition's worker
// feeds it, one segment at a time.
type uploadSession struct {
	*run
	received time.Time // when the segment being fed arrived
}

// Feed feeds the session the boxes of one uploaded file.
func (s *uploadSession) Feed(ctx context.Context, seg upload.Segment) error {
	s.received = seg.Received
	err := s.feed(ctx, seg.Body)
	if err != nil {
		o := outcomeOf(err)
		s.st.failed(o.kind, err)
		if seg.Held {
			// No request hears of it: say it here.
			s.log.Warn("held segment not stored", "file", seg.File, "err", err)
			s.rl.streamError(s.st, o.kind, fmt.Errorf("held segment %s not stored: %w", seg.File, err))
		}
	}
	return err
}

func (s *uploadSession) feed(ctx context.Context, b []byte) error {
	for box, err := range mp4box.All(b) {
		if err != nil {
			return err // wholeBoxes let it through: cannot be
		}
		if err := s.sess.Box(ctx, box); err != nil {
			return err
		}
	}
	return nil
}

// Close ends the session: its end markers, its log line, its count.
func (s *uploadSession) Close(clean bool, why error) {
	s.end(clean)
	attrs := s.attrs(s.sess.Stats())
	switch {
	case clean:
		s.log.Info("upload session ended", append(attrs, "end_of_stream", true)...)
	case errors.Is(why, upload.ErrIdle):
		// No request hears of it: count it here.
		s.log.Warn("upload session ended", append(attrs, "err", why)...)
		s.rl.streamError(s.st, errTimeout, why)
	default:
		s.log.Info("upload session ended", append(attrs, "err", why)...)
	}
	s.rl.unregister(s.st)
	s.rl.leave(s.st.channel)
}

// channelLive reports whether a channel is live: its state exists, some
// track has not ended for good, and media was published within the last
// 10 minutes: longer than a relay takes to be replaced (a new instance
// boots), shorter than a break between events. The uploads restore such
// a channel's renditions.
func (rl *Relay) channelLive(ctx context.Context, channel string) (bool, error) {
	const within = 10 * time.Minute
	o, err := rl.store.Get(ctx, layout.ChannelStateKey(channel))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ch, err := timeline.UnmarshalChannel(o.Body)
	if err != nil {
		return false, err
	}
	states, err := trackStates(ctx, rl.store, channel, ch)
	if err != nil {
		return false, err
	}
	now := time.Now()
	ended := true
	for _, tr := range ch.Tracks {
		if st, ok := states[tr.ID]; ok && !st.Finished(now, tr.Timescale) {
			ended = false
		}
	}
	return !ended && now.Sub(ch.Epoch.Add(publishedEnd(ch, states))) <= within, nil
}

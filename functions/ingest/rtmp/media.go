package rtmp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/shared/ingest"
	"github.com/smoothcast/smoothcast/shared/ism"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/packager"
)

// errEnded is the encoder ending its stream: deleteStream, FCUnpublish or
// closeStream.
var errEnded = errors.New("rtmp: the encoder ended the stream")

// errStopped ends a stream while the relay shuts down: what the packager
// holds is written (Flush), whole fragments that end where the stream
// stopped.
var errStopped = errors.New("rtmp: stopped by the relay's shutdown")

// supported is what the relay takes, for the refusal of anything else.
const supported = "the relay takes H.264, HEVC or AV1 video and AAC or AC-3 audio"

// msgConn is the connection as gortmplib's Reader reads it: it ends the
// stream at the encoder's deleteStream, keeps its metadata, and bounds
// what the Reader holds while it looks for the tracks.
type msgConn struct {
	sc *gortmplib.ServerConn
	nc *netConn
	// analysing: the Reader is finding the tracks, holding every message
	// (2 s of media): at most maxHeld bytes of them.
	analysing bool
	from      int64
	maxHeld   int64
	meta      metadata
}

func (m *msgConn) BytesReceived() uint64           { return m.sc.BytesReceived() }
func (m *msgConn) BytesSent() uint64               { return m.sc.BytesSent() }
func (m *msgConn) Write(msg message.Message) error { return m.sc.Write(msg) }

// Read reads the next message.
func (m *msgConn) Read() (message.Message, error) {
	msg, err := m.sc.Read()
	if err != nil {
		return nil, err
	}
	switch v := msg.(type) {
	case *message.CommandAMF0:
		switch v.Name {
		case "deleteStream", "FCUnpublish", "closeStream":
			return nil, errEnded
		}
	case *message.DataAMF0:
		m.meta.read(v.Payload)
	}
	if m.analysing && m.nc.n-m.from > m.maxHeld {
		return nil, &ingest.ProtocolError{Err: fmt.Errorf("rtmp: %w: more than %d bytes before 2 s of media showed which tracks the stream has", mp4box.ErrTooLarge, m.maxHeld)}
	}
	return msg, nil
}

// metadata is what the encoder's onMetaData declares.
type metadata struct {
	videoKbps, audioKbps float64
}

// read takes an onMetaData (or @setDataFrame onMetaData) message.
func (md *metadata) read(payload amf0.Data) {
	for len(payload) > 0 {
		if s, ok := payload[0].(string); ok && (s == "@setDataFrame" || s == "onMetaData") {
			payload = payload[1:]
			continue
		}
		break
	}
	if len(payload) == 0 {
		return
	}
	var o amf0.Object
	switch v := payload[0].(type) {
	case amf0.Object:
		o = v
	case amf0.ECMAArray:
		o = amf0.Object(v)
	default:
		return
	}
	if v, ok := o.GetFloat64("videodatarate"); ok {
		md.videoKbps = v
	}
	if v, ok := o.GetFloat64("audiodatarate"); ok {
		md.audioKbps = v
	}
}

// declared is a bitrate the metadata declares in kbit/s, in bit/s; 0
// when it declares none a manifest could carry (the session measures
// it then).
func declared(kbps float64) int {
	if math.IsNaN(kbps) || kbps <= 0 || kbps > ism.MaxBitrate/1000 {
		return 0
	}
	bps := int(math.Round(kbps * 1000))
	if ism.CheckBitrate(bps) != nil {
		return 0
	}
	return bps
}

// track is one of the stream's tracks, as the packager sees it.
type track struct {
	idx   int
	codec packager.Codec
	sets  [][]byte // a video track's parameter sets, as its sample entry has them
	clock flvClock
}

// flvClock unwraps a track's FLV timestamps (32-bit milliseconds).
type flvClock struct {
	started bool
	last    uint32
	ms      int64
}

// at unwraps a timestamp: it moves on from the last one by their
// difference taken as a signed 32-bit number, so that it keeps rising
// across the wrap (every 49.7 days). A timestamp before the last one is
// an error: over one connection an encoder's clock only goes forward.
func (c *flvClock) at(d time.Duration) (int64, error) {
	raw := uint32(d / time.Millisecond)
	if !c.started {
		c.started, c.last, c.ms = true, raw, int64(raw)
		return c.ms, nil
	}
	step := int64(int32(raw - c.last))
	if step < 0 {
		return 0, fmt.Errorf("timestamp goes back from %d ms to %d ms: over one connection an encoder's clock only goes forward", c.ms, c.ms+step)
	}
	c.last, c.ms = raw, c.ms+step
	return c.ms, nil
}

// stream is one publish's media: the packager and what feeds it.
type stream struct {
	ctx     context.Context
	live    *relay.Live
	p       *packager.Packager
	tracks  []*track
	video   *track // nil for audio only
	channel string
	err     error // the first error of a callback: it ends the stream
}

// publish accepts the publish and feeds the packager from the connection
// until the encoder ends the stream (nil), the relay stops it (an error
// wrapping relay.ErrShuttingDown), or another error.
func (s *Server) publish(sc *gortmplib.ServerConn, c *netConn, live *relay.Live, key StreamKey) error {
	c.setTimeout(s.cfg.ReadTimeout)
	if err := sc.AcceptAction(); err != nil {
		return c.readError(err)
	}
	mc := &msgConn{sc: sc, nc: c, analysing: true, from: c.n, maxHeld: 2 * int64(s.cfg.Limits.MaxPending)}
	r := &gortmplib.Reader{Conn: mc}
	if err := r.Initialize(); err != nil {
		switch err = c.readError(err); {
		case errors.Is(err, errEnded):
			live.Log().Info("rtmp: the encoder ended the stream before 2 s of media showed its tracks")
			return nil
		case errors.Is(err, errStopped):
			return fmt.Errorf("channel %s: %w: %w", key.Channel, errStopped, relay.ErrShuttingDown)
		}
		return err
	}
	mc.analysing = false
	st, err := s.newStream(live, key.Channel, r, mc.meta)
	if err != nil {
		return err
	}
	for {
		if err := r.Read(); err != nil {
			switch err = c.readError(err); {
			case errors.Is(err, errEnded):
				return st.wrap(st.p.End(st.ctx))
			case errors.Is(err, errStopped):
				st.err = err
				return st.finish()
			}
			return err
		}
		if st.err != nil {
			return st.finish()
		}
	}
}

// newStream makes the packager of the tracks the Reader found, and has
// the Reader hand it their samples.
func (s *Server) newStream(live *relay.Live, channel string, r *gortmplib.Reader, meta metadata) (*stream, error) {
	st := &stream{ctx: live.Context(), live: live, channel: channel}
	var ptracks []packager.Track
	var videos, audios int
	for _, t := range r.Tracks() {
		if t.Codec.IsVideo() {
			videos++
		} else {
			audios++
		}
	}
	if videos > 1 {
		return nil, &ingest.ProtocolError{Err: fmt.Errorf("rtmp: %d video tracks (Enhanced RTMP multitrack): the relay takes one per connection; publish each rendition under a stream key of its own ({channel}/{name})", videos)}
	}
	for i, t := range r.Tracks() {
		tr := &track{idx: i}
		var pt packager.Track
		switch c := t.Codec.(type) {
		case *codecs.H264:
			tr.codec, tr.sets = packager.H264, [][]byte{c.SPS, c.PPS}
			pt = packager.Track{Codec: packager.H264, SPS: [][]byte{c.SPS}, PPS: [][]byte{c.PPS}}
			r.OnDataH264(t, func(pts, dts time.Duration, au [][]byte) { st.videoSample(tr, pts, dts, au) })
		case *codecs.H265:
			tr.codec, tr.sets = packager.HEVC, [][]byte{c.VPS, c.SPS, c.PPS}
			pt = packager.Track{Codec: packager.HEVC, VPS: [][]byte{c.VPS}, SPS: [][]byte{c.SPS}, PPS: [][]byte{c.PPS}}
			r.OnDataH265(t, func(pts, dts time.Duration, au [][]byte) { st.videoSample(tr, pts, dts, au) })
		case *codecs.AV1:
			tr.codec = packager.AV1 // the sequence header from the first key frame
			pt = packager.Track{Codec: packager.AV1}
			r.OnDataAV1(t, func(pts time.Duration, tu [][]byte) { st.av1Sample(tr, pts, tu) })
		case *codecs.MPEG4Audio:
			asc, err := c.Config.Marshal()
			if err != nil {
				return nil, &ingest.ProtocolError{Err: fmt.Errorf("rtmp: audio track %d: AAC configuration: %w", i, err)}
			}
			tr.codec = packager.AAC
			pt = packager.Track{Codec: packager.AAC, AudioConfig: asc}
			r.OnDataMPEG4Audio(t, func(pts time.Duration, au []byte) { st.audioSample(tr, pts, au) })
		case *codecs.AC3:
			tr.codec = packager.AC3
			pt = packager.Track{Codec: packager.AC3}
			r.OnDataAC3(t, func(pts time.Duration, frame []byte) { st.audioSample(tr, pts, frame) })
		default:
			return nil, &ingest.ProtocolError{Err: fmt.Errorf("rtmp: track %d is %s: %s", i, codecName(t.Codec), supported)}
		}
		switch {
		case tr.codec.Video():
			st.video = tr
			if videos == 1 {
				pt.Bitrate = declared(meta.videoKbps)
			}
		case audios == 1:
			pt.Bitrate = declared(meta.audioKbps)
		}
		st.tracks = append(st.tracks, tr)
		ptracks = append(ptracks, pt)
	}
	p, err := packager.New(live, ptracks, packager.Options{
		MaxGOP: s.cfg.MaxGOP, MinFragment: s.cfg.MinFragment, MaxFragmentBytes: s.rl.Cfg.MaxBox, Log: live.Log(),
	})
	if err != nil {
		return nil, st.wrap(err)
	}
	st.p = p
	live.Log().Info("rtmp tracks", "tracks", describe(ptracks))
	return st, nil
}

// codecName names a codec the relay does not take.
func codecName(c codecs.Codec) string {
	switch c.(type) {
	case *codecs.VP9:
		return "VP9"
	case *codecs.Opus:
		return "Opus"
	case *codecs.FLAC:
		return "FLAC"
	case *codecs.MPEG1Audio:
		return "MP3 (MPEG-1 audio)"
	case *codecs.G711:
		return "G.711"
	case *codecs.LPCM:
		return "LPCM"
	}
	return fmt.Sprintf("%T", c)
}

// describe lists tracks for the log: codec and declared bitrate.
func describe(ts []packager.Track) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Codec.String()
		if t.Bitrate > 0 {
			out[i] += fmt.Sprintf(" %d bit/s", t.Bitrate)
		}
	}
	return out
}

// wrap names the channel in an error of the stream's.
func (st *stream) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("channel %s: %w", st.channel, err)
}

// finish ends the stream after an error: while the relay shuts down what
// the packager holds is written first (nothing it took is lost; the
// tracks end as drops, for the encoder's reconnect to another relay).
func (st *stream) finish() error {
	if !errors.Is(st.err, errStopped) {
		return st.err
	}
	if err := st.p.Flush(st.ctx); err != nil {
		return st.wrap(err)
	}
	return fmt.Errorf("channel %s: %w: %w", st.channel, errStopped, relay.ErrShuttingDown)
}

// videoSample hands the packager an access unit. A sequence header again
// (gortmplib hands it over as an access unit of parameter sets) is
// skipped when it repeats the track's, and ends the stream when it
// changes them: the track's init segment is out already.
func (st *stream) videoSample(t *track, pts, dts time.Duration, au [][]byte) {
	if st.err != nil {
		return
	}
	if onlyParameterSets(t.codec, au) {
		if !equalSets(au, t.sets) {
			st.err = st.wrap(&ingest.ProtocolError{Err: fmt.Errorf("rtmp: %w: the encoder sent new video parameters mid-stream (a new resolution or profile?): the track's init segment is out already; start a new stream", packager.ErrParameterSets)})
		}
		return
	}
	ms, err := t.clock.at(dts)
	if err != nil {
		st.err = st.wrap(&ingest.ProtocolError{Err: fmt.Errorf("rtmp: video: %w", err)})
		return
	}
	cts := int64((pts - dts) / time.Millisecond)
	st.err = st.wrap(st.p.Write(st.ctx, t.idx, packager.Sample{DTS: ms * 90, PTS: (ms + cts) * 90, NALUs: au}))
}

// av1Sample hands the packager an AV1 temporal unit (gortmplib hands it
// over as OBUs).
func (st *stream) av1Sample(t *track, pts time.Duration, tu [][]byte) {
	if st.err != nil {
		return
	}
	ms, err := t.clock.at(pts)
	if err != nil {
		st.err = st.wrap(&ingest.ProtocolError{Err: fmt.Errorf("rtmp: video: %w", err)})
		return
	}
	b, err := av1.Bitstream(tu).Marshal()
	if err != nil {
		st.err = st.wrap(&ingest.ProtocolError{Err: fmt.Errorf("rtmp: video: AV1 temporal unit: %w", err)})
		return
	}
	st.err = st.wrap(st.p.Write(st.ctx, t.idx, packager.Sample{DTS: ms * 90, PTS: ms * 90, Frame: b}))
}

// audioSample hands the packager an audio frame.
func (st *stream) audioSample(t *track, pts time.Duration, frame []byte) {
	if st.err != nil {
		return
	}
	ms, err := t.clock.at(pts)
	if err != nil {
		st.err = st.wrap(&ingest.ProtocolError{Err: fmt.Errorf("rtmp: audio track %d: %w", t.idx, err)})
		return
	}
	st.err = st.wrap(st.p.Write(st.ctx, t.idx, packager.Sample{PTS: ms * 90, Frame: frame}))
}

// onlyParameterSets reports whether an access unit holds parameter sets
// and nothing else.
func onlyParameterSets(c packager.Codec, au [][]byte) bool {
	if len(au) == 0 {
		return false
	}
	for _, n := range au {
		if len(n) == 0 {
			return false
		}
		switch c {
		case packager.H264:
			if typ := h264.NALUType(n[0] & 0x1f); typ != h264.NALUTypeSPS && typ != h264.NALUTypePPS {
				return false
			}
		case packager.HEVC:
			if typ := h265.NALUType((n[0] >> 1) & 0x3f); typ != h265.NALUType_VPS_NUT && typ != h265.NALUType_SPS_NUT && typ != h265.NALUType_PPS_NUT {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func equalSets(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

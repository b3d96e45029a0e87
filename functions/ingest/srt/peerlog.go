package srt

import (
	"log/slog"
	"sync"

	gosrt "github.com/datarhei/gosrt"
)

// SRT has no end-of-stream message, but a caller that closes its socket
// (srt_close: ffmpeg at the end of its input or on q/SIGINT/SIGTERM, OBS
// when streaming stops) sends a SHUTDOWN control packet; a caller that
// crashes, is killed or loses the network sends nothing, and the
// connection ends when the peer idle timeout finds it silent. gosrt ends
// a connection's Read with io.EOF either way, and keeps the count of
// SHUTDOWN packets received to itself: it says so only to its Logger, an
// interface it calls synchronously, before it closes the connection.
// peerLog is that Logger. It notes the sockets whose caller sent
// SHUTDOWN, so that the connection's end tells an end of stream (the
// manifests turn VOD) from a drop (the channel stays live for a
// reconnect), and passes the listener's handshake errors (an invalid SYN
// cookie, an MTU or a key length out of range, flags a live stream needs)
// to the log at debug level.
//
// It also keeps an end of stream whole. gosrt holds each packet until its
// time to play (the SRT latency after it was sent), and on SHUTDOWN it
// discards what it holds: the encoder's last moments, and with ffmpeg
// the frames its encoder flushes at the end of its input, sent in a burst
// just before SHUTDOWN (with x264's look-ahead, a second or more of
// video). gosrt reports SHUTDOWN to the Logger before it closes the
// connection, on the connection's own goroutine for incoming packets: the
// connection's drain (conn.drain) waits there, bounded by the latency,
// until the packets it holds have been delivered and read.
type peerLog struct {
	log *slog.Logger

	mu       sync.Mutex
	shutdown map[uint32]bool   // socket ID: its caller sent SHUTDOWN
	drains   map[uint32]func() // socket ID: its connection's drain
}

// gosrt's log topics peerLog listens to (gosrt v0.9.0, connection.go and
// conn_request.go).
const (
	topicShutdown       = "control:recv:shutdown:dump"
	topicHandshakeError = "handshake:recv:error"
)

var _ gosrt.Logger = (*peerLog)(nil)

func newPeerLog(log *slog.Logger) *peerLog {
	return &peerLog{log: log, shutdown: map[uint32]bool{}, drains: map[uint32]func(){}}
}

// HasTopic is gosrt.Logger's: only the topics peerLog uses, so that gosrt
// formats no other message.
func (l *peerLog) HasTopic(topic string) bool {
	return topic == topicShutdown || topic == topicHandshakeError
}

// Print is gosrt.Logger's.
func (l *peerLog) Print(topic string, socketID uint32, _ int, message func() string) {
	switch topic {
	case topicShutdown:
		l.mu.Lock()
		l.shutdown[socketID] = true
		drain := l.drains[socketID]
		l.mu.Unlock()
		if drain != nil {
			drain()
		}
	case topicHandshakeError:
		l.log.Debug("srt handshake refused by the library", "reason", message())
	}
}

// watch has drain called when the caller of socket socketID sends
// SHUTDOWN, before gosrt closes the connection.
func (l *peerLog) watch(socketID uint32, drain func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drains[socketID] = drain
}

// ended reports whether the caller of socket socketID sent SHUTDOWN, and
// forgets the socket.
func (l *peerLog) ended(socketID uint32) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ok := l.shutdown[socketID]
	delete(l.shutdown, socketID)
	delete(l.drains, socketID)
	return ok
}

// Listen is gosrt.Logger's; nothing is queued (gosrt itself never reads
// it).
func (l *peerLog) Listen() <-chan gosrt.Log { return nil }

// Close is gosrt.Logger's.
func (l *peerLog) Close() {}

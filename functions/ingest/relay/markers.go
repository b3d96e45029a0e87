package relay

import (
	"sync"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

// Ad markers that come on a connection with no media to carry them (a
// Smooth sparse track on a POST of its own, as Azure Media Services took
// them) wait here, per channel, for the channel's connections that store
// media: each takes every marker once, before its next moof
// (ingest.Options.Markers). A marker waits markerLife at most, and a
// channel keeps maxQueued: a channel with no media connection on this
// relay loses them (its media connections on another relay never see
// them), as it would the fragment in hand.
const (
	markerLife = 30 * time.Second
	maxQueued  = 32
)

// markerQueues are the channels' waiting markers. mu is never held with
// another lock.
type markerQueues struct {
	mu        sync.Mutex
	byChannel map[string]*markerQueue
}

type markerQueue struct {
	items []queuedMarker
	seq   uint64 // the last one's
}

type queuedMarker struct {
	seq uint64
	e   *mp4.EmsgBox
	at  time.Time
}

// tap is one connection's way to channel's markers.
func (q *markerQueues) tap(channel string) *markerTap {
	return &markerTap{q: q, channel: channel, now: time.Now}
}

// markerTap is ingest.MarkerQueue for one connection: what it took so
// far is its cursor.
type markerTap struct {
	q       *markerQueues
	channel string
	cursor  uint64
	now     func() time.Time
}

// Put queues e for the channel's media connections.
func (t *markerTap) Put(e *mp4.EmsgBox) {
	t.q.mu.Lock()
	defer t.q.mu.Unlock()
	if t.q.byChannel == nil {
		t.q.byChannel = map[string]*markerQueue{}
	}
	mq := t.q.byChannel[t.channel]
	if mq == nil {
		mq = &markerQueue{}
		t.q.byChannel[t.channel] = mq
	}
	mq.prune(t.now())
	if len(mq.items) == maxQueued {
		mq.items = mq.items[1:]
	}
	mq.seq++
	mq.items = append(mq.items, queuedMarker{seq: mq.seq, e: e, at: t.now()})
	t.cursor = mq.seq // its own connection carries no media: nothing to take back
}

// Take returns the channel's markers this connection has not taken.
func (t *markerTap) Take() []*mp4.EmsgBox {
	t.q.mu.Lock()
	defer t.q.mu.Unlock()
	mq := t.q.byChannel[t.channel]
	if mq == nil {
		return nil
	}
	if mq.prune(t.now()); len(mq.items) == 0 {
		delete(t.q.byChannel, t.channel)
		return nil
	}
	var out []*mp4.EmsgBox
	for _, it := range mq.items {
		if it.seq > t.cursor {
			out = append(out, it.e)
		}
	}
	t.cursor = mq.seq
	return out
}

// prune drops the markers older than markerLife.
func (mq *markerQueue) prune(now time.Time) {
	i := 0
	for i < len(mq.items) && now.Sub(mq.items[i].at) > markerLife {
		i++
	}
	mq.items = mq.items[i:]
}

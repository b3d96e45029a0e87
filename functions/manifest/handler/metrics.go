package handler

import (
	"log/slog"
	"time"

	"github.com/smoothcast/smoothcast/shared/emf"
	"github.com/smoothcast/smoothcast/shared/metricname"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// The function's metrics (CloudWatch Embedded Metric Format, see
// Handler.Metrics) are named in package metricname, which the AWS stack's
// alarms and dashboard share.

// eventStats is what handling one S3 event record did, for its metrics.
type eventStats struct {
	conflicts int
	// delays are the milliseconds from each newly published fragment's
	// event to the state write that published it.
	delays []float64
	ended  bool // an end-of-stream marker
}

// pendingSnapshot is what a track state held before an event changed it.
type pendingSnapshot struct {
	empty bool
	end   uint64
	at    map[uint64]time.Time // pending fragments' event times by start
}

func snapshot(st *timeline.TrackState) pendingSnapshot {
	s := pendingSnapshot{empty: st.Timeline.Empty(), end: st.Timeline.End(), at: make(map[uint64]time.Time, len(st.Pending))}
	for _, p := range st.Pending {
		s.at[p.Start] = p.At
	}
	return s
}

// delays returns, for each fragment st publishes that the snapshot's
// state did not (the timeline only grows at its end), the milliseconds
// from its event (a pending fragment's own, else at: the event being
// handled) to written.
func (s pendingSnapshot) delays(st *timeline.TrackState, at, written time.Time) []float64 {
	runs := st.Timeline.Runs
	i := len(runs)
	for i > 0 && (s.empty || runs[i-1].End() > s.end) {
		i--
	}
	if i == len(runs) {
		return nil
	}
	tail := timeline.Timeline{Runs: append([]timeline.Run(nil), runs[i:]...)}
	if !s.empty {
		tail.TrimBefore(s.end)
	}
	var out []float64
	for e := range tail.All() {
		if !s.empty && e.Start < s.end {
			continue
		}
		from, ok := s.at[e.Start]
		if !ok {
			from = at
		}
		out = append(out, float64(max(written.Sub(from), 0).Microseconds())/1000)
	}
	return out
}

// dimensionSets publish every metric per channel and in total.
var dimensionSets = [][]string{{metricname.DimensionChannel}, {}}

// emitEvent writes the metrics document of one event record.
func (h *Handler) emitEvent(channel string, s *eventStats, failed bool, log *slog.Logger) {
	if h.Metrics == nil {
		return
	}
	count := func(name string, n int, highRes bool) emf.Metric {
		return emf.Metric{Name: name, Unit: emf.Count, HighResolution: highRes, Values: []float64{float64(n)}}
	}
	ended := 0
	if s.ended {
		ended = 1
	}
	errs := 0
	if failed {
		errs = 1
	}
	metrics := []emf.Metric{
		count(metricname.EventsProcessed, 1, false),
		count(metricname.FragmentsPublished, len(s.delays), true),
		count(metricname.ConflictsRetried, s.conflicts, false),
		count(metricname.Errors, errs, false),
		count(metricname.StreamsEnded, ended, true),
	}
	// A document holds at most emf.MaxValues samples of a metric; an
	// event that publishes more (a long wait ending) reports the first.
	if n := min(len(s.delays), emf.MaxValues); n > 0 {
		metrics = append(metrics, emf.Metric{Name: metricname.FragmentToManifestDelay, Unit: emf.Milliseconds, Values: s.delays[:n]})
	}
	h.emit(channel, metrics, log)
}

// emitRequestError counts a manifest request answered with a server error.
func (h *Handler) emitRequestError(channel string) {
	if h.Metrics == nil {
		return
	}
	h.emit(channel, []emf.Metric{{Name: metricname.Errors, Unit: emf.Count, Values: []float64{1}}}, h.Log)
}

func (h *Handler) emit(channel string, metrics []emf.Metric, log *slog.Logger) {
	err := h.Metrics.Emit(emf.Document{
		Timestamp:       h.Now(),
		Namespace:       metricname.Namespace,
		Dimensions:      dimensionSets,
		DimensionValues: map[string]string{metricname.DimensionChannel: channel},
		Metrics:         metrics,
	})
	if err != nil {
		log.Warn("metrics not written", "err", err)
	}
}

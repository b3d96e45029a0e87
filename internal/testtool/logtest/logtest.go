// Package logtest gives tests a slog handler that keeps every record, so
// that they can assert the log lines a component writes: the one
// recorder every test uses.
package logtest

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Recorder is a slog.Handler that keeps every record, with the
// attributes its loggers were given (With) added. Safe for concurrent
// use; the handlers WithAttrs returns share its records.
type Recorder struct {
	mu    *sync.Mutex
	recs  *[]slog.Record
	attrs []slog.Attr
}

// New returns an empty recorder.
func New() *Recorder { return &Recorder{mu: &sync.Mutex{}, recs: &[]slog.Record{}} }

// Logger is a logger that writes to r.
func (r *Recorder) Logger() *slog.Logger { return slog.New(r) }

// Enabled is true at every level.
func (r *Recorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle keeps rec.
func (r *Recorder) Handle(_ context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(r.attrs...)
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.recs = append(*r.recs, rec)
	return nil
}

// WithAttrs returns a handler that adds as to what it keeps.
func (r *Recorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	c.attrs = append(slices.Clone(r.attrs), as...)
	return &c
}

// WithGroup returns r: groups are not kept apart.
func (r *Recorder) WithGroup(string) slog.Handler { return r }

// Records returns what was logged so far.
func (r *Recorder) Records() []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(*r.recs)
}

// Lines returns what was logged so far, a line a record: its level, its
// message and its attributes.
func (r *Recorder) Lines() []string {
	var out []string
	for _, rec := range r.Records() {
		line := rec.Level.String() + " " + rec.Message
		rec.Attrs(func(a slog.Attr) bool {
			line += " " + a.String()
			return true
		})
		out = append(out, line)
	}
	return out
}

// Attrs returns a record's attributes as strings.
func Attrs(rec slog.Record) map[string]string {
	m := map[string]string{}
	rec.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	return m
}

// Find returns the attributes of the first record at level with message
// msg whose attributes contain each of want (key: a substring of the
// value); ok is false when none does.
func (r *Recorder) Find(level slog.Level, msg string, want map[string]string) (map[string]string, bool) {
next:
	for _, rec := range r.Records() {
		if rec.Level != level || rec.Message != msg {
			continue
		}
		as := Attrs(rec)
		for k, v := range want {
			if !strings.Contains(as[k], v) {
				continue next
			}
		}
		return as, true
	}
	return nil, false
}

// Wait is Find that waits up to two seconds for the record (some lines
// are logged as a response goes), and ends the test without it, showing
// what was logged.
func (r *Recorder) Wait(t testing.TB, level slog.Level, msg string, want map[string]string) map[string]string {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if as, ok := r.Find(level, msg, want); ok {
			return as
		}
		if time.Now().After(deadline) {
			var seen []string
			for _, rec := range r.Records() {
				seen = append(seen, fmt.Sprintf("%s %q %v", rec.Level, rec.Message, Attrs(rec)))
			}
			t.Fatalf("no %s log line %q with %v; logged:\n%s", level, msg, want, strings.Join(seen, "\n"))
		}
	}
}

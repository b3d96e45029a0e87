package ingest

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/internal/testtool/logtest"
	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/scte35"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// storedEvents reads the events at the head of a stored fragment.
func storedEvents(t *testing.T, f Fragment, ts uint32) []timeline.Event {
	t.Helper()
	b := f.Bytes()
	emsgs, _, _, err := fmp4.StoredHead(b)
	if err != nil {
		t.Fatal(err)
	}
	var out []timeline.Event
	for _, e := range emsgs {
		if e.Version != 1 || e.TimeScale != ts {
			t.Errorf("stored emsg version %d timescale %d, want 1 and %d", e.Version, e.TimeScale, ts)
		}
		ev, err := fmp4.EventOf(e, f.Start, ts, 0)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// emsgBox is an emsg of scheme with data before a moof.
func emsgBox(t *testing.T, scheme string, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	e := &mp4.EmsgBox{Version: 1, TimeScale: 1000, PresentationTime: 100, ID: 9, SchemeIDURI: scheme, MessageData: data}
	if err := e.Encode(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// insertBefore puts extra before the n-th moof of body.
func insertBefore(t *testing.T, body []byte, n int, extra []byte) []byte {
	t.Helper()
	at, _ := topBox(t, body, "moof", n)
	return append(append(append([]byte(nil), body[:at]...), extra...), body[at:]...)
}

// Ad markers a CMAF push sends in emsg boxes (version 0 or 1) come out at
// the head of the next fragment of the video track, as version 1 emsg
// boxes on the channel's timeline (the session's rebase added); the audio
// fragments carry none. Malformed markers and other schemes are dropped
// and logged, and the stream goes on.
func TestMarkersRideTheNextVideoFragment(t *testing.T) {
	markers := []synth.Marker{
		{Fragment: 1, At: 500 * time.Millisecond, ID: 1, Out: true, Duration: 30 * time.Second},
		{Fragment: 3, At: 0, ID: 2, V0: true},
		{Fragment: 3, At: 4 * time.Second, ID: 3},
	}
	for _, muxed := range []bool{false, true} {
		t.Run(map[bool]string{false: "a Smooth push, a moof per track", true: "a muxed CMAF push"}[muxed], func(t *testing.T) {
			cfg := synth.Config{CMAF: muxed, Muxed: muxed, Markers: markers, Timescale: 90000,
				Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 20_000, Width: 32, Height: 16}, {Kind: timeline.Audio, Bitrate: 8_000}}}
			s, err := synth.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			if _, err := s.WriteTo(context.Background(), &body, synth.Range{Count: 5}); err != nil {
				t.Fatal(err)
			}
			in := body.Bytes()
			// A marker whose section fails its CRC, one of another scheme,
			// and one that is no emsg at all, before the third moof.
			bad := scte35.Insert(5, true, 0)
			bad[len(bad)-1] ^= 0xff
			in = insertBefore(t, in, 2, append(append(emsgBox(t, scte35.Scheme, bad), emsgBox(t, "urn:other", []byte("x"))...), 0, 0, 0, 9, 'e', 'm', 's', 'g', 0))
			rec := logtest.New()
			sink := &recordingSink{}
			clock := &fakeClock{offsets: []time.Duration{100 * time.Second}}
			if _, err := run(NewSession(sink, rec.Logger(), Options{Clock: clock}), bytes.NewReader(in)); err != nil {
				t.Fatal(err)
			}
			const off = 100 * 90000
			want := map[uint64][]timeline.Event{
				off + 1*s.FragmentTicks(): {{Scheme: scte35.Scheme, ID: 1, Time: off + s.MarkerAt(markers[0]), Duration: 30 * 90000, Data: markers[0].Payload()}},
				off + 3*s.FragmentTicks(): {
					{Scheme: scte35.Scheme, ID: 2, Time: off + s.MarkerAt(markers[1]), Data: markers[1].Payload()},
					{Scheme: scte35.Scheme, ID: 3, Time: off + s.MarkerAt(markers[2]), Data: markers[2].Payload()},
				},
			}
			frags := 0
			for _, f := range sink.frags {
				checkStoredFragment(t, f)
				got := storedEvents(t, f, 90000)
				if f.Kind != timeline.Video {
					if len(got) > 0 {
						t.Errorf("%s fragment at %d carries %d events", f.Kind, f.Start, len(got))
					}
					continue
				}
				frags++
				if len(got) != len(want[f.Start]) {
					t.Fatalf("video fragment at %d carries %+v, want %+v", f.Start, got, want[f.Start])
				}
				for i := range got {
					if w := want[f.Start][i]; got[i].ID != w.ID || got[i].Time != w.Time || got[i].Duration != w.Duration || !bytes.Equal(got[i].Data, w.Data) {
						t.Errorf("video fragment at %d: event %+v, want %+v", f.Start, got[i], w)
					}
				}
			}
			if frags != 5 {
				t.Errorf("%d video fragments stored, want 5", frags)
			}
			rec.Wait(t, slog.LevelWarn, "dropping a malformed ad marker (emsg)", map[string]string{"err": "CRC"})
			rec.Wait(t, slog.LevelWarn, "dropping a malformed ad marker (emsg)", map[string]string{"err": "emsg"})
			rec.Wait(t, slog.LevelDebug, "dropping an emsg of another scheme", map[string]string{"scheme": "urn:other"})
		})
	}
}

// fakeQueue is a channel's ad markers between connections, for one
// taker.
type fakeQueue struct{ put, taken []*mp4.EmsgBox }

func (q *fakeQueue) Put(e *mp4.EmsgBox) { q.put = append(q.put, e) }
func (q *fakeQueue) Take() []*mp4.EmsgBox {
	out := q.put[len(q.taken):]
	q.taken = append(q.taken, out...)
	return out
}

// A data track's samples become ad markers: a sparse track's messages
// (Azure Media Services' form) at their fragment's time plus their
// delta, a timed-metadata track's emib boxes at their sample's time plus
// theirs. On a connection with no media they go to the channel's queue;
// a media connection takes them before its next moof and its video
// fragment carries them. A malformed message, a section that fails its
// CRC, and another scheme are dropped; the push is not refused.
func TestDataTrackSamplesBecomeMarkers(t *testing.T) {
	const ts = 90000
	out, in := scte35.Insert(1, true, 30*time.Second), scte35.Insert(1, false, 0)
	bad := scte35.Insert(2, true, 0)
	bad[len(bad)-1] ^= 1
	for _, tc := range []struct {
		name    string
		evte    bool
		samples [][]byte
	}{
		{"sparse track (Azure Media Services)", false, [][]byte{
			synth.AMSMessage(1, 7, 9000, out), synth.AMSMessage(2, 8, 0, in), synth.AMSMessage(1, 9, 0, bad), {1, 2}, synth.AMSMessage(1, 10, 0, in)}},
		{"timed-metadata track (evte)", true, [][]byte{
			synth.EmibSample(9000, 7, scte35.Scheme, out), synth.EmibSample(0, 8, "urn:other", in), synth.EmibSample(0, 9, scte35.Scheme, bad), {1, 2}, synth.EmibSample(0, 10, scte35.Scheme, in)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			starts := []uint64{180000, 360000, 540000, 720000, 900000}
			q := &fakeQueue{}
			rec := logtest.New()
			sink := &recordingSink{}
			push, err := synth.DataTrack{Timescale: ts, Evte: tc.evte, Parent: "video", Starts: starts, Samples: tc.samples}.Push()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := run(NewSession(sink, rec.Logger(), Options{Markers: q}), bytes.NewReader(push)); err != nil {
				t.Fatalf("the data track's push is refused: %v", err)
			}
			if len(sink.frags)+len(sink.inits) != 0 {
				t.Errorf("a data track stored %d fragments and %d init segments", len(sink.frags), len(sink.inits))
			}
			want := []struct {
				id uint32
				at uint64
			}{{7, 180000 + 9000}, {10, 900000}}
			if len(q.put) != len(want) {
				t.Fatalf("%d markers queued, want %d", len(q.put), len(want))
			}
			for i, e := range q.put {
				if e.ID != want[i].id || e.PresentationTime != want[i].at || e.TimeScale != ts || e.Version != 1 {
					t.Errorf("marker %d: id %d at %d/%d, want id %d at %d/%d", i, e.ID, e.PresentationTime, e.TimeScale, want[i].id, want[i].at, ts)
				}
			}
			rec.Wait(t, slog.LevelWarn, "dropping a malformed ad marker (emsg)", map[string]string{"err": "CRC"})

			// A video connection of the channel takes them before its
			// first moof: its first video fragment carries them.
			s, err := synth.New(synth.Config{CMAF: true, Timescale: ts, Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 20_000, Width: 32, Height: 16}}})
			if err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			if _, err := s.WriteTo(context.Background(), &body, synth.Range{Count: 2}); err != nil {
				t.Fatal(err)
			}
			video := &recordingSink{}
			if _, err := run(NewSession(video, quiet, Options{Markers: q}), &body); err != nil {
				t.Fatal(err)
			}
			got := storedEvents(t, video.frags[0], ts)
			if len(got) != 2 || got[0].Time != want[0].at || got[1].Time != want[1].at || !bytes.Equal(got[0].Data, out) {
				t.Errorf("the first video fragment carries %+v", got)
			}
			if len(storedEvents(t, video.frags[1], ts)) != 0 {
				t.Error("the second video fragment carries markers taken already")
			}
		})
	}
}

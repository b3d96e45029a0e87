package fmp4

import (
	"bytes"
	"errors"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/scte35"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

func emsgBytes(t testing.TB, e *mp4.EmsgBox) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := e.Encode(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// An emsg's time lands on the track's timeline: version 0 from the
// fragment's start, version 1 from the encoder's time plus the rebase,
// both rescaled to the track's timescale; what is not an SCTE-35 marker,
// or cannot be placed, is refused.
func TestEventOfPlacesTheMarkerOnTheTrack(t *testing.T) {
	data := scte35.Insert(4, true, 0)
	tests := []struct {
		name   string
		e      mp4.EmsgBox
		start  uint64
		offset int64
		want   uint64
		err    error
	}{
		{"v0 after the fragment's start", mp4.EmsgBox{Version: 0, TimeScale: 1000, PresentationTimeDelta: 500}, 90000, 0, 90000 + 45000, nil},
		{"v1 rescaled and rebased", mp4.EmsgBox{Version: 1, TimeScale: 1000, PresentationTime: 2000}, 0, 900, 180000 + 900, nil},
		{"v1 rebased backwards", mp4.EmsgBox{Version: 1, TimeScale: 90000, PresentationTime: 2000}, 0, -1000, 1000, nil},
		{"v1 before zero", mp4.EmsgBox{Version: 1, TimeScale: 90000, PresentationTime: 10}, 0, -1000, 0, ErrEmsgTime},
		{"timescale zero", mp4.EmsgBox{Version: 1, PresentationTime: 10}, 0, 0, 0, ErrEmsgTime},
		{"v1 past 64 bits", mp4.EmsgBox{Version: 1, TimeScale: 1, PresentationTime: 1 << 60}, 0, 0, 0, ErrEmsgTime},
		{"another scheme", mp4.EmsgBox{Version: 1, TimeScale: 1, SchemeIDURI: "urn:x"}, 0, 0, 0, ErrEmsgScheme},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.e
			if e.SchemeIDURI == "" {
				e.SchemeIDURI = scte35.Scheme
			}
			e.MessageData, e.EventDuration = data, 0xFFFFFFFF
			ev, err := EventOf(&e, tt.start, 90000, tt.offset)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || ev.Time != tt.want || ev.Duration != 0 || !bytes.Equal(ev.Data, data) {
				t.Fatalf("EventOf = %+v, %v; want time %d", ev, err, tt.want)
			}
		})
	}
}

// What AppendEmsg writes before a moof, StoredHead and Inspect read back.
func TestStoredHeadReadsTheEventsBeforeTheMoof(t *testing.T) {
	ev := timeline.Event{Scheme: scte35.Scheme, ID: 3, Time: 123456, Duration: 900, Data: scte35.Insert(3, false, 0)}
	head := AppendEmsg(AppendEmsg(nil, ev, 90000), ev, 90000)
	moof := []byte{0, 0, 0, 100, 'm', 'o', 'o', 'f'}
	emsgs, at, need, err := StoredHead(append(head, moof...))
	if err != nil || len(emsgs) != 2 || at != len(head) || need != int64(len(head)+100) {
		t.Fatalf("StoredHead = %d emsgs, moof at %d, need %d, %v", len(emsgs), at, need, err)
	}
	got, err := EventOf(emsgs[1], 0, 90000, 0)
	if err != nil || got.Time != ev.Time || got.Duration != ev.Duration || got.ID != 3 {
		t.Fatalf("read back %+v, %v; want %+v", got, err, ev)
	}
	// Short reads say how much more to read.
	if _, _, need, err := StoredHead(head[:20]); err != nil || need <= 20 {
		t.Errorf("a cut emsg: need %d, %v", need, err)
	}
	var many []byte
	for range MaxFragmentEvents + 1 {
		many = AppendEmsg(many, ev, 90000)
	}
	if _, _, _, err := StoredHead(append(many, moof...)); err == nil {
		t.Errorf("more than %d emsg boxes taken", MaxFragmentEvents)
	}
}

func FuzzStoredHead(f *testing.F) {
	ev := timeline.Event{Scheme: scte35.Scheme, ID: 3, Time: 1, Data: scte35.Insert(3, true, 0)}
	f.Add(append(AppendEmsg(nil, ev, 90000), 0, 0, 0, 8, 'm', 'o', 'o', 'f'))
	f.Add(emsgBytes(f, &mp4.EmsgBox{Version: 0, TimeScale: 1, SchemeIDURI: scte35.Scheme, MessageData: ev.Data}))
	f.Fuzz(func(t *testing.T, b []byte) {
		emsgs, at, need, err := StoredHead(b)
		if err != nil {
			return
		}
		if at > len(b) || need < int64(at) {
			t.Fatalf("moof at %d, need %d, of %d bytes", at, need, len(b))
		}
		for _, e := range emsgs {
			_, _ = EventOf(e, 0, 90000, 0)
		}
	})
}

package dash

import (
	"strings"
	"testing"
	"time"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// Ad markers are a Period EventStream of scheme
// urn:scte:scte35:2014:xml+bin (each Event at its splice point, the
// section in base64 in scte35:Signal/scte35:Binary, a break's duration
// when known) and an InbandEventStream on the video AdaptationSet, whose
// fragments carry them as emsg; the hand-written writer gives
// encoding/xml's bytes.
func TestMarkersAreAnEventStream(t *testing.T) {
	p := manifesttest.Markers(manifesttest.Presentation(false))
	b, err := Render(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	manifesttest.Golden(t, "markers.mpd", b)
	matchesReference(t, "markers", p, Options{UTCTimingURL: "/time"})
	s := string(b)
	for _, want := range []string{
		`<EventStream schemeIdUri="urn:scte:scte35:2014:xml+bin" timescale="10000000">`,
		`<Event presentationTime="35000000" duration="60000000" id="10">
        <scte35:Signal xmlns:scte35="http://www.scte.org/schemas/35/2016">
          <scte35:Binary>/DAgAAAAAAAAAP/wDwUAAAAKf//+AAg9YAABAAAAAAg5cGc=</scte35:Binary>
        </scte35:Signal>
      </Event>`,
		`<Event presentationTime="110000000" duration="10000000" id="12">`,
		`<Event presentationTime="130000000" id="13">`,
		`<InbandEventStream schemeIdUri="urn:scte:scte35:2013:bin" value=""></InbandEventStream>
      <Role schemeIdUri="urn:mpeg:dash:role:2011" value="main"></Role>`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("MPD lacks %s:\n%s", want, s)
		}
	}
	if strings.Count(s, "<InbandEventStream") != 1 || strings.Count(s, "<Event ") != 4 {
		t.Errorf("want one InbandEventStream (video) and 4 Events:\n%s", s)
	}
	// A static range: its Period starts at its first fragment
	// (presentationTimeOffset), and only the markers of the range.
	p.Range = &timeline.Range{From: manifesttest.Epoch.Add(3 * time.Second), To: manifesttest.Epoch.Add(10 * time.Second), VOD: true}
	b, err = Render(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	matchesReference(t, "markers in a range", p, Options{})
	s = string(b)
	if !strings.Contains(s, `<EventStream schemeIdUri="urn:scte:scte35:2014:xml+bin" timescale="10000000" presentationTimeOffset="19200000">`) ||
		strings.Count(s, "<Event ") != 2 || !strings.Contains(s, `presentationTime="95000000" id="11"`) {
		t.Errorf("range 3 s to 10 s: want the OUT and IN markers, from the Period's start at 1.92 s (the audio's first fragment):\n%s", s)
	}
}

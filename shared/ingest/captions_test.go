package ingest

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/smoothcast/smoothcast/shared/fmp4"
	"github.com/smoothcast/smoothcast/shared/mp4box"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
)

// withKinds is a push whose moov's first track has kind boxes added to
// its udta.
func withKinds(t *testing.T, body []byte, kinds ...*mp4.KindBox) []byte {
	t.Helper()
	var out bytes.Buffer
	for box, err := range mp4box.All(body) {
		if err != nil {
			t.Fatal(err)
		}
		raw := body[box.Pos : int(box.Pos)+box.Size()]
		if box.Type == "moov" {
			b, err := mp4box.Decode(box)
			if err != nil {
				t.Fatal(err)
			}
			moov := b.(*mp4.MoovBox)
			udta := &mp4.UdtaBox{}
			for _, k := range kinds {
				udta.AddChild(k)
			}
			moov.Trak.AddChild(udta)
			if err := moov.Encode(&out); err != nil {
				t.Fatal(err)
			}
			continue
		}
		out.Write(raw)
	}
	return out.Bytes()
}

// A video track's init segment declares the CEA-608 and CEA-708 services
// its first fragment's SEI carries (an encoder's: ffmpeg with libx264
// -a53cc), but for a scheme whose services the encoder declares itself
// (kind boxes, with languages): those are kept. Video without captions
// declares none.
func TestInitSegmentDeclaresTheCaptionsOfTheVideo(t *testing.T) {
	captioned, err := os.ReadFile("../fmp4/testdata/captions.mp4")
	if err != nil {
		t.Fatal(err)
	}
	plain := pushOf(t, synth.Config{CMAF: true, Tracks: []synth.Track{{Kind: timeline.Video, Bitrate: 100_000}}}, 2)
	for _, tc := range []struct {
		name string
		body []byte
		want timeline.Captions
	}{
		{"found in the SEI", captioned, "CC1;CC3;SERVICE1;SERVICE2"},
		{"the encoder declares CEA-608 with languages", withKinds(t, captioned, &mp4.KindBox{SchemeURI: timeline.CEA608Scheme, Value: "CC1=eng;CC3=fra"}),
			"CC1=eng;CC3=fra;SERVICE1;SERVICE2"},
		{"the encoder declares both", withKinds(t, captioned, &mp4.KindBox{SchemeURI: timeline.CEA608Scheme, Value: "CC1=eng"},
			&mp4.KindBox{SchemeURI: timeline.CEA708Scheme, Value: "1=lang:eng"}), "CC1=eng;SERVICE1=eng"},
		{"no captions", plain, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &recordingSink{}
			if _, err := Read(context.Background(), bytes.NewReader(tc.body), NewSession(sink, quiet, Options{}), ReadOptions{}); err != nil {
				t.Fatal(err)
			}
			if len(sink.inits) != 1 || len(sink.frags) == 0 {
				t.Fatalf("%d init segments, %d fragments", len(sink.inits), len(sink.frags))
			}
			got, err := fmp4.ParseInit(sink.inits[0].Init)
			if err != nil || got.Captions != tc.want {
				t.Errorf("captions %q (%v), want %q", got.Captions, err, tc.want)
			}
		})
	}
}

// BenchmarkScanCaptions is what declaring captions costs a video track,
// once, at its first fragment: the SEI scan of a 2 s fragment of the
// benchmarks' 1080p rendition at 25 frames per second (6 Mbit/s, 50
// samples, no captions: every NAL unit looked at) and of the caption
// fixture's (10 samples, each with captions).
func BenchmarkScanCaptions(b *testing.B) {
	for _, bc := range []struct {
		name string
		body []byte
	}{
		{"1080p 6 Mbit/s, 2 s", pushOf(b, synth.Config{CMAF: true, Tracks: synth.Ladder()[:1]}, 1)},
		{"captions fixture", func() []byte { c, _ := os.ReadFile("../fmp4/testdata/captions.mp4"); return c }()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var trak *mp4.TrakBox
			var head, payload []byte
			var moofAt int
			for box, err := range mp4box.All(bc.body) {
				if err != nil {
					b.Fatal(err)
				}
				switch box.Type {
				case "moov":
					m, _ := mp4box.Decode(box)
					trak = m.(*mp4.MoovBox).Trak
				case "moof":
					moofAt = int(box.Pos)
				case "mdat":
					if head == nil {
						at := int(box.Pos) + box.HeaderSize
						head, payload = bc.body[moofAt:at], bc.body[at:int(box.Pos)+box.Size()]
					}
				}
			}
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				fmp4.ScanCaptions(trak, head, payload)
			}
		})
	}
}

package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	mpegtscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/smoothcast/smoothcast/functions/ingest/relay"
	"github.com/smoothcast/smoothcast/shared/store"
	"github.com/smoothcast/smoothcast/shared/synth"
	"github.com/smoothcast/smoothcast/shared/timeline"
	"github.com/smoothcast/smoothcast/shared/tsdemux"
)

// tsSegments is an HLS encoder's MPEG-TS output of the synthetic encoder's
// media: H.264 at 3 Mbit/s (1280x720, 25 fps) and AAC at 128 kbit/s, in
// n segments of 2 s, each starting with its tables and a key frame,
// written by mediacommon's MPEG-TS writer (as MediaMTX writes TS).
func tsSegments(b *testing.B, n int) [][]byte {
	b.Helper()
	s, err := synth.New(synth.Config{Timescale: 90000, Tracks: []synth.Track{
		{Kind: timeline.Video, Bitrate: 3_000_000, Width: 1280, Height: 720},
		{Kind: timeline.Audio, Bitrate: 128_000},
	}})
	if err != nil {
		b.Fatal(err)
	}
	head, err := s.Header()
	if err != nil {
		b.Fatal(err)
	}
	body := head
	for k := range n {
		if body, err = s.AppendFragment(body, k); err != nil {
			b.Fatal(err)
		}
	}
	file, err := mp4.DecodeFile(bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	var sps, pps []byte
	var asc *mpeg4audio.AudioSpecificConfig
	for _, trak := range file.Init.Moov.Traks {
		stsd := trak.Mdia.Minf.Stbl.Stsd
		switch {
		case stsd.AvcX != nil:
			sps, pps = stsd.AvcX.AvcC.SPSnalus[0], stsd.AvcX.AvcC.PPSnalus[0]
		case stsd.Mp4a != nil:
			asc = &mpeg4audio.AudioSpecificConfig{}
			if err := asc.Unmarshal(stsd.Mp4a.Esds.DecConfigDescriptor.DecSpecificInfo.DecConfig); err != nil {
				b.Fatal(err)
			}
		}
	}
	video := &mpegts.Track{Codec: &mpegtscodecs.H264{}}
	audio := &mpegts.Track{Codec: &mpegtscodecs.MPEG4Audio{Config: *asc}}
	var out [][]byte
	var buf bytes.Buffer
	w := &mpegts.Writer{W: &buf, Tracks: []*mpegts.Track{video, audio}}
	if err := w.Initialize(); err != nil {
		b.Fatal(err)
	}
	var frags []*mp4.Fragment
	for _, seg := range file.Segments {
		frags = append(frags, seg.Fragments...)
	}
	if len(frags) != 2*n {
		b.Fatalf("%d fragments, want %d", len(frags), 2*n)
	}
	for k := range n {
		buf.Reset()
		if _, err := w.WriteTables(); err != nil {
			b.Fatal(err)
		}
		var pending [][]byte // audio frames not written yet, at apts
		var apts int64
		for _, frag := range frags[2*k : 2*k+2] {
			samples, err := frag.GetFullSamples(nil)
			if err != nil {
				b.Fatal(err)
			}
			isVideo := frag.Moof.Traf.Tfhd.TrackID == 1
			// A Smooth push's fragments carry their time in tfxd, not tfdt:
			// fragment k starts k fragments in.
			base := int64(90000 + 2*90000*k)
			for i, fs := range samples {
				pts := int64(fs.PresentationTime()) + base
				if !isVideo {
					if len(pending) == 0 {
						apts = pts
					}
					pending = append(pending, fs.Data)
					if len(pending) == 6 || i == len(samples)-1 {
						if err := w.WriteMPEG4Audio(audio, apts, pending); err != nil {
							b.Fatal(err)
						}
						pending = nil
					}
					continue
				}
				au := [][]byte{}
				if i == 0 {
					au = append(au, sps, pps)
				}
				for data := fs.Data; len(data) > 4; {
					l := int(data[0])<<24 | int(data[1])<<16 | int(data[2])<<8 | int(data[3])
					au = append(au, data[4:4+l])
					data = data[4+l:]
				}
				if err := w.WriteH264(video, pts, int64(fs.DecodeTime)+base, au); err != nil {
					b.Fatal(err)
				}
			}
		}
		out = append(out, bytes.Clone(buf.Bytes()))
	}
	for k := 1; k < len(out); k++ {
		prev, _, _ := tsdemux.Span(out[k-1])
		if start, _, _ := tsdemux.Span(out[k]); start <= prev {
			b.Fatalf("segment %d starts at %d, the one before at %d", k, start, prev)
		}
	}
	return out
}

// countingStore keeps nothing and counts the fragments written.
type countingStore struct {
	nullStore
	fragments atomic.Int64
}

func (c *countingStore) PutParts(ctx context.Context, key string, parts [][]byte, o store.PutOptions) (string, error) {
	if strings.Contains(key, "/Fragments(") {
		c.fragments.Add(1)
	}
	return c.nullStore.PutParts(ctx, key, parts, o)
}

// BenchmarkTSUpload uploads an encoder's HLS output with MPEG-TS segments
// (tsSegments: 60 s of 3 Mbit/s H.264 and AAC in 2 s segments) to the
// relay with a store that keeps nothing, its media playlist first, then
// each segment one after the other, straight into the handler (no
// network): the relay's own work on TS uploads (telling files apart,
// placing and ordering segments, demultiplexing, packaging, the
// session's rewrite). cpu-s/media-h is the process's user and system CPU
// per hour of media (3.2 Mbit/s: 1.4 GB an hour).
func BenchmarkTSUpload(b *testing.B) {
	const n = 30
	segs := tsSegments(b, n)
	size := 0
	playlist := "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
	for k, s := range segs {
		size += len(s)
		playlist += fmt.Sprintf("#EXTINF:2.000000,\nindex%d.ts\n", k)
	}
	rcfg := relay.DefaultConfig()
	rcfg.MaxStreams = 0
	st := &countingStore{}
	rl := relay.New(st, rcfg, quiet)
	h := rl.Handler()
	b.Cleanup(rl.CloseUploads)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	before := cpu()
	for i := 0; b.Loop(); i++ {
		put := func(file string, body []byte) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodPut, fmt.Sprintf("/live/ts%d.isml/%s", i, file), bytes.NewReader(body)))
			if w.Code != http.StatusOK {
				b.Fatalf("%s: %d %s", file, w.Code, w.Body)
			}
		}
		put("index.m3u8", []byte(playlist))
		for k, seg := range segs {
			put(fmt.Sprintf("index%d.ts", k), seg)
		}
	}
	perHour := (cpu() - before).Seconds() / float64(b.N) * 3600 / (2 * n)
	if got := st.fragments.Load(); got != int64(2*n*b.N) {
		b.Fatalf("%d fragments stored, want %d: every segment's video and audio", got, 2*n*b.N)
	}
	b.ReportMetric(perHour, "cpu-s/media-h")
}

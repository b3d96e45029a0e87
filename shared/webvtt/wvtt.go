package webvtt

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"time"

	mp4bits "github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// Sample is one sample of a wvtt track (ISO/IEC 14496-30): from Time for
// Duration (in the track's timescale), the cues shown then, whose own
// Start and End are not used (a sample's cues carry no times). No cue is
// a vtte (empty) sample.
type Sample struct {
	Time, Duration uint64
	Cues           []Cue
}

// Ticks converts a time to ticks of timescale, to the nearest.
func Ticks(d time.Duration, timescale uint32) uint64 {
	if d <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(d), uint64(timescale))
	lo, carry := bits.Add64(lo, uint64(time.Second/2), 0)
	hi += carry
	if hi >= uint64(time.Second) {
		return 1<<64 - 1
	}
	q, _ := bits.Div64(hi, lo, uint64(time.Second))
	return q
}

// Duration converts ticks of timescale to a time (saturating).
func Duration(ticks uint64, timescale uint32) time.Duration {
	if timescale == 0 {
		return 0
	}
	hi, lo := bits.Mul64(ticks, uint64(time.Second))
	if hi >= uint64(timescale) {
		return 1<<63 - 1
	}
	q, _ := bits.Div64(hi, lo, uint64(timescale))
	return time.Duration(min(q, 1<<63-1))
}

// Samples cuts cues (their times in the track's media time) into the
// samples of [from, to) (ticks of timescale): a sample for each interval
// between cue boundaries, holding the cues active in it, an empty one
// where none is. A cue that starts before from or ends after to is cut
// at the range's edges (the fragment before or after holds the rest);
// a cue of no duration, in ticks, is left out.
func Samples(cues []Cue, from, to uint64, timescale uint32) []Sample {
	if to <= from {
		return nil
	}
	type span struct {
		start, end uint64
		cue        Cue
	}
	var spans []span
	bounds := []uint64{from, to}
	for _, c := range cues {
		s, e := max(Ticks(c.Start, timescale), from), min(Ticks(c.End, timescale), to)
		if s >= e {
			continue
		}
		spans = append(spans, span{s, e, c})
		bounds = append(bounds, s, e)
	}
	slices.Sort(bounds)
	bounds = slices.Compact(bounds)
	out := make([]Sample, 0, len(bounds)-1)
	for i := 0; i+1 < len(bounds); i++ {
		s := Sample{Time: bounds[i], Duration: bounds[i+1] - bounds[i]}
		for _, sp := range spans {
			if sp.start <= s.Time && sp.end >= s.Time+s.Duration {
				s.Cues = append(s.Cues, sp.cue)
			}
		}
		out = append(out, s)
	}
	return out
}

// Encode writes a sample's data: a vttc box per cue (iden with its id,
// sttg with its settings, payl with its text), or one vtte when it has
// none.
func (s Sample) Encode() []byte {
	var buf bytes.Buffer
	if len(s.Cues) == 0 {
		_ = (&mp4.VtteBox{}).Encode(&buf)
		return buf.Bytes()
	}
	for _, c := range s.Cues {
		vttc := &mp4.VttcBox{}
		if c.ID != "" {
			vttc.AddChild(&mp4.IdenBox{CueID: c.ID})
		}
		if c.Settings != "" {
			vttc.AddChild(&mp4.SttgBox{Settings: c.Settings})
		}
		vttc.AddChild(&mp4.PaylBox{CueText: c.Text})
		_ = vttc.Encode(&buf) // a bytes.Buffer takes every write
	}
	return buf.Bytes()
}

// ErrSample: a wvtt sample that is not vttc and vtte boxes.
var ErrSample = errors.New("webvtt: malformed wvtt sample")

// DecodeSample reads the cues of a wvtt sample's data (their times are
// the sample's: left zero). Boxes other than vttc (vtte, vtta, ...) hold
// no cue; a vttc without payl is an empty cue.
func DecodeSample(b []byte) ([]Cue, error) {
	var cues []Cue
	for pos := 0; pos < len(b); {
		if len(b)-pos < 8 {
			return nil, fmt.Errorf("%w: %d bytes left at %d, less than a box header", ErrSample, len(b)-pos, pos)
		}
		size := int(uint32(b[pos])<<24 | uint32(b[pos+1])<<16 | uint32(b[pos+2])<<8 | uint32(b[pos+3]))
		typ := string(b[pos+4 : pos+8])
		if size < 8 || size > len(b)-pos {
			return nil, fmt.Errorf("%w: the %q box at %d has size %d, %d bytes left", ErrSample, typ, pos, size, len(b)-pos)
		}
		if typ == "vttc" {
			box, err := mp4.DecodeBoxSR(0, mp4bits.NewFixedSliceReader(b[pos:pos+size]))
			if err != nil {
				return nil, fmt.Errorf("%w: vttc at %d: %w", ErrSample, pos, err)
			}
			vttc, ok := box.(*mp4.VttcBox)
			if !ok {
				return nil, fmt.Errorf("%w: vttc at %d", ErrSample, pos)
			}
			var c Cue
			if vttc.Iden != nil {
				c.ID = vttc.Iden.CueID
			}
			if vttc.Sttg != nil {
				c.Settings = vttc.Sttg.Settings
			}
			if vttc.Payl != nil {
				c.Text = vttc.Payl.CueText
			}
			if len(cues) >= MaxCues {
				return nil, fmt.Errorf("%w: more than %d cues", ErrTooLarge, MaxCues)
			}
			cues = append(cues, c)
		}
		pos += size
	}
	return cues, nil
}

// Join turns samples (ticks of timescale) back into cues with times: a
// cue held by consecutive samples (the same id, settings and text, the
// samples touching) is one cue, from the first one's start to the last
// one's end. The cues are in the order they start.
func Join(samples []Sample, timescale uint32) []Cue {
	type open struct {
		cue        Cue
		start, end uint64
	}
	var done, active []open
	for _, s := range samples {
		var next []open
		for _, c := range s.Cues {
			i := slices.IndexFunc(active, func(o open) bool { return o.end == s.Time && sameCue(o.cue, c) })
			if i >= 0 {
				o := active[i]
				active = slices.Delete(active, i, i+1)
				o.end = s.Time + s.Duration
				next = append(next, o)
				continue
			}
			next = append(next, open{cue: c, start: s.Time, end: s.Time + s.Duration})
		}
		done = append(done, active...)
		active = next
	}
	done = append(done, active...)
	slices.SortStableFunc(done, func(a, b open) int {
		if a.start != b.start {
			return cmpUint(a.start, b.start)
		}
		return cmpUint(a.end, b.end)
	})
	out := make([]Cue, len(done))
	for i, o := range done {
		out[i] = o.cue
		out[i].Start, out[i].End = Duration(o.start, timescale), Duration(o.end, timescale)
	}
	return out
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func sameCue(a, b Cue) bool { return a.ID == b.ID && a.Settings == b.Settings && a.Text == b.Text }

// ForHLS is the WebVTT file an HLS player reads for the cues of a wvtt
// fragment that starts at start (ticks of timescale; cues in media time;
// contract 3 of issue 19: the relay stores it beside the fragment). Its
// cue times are media times, and its X-TIMESTAMP-MAP maps the fragment's
// start (LOCAL) to the same time in 90 kHz (MPEGTS, mod 2^33): players
// that apply the map (hls.js, Safari) place the cues by it, and one that
// ignores it and runs the files together (ffmpeg 5.1) still reads every
// cue at its media time.
func ForHLS(cues []Cue, start uint64, timescale uint32) *File {
	at := Duration(start, timescale)
	return &File{Map: &TimestampMap{MPEGTS: Ticks(at, 90000) % (1 << 33), Local: at}, Cues: slices.Clone(cues)}
}

package fmp4

import (
	"fmt"

	"github.com/Eyevinn/mp4ff/mp4"
)

// TimedSample is one sample of a part: its decode time (ticks of its
// track's timescale, on the encoder's clock), its duration and its bytes.
type TimedSample struct {
	Time int64
	Dur  uint32
	Data []byte
}

// TimedSamples lists the part's samples in order, timed from its tfxd or
// tfdt (fallback when it has neither), with trex's defaults: what a data
// track's fragment (an SCTE-35 sparse track, a timed-metadata track)
// carries.
func (p *Part) TimedSamples(trex *mp4.TrexBox, fallback int64) ([]TimedSample, error) {
	start, _, ok := Timing(p.Moof, trex)
	if !ok {
		start = fallback
	}
	var out []TimedSample
	t := start
	for i, trun := range p.Moof.Traf.Truns {
		at := p.pos[i]
		for _, s := range trun.Samples {
			if at < 0 || int64(s.Size) > int64(len(p.Data))-at {
				return nil, fmt.Errorf("%w: track %d trun %d: sample of %d bytes at %d, %d bytes of data", ErrBadDataOffset, p.TrackID, i, s.Size, at, len(p.Data))
			}
			out = append(out, TimedSample{Time: t, Dur: s.Dur, Data: p.Data[at : at+int64(s.Size)]})
			at += int64(s.Size)
			t += int64(s.Dur)
		}
	}
	return out, nil
}

package tsdemux

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/asticode/go-astits"

	"github.com/smoothcast/smoothcast/shared/packager"
)

// psiDemuxer parses PAT and PMT packets with go-astits, one packet at a
// time: its reader hands go-astits the packets given to packet and then
// errMore, which go-astits returns without touching what it accumulated,
// so a table that spans packets completes with its last one.
type psiDemuxer struct {
	q   psiQueue
	dmx *astits.Demuxer
}

type psiQueue struct{ p []byte }

var errMore = errors.New("tsdemux: no more packets yet")

func (q *psiQueue) Read(b []byte) (int, error) {
	if len(q.p) == 0 {
		return 0, errMore
	}
	n := copy(b, q.p)
	q.p = q.p[n:]
	return n, nil
}

func newPSIDemuxer() *psiDemuxer {
	d := &psiDemuxer{}
	d.reset()
	return d
}

// reset forgets the tables in progress.
func (d *psiDemuxer) reset() {
	d.q.p = nil
	d.dmx = astits.NewDemuxer(context.Background(), &d.q, astits.DemuxerOptPacketSize(PacketSize))
}

// packet adds one packet and returns the tables it completes.
func (d *psiDemuxer) packet(p []byte) (tables []*astits.DemuxerData, err error) {
	defer func() {
		// go-astits reads what the encoder sent: a panic in it is bad
		// input, not a reason to stop the relay.
		if r := recover(); r != nil {
			d.reset()
			tables, err = nil, fmt.Errorf("go-astits: %v", r)
		}
	}()
	d.q.p = p
	for {
		t, err := d.dmx.NextData()
		if errors.Is(err, errMore) {
			return tables, nil
		}
		if err != nil {
			d.reset()
			return tables, err
		}
		if t.PAT != nil || t.PMT != nil {
			tables = append(tables, t)
		}
	}
}

// pat takes the first program of a PAT.
func (d *Demuxer) pat(programs []*astits.PATProgram) {
	for _, p := range programs {
		if p.ProgramNumber == 0 {
			continue // the NIT
		}
		if d.pmtPID != int(p.ProgramMapID) {
			d.pmtPID = int(p.ProgramMapID)
			d.psiBytes[1] = 0
		}
		d.program = p.ProgramNumber
		return
	}
}

// stream is one elementary stream of the program.
type stream struct {
	pid        uint16
	streamType astits.StreamType
	codec      packager.Codec
	lang       string
	index      int  // index into the tracks, -1 if none (yet)
	hasData    bool // its first PES made samples
	logged     bool // its data after the tracks were fixed was logged

	synced   bool   // a PES started on it
	inPES    bool   // pes is a PES in progress
	pes      []byte // the PES in progress
	declared int    // the PES's declared size, -1 unbounded, 0 not known yet
	lastSize int    // the size of the previous PES, to size the next

	last    int64 // the DTS of the last sample made (a PES starts after it)
	hasLast bool

	audio    []byte // AAC: the AudioSpecificConfig
	audioKey aacKey // AAC: what its ADTS headers say
	rate     int    // audio sample rate
}

// mapping says which codec a PMT stream carries, or why it is left out.
func mapping(es *astits.PMTElementaryStream) (packager.Codec, string) {
	switch es.StreamType {
	case astits.StreamTypeH264Video:
		return packager.H264, ""
	case astits.StreamTypeH265Video:
		return packager.HEVC, ""
	case astits.StreamTypeAACAudio:
		return packager.AAC, ""
	case astits.StreamTypeAC3Audio:
		return packager.AC3, ""
	case astits.StreamTypeEAC3Audio:
		return packager.EAC3, ""
	case astits.StreamTypeMPEG1Audio, astits.StreamTypeMPEG2Audio:
		return 0, "MPEG audio (MP2, MP3)"
	case astits.StreamTypeSCTE35:
		return 0, "SCTE-35"
	case astits.StreamTypeAACLATMAudio:
		return 0, "AAC in LATM"
	case astits.StreamTypeMPEG1Video, astits.StreamTypeMPEG2Video:
		return 0, "MPEG-2 video"
	case astits.StreamTypePrivateData:
		for _, ds := range es.ElementaryStreamDescriptors {
			switch {
			case ds.Tag == astits.DescriptorTagAC3:
				return packager.AC3, ""
			case ds.Tag == astits.DescriptorTagEnhancedAC3:
				return packager.EAC3, ""
			case ds.Registration != nil && ds.Registration.FormatIdentifier == 0x41432d33: // "AC-3"
				return packager.AC3, ""
			case ds.Registration != nil && ds.Registration.FormatIdentifier == 0x45414333: // "EAC3"
				return packager.EAC3, ""
			}
		}
		return 0, "private data"
	}
	return 0, fmt.Sprintf("stream type 0x%02x", uint8(es.StreamType))
}

// language reads a stream's ISO 639 language descriptor ("" when none or
// "und").
func language(es *astits.PMTElementaryStream) string {
	for _, ds := range es.ElementaryStreamDescriptors {
		if ds.Tag != astits.DescriptorTagISO639LanguageAndAudioType || ds.ISO639LanguageAndAudioType == nil {
			continue
		}
		l := ds.ISO639LanguageAndAudioType.Language
		if len(l) < 3 {
			return ""
		}
		s := strings.ToLower(string(l[:3]))
		for _, c := range s {
			if c < 'a' || c > 'z' {
				return ""
			}
		}
		if s == "und" {
			return ""
		}
		return s
	}
	return ""
}

// pmt acts on the program's PMT: the first one says the streams; a later
// one may add streams while the tracks are not fixed, and may not take
// away or change a track's.
func (d *Demuxer) pmt(ctx context.Context, pmt *astits.PMTData) error {
	if pmt.ProgramNumber != d.program {
		return nil
	}
	seen := make(map[uint16]bool, len(pmt.ElementaryStreams))
	for _, es := range pmt.ElementaryStreams {
		pid := es.ElementaryPID
		seen[pid] = true
		codec, why := mapping(es)
		if st := d.streams[pid]; st != nil {
			if codec != st.codec {
				return d.protocolErr(ErrProgramChanged, "PID %d: stream type 0x%02x, was 0x%02x", pid, uint8(es.StreamType), uint8(st.streamType))
			}
			continue
		}
		if d.left[pid] || pid == pidPAT || pid == pidNull || int(pid) == d.pmtPID {
			continue
		}
		switch {
		case codec == 0:
			d.leave(pid, "left out: "+why, es.StreamType)
		case d.fixed:
			d.leave(pid, "left out: it appeared after the tracks were fixed", es.StreamType)
		case len(d.order) >= maxStreams:
			d.leave(pid, fmt.Sprintf("left out: more than %d streams", maxStreams), es.StreamType)
		default:
			st := &stream{pid: pid, streamType: es.StreamType, codec: codec, lang: language(es), index: -1}
			d.streams[pid] = st
			d.order = append(d.order, st)
		}
	}
	for _, st := range d.order {
		if !seen[st.pid] && (st.index >= 0 || !d.fixed) {
			return d.protocolErr(ErrProgramChanged, "PID %d is no longer in the PMT", st.pid)
		}
	}
	d.pmtSeen = true
	return nil
}

// leave logs, once, a stream that is left out.
func (d *Demuxer) leave(pid uint16, why string, typ astits.StreamType) {
	d.left[pid] = true
	d.log.Info("mpeg-ts stream "+why, "pid", pid, "stream_type", fmt.Sprintf("0x%02x", uint8(typ)))
}

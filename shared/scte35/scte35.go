// Package scte35 reads and writes the SCTE-35 splice_info_section that ad
// markers carry, over github.com/Comcast/scte35-go: what the relay checks
// of a marker before it keeps it (size, table_id, CRC_32, a command it
// can decode), what the manifests say of it (an ad break's start or end,
// its duration), and the splice_insert the relay makes for an HLS
// upload's CUE-OUT and CUE-IN tags, which carry no section of their own.
package scte35

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	lib "github.com/Comcast/scte35-go/pkg/scte35"
)

// Scheme is the scheme of an emsg (DASH-IF ingest, DASH in-band events)
// whose message data is a binary splice_info_section (SCTE 214-3).
const Scheme = "urn:scte:scte35:2013:bin"

// XMLBinScheme is the scheme of a DASH EventStream whose Events hold the
// section in base64 inside <scte35:Signal><scte35:Binary> (SCTE 214-1).
const XMLBinScheme = "urn:scte:scte35:2014:xml+bin"

// Namespace is the XML namespace of scte35:Signal and scte35:Binary.
const Namespace = "http://www.scte.org/schemas/35/2016"

// MaxSection is the largest splice_info_section taken: section_length is
// 12 bits, so a section is at most 3+4093 bytes.
const MaxSection = 4096

// Errors a section is refused with.
var (
	ErrEmpty    = errors.New("scte35: empty section")
	ErrTooLarge = fmt.Errorf("scte35: section over %d bytes", MaxSection)
	ErrTableID  = errors.New("scte35: table_id is not 0xFC")
	ErrLength   = errors.New("scte35: section_length disagrees with the bytes")
)

// Kind is what a section says of an ad break.
type Kind int

// Kinds of section, as HLS's DATERANGE names them (RFC 8216bis 4.4.5.1.1):
// a splice_insert out of the network (SCTE35-OUT), one back into it
// (SCTE35-IN), anything else (SCTE35-CMD: time_signal, splice_null, ...).
const (
	Cmd Kind = iota
	Out
	In
)

// Info is what the manifests need of a section.
type Info struct {
	Kind Kind
	// Command is the splice_command_type (5 splice_insert, 6 time_signal).
	Command uint32
	// EventID is splice_insert's splice_event_id, or the first
	// segmentation descriptor's segmentation_event_id.
	EventID uint32
	// Duration is the break's duration (splice_insert's break_duration,
	// or the segmentation descriptors'), 0 when it says none.
	Duration time.Duration
	// Cancel: the section cancels an event announced before.
	Cancel bool
}

// Parse checks b as a splice_info_section (its size, table_id,
// section_length, CRC_32, and that its command and descriptors decode)
// and says what it is. An encrypted section is refused.
func Parse(b []byte) (Info, error) {
	var info Info
	switch {
	case len(b) == 0:
		return info, ErrEmpty
	case len(b) > MaxSection:
		return info, ErrTooLarge
	case b[0] != lib.TableID:
		return info, ErrTableID
	case len(b) < 3 || 3+(int(b[1]&0x0f)<<8|int(b[2])) != len(b):
		return info, ErrLength
	}
	var sis lib.SpliceInfoSection
	if err := decode(&sis, b); err != nil {
		return info, err
	}
	if sis.EncryptedPacketFlag() {
		return info, errors.New("scte35: encrypted section")
	}
	if sis.SpliceCommand == nil {
		return info, errors.New("scte35: no splice command")
	}
	info.Command = sis.SpliceCommand.Type()
	info.Duration = sis.Duration()
	if si, ok := sis.SpliceCommand.(*lib.SpliceInsert); ok {
		info.EventID, info.Cancel = si.SpliceEventID, si.SpliceEventCancelIndicator
		if !si.SpliceEventCancelIndicator {
			info.Kind = In
			if si.OutOfNetworkIndicator {
				info.Kind = Out
			}
		}
		return info, nil
	}
	for _, d := range sis.SpliceDescriptors {
		if sd, ok := d.(*lib.SegmentationDescriptor); ok {
			info.EventID, info.Cancel = sd.SegmentationEventID, sd.SegmentationEventCancelIndicator
			break
		}
	}
	return info, nil
}

// decode runs the library's decoder, turning a panic on hostile bytes
// into an error: the library reads fields by bit counts it takes from
// the section.
func decode(sis *lib.SpliceInfoSection, b []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("scte35: undecodable section: %v", r)
		}
	}()
	if err := sis.Decode(b); err != nil {
		return fmt.Errorf("scte35: %w", err)
	}
	return nil
}

// Insert makes a splice_insert section for a splice at once (splice
// immediate): out of the network for an ad break of dur (0: not said),
// or back in. An HLS upload's CUE-OUT and CUE-IN tags become these, so
// that every format carries a section whatever the marker was.
func Insert(id uint32, out bool, dur time.Duration) []byte {
	cmd := &lib.SpliceInsert{
		SpliceEventID:         id,
		SpliceImmediateFlag:   true,
		OutOfNetworkIndicator: out,
		Program:               &lib.SpliceInsertProgram{},
		UniqueProgramID:       1,
	}
	if out && dur > 0 {
		cmd.BreakDuration = &lib.BreakDuration{AutoReturn: true, Duration: lib.DurationToTicks(dur)}
	}
	sis := lib.SpliceInfoSection{SpliceCommand: cmd, SAPType: lib.SAPTypeNotSpecified, Tier: 4095}
	b, err := sis.Encode()
	if err != nil {
		// Every field above is within its bits: a failure is a bug here.
		panic(fmt.Sprintf("scte35: encode splice_insert: %v", err))
	}
	return b
}

// Hex is b as HLS's DATERANGE SCTE35-* attributes write it: 0x and
// upper-case hexadecimal digits.
func Hex(b []byte) string { return "0x" + strings.ToUpper(hex.EncodeToString(b)) }

// ParseHex reads a DATERANGE SCTE35-* attribute value (0x and hex digits,
// either case).
func ParseHex(s string) ([]byte, error) {
	if len(s) < 2 || s[0] != '0' || s[1] != 'x' && s[1] != 'X' {
		return nil, fmt.Errorf("scte35: %q is not a hexadecimal-sequence", s)
	}
	if len(s) > 2+2*MaxSection {
		return nil, ErrTooLarge
	}
	b, err := hex.DecodeString(s[2:])
	if err != nil {
		return nil, fmt.Errorf("scte35: %w", err)
	}
	return b, nil
}

// Base64 is b as DASH's scte35:Binary writes it.
func Base64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// ParseBase64 reads a section written in base64 (DASH's scte35:Binary).
func ParseBase64(s string) ([]byte, error) {
	if len(s) > 4*MaxSection/3+4 {
		return nil, ErrTooLarge
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("scte35: %w", err)
	}
	return b, nil
}

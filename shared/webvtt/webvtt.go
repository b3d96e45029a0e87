// Package webvtt reads and writes WebVTT files (W3C WebVTT, with HLS's
// X-TIMESTAMP-MAP header, RFC 8216 3.5) and converts their cues to and
// from the samples of a wvtt track (ISO/IEC 14496-30: WebVTT in ISOBMFF),
// whose boxes mp4ff writes.
//
// A File is what a WebVTT file says that a player uses: its cues (id,
// times, settings, payload), its STYLE and REGION blocks and its
// timestamp map. Comments (NOTE blocks) are dropped. Parse is strict
// where a WebVTT parser would silently skip a block (a cue whose timing
// line does not parse is an error naming its line), and bounded (MaxSize,
// MaxCues), since its input comes from encoders.
package webvtt

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limits of what Parse takes.
const (
	// MaxSize is the largest file Parse reads (an HLS segment of
	// subtitles is a few KiB).
	MaxSize = 1 << 20
	// MaxCues is the most cues a file may hold.
	MaxCues = 10000
	// maxTime bounds a cue time: 2^33 s, beyond which a timestamp is no
	// time a stream reaches and time.Duration would overflow on sums.
	maxTime = time.Duration(1<<33) * time.Second
)

// Errors Parse returns, wrapped with where and why.
var (
	// ErrSyntax: the bytes are not a WebVTT file.
	ErrSyntax = errors.New("webvtt: syntax error")
	// ErrTooLarge: over MaxSize bytes or MaxCues cues.
	ErrTooLarge = errors.New("webvtt: file too large")
)

// Cue is one cue. Start and End are times of the file's own timeline
// (before any timestamp map is applied); Text is its payload, lines
// joined by "\n".
type Cue struct {
	ID         string
	Start, End time.Duration
	Settings   string // "line:0 position:50%", as written
	Text       string
}

// TimestampMap is HLS's X-TIMESTAMP-MAP: the cue time Local is the
// MPEG-2 timestamp MPEGTS (90 kHz, 33 bits) of the media it goes with.
type TimestampMap struct {
	MPEGTS uint64
	Local  time.Duration
}

// Block is a STYLE or REGION block: Kind is "STYLE" or "REGION", Body
// the lines after the keyword's line.
type Block struct {
	Kind string
	Body string
}

// File is a WebVTT file.
type File struct {
	// Header is the text after "WEBVTT" on the first line, if any.
	Header string
	// Map is the X-TIMESTAMP-MAP header; nil when there is none.
	Map *TimestampMap
	// Blocks are the STYLE and REGION blocks, in order.
	Blocks []Block
	Cues   []Cue
}

// Parse reads a WebVTT file: a BOM, CRLF or CR line ends, NOTE blocks
// and metadata headers other than X-TIMESTAMP-MAP are taken and ignored.
func Parse(b []byte) (*File, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxSize)
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	text := strings.ReplaceAll(strings.ReplaceAll(string(b), "\r\n", "\n"), "\r", "\n")
	lines := strings.Split(text, "\n")
	first, ok := strings.CutPrefix(lines[0], "WEBVTT")
	if !ok || (first != "" && first[0] != ' ' && first[0] != '\t') {
		return nil, fmt.Errorf("%w: line 1: a WebVTT file starts with WEBVTT", ErrSyntax)
	}
	f := &File{Header: strings.TrimSpace(first)}
	i := 1
	// The header's metadata lines, up to the first blank line.
	for ; i < len(lines) && lines[i] != ""; i++ {
		if strings.Contains(lines[i], "-->") {
			return nil, fmt.Errorf("%w: line %d: a cue needs a blank line after the header", ErrSyntax, i+1)
		}
		if v, ok := strings.CutPrefix(lines[i], "X-TIMESTAMP-MAP="); ok {
			m, err := parseMap(v)
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: %w", ErrSyntax, i+1, err)
			}
			f.Map = m
		}
	}
	for i < len(lines) {
		if lines[i] == "" {
			i++
			continue
		}
		start := i
		for i < len(lines) && lines[i] != "" {
			i++
		}
		if err := f.block(lines[start:i], start+1); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// block reads one block (its lines, the first at line n).
func (f *File) block(lines []string, n int) error {
	word := keyword(lines[0])
	switch {
	case word == "NOTE":
		return nil
	case (word == "STYLE" || word == "REGION") && len(f.Cues) == 0 && !strings.Contains(lines[0], "-->"):
		f.Blocks = append(f.Blocks, Block{Kind: word, Body: strings.Join(lines[1:], "\n")})
		return nil
	}
	// A cue: an optional id, its timing line, its payload; a line with
	// "-->" in the payload starts the next cue (WebVTT's parser does so).
	for len(lines) > 0 {
		var c Cue
		if !strings.Contains(lines[0], "-->") {
			c.ID = lines[0]
			lines, n = lines[1:], n+1
			if len(lines) == 0 {
				return fmt.Errorf("%w: line %d: %q is neither a cue timing line nor a cue id followed by one", ErrSyntax, n-1, c.ID)
			}
		}
		if err := c.timing(lines[0]); err != nil {
			return fmt.Errorf("%w: line %d: %w", ErrSyntax, n, err)
		}
		lines, n = lines[1:], n+1
		end := 0
		for end < len(lines) && !strings.Contains(lines[end], "-->") {
			end++
		}
		c.Text = strings.Join(lines[:end], "\n")
		if len(f.Cues) >= MaxCues {
			return fmt.Errorf("%w: more than %d cues", ErrTooLarge, MaxCues)
		}
		f.Cues = append(f.Cues, c)
		lines, n = lines[end:], n+end
	}
	return nil
}

// keyword is a block's first word when it is one that names a block
// (followed by a space, a tab or the end of the line).
func keyword(line string) string {
	for _, w := range []string{"NOTE", "STYLE", "REGION"} {
		if rest, ok := strings.CutPrefix(line, w); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			return w
		}
	}
	return ""
}

// timing reads a cue timing line: start --> end [settings].
func (c *Cue) timing(line string) error {
	before, after, _ := strings.Cut(line, "-->")
	start, err := parseTime(strings.TrimRight(before, " \t"))
	if err != nil {
		return fmt.Errorf("cue start: %w", err)
	}
	after = strings.TrimLeft(after, " \t")
	endText, settings, _ := strings.Cut(after, " ")
	if t, s, ok := strings.Cut(endText, "\t"); ok {
		endText, settings = t, s+" "+settings
	}
	end, err := parseTime(endText)
	if err != nil {
		return fmt.Errorf("cue end: %w", err)
	}
	if end < start {
		return fmt.Errorf("cue ends (%s) before it starts (%s)", FormatTime(end), FormatTime(start))
	}
	c.Start, c.End, c.Settings = start, end, strings.Join(strings.Fields(settings), " ")
	return nil
}

// parseTime reads a WebVTT timestamp: [hh:]mm:ss.ttt, hours of two
// digits or more.
func parseTime(s string) (time.Duration, error) {
	bad := fmt.Errorf("%q is not a timestamp ([hh:]mm:ss.ttt)", s)
	hms, frac, ok := strings.Cut(s, ".")
	if !ok || len(frac) != 3 || !digits(frac) {
		return 0, bad
	}
	parts := strings.Split(hms, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, bad
	}
	var h uint64
	if len(parts) == 3 {
		if len(parts[0]) < 2 || len(parts[0]) > 10 || !digits(parts[0]) {
			return 0, bad
		}
		h, _ = strconv.ParseUint(parts[0], 10, 64)
		parts = parts[1:]
	}
	if len(parts[0]) != 2 || len(parts[1]) != 2 || !digits(parts[0]) || !digits(parts[1]) {
		return 0, bad
	}
	m, _ := strconv.Atoi(parts[0])
	sec, _ := strconv.Atoi(parts[1])
	ms, _ := strconv.Atoi(frac)
	if m > 59 || sec > 59 {
		return 0, bad
	}
	d := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second + time.Duration(ms)*time.Millisecond
	if h >= uint64(maxTime/time.Hour) {
		return 0, fmt.Errorf("%q is too far (past 2^33 s)", s)
	}
	return d, nil
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// parseMap reads X-TIMESTAMP-MAP's value: MPEGTS:n,LOCAL:time, in
// either order.
func parseMap(v string) (*TimestampMap, error) {
	var m TimestampMap
	var mpegts, local bool
	for _, kv := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(kv), ":")
		switch k {
		case "MPEGTS":
			n, err := strconv.ParseUint(val, 10, 64)
			if err != nil || n >= 1<<33 {
				return nil, fmt.Errorf("X-TIMESTAMP-MAP: MPEGTS %q is not a 33-bit timestamp", val)
			}
			m.MPEGTS, mpegts = n, true
		case "LOCAL":
			t, err := parseTime(val)
			if err != nil {
				return nil, fmt.Errorf("X-TIMESTAMP-MAP: LOCAL: %w", err)
			}
			m.Local, local = t, true
		default:
			return nil, fmt.Errorf("X-TIMESTAMP-MAP: unknown field %q", k)
		}
	}
	if !mpegts || !local {
		return nil, errors.New("X-TIMESTAMP-MAP needs MPEGTS and LOCAL")
	}
	return &m, nil
}

// FormatTime writes a WebVTT timestamp, hh:mm:ss.ttt, to the nearest
// millisecond (a negative time is written as zero).
func FormatTime(d time.Duration) string {
	d = max(d, 0)
	ms := int64(d/time.Millisecond) + int64(d%time.Millisecond+time.Millisecond/2)/int64(time.Millisecond)
	return fmt.Sprintf("%02d:%02d:%02d.%03d", ms/3600000, ms/60000%60, ms/1000%60, ms%1000)
}

// Bytes writes the file. What WebVTT cannot carry is mended so that the
// file parses back to the same cues: blank lines in a payload are
// dropped, "-->" in a payload or id becomes "--&gt;", line ends in an id
// or settings become spaces, and an id that would read as a NOTE, STYLE
// or REGION block is left out. The file ends with a blank line.
func (f *File) Bytes() []byte {
	var b strings.Builder
	b.WriteString("WEBVTT")
	if h := oneLine(f.Header); h != "" {
		b.WriteString(" " + h)
	}
	b.WriteString("\n")
	if f.Map != nil {
		fmt.Fprintf(&b, "X-TIMESTAMP-MAP=MPEGTS:%d,LOCAL:%s\n", f.Map.MPEGTS%(1<<33), FormatTime(f.Map.Local))
	}
	for _, bl := range f.Blocks {
		b.WriteString("\n" + bl.Kind + "\n")
		if body := payload(bl.Body, false); body != "" {
			b.WriteString(body + "\n")
		}
	}
	for _, c := range f.Cues {
		b.WriteString("\n")
		if id := strings.ReplaceAll(oneLine(c.ID), "-->", "--&gt;"); id != "" && keyword(id) == "" {
			b.WriteString(id + "\n")
		}
		b.WriteString(FormatTime(c.Start) + " --> " + FormatTime(max(c.End, c.Start)))
		if s := strings.Join(strings.Fields(c.Settings), " "); s != "" {
			b.WriteString(" " + s)
		}
		b.WriteString("\n")
		if t := payload(c.Text, true); t != "" {
			b.WriteString(t + "\n")
		}
	}
	// A blank line at the end: a reader that runs files together (ffmpeg
	// 5.1's HLS demuxer reads a subtitle playlist's segments as one file)
	// does not take the next file's header for the last cue's text.
	b.WriteString("\n")
	return []byte(b.String())
}

// oneLine replaces line ends with spaces.
func oneLine(s string) string { return lineEnds.Replace(s) }

// lineEnds replaces line ends byte by byte (strings.Map would mend
// invalid UTF-8, which a file may hold).
var lineEnds = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ")

// payload is a cue's or block's text as a file can carry it: no empty
// line and (a cue's, escape) no "-->".
func payload(s string, escape bool) string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
	var kept []string
	for _, l := range strings.Split(s, "\n") {
		if escape {
			l = strings.ReplaceAll(l, "-->", "--&gt;")
		}
		if l != "" {
			kept = append(kept, l)
		}
	}
	return strings.Join(kept, "\n")
}

package srt

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/smoothcast/smoothcast/shared/layout"
)

// Pull is an encoder that listens (SRT's listener mode: a hardware
// encoder set to "listener", or ffmpeg -f mpegts
// 'srt://0.0.0.0:PORT?mode=listener'), which the relay calls and takes
// into a channel. The operator lists them in the relay's configuration
// (-srt-pull, SMOOTHCAST_SRT_PULL): such a stream is not asked for the
// channel's ingest secret (relay.LiveRequest.Configured).
type Pull struct {
	// Channel is the channel the stream goes to.
	Channel string
	// Addr is the encoder's host:port (UDP).
	Addr string
	// StreamID is sent in the handshake ("" for none): an encoder that
	// serves several streams on one port picks one by it.
	StreamID string
	// Passphrase, when set, encrypts the connection (SRT's AES: the
	// encoder must have the same one); 10 to 79 characters.
	Passphrase string
	// Latency is the receiver latency the relay asks for (zero: the
	// Server's Config.Latency). The encoder may ask for more.
	Latency time.Duration
}

// pullKeys are the URL query keys an entry may carry.
var pullKeys = []string{"streamid", "passphrase", "latency"}

// ParsePull reads one pull entry:
//
//	CHANNEL=srt://HOST:PORT[?streamid=ID][&passphrase=PASS][&latency=MS]
//
// Query values are percent-decoded ('+' stays a plus), except that a
// stream ID is taken whole up to the next '&' ("#!::r=x,m=request" need
// not be encoded). latency is a whole number of milliseconds, as SRT's
// own URIs (srt-live-transmit) take it, or a Go duration ("250ms", "1s");
// ffmpeg's srt:// URLs count it in microseconds, so a value copied from
// one is 1000 times too large (and refused: a minute at most). Errors
// name the entry with its passphrase masked, never the passphrase.
func ParsePull(entry string) (Pull, error) {
	fail := func(format string, args ...any) (Pull, error) {
		return Pull{}, fmt.Errorf("srt pull %q: %s", maskPassphrase(entry), fmt.Sprintf(format, args...))
	}
	channel, rawURL, ok := strings.Cut(entry, "=")
	if !ok {
		return fail("want CHANNEL=srt://HOST:PORT")
	}
	if !layout.ValidName(channel) {
		return fail("channel name %q: letters, digits, - and _ only, 1 to %d of them", channel, layout.MaxNameLen)
	}
	rest, ok := strings.CutPrefix(rawURL, "srt://")
	if !ok {
		return fail("want an srt:// URL after %s=", channel)
	}
	hostPort, query, _ := strings.Cut(rest, "?")
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return fail("want srt://HOST:PORT: %v", err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fail("port %q: want 1 to 65535", port)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		return fail("host %q: the encoder's address is needed (the relay calls it)", host)
	}
	p := Pull{Channel: channel, Addr: hostPort}
	seen := map[string]bool{}
	for pair := range strings.SplitSeq(query, "&") {
		if pair == "" {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		if seen[key] {
			return fail("%s given twice", key)
		}
		seen[key] = true
		if key != "streamid" {
			if value, err = url.PathUnescape(value); err != nil {
				return fail("%s: bad percent-encoding", key)
			}
		}
		switch key {
		case "streamid":
			if d, err := url.PathUnescape(value); err == nil && strings.HasPrefix(value, "%") {
				value = d // written the way URLs want it
			}
			if len(value) > maxStreamID {
				return fail("streamid of %d bytes: %d at most", len(value), maxStreamID)
			}
			p.StreamID = value
		case "passphrase":
			if n := len(value); n < minPassphrase || n > maxPassphrase {
				return fail("passphrase of %d characters: SRT takes %d to %d", n, minPassphrase, maxPassphrase)
			}
			p.Passphrase = value
		case "latency":
			d, err := parseLatency(value)
			if err != nil {
				return fail("latency=%s: %v", value, err)
			}
			p.Latency = d
		default:
			return fail("unknown setting %q: the URL takes %s", key, strings.Join(pullKeys, ", "))
		}
	}
	return p, nil
}

// validate refuses a Pull the relay cannot call (one made in code, not
// read by ParsePull).
func (p Pull) validate() error {
	host, port, err := net.SplitHostPort(p.Addr)
	n, perr := strconv.Atoi(port)
	switch {
	case !layout.ValidName(p.Channel):
		return fmt.Errorf("srt pull %s: channel name %q: letters, digits, - and _ only, 1 to %d of them", p, p.Channel, layout.MaxNameLen)
	case err != nil || host == "" || perr != nil || n < 1 || n > 65535:
		return fmt.Errorf("srt pull %s: want the encoder's HOST:PORT", p)
	case p.Passphrase != "" && (len(p.Passphrase) < minPassphrase || len(p.Passphrase) > maxPassphrase):
		return fmt.Errorf("srt pull %s: passphrase of %d characters: SRT takes %d to %d", p, len(p.Passphrase), minPassphrase, maxPassphrase)
	case p.Latency < 0 || p.Latency > time.Minute:
		return fmt.Errorf("srt pull %s: latency %v: want 0 to 1m", p, p.Latency)
	case len(p.StreamID) > maxStreamID:
		return fmt.Errorf("srt pull %s: stream ID of %d bytes: %d at most", p, len(p.StreamID), maxStreamID)
	}
	return nil
}

// parseLatency reads a latency in milliseconds or as a Go duration.
func parseLatency(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if n, nerr := strconv.Atoi(s); nerr == nil {
		d, err = time.Duration(n)*time.Millisecond, nil
	}
	switch {
	case err != nil:
		return 0, errors.New("want milliseconds (250) or a duration (250ms)")
	case d < 0 || d > time.Minute:
		return 0, errors.New("want 0 to 1 minute (in milliseconds: ffmpeg's srt:// URLs count microseconds)")
	}
	return d, nil
}

// ParsePulls reads a list of pull entries separated by white space (the
// form of SMOOTHCAST_SRT_PULL: URLs hold no spaces, and a passphrase or
// a stream ID may hold commas), and refuses the same encoder given twice
// for one channel.
func ParsePulls(list string) ([]Pull, error) {
	var out []Pull
	var errs []error
	seen := map[[2]string]bool{}
	for entry := range strings.FieldsSeq(list) {
		p, err := ParsePull(entry)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		key := [2]string{p.Channel, p.Addr}
		if seen[key] {
			errs = append(errs, fmt.Errorf("srt pull %q: given twice", maskPassphrase(entry)))
			continue
		}
		seen[key] = true
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

// String is the entry (as ParsePull reads it), its passphrase masked.
func (p Pull) String() string {
	q := []string{}
	if p.StreamID != "" {
		q = append(q, "streamid="+p.StreamID)
	}
	if p.Passphrase != "" {
		q = append(q, "passphrase="+masked)
	}
	if p.Latency != 0 {
		q = append(q, "latency="+p.Latency.String())
	}
	s := p.Channel + "=srt://" + p.Addr
	if len(q) > 0 {
		s += "?" + strings.Join(q, "&")
	}
	return s
}

// masked stands in for a passphrase in logs and errors.
const masked = "(secret)"

var passphraseValue = regexp.MustCompile(`(passphrase=)[^&\s]*`)

// maskPassphrase is an entry, or a list of them, as written, each
// passphrase masked (whether the entry parses or not).
func maskPassphrase(s string) string { return passphraseValue.ReplaceAllString(s, "${1}"+masked) }

// PullFlag is the -srt-pull flag (a flag.Value): repeatable, and its
// variable (SMOOTHCAST_SRT_PULL) holds the same entries separated by
// white space; Set splits what it is given, so either way makes one
// list. Set only collects the entries and Pulls parses them, so that no
// error of the flag package echoes a passphrase; String (the
// configuration's log line) masks each passphrase.
type PullFlag struct{ entries []string }

// PullUsage is -srt-pull's usage text.
const PullUsage = "an SRT encoder that listens, which the relay calls: CHANNEL=srt://HOST:PORT[?streamid=ID&passphrase=PASS&latency=MS]; repeat the flag for more (in the variable: entries separated by spaces)"

// Set is flag.Value's.
func (f *PullFlag) Set(v string) error {
	f.entries = append(f.entries, strings.Fields(v)...)
	return nil
}

// String is flag.Value's: the entries, each passphrase masked.
func (f *PullFlag) String() string {
	if f == nil {
		return ""
	}
	return maskPassphrase(strings.Join(f.entries, " "))
}

// Pulls parses the entries (ParsePulls).
func (f *PullFlag) Pulls() ([]Pull, error) { return ParsePulls(strings.Join(f.entries, " ")) }

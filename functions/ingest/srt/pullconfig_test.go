package srt

import (
	"strings"
	"testing"
	"time"
)

// A pull entry is CHANNEL=srt://HOST:PORT with an optional stream ID,
// passphrase and latency; anything else is refused at start with an
// error that names the entry, never its passphrase.
func TestParsePullTakesChannelHostPortAndSRTSettings(t *testing.T) {
	const pass = "pull-passphrase-0123"
	for _, tc := range []struct {
		name, entry string
		want        Pull
		wantErr     string
	}{
		{name: "channel and encoder", entry: "news=srt://10.0.0.5:9000", want: Pull{Channel: "news", Addr: "10.0.0.5:9000"}},
		{name: "a host name", entry: "news=srt://encoder.example:9000", want: Pull{Channel: "news", Addr: "encoder.example:9000"}},
		{name: "IPv6", entry: "news=srt://[2001:db8::5]:9000", want: Pull{Channel: "news", Addr: "[2001:db8::5]:9000"}},
		{name: "a stream ID as SRT writes it, not encoded", entry: "news=srt://10.0.0.5:9000?streamid=#!::r=cam1,m=request", want: Pull{Channel: "news", Addr: "10.0.0.5:9000", StreamID: "#!::r=cam1,m=request"}},
		{name: "a stream ID percent-encoded", entry: "news=srt://10.0.0.5:9000?streamid=%23%21%3A%3Ar%3Dcam1", want: Pull{Channel: "news", Addr: "10.0.0.5:9000", StreamID: "#!::r=cam1"}},
		{name: "a passphrase, plus kept as is", entry: "news=srt://10.0.0.5:9000?passphrase=a+b%26c-0123456", want: Pull{Channel: "news", Addr: "10.0.0.5:9000", Passphrase: "a+b&c-0123456"}},
		{name: "latency in milliseconds", entry: "news=srt://10.0.0.5:9000?latency=500", want: Pull{Channel: "news", Addr: "10.0.0.5:9000", Latency: 500 * time.Millisecond}},
		{name: "latency as a duration", entry: "news=srt://10.0.0.5:9000?latency=1.5s&passphrase=" + pass, want: Pull{Channel: "news", Addr: "10.0.0.5:9000", Latency: 1500 * time.Millisecond, Passphrase: pass}},
		{name: "no URL", entry: "news", wantErr: `srt pull "news": want CHANNEL=srt://HOST:PORT`},
		{name: "a channel name no path can carry", entry: "../x=srt://10.0.0.5:9000", wantErr: `channel name "../x": letters, digits, - and _ only`},
		{name: "another scheme", entry: "news=udp://10.0.0.5:9000", wantErr: "want an srt:// URL after news="},
		{name: "no port", entry: "news=srt://10.0.0.5", wantErr: "want srt://HOST:PORT: address 10.0.0.5: missing port in address"},
		{name: "port zero", entry: "news=srt://10.0.0.5:0", wantErr: `port "0": want 1 to 65535`},
		{name: "a named port", entry: "news=srt://10.0.0.5:srt", wantErr: `port "srt": want 1 to 65535`},
		{name: "no host", entry: "news=srt://:9000", wantErr: `host "": the encoder's address is needed`},
		{name: "a listener's address", entry: "news=srt://0.0.0.0:9000", wantErr: `host "0.0.0.0": the encoder's address is needed`},
		{name: "a passphrase too short, masked", entry: "news=srt://10.0.0.5:9000?passphrase=short", wantErr: `srt pull "news=srt://10.0.0.5:9000?passphrase=(secret)": passphrase of 5 characters: SRT takes 10 to 79`},
		{name: "a passphrase too long", entry: "news=srt://10.0.0.5:9000?passphrase=" + strings.Repeat("p", 80), wantErr: "passphrase of 80 characters"},
		{name: "latency copied from ffmpeg (microseconds)", entry: "news=srt://10.0.0.5:9000?latency=200000", wantErr: "latency=200000: want 0 to 1 minute (in milliseconds: ffmpeg's srt:// URLs count microseconds)"},
		{name: "latency not a number", entry: "news=srt://10.0.0.5:9000?latency=soon", wantErr: "latency=soon: want milliseconds (250) or a duration (250ms)"},
		{name: "a setting the relay does not take", entry: "news=srt://10.0.0.5:9000?mode=listener", wantErr: `unknown setting "mode": the URL takes streamid, passphrase, latency`},
		{name: "a setting twice", entry: "news=srt://10.0.0.5:9000?latency=1&latency=2", wantErr: "latency given twice"},
		{name: "bad percent-encoding", entry: "news=srt://10.0.0.5:9000?passphrase=" + pass + "%zz", wantErr: "passphrase: bad percent-encoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePull(tc.entry)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParsePull(%q) = %+v, %v; want an error saying %q", tc.entry, got, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), pass) || strings.Contains(err.Error(), "short") {
					t.Errorf("the passphrase in the error: %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParsePull(%q) = %+v, %v; want %+v", tc.entry, got, err, tc.want)
			}
			if err := (Config{Pull: []Pull{got}}).Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			if s := got.String(); strings.Contains(s, pass) {
				t.Errorf("String() shows the passphrase: %s", s)
			}
		})
	}
}

// A list of entries (SMOOTHCAST_SRT_PULL) is separated by white space;
// every bad entry is reported, and one encoder given twice for a channel
// is refused.
func TestParsePullsReadsAListAndReportsEveryBadEntry(t *testing.T) {
	got, err := ParsePulls(" news=srt://10.0.0.5:9000\n\tsport=srt://10.0.0.6:9000  ")
	if err != nil || len(got) != 2 || got[0].Channel != "news" || got[1].Addr != "10.0.0.6:9000" {
		t.Fatalf("ParsePulls = %+v, %v", got, err)
	}
	_, err = ParsePulls("a/b=srt://h:1 news=srt://h:0 ok=srt://h:1 ok=srt://h:1")
	for _, says := range []string{`"a/b=srt://h:1"`, `"news=srt://h:0"`, `"ok=srt://h:1": given twice`} {
		if err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("error %v; want it to name %s", err, says)
		}
	}
}

// A Pull made in code (the local stack's) is checked as a parsed one is.
func TestConfigValidateChecksPulls(t *testing.T) {
	for _, p := range []Pull{
		{Channel: "x/y", Addr: "h:1"},
		{Channel: "ok", Addr: "h"},
		{Channel: "ok", Addr: "h:1", Passphrase: "short"},
		{Channel: "ok", Addr: "h:1", Latency: 2 * time.Minute},
	} {
		if err := (Config{Pull: []Pull{p}}).Validate(); err == nil {
			t.Errorf("Validate took %+v", p)
		} else if strings.Contains(err.Error(), "short") {
			t.Errorf("the passphrase in the error: %v", err)
		}
	}
}

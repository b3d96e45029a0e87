package webvtt

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *File
	}{
		{"header only", "WEBVTT\n", &File{}},
		{"header text and a cue", "WEBVTT - subtitles\n\n00:01.000 --> 00:02.500\nHello\n", &File{Header: "- subtitles",
			Cues: []Cue{{Start: ms(1000), End: ms(2500), Text: "Hello"}}}},
		{"cue id, settings and a multi-line payload", "WEBVTT\n\nintro\n00:00:01.000 --> 00:00:02.000 line:0 position:50%\nline one\nline two\n",
			&File{Cues: []Cue{{ID: "intro", Start: ms(1000), End: ms(2000), Settings: "line:0 position:50%", Text: "line one\nline two"}}}},
		{"hours of more than two digits", "WEBVTT\n\n100:00:00.001 --> 100:00:00.002\nx\n",
			&File{Cues: []Cue{{Start: 100*time.Hour + ms(1), End: 100*time.Hour + ms(2), Text: "x"}}}},
		{"BOM and CRLF", "\xef\xbb\xbfWEBVTT\r\n\r\n00:01.000 --> 00:02.000\r\na\r\nb\r\n",
			&File{Cues: []Cue{{Start: ms(1000), End: ms(2000), Text: "a\nb"}}}},
		{"CR alone ends lines", "WEBVTT\r\r00:01.000 --> 00:02.000\ra\r",
			&File{Cues: []Cue{{Start: ms(1000), End: ms(2000), Text: "a"}}}},
		{"X-TIMESTAMP-MAP in either order", "WEBVTT\nX-TIMESTAMP-MAP=LOCAL:00:00:01.000,MPEGTS:900000\n\n00:01.000 --> 00:02.000\na\n",
			&File{Map: &TimestampMap{MPEGTS: 900000, Local: ms(1000)}, Cues: []Cue{{Start: ms(1000), End: ms(2000), Text: "a"}}}},
		{"NOTE blocks are dropped, STYLE and REGION kept", "WEBVTT\n\nNOTE a comment\nmore\n\nSTYLE\n::cue { color: red }\n\nREGION\nid:r1\n\nNOTE\n\n00:01.000 --> 00:02.000\na\n",
			&File{Blocks: []Block{{"STYLE", "::cue { color: red }"}, {"REGION", "id:r1"}}, Cues: []Cue{{Start: ms(1000), End: ms(2000), Text: "a"}}}},
		{"a cue without payload", "WEBVTT\n\n00:01.000 --> 00:02.000\n\n00:03.000 --> 00:04.000\nb\n",
			&File{Cues: []Cue{{Start: ms(1000), End: ms(2000)}, {Start: ms(3000), End: ms(4000), Text: "b"}}}},
		{"a timing line in a payload starts the next cue", "WEBVTT\n\n00:01.000 --> 00:02.000\na\n00:03.000 --> 00:04.000\nb\n",
			&File{Cues: []Cue{{Start: ms(1000), End: ms(2000), Text: "a"}, {Start: ms(3000), End: ms(4000), Text: "b"}}}},
		{"ffmpeg's segment: no blank line at the end", "WEBVTT\n\n00:00.580 --> 00:02.080\nHello world",
			&File{Cues: []Cue{{Start: ms(580), End: ms(2080), Text: "Hello world"}}}},
		{"tabs around the arrow", "WEBVTT\n\n00:01.000\t-->\t00:02.000\talign:start\na\n",
			&File{Cues: []Cue{{Start: ms(1000), End: ms(2000), Settings: "align:start", Text: "a"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct {
		name, in, says string
		err            error
	}{
		{"not WebVTT", "1\n00:00:01,000 --> 00:00:02,000\nsrt\n", "line 1", ErrSyntax},
		{"WEBVTT glued to text", "WEBVTTX\n", "line 1", ErrSyntax},
		{"SRT commas in a timestamp", "WEBVTT\n\n00:00:01,000 --> 00:00:02,000\na\n", "line 3", ErrSyntax},
		{"minutes past 59", "WEBVTT\n\n00:60.000 --> 01:00.000\na\n", "cue start", ErrSyntax},
		{"a cue that ends before it starts", "WEBVTT\n\n00:02.000 --> 00:01.000\na\n", "before it starts", ErrSyntax},
		{"an id without a timing line", "WEBVTT\n\nid\n", "line 3", ErrSyntax},
		{"a cue in the header", "WEBVTT\n00:01.000 --> 00:02.000\n", "line 2", ErrSyntax},
		{"a bad timestamp map", "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:x,LOCAL:00:00:00.000\n", "MPEGTS", ErrSyntax},
		{"a timestamp map past 33 bits", "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:8589934592,LOCAL:00:00:00.000\n", "33-bit", ErrSyntax},
		{"a timestamp map without LOCAL", "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:1\n", "needs", ErrSyntax},
		{"too large", "WEBVTT\n\n" + strings.Repeat("x", MaxSize), "bytes", ErrTooLarge},
		{"too many cues", "WEBVTT\n\n" + strings.Repeat("00:01.000 --> 00:02.000\n", MaxCues+1), "cues", ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("got %v, want %v saying %q", err, tt.err, tt.says)
			}
		})
	}
}

func TestBytesParsesBack(t *testing.T) {
	f := &File{
		Header: "from a test",
		Map:    &TimestampMap{MPEGTS: 8589934591, Local: ms(1500)},
		Blocks: []Block{{"STYLE", "::cue { color: lime }"}},
		Cues: []Cue{
			{ID: "1", Start: ms(0), End: ms(1001), Settings: "line:10%", Text: "one\ntwo"},
			{Start: 26*time.Hour + ms(5), End: 26*time.Hour + ms(6), Text: "<v Bob>late</v>"},
			{ID: "empty", Start: ms(7), End: ms(7)},
		},
	}
	got, err := Parse(f.Bytes())
	if err != nil {
		t.Fatalf("%v in\n%s", err, f.Bytes())
	}
	if !reflect.DeepEqual(got, f) {
		t.Errorf("got %+v\nwant %+v\n%s", got, f, f.Bytes())
	}
}

func TestBytesMendsWhatWebVTTCannotCarry(t *testing.T) {
	tests := []struct {
		name string
		in   Cue
		want Cue
	}{
		{"blank lines in a payload are dropped", Cue{Text: "a\n\nb\n"}, Cue{Text: "a\nb"}},
		{"an arrow in a payload is escaped", Cue{Text: "a --> b"}, Cue{Text: "a --&gt; b"}},
		{"an arrow in an id is escaped", Cue{ID: "x-->y", Text: "a"}, Cue{ID: "x--&gt;y", Text: "a"}},
		{"line ends in an id and settings become spaces", Cue{ID: "a\nb", Settings: "line:0\nalign:start", Text: "a"},
			Cue{ID: "a b", Settings: "line:0 align:start", Text: "a"}},
		{"an id that reads as a NOTE is left out", Cue{ID: "NOTE this", Text: "a"}, Cue{Text: "a"}},
		{"an end before the start is the start", Cue{Start: ms(5), End: ms(2), Text: "a"}, Cue{Start: ms(5), End: ms(5), Text: "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &File{Cues: []Cue{tt.in}}
			got, err := Parse(f.Bytes())
			if err != nil {
				t.Fatalf("%v in\n%s", err, f.Bytes())
			}
			if len(got.Cues) != 1 || !reflect.DeepEqual(got.Cues[0], tt.want) {
				t.Errorf("got %+v, want %+v", got.Cues, tt.want)
			}
		})
	}
}

func TestFormatTimeRoundsToTheMillisecond(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "00:00:00.000", ms(1) - 1: "00:00:00.001", ms(1500) + 499*time.Microsecond: "00:00:01.500",
		-time.Second: "00:00:00.000", 100*time.Hour + ms(61001): "100:01:01.001",
	} {
		if got := FormatTime(d); got != want {
			t.Errorf("FormatTime(%v) = %s, want %s", d, got, want)
		}
	}
}

// FuzzParse: Parse never panics, and what it reads writes back to a
// file that parses to the same.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.vtt")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("WEBVTT\n\n00:01.000 --> 00:02.000 align:start\nHello\n"))
	f.Add([]byte("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000\n\nid\n00:01.000 --> 00:02.000\na\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(b)
		if err != nil {
			return
		}
		again, err := Parse(file.Bytes())
		if err != nil {
			t.Fatalf("written back, it does not parse: %v\n%q", err, file.Bytes())
		}
		if !reflect.DeepEqual(again, file) {
			t.Fatalf("written back, it parses to\n%+v\nnot\n%+v\n%q", again, file, file.Bytes())
		}
	})
}

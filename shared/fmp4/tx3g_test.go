package fmp4

import (
	"encoding/binary"
	"testing"
)

// A 3GPP timed text sample's text: its length first, UTF-8 or UTF-16
// after a byte order mark, modifier boxes after it left out, escaped for
// WebVTT; a length past the sample is cut to it.
func TestTx3gText(t *testing.T) {
	sample := func(text []byte, extra ...byte) []byte {
		return append(binary.BigEndian.AppendUint16(nil, uint16(len(text))), append(text, extra...)...)
	}
	for _, tc := range []struct {
		name   string
		sample []byte
		want   string
	}{
		{"empty", sample(nil), ""},
		{"too short", []byte{0}, ""},
		{"UTF-8 with a style box after it", sample([]byte("Grüße"), 0, 0, 0, 8, 's', 't', 'y', 'l'), "Grüße"},
		{"UTF-16", sample([]byte{0xfe, 0xff, 0, 'H', 0, 'i', 0x4e, 0x16}), "Hi世"},
		{"escaped", sample([]byte("a < b & c > d")), "a &lt; b &amp; c &gt; d"},
		{"CRLF", sample([]byte("one\r\ntwo")), "one\ntwo"},
		{"a length past the sample", append([]byte{0, 200}, "cut"...), "cut"},
		{"invalid UTF-8", sample([]byte{'a', 0xff, 'b'}), "a\uFFFDb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tx3gText(tc.sample); got != tc.want {
				t.Errorf("text %q, want %q", got, tc.want)
			}
		})
	}
	if got := string(appendVTTSample(nil, " ")); got != "\x00\x00\x00\x08vtte" {
		t.Errorf("a blank cue is %q, want an empty sample (vtte)", got)
	}
}

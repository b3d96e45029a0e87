package scte35

import (
	"errors"
	"testing"
	"time"
)

// A time_signal with a Provider Placement Opportunity Start segmentation
// descriptor, from SCTE 35 (2019) 14.2 sample.
const timeSignalB64 = "/DA0AAAAAAAA///wBQb+cr0AUAAeAhxDVUVJSAAAjn/PAAGlmbAICAAAAAAsoKGKNAIAmsnRfg=="

func TestParseTakesWhatTheMarkersCarry(t *testing.T) {
	ts, err := ParseBase64(timeSignalB64)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		b    []byte
		want Info
	}{
		{"splice_insert out with a break duration", Insert(7, true, 30*time.Second), Info{Kind: Out, Command: 5, EventID: 7, Duration: 30 * time.Second}},
		{"splice_insert back in", Insert(7, false, 0), Info{Kind: In, Command: 5, EventID: 7}},
		{"time_signal is a command", ts, Info{Kind: Cmd, Command: 6, EventID: 0x4800008e, Duration: 307 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.b)
			if err != nil {
				t.Fatal(err)
			}
			if got.Kind != tt.want.Kind || got.Command != tt.want.Command || got.EventID != tt.want.EventID || got.Duration.Round(time.Second) != tt.want.Duration {
				t.Errorf("Parse = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseRefusesWhatIsNoSection(t *testing.T) {
	good := Insert(1, true, 0)
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-1] ^= 1
	badTable := append([]byte(nil), good...)
	badTable[0] = 0xFB
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrEmpty},
		{"too large", make([]byte, MaxSection+1), ErrTooLarge},
		{"table_id", badTable, ErrTableID},
		{"truncated", good[:len(good)-2], ErrLength},
		{"trailing bytes", append(append([]byte(nil), good...), 0), ErrLength},
		{"CRC", badCRC, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.b)
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Parse = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestHexRoundTrips(t *testing.T) {
	b := Insert(3, true, 0)
	got, err := ParseHex(Hex(b))
	if err != nil || string(got) != string(b) {
		t.Fatalf("ParseHex(Hex) = %x, %v", got, err)
	}
	for _, bad := range []string{"", "FC", "0xZZ", "0xF"} {
		if _, err := ParseHex(bad); err == nil {
			t.Errorf("ParseHex(%q) took it", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Insert(1, true, 30*time.Second))
	f.Add(Insert(2, false, 0))
	if b, err := ParseBase64(timeSignalB64); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Parse(b) // must not panic
	})
}

package tsedit

import (
	"bytes"
	"os"
	"testing"
)

func fixture(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../../functions/ingest/srt/testdata/h264_aac_8s.ts")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A timestamp written reads back, its prefix and marker bits kept; the
// edits keep packets whole and change what they say they change.
func TestEditsDoWhatTheySay(t *testing.T) {
	b := []byte{0x31, 0, 1, 0, 1}
	for _, v := range []int64{0, 1, 126000, 1<<33 - 1} {
		writeTimestamp(b, v)
		if got := readTimestamp(b); got != v || b[0]&0xf1 != 0x31 || b[2]&1 != 1 || b[4]&1 != 1 {
			t.Errorf("wrote %d, read %d (% x)", v, got, b)
		}
	}
	ts := fixture(t)
	cut, err := UpTo(ts, 2.5)
	if err != nil || len(cut)%PacketSize != 0 || len(cut) == 0 || len(cut) >= len(ts) {
		t.Fatalf("UpTo 2.5 s: %d bytes of %d, %v", len(cut), len(ts), err)
	}
	shifted, err := ShiftTimestamps(ts, 4, -90000)
	if err != nil || len(shifted) != len(ts) || bytes.Equal(shifted, ts) {
		t.Fatalf("ShiftTimestamps: %v", err)
	}
	for off := 0; off < len(ts); off += PacketSize {
		a, okA := PTS(ts[off : off+PacketSize])
		b, okB := PTS(shifted[off : off+PacketSize])
		if okA != okB || okA && b != a && b != a-90000 {
			t.Fatalf("packet %d: PTS %d became %d", off/PacketSize, a, b)
		}
	}
	if got := len(TruncatePackets(ts, 20, 100)); got != len(ts)-(len(ts)/PacketSize/20)*88 {
		t.Errorf("TruncatePackets: %d bytes", got)
	}
	endless, err := EndlessPES(ts, 1<<20)
	if err != nil || len(endless) < 1<<20 || len(endless)%PacketSize != 0 {
		t.Errorf("EndlessPES: %d bytes, %v", len(endless), err)
	}
	if n := NullPackets(3); len(n) != 3*PacketSize || n[1] != 0x1f || n[2] != 0xff {
		t.Errorf("NullPackets: % x", n[:4])
	}
}

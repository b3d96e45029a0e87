package cenc

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"
)

func TestKeysAreReadInTheirWrittenForms(t *testing.T) {
	cases := []struct {
		in      string
		wantKID string
		bad     bool
	}{
		{in: "00112233445566778899aabbccddeeff:0123456789abcdef0123456789abcdef", wantKID: "00112233-4455-6677-8899-aabbccddeeff"},
		{in: "00112233-4455-6677-8899-aabbccddeeff:0123456789abcdef0123456789abcdef", wantKID: "00112233-4455-6677-8899-aabbccddeeff"},
		{in: " 00112233445566778899AABBCCDDEEFF:0123456789ABCDEF0123456789ABCDEF\n", wantKID: "00112233-4455-6677-8899-aabbccddeeff"},
		{in: "00112233445566778899aabbccddeeff", bad: true},
		{in: "0011:0123456789abcdef0123456789abcdef", bad: true},
		{in: "00112233445566778899aabbccddeeff:0123", bad: true},
		{in: "00112233445566778899aabbccddeeff:zz23456789abcdef0123456789abcdef", bad: true},
		{in: "zz112233445566778899aabbccddeeff:0123456789abcdef0123456789abcdef", bad: true},
	}
	for _, c := range cases {
		k, err := ParseKey(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("ParseKey(%q) took it as %v", c.in, k.KID)
			}
			continue
		}
		if err != nil || k.KID.UUID() != c.wantKID {
			t.Errorf("ParseKey(%q) = %v, %v; want KID %s", c.in, k.KID, err, c.wantKID)
		}
	}
}

func TestAKeysValueIsNeverPrinted(t *testing.T) {
	k, err := ParseKey("00112233445566778899aabbccddeeff:0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("key", "key", k)
	for _, out := range []string{fmt.Sprint(k), fmt.Sprintf("%v %s", k, k), logs.String()} {
		if strings.Contains(strings.ToLower(out), "0123456789abcdef") {
			t.Errorf("the key's value is printed: %s", out)
		}
		if !strings.Contains(out, "00112233-4455-6677-8899-aabbccddeeff") {
			t.Errorf("the key's ID is not printed: %s", out)
		}
	}
}

func TestSystemsAreNamedBothWays(t *testing.T) {
	for _, id := range []SystemID{ClearKey, Widevine, PlayReady, FairPlay} {
		got, err := ParseSystem(SystemName(id))
		if err != nil || got != id {
			t.Errorf("ParseSystem(SystemName(%s)) = %v, %v", id, got, err)
		}
		if mp4.ProtectionSystemName(mp4.UUID(id[:])) == "Unknown" {
			t.Errorf("mp4ff does not know %s as %s", id, SystemName(id))
		}
	}
	if _, err := ParseSystem("nagra"); err == nil {
		t.Error("an unknown system's name was taken")
	}
}

func TestClearKeyPSSHNamesItsKeys(t *testing.T) {
	a, _ := ParseKID("00112233445566778899aabbccddeeff")
	b, _ := ParseKID("ffeeddccbbaa99887766554433221100")
	boxes, err := mp4.PsshBoxesFromBytes(ClearKeyPSSH(a, b))
	if err != nil || len(boxes) != 1 {
		t.Fatalf("pssh does not decode: %v", err)
	}
	p := boxes[0]
	if p.Version != 1 || !p.SystemID.Equal(mp4.UUID(ClearKey[:])) || len(p.KIDs) != 2 || !p.KIDs[1].Equal(mp4.UUID(b[:])) || len(p.Data) != 0 {
		t.Errorf("pssh = version %d system %s kids %v data %d bytes", p.Version, p.SystemID, p.KIDs, len(p.Data))
	}
}

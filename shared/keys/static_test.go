package keys_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/smoothcast/smoothcast/internal/testtool"
	"github.com/smoothcast/smoothcast/shared/cenc"
	"github.com/smoothcast/smoothcast/shared/keys"
)

const (
	kidHex  = "00112233445566778899aabbccddeeff"
	keyHex  = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	kid2Hex = "ffeeddccbbaa99887766554433221100"
	key2Hex = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
)

func mustKey(t testing.TB, s string) cenc.Key {
	t.Helper()
	k, err := cenc.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParseKeyFile(t *testing.T) {
	k1 := mustKey(t, kidHex+":"+keyHex)
	k2 := mustKey(t, kid2Hex+":"+key2Hex)
	uuid := "00112233-4455-6677-8899-aabbccddeeff"
	for _, tc := range []struct {
		name    string
		text    string
		want    map[string]cenc.Key
		wantErr string // a part of the error; "" for none
	}{
		{"one channel per line", "a=" + kidHex + ":" + keyHex + "\nb-2=" + kid2Hex + ":" + key2Hex + "\n",
			map[string]cenc.Key{"a": k1, "b-2": k2}, ""},
		{"comments, blank lines and spaces are skipped", "# keys\n\n  a = " + kidHex + ":" + keyHex + "  \n\t\n# end",
			map[string]cenc.Key{"a": k1}, ""},
		{"a KID may be a UUID", "a=" + uuid + ":" + keyHex, map[string]cenc.Key{"a": k1}, ""},
		{"CRLF line ends are read", "a=" + kidHex + ":" + keyHex + "\r\n", map[string]cenc.Key{"a": k1}, ""},
		{"an empty file has no keys", "", map[string]cenc.Key{}, ""},
		{"a channel twice names both lines", "a=" + kidHex + ":" + keyHex + "\n\na=" + kid2Hex + ":" + key2Hex, nil, "line 3: channel a has a key already (line 1)"},
		{"a bad channel name names the line", "# x\nbad/name=" + kidHex + ":" + keyHex, nil, "line 2: the channel name is not one"},
		{"an empty channel name names the line", "=" + kidHex + ":" + keyHex, nil, "line 1: the channel name"},
		{"a line without = names the line", "\n" + kidHex + ":" + keyHex, nil, "line 2: want {channel}={KID hex}:{key hex}"},
		{"a key without KID names the line", "a=" + keyHex, nil, "line 1: channel a: a key is written {KID hex}:{key hex}"},
		{"a short key names the line", "a=" + kidHex + ":" + keyHex[:30], nil, "line 1: channel a: the key is not 32 hex digits"},
		{"a key not hex names the line", "a=" + kidHex + ":" + keyHex[:31] + "g", nil, "line 1: channel a: the key is not 32 hex digits"},
		{"a bad KID names the line", "a=" + kidHex[:31] + ":" + keyHex, nil, "line 1: channel a: the KID is not"},
		{"the key in the KID's place is not quoted", "a=" + keyHex + "0:" + keyHex, nil, "line 1: channel a: the KID is not"},
		{"a key before the = is not quoted", kidHex + ":" + keyHex + "=x", nil, "line 1: the channel name is not one"},
		{"a line too long names it", "a=" + strings.Repeat("0", 5000), nil, "line 1: longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := keys.ParseKeyFile(strings.NewReader(tc.text))
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("no error, want %q", tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q, want it to contain %q", err, tc.wantErr)
				}
				for _, secret := range []string{keyHex, keyHex[:30], keyHex[:16], key2Hex[:16]} {
					if strings.Contains(strings.ToLower(err.Error()), secret) {
						t.Errorf("error %q contains key material %s", err, secret)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d keys, want %d", len(got), len(tc.want))
			}
			for ch, k := range tc.want {
				if got[ch] != k {
					t.Errorf("channel %s: %v, want %v", ch, got[ch], k)
				}
			}
		})
	}
}

func TestStatic(t *testing.T) {
	k := mustKey(t, kidHex+":"+keyHex)
	s := keys.NewStatic(map[string]cenc.Key{"live": k}, cenc.CENC)
	var _ keys.Source = s
	t.Run("a channel with a key is encrypted with the scheme, without rotation", func(t *testing.T) {
		p, ok := s.Plan("live")
		if !ok || p != (keys.Plan{Scheme: cenc.CENC}) {
			t.Errorf("Plan = %+v, %v", p, ok)
		}
	})
	t.Run("a channel without a key is clear", func(t *testing.T) {
		if _, ok := s.Plan("other"); ok {
			t.Error("Plan ok for a channel without a key")
		}
		if _, err := s.Period(context.Background(), "other", 0); err == nil {
			t.Error("Period of a channel without a key: no error")
		}
	})
	t.Run("every period is the one key with a ClearKey pssh", func(t *testing.T) {
		want := cenc.ClearKeyPSSH(k.KID)
		for _, n := range []uint64{0, 1, 1 << 40} {
			p, err := s.Period(context.Background(), "live", n)
			if err != nil {
				t.Fatal(err)
			}
			if p.Key != k || len(p.PSSH) != 1 || !bytes.Equal(p.PSSH[0], want) {
				t.Errorf("period %d: %v with %d pssh", n, p.Key, len(p.PSSH))
			}
		}
	})
}

// fakeSSM answers GetParameter with value or err, and keeps the input.
type fakeSSM struct {
	value *string
	err   error
	in    *ssm.GetParameterInput
}

func (f *fakeSSM) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	f.in = in
	if f.err != nil {
		return nil, f.err
	}
	return &ssm.GetParameterOutput{Parameter: &types.Parameter{Value: f.value}}, nil
}

func TestLoadParameter(t *testing.T) {
	k := mustKey(t, kidHex+":"+keyHex)
	ctx := context.Background()
	t.Run("the parameter is read decrypted and parsed", func(t *testing.T) {
		f := &fakeSSM{value: aws.String("# keys\nlive=" + kidHex + ":" + keyHex + "\n")}
		got, err := keys.LoadParameter(ctx, f, "/smoothcast/keys")
		if err != nil {
			t.Fatal(err)
		}
		if got["live"] != k || len(got) != 1 {
			t.Errorf("keys %v", got)
		}
		if aws.ToString(f.in.Name) != "/smoothcast/keys" || !aws.ToBool(f.in.WithDecryption) {
			t.Errorf("asked %s, decrypted %v", aws.ToString(f.in.Name), aws.ToBool(f.in.WithDecryption))
		}
	})
	t.Run("an SSM error names the parameter and wraps the error", func(t *testing.T) {
		boom := errors.New("AccessDenied")
		_, err := keys.LoadParameter(ctx, &fakeSSM{err: boom}, "/p")
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "/p") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("a parameter without value is an error", func(t *testing.T) {
		if _, err := keys.LoadParameter(ctx, &fakeSSM{}, "/p"); err == nil {
			t.Error("no error")
		}
	})
	t.Run("a bad line names the parameter and the line, not the key", func(t *testing.T) {
		_, err := keys.LoadParameter(ctx, &fakeSSM{value: aws.String("\nlive=" + kidHex + ":" + keyHex[:31])}, "/p")
		if err == nil || !strings.Contains(err.Error(), "/p") || !strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), keyHex[:31]) {
			t.Errorf("error %v", err)
		}
	})
	t.Run("the SDK's SSM client reads the stand-in's SecureString", func(t *testing.T) {
		stand := testtool.NewSSM(t, map[string]string{"/smoothcast/keys": "live=" + kidHex + ":" + keyHex})
		c := ssm.New(ssm.Options{
			Region:       "eu-west-1",
			BaseEndpoint: aws.String(stand.URL),
			Credentials:  aws.AnonymousCredentials{},
		})
		got, err := keys.LoadParameter(ctx, c, "/smoothcast/keys")
		if err != nil {
			t.Fatal(err)
		}
		if got["live"] != k {
			t.Errorf("keys %v", got)
		}
	})
}

func FuzzParseKeyFile(f *testing.F) {
	f.Add("a=" + kidHex + ":" + keyHex + "\n# c\n\nb=" + kid2Hex + ":" + key2Hex)
	f.Add("a=" + kidHex + ":" + keyHex + "\na=" + kidHex + ":" + keyHex)
	f.Add("=:\n")
	f.Add("x=" + keyHex)
	f.Fuzz(func(t *testing.T, text string) {
		got, err := keys.ParseKeyFile(strings.NewReader(text))
		if err != nil {
			// An error never quotes what follows a line's last ":" (where
			// its key value is), unless the channel name holds it too.
			for _, line := range strings.Split(text, "\n") {
				name, rest, ok := strings.Cut(line, "=")
				if !ok {
					continue
				}
				value := strings.TrimSpace(rest[strings.LastIndex(rest, ":")+1:])
				if len(value) >= 8 && !strings.Contains(name, value) && strings.Contains(err.Error(), value) {
					t.Fatalf("error %q quotes a key value %q", err, value)
				}
			}
			return
		}
		for ch := range got {
			if !strings.Contains(text, ch) {
				t.Fatalf("channel %q not in the input", ch)
			}
		}
	})
}

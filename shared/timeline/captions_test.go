package timeline

import (
	"reflect"
	"testing"
)

// A caption list reads back what was written, and refuses what no
// manifest could name.
func TestCaptionsReadBackAndRefuseBadServices(t *testing.T) {
	for _, tc := range []struct {
		in   Captions
		want []Caption
		bad  bool
	}{
		{"", nil, false},
		{"CC1", []Caption{{"CC1", ""}}, false},
		{"CC1=eng;CC3=fr-CA;SERVICE63", []Caption{{"CC1", "eng"}, {"CC3", "fr-CA"}, {"SERVICE63", ""}}, false},
		{"CC5", nil, true},
		{"SERVICE64", nil, true},
		{"SERVICE0", nil, true},
		{"CC1=e n", nil, true},
		{"CC1;", nil, true},
	} {
		got, err := tc.in.Services()
		if (err != nil) != tc.bad || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %v, %v", tc.in, got, err)
			continue
		}
		if !tc.bad && MakeCaptions(got) != tc.in {
			t.Errorf("%q written back as %q", tc.in, MakeCaptions(got))
		}
	}
	if c := (Caption{"SERVICE12", ""}); c.CEA608() || c.Number() != 12 {
		t.Errorf("SERVICE12: 608 %v, number %d", c.CEA608(), c.Number())
	}
	if c := (Caption{"CC3", ""}); !c.CEA608() || c.Number() != 3 {
		t.Errorf("CC3: 608 %v, number %d", c.CEA608(), c.Number())
	}
}

package xmlout

import (
	"bytes"
	"encoding/xml"
	"testing"

	"github.com/smoothcast/smoothcast/internal/manifesttest"
)

// Escape writes what encoding/xml writes for an attribute value, for
// every rune up to U+010F, invalid UTF-8, surrogates and what needs
// escaping.
func TestEscapeMatchesEncodingXML(t *testing.T) {
	all := append([]string{"plain", "a\u0085b\u2028c", "\xed\xa0\x80", "\xf4\x90\x80\x80"}, manifesttest.OddStrings...)
	for r := range rune(0x110) {
		all = append(all, string(r), "x"+string(r)+"y")
	}
	for _, s := range all {
		var want bytes.Buffer
		if err := xml.EscapeText(&want, []byte(s)); err != nil {
			t.Fatal(err)
		}
		var w Writer
		w.Escape(s)
		if string(w.Buf) != want.String() {
			t.Errorf("Escape(%q) = %q, encoding/xml writes %q", s, string(w.Buf), want.String())
		}
	}
}

package dash

import (
	"bytes"
)

// escapeGreaterThan returns b with every '>' that is character data (not
// the end of a tag, comment, CDATA section, processing instruction or
// declaration, and not inside one) written as "&gt;", which means the
// same to an XML parser; b itself when there is none.
func escapeGreaterThan(b []byte) []byte {
	var out []byte // nil until a '>' must be escaped
	from := 0      // b[from:] is not in out yet
	for i := 0; i < len(b); {
		switch {
		case b[i] == '>':
			out = append(append(out, b[from:i]...), "&gt;"...)
			i++
			from = i
		case b[i] != '<':
			i++
		default:
			i = markupEnd(b, i)
		}
	}
	if out == nil {
		return b
	}
	return append(out, b[from:]...)
}

// markupEnd is where the markup that starts with the '<' at b[i] ends
// (past its closing '>'), or len(b) if it does not.
func markupEnd(b []byte, i int) int {
	rest := b[i:]
	end := func(close string) int {
		if j := bytes.Index(rest, []byte(close)); j >= 0 {
			return i + j + len(close)
		}
		return len(b)
	}
	switch {
	case bytes.HasPrefix(rest, []byte("<!--")):
		return end("-->")
	case bytes.HasPrefix(rest, []byte("<![CDATA[")):
		return end("]]>")
	case bytes.HasPrefix(rest, []byte("<?")):
		return end("?>")
	}
	// A tag: to the first '>' outside quotes. A declaration, read as
	// encoding/xml reads one: its first character whatever it is, then to
	// the '>' that closes it, counting the '<' and '>' of what it holds
	// (an internal subset) outside quotes.
	decl := bytes.HasPrefix(rest, []byte("<!"))
	from := i + 1
	if decl {
		from = i + 3
	}
	var quote byte
	depth := 0
	for j := from; j < len(b); j++ {
		switch c := b[j]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '<' && decl:
			depth++
		case c == '>' && depth == 0:
			return j + 1
		case c == '>':
			depth--
		}
	}
	return len(b)
}

package speketest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// node is an element of a CPIX document as read, namespaces resolved:
// the stand-in's own reading, sharing nothing with the client's types.
type node struct {
	name  xml.Name
	attrs []xml.Attr
	kids  []*node
	text  string
}

// parse reads a whole XML document into nodes; a DOCTYPE, processing
// instruction other than the declaration, or text outside the root is
// refused.
func parse(b []byte) (*node, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	var root *node
	var stack []*node
	for {
		t, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := t.(type) {
		case xml.StartElement:
			n := &node{name: t.Name, attrs: t.Copy().Attr}
			if len(stack) == 0 {
				if root != nil {
					return nil, errors.New("more than one root element")
				}
				root = n
			} else {
				top := stack[len(stack)-1]
				top.kids = append(top.kids, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(t)) > 0 {
					return nil, errors.New("text outside the root element")
				}
				continue
			}
			stack[len(stack)-1].text += string(t)
		case xml.Directive:
			return nil, errors.New("a DTD or directive")
		case xml.ProcInst:
			if t.Target != "xml" {
				return nil, fmt.Errorf("processing instruction %s", t.Target)
			}
		}
	}
	if root == nil {
		return nil, errors.New("no root element")
	}
	return root, nil
}

// attr is the value of the attribute local (no namespace) and whether
// it is there.
func (n *node) attr(local string) (string, bool) {
	for _, a := range n.attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// setAttr sets (or adds) the attribute local.
func (n *node) setAttr(local, value string) {
	for i, a := range n.attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			n.attrs[i].Value = value
			return
		}
	}
	n.attrs = append(n.attrs, xml.Attr{Name: xml.Name{Local: local}, Value: value})
}

// children are n's child elements named (space, local).
func (n *node) children(space, local string) []*node {
	var out []*node
	for _, k := range n.kids {
		if k.name.Space == space && k.name.Local == local {
			out = append(out, k)
		}
	}
	return out
}

// write writes n as XML with the prefixes given per namespace (every
// namespace used must have one), declaring them on the root.
func write(w *strings.Builder, n *node, prefixes map[string]string, root bool) {
	name := func(x xml.Name) string {
		if x.Space == "" {
			return x.Local
		}
		return prefixes[x.Space] + ":" + x.Local
	}
	w.WriteString("<" + name(n.name))
	if root {
		for _, ns := range []string{nsCPIX, nsPSKC} {
			fmt.Fprintf(w, ` xmlns:%s="%s"`, prefixes[ns], ns)
		}
	}
	for _, a := range n.attrs {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue // declared on the root
		}
		w.WriteString(" " + name(a.Name) + `="`)
		_ = xml.EscapeText(w, []byte(a.Value))
		w.WriteString(`"`)
	}
	w.WriteString(">")
	if len(n.kids) == 0 {
		_ = xml.EscapeText(w, []byte(n.text))
	}
	for _, k := range n.kids {
		write(w, k, prefixes, false)
	}
	w.WriteString("</" + name(n.name) + ">")
}

func xmlName(space, local string) xml.Name { return xml.Name{Space: space, Local: local} }

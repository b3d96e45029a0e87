package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Bytes is a size in bytes as a flag takes it: a whole number with an
// optional binary unit, B, KiB, MiB or GiB ("768MiB", "1GiB", "65536").
type Bytes int64

// String writes the size with the largest unit that divides it.
func (b Bytes) String() string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.size == 0 {
			return strconv.FormatInt(int64(b)/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// Set reads a size.
func (b *Bytes) Set(s string) error {
	num, unit := s, int64(1)
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if n, ok := strings.CutSuffix(s, u.name); ok {
			num, unit = strings.TrimSpace(n), u.size
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/unit {
		return fmt.Errorf("%q: want a size such as 768MiB, 1GiB or a number of bytes", s)
	}
	*b = Bytes(n * unit)
	return nil
}

// Type names the flag's value in usage text and errors.
func (b *Bytes) Type() string { return "size" }

// BytesVar defines a flag holding a size (Bytes) in p.
func (s *Set) BytesVar(p *Bytes, name string, value Bytes, usage string) {
	*p = value
	s.Var(p, name, usage)
}

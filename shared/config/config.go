// Package config reads a smoothcast binary's settings, the same way in
// every binary: flags, each also settable from an environment variable
// whose name is derived from the flag's (Prefix, then the flag name upper
// case with '-' as '_': -read-timeout is SMOOTHCAST_READ_TIMEOUT). The
// command line wins over the environment, the environment over the
// default. A bad value is an error that names the flag or the variable it
// came from. Once read, the effective configuration is logged in one line
// (Set.Log), secrets masked, with a warning for each deprecated variable
// still in use.
//
// The manifest function has no command line: it declares its settings as
// flags all the same and parses no arguments, which reads the environment
// only.
//
//	fs := config.New("smoothcast-ingest", config.Prefix)
//	addr := fs.String("addr", ":8080", "listen address")
//	fs.Rename("secret-parameter", "SMOOTHCAST_INGEST_SECRET_PARAMETER", "SMOOTHCAST_SECRET_PARAMETER")
//	if err := fs.Parse(os.Args[1:]); err != nil { ... }
//	fs.Log(log, "configuration")
package config

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
)

// Prefix is the prefix of every smoothcast variable.
const Prefix = "SMOOTHCAST_"

// ErrUsage is wrapped by Parse's error for a command line the FlagSet
// refuses; the FlagSet has printed why, and the usage.
var ErrUsage = errors.New("usage")

// masked stands in for a secret's value in logs and errors.
const masked = "(secret)"

// Set is one binary's (or one command's) settings: a flag.FlagSet whose
// flags are also read from the environment. Declare the flags on it as on
// any FlagSet, then call Parse.
type Set struct {
	*flag.FlagSet
	prefix   string
	renamed  map[string]variable // by flag name: a variable not derived from it
	secrets  map[string]bool     // flag names
	envOnly  []*envSecret
	from     map[string]string // flag name: the variable that set it
	warnings []string
	// LookupEnv reads the environment (os.LookupEnv; tests replace it).
	LookupEnv func(string) (string, bool)
}

// variable is the environment variable of a flag whose name is not
// derived from the flag's, and the older names still read.
type variable struct {
	name       string
	deprecated []string
}

// envSecret is a secret read from the environment only.
type envSecret struct {
	name, usage string
	value       string
}

// New returns an empty Set named name (for usage and errors) whose
// variables start with prefix (Prefix, or a command's own such as
// "SMOOTHCAST_CHECK_"). A bad command line is an error from Parse, and -h
// is flag.ErrHelp.
func New(name, prefix string) *Set {
	s := &Set{
		FlagSet: flag.NewFlagSet(name, flag.ContinueOnError),
		prefix:  prefix, renamed: map[string]variable{}, secrets: map[string]bool{}, from: map[string]string{},
		LookupEnv: os.LookupEnv,
	}
	s.FlagSet.Usage = func() {
		fmt.Fprintf(s.Output(), "Usage of %s:\n", s.Name())
		s.PrintDefaults()
	}
	return s
}

// Variable returns the environment variable that sets the named flag.
func (s *Set) Variable(flagName string) string {
	if v, ok := s.renamed[flagName]; ok {
		return v.name
	}
	return s.prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Rename gives the named flag a variable whose name is not derived from
// the flag's (one that deployed configurations already use), and keeps
// reading each deprecated name, with a warning in the log.
func (s *Set) Rename(flagName, name string, deprecated ...string) {
	s.renamed[flagName] = variable{name: name, deprecated: deprecated}
}

// Secret marks flags whose values are secrets: Log masks them, and so do
// errors about their variables.
func (s *Set) Secret(flagNames ...string) {
	for _, n := range flagNames {
		s.secrets[n] = true
	}
}

// EnvSecret declares a secret that is read from the named environment
// variable only, never from a flag (a command line shows in the process
// list). Its value is there after Parse; "" when the variable is unset.
func (s *Set) EnvSecret(name, usage string) *string {
	e := &envSecret{name: name, usage: usage}
	s.envOnly = append(s.envOnly, e)
	return &e.value
}

// PrintDefaults prints the flags, each with its variable, then the
// variables that have no flag.
func (s *Set) PrintDefaults() {
	s.annotate()
	s.FlagSet.PrintDefaults()
	if len(s.envOnly) == 0 {
		return
	}
	fmt.Fprintf(s.Output(), "\nEnvironment only:\n")
	for _, e := range s.envOnly {
		fmt.Fprintf(s.Output(), "  %s\n    \t%s\n", e.name, e.usage)
	}
}

// annotate adds each flag's variable to its usage text, once.
func (s *Set) annotate() {
	s.VisitAll(func(f *flag.Flag) {
		if suffix := " ($" + s.Variable(f.Name) + ")"; !strings.HasSuffix(f.Usage, suffix) {
			f.Usage += suffix
		}
	})
}

// Parse parses the command line, then sets every flag it did not set
// from the flag's variable, or else from a deprecated name of it. A value
// the flag refuses is an error naming the variable; so is a command line
// the FlagSet refuses (ErrUsage; flag.ErrHelp for -h).
func (s *Set) Parse(args []string) error {
	s.annotate()
	if err := s.FlagSet.Parse(args); errors.Is(err, flag.ErrHelp) {
		return err
	} else if err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	given := map[string]bool{}
	s.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	s.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		name, v, ok := s.lookup(f.Name)
		if !ok {
			return
		}
		if err := f.Value.Set(v); err != nil {
			if s.secrets[f.Name] {
				v = masked
			}
			errs = append(errs, fmt.Errorf("%s=%q: want %s: %w", name, v, want(f), err))
			return
		}
		s.from[f.Name] = name
	})
	for _, e := range s.envOnly {
		e.value, _ = s.LookupEnv(e.name)
	}
	return errors.Join(errs...)
}

// want says what a flag takes, for an error about a value it refused.
func want(f *flag.Flag) string {
	switch typ, _ := flag.UnquoteUsage(f); typ {
	case "duration":
		return "a Go duration such as 30s or 10m"
	case "size":
		return "a size such as 768MiB, 1GiB or a number of bytes"
	case "":
		return "true or false"
	default:
		return "a value of type " + typ
	}
}

// lookup finds the value of a flag's variable: its own name first, then
// its deprecated names, the use of which it records as a warning.
func (s *Set) lookup(flagName string) (name, value string, ok bool) {
	name = s.Variable(flagName)
	value, ok = s.LookupEnv(name)
	for _, old := range s.renamed[flagName].deprecated {
		v, set := s.LookupEnv(old)
		switch {
		case !set:
		case ok:
			s.warnings = append(s.warnings, fmt.Sprintf("%s is deprecated and ignored: %s is set too (unset %s)", old, name, old))
		default:
			s.warnings = append(s.warnings, fmt.Sprintf("%s is deprecated: set %s instead", old, name))
			name, value, ok = old, v, true
		}
	}
	return name, value, ok
}

// Log writes the effective configuration in one line: every flag's
// value under its name ('-' as '_'), each secret masked ("" when unset),
// the variables that set any of them (from_env), then extra (key-value
// pairs, as slog takes them). Then it warns of each deprecated variable
// in use.
func (s *Set) Log(log *slog.Logger, msg string, extra ...any) {
	var attrs []any
	s.VisitAll(func(f *flag.Flag) {
		v := f.Value.String()
		if s.secrets[f.Name] && v != "" {
			v = masked
		}
		attrs = append(attrs, slog.String(strings.ReplaceAll(f.Name, "-", "_"), v))
	})
	for _, e := range s.envOnly {
		v := ""
		if e.value != "" {
			v = masked
		}
		attrs = append(attrs, slog.String(strings.ToLower(strings.TrimPrefix(e.name, Prefix)), v))
	}
	var fromEnv []string
	for _, name := range s.from {
		fromEnv = append(fromEnv, name)
	}
	for _, e := range s.envOnly {
		if e.value != "" {
			fromEnv = append(fromEnv, e.name)
		}
	}
	slices.Sort(fromEnv)
	attrs = append(attrs, slog.Any("from_env", fromEnv))
	log.Info(msg, append(attrs, extra...)...)
	for _, w := range s.warnings {
		log.Warn("configuration: " + w)
	}
}

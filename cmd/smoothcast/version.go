package main

import (
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/smoothcast/smoothcast/shared/config"
)

const versionUsage = `usage: smoothcast version

Prints what this binary was built from, as the Go toolchain recorded it:
the module version ("(devel)" for a build from a source tree), the VCS
revision and commit time, whether the tree had uncommitted changes
(dirty), and the Go version. A binary built with -buildvcs=false, or
outside a git checkout, has no revision.
`

// version prints the build information of this binary to w.
func version(args []string, w io.Writer) error {
	fs := config.New("version", config.Prefix+"VERSION_") // no flags: only -h
	fs.Usage = func() { fmt.Fprint(fs.Output(), versionUsage) }
	if err := parseFlags(fs, args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	bi, ok := debug.ReadBuildInfo()
	_, err := io.WriteString(w, versionText(bi, ok))
	return err
}

// versionText formats build information (ok false: none was recorded).
func versionText(bi *debug.BuildInfo, ok bool) string {
	if !ok || bi == nil {
		return "smoothcast: no build information (not built with module support)\n"
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	dirty := "unknown"
	switch settings["vcs.modified"] {
	case "true":
		dirty = "yes (uncommitted changes)"
	case "false":
		dirty = "no"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "smoothcast %s\n", or(bi.Main.Version, "(unknown)"))
	fmt.Fprintf(&b, "  module    %s\n", or(bi.Main.Path, "(unknown)"))
	fmt.Fprintf(&b, "  revision  %s\n", or(settings["vcs.revision"], "(unknown)"))
	fmt.Fprintf(&b, "  time      %s\n", or(settings["vcs.time"], "(unknown)"))
	fmt.Fprintf(&b, "  dirty     %s\n", dirty)
	fmt.Fprintf(&b, "  go        %s %s/%s\n", or(bi.GoVersion, "(unknown)"), or(settings["GOOS"], "?"), or(settings["GOARCH"], "?"))
	return b.String()
}

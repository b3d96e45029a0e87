#!/bin/sh
# fuzz.sh runs every fuzz target of the module (each func Fuzz... of a
# _test.go file) for FUZZTIME, FUZZJOBS targets at a time, each with one
# fuzzing worker: on 2 cores, two targets at once take half the time of
# one after the other with two workers, since much of a short run is the
# test binary's link and the seed corpus's baseline.
#
# A target that fails is run again: a finding is written to the
# package's testdata/fuzz/ and replayed first, so it fails again; a run
# that passes the second time was the fuzzing engine's own hiccup (a
# worker lost under load), whose first output is shown.
#
#   FUZZTIME=3s FUZZMIN=2s FUZZJOBS=2 GO=go scripts/fuzz.sh
set -eu
: "${GO:=go}" "${FUZZTIME:=10s}" "${FUZZMIN:=2s}" "${FUZZJOBS:=2}"
export GO FUZZTIME FUZZMIN

if [ "${1:-}" = "--one" ]; then
	pkg=$2 target=$3
	out=$(mktemp)
	trap 'rm -f "$out"' EXIT
	run() {
		"$GO" test -run='^$' -fuzz="^$target\$" -fuzztime="$FUZZTIME" -fuzzminimizetime="$FUZZMIN" -parallel=1 "$pkg" >"$out" 2>&1
	}
	if run; then
		echo "fuzz $pkg $target ($FUZZTIME)"
		exit 0
	fi
	first=$(grep -v '^fuzz: elapsed' "$out" | tail -20)
	if run; then
		printf 'fuzz %s %s (%s): failed, then passed when run again; its first output:\n%s\n' "$pkg" "$target" "$FUZZTIME" "$first"
		exit 0
	fi
	printf 'fuzz %s %s (%s): FAILED twice; its output:\n%s\n' "$pkg" "$target" "$FUZZTIME" "$(grep -v '^fuzz: elapsed' "$out" | tail -40)"
	exit 1
fi

# Every target, as "package target" lines; xargs fails (123) if one does.
grep -r --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . |
	sed -E 's|^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*|\1 \2|' |
	sort -u |
	xargs -P "$FUZZJOBS" -L 1 sh "$0" --one

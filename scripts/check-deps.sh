#!/usr/bin/env bash
# Checks the external programs the test suite drives. On a developer machine
# a missing tool is reported (its tests skip); in CI (CI=true) it is an error.
set -u
missing=()
for tool in ffmpeg ffprobe; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]} — install with: sudo scripts/install-deps.sh (Debian: apt-get install -y ffmpeg)" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  echo "continuing: tests that need them will be skipped" >&2
fi
exit 0

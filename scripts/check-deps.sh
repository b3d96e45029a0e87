#!/usr/bin/env bash
# Checks the external programs the test suite drives: ffmpeg (encoder and
# reader), Debian's Chromium and Node.js with the npm packages in players/
# (browser players). On a developer machine a missing tool is reported (its
# tests skip); in CI (CI=true) it is an error.
set -u
missing=()
for tool in ffmpeg ffprobe chromium node npm; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ -d "$(dirname "$0")/../players/node_modules/playwright-core" ] || missing+=("players/node_modules (make players)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]} — install with: sudo scripts/install-deps.sh (Debian packages ffmpeg chromium nodejs npm; then npm ci in players/)" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  echo "continuing: tests that need them will be skipped" >&2
fi
exit 0

#!/usr/bin/env bash
# Checks the external programs the test suite drives: ffmpeg (encoder and
# reader), Debian's Chromium and Node.js with the npm packages in players/
# (browser players), and GStreamer with its adaptive demuxers. On a developer machine a missing tool is reported (its
# tests skip); in CI (CI=true) it is an error.
set -u
missing=()
for tool in ffmpeg ffprobe chromium node npm gst-launch-1.0 gst-inspect-1.0 qemu-aarch64; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if command -v gst-inspect-1.0 >/dev/null 2>&1; then
  for element in souphttpsrc mssdemux hlsdemux dashdemux decodebin avdec_h264; do
    gst-inspect-1.0 --exists "$element" || missing+=("GStreamer element $element")
  done
fi
[ -d "$(dirname "$0")/../players/node_modules/playwright-core" ] || missing+=("players/node_modules (make players)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]} — install with: sudo scripts/install-deps.sh (Debian packages ffmpeg chromium nodejs npm gstreamer1.0-tools gstreamer1.0-plugins-{base,good,bad} gstreamer1.0-libav qemu-user; then npm ci in players/)" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  echo "continuing: tests that need them will be skipped" >&2
fi
exit 0

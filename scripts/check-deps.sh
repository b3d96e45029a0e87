#!/usr/bin/env bash
# Brings what the test suite drives, when it can, or says how: a C
# compiler (go test -race needs cgo), ffmpeg (encoder and reader),
# Debian's Chromium and Node.js with the npm packages in players/
# (browser players), GStreamer with its adaptive demuxers, VLC 3, and
# qemu-user (the shipped linux/arm64 binaries), shellcheck,
# systemd-analyze and openssl (the relay's boot script and unit), and
# cfn-lint (the synthesized templates).
#
# As root it runs scripts/install-deps.sh. Otherwise it installs the
# players' npm packages if npm is there, and prints one line with the
# command that installs the rest; on a developer machine the tests that
# need them are then skipped, in CI (CI=true) it fails.
set -u
cd "$(dirname "$0")/.." || exit 1

missing() {
  local m=()
  command -v gcc >/dev/null 2>&1 || m+=("gcc (go test -race)")
  for tool in ffmpeg ffprobe chromium node npm gst-launch-1.0 gst-inspect-1.0 vlc qemu-aarch64 shellcheck systemd-analyze openssl cfn-lint; do
    command -v "$tool" >/dev/null 2>&1 || m+=("$tool")
  done
  if command -v node >/dev/null 2>&1 && ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
    m+=("Node.js 20 or later (playwright-core; this is $(node --version))")
  fi
  if command -v gst-inspect-1.0 >/dev/null 2>&1; then
    for element in souphttpsrc mssdemux hlsdemux dashdemux decodebin avdec_h264; do
      gst-inspect-1.0 --exists "$element" || m+=("GStreamer element $element")
    done
  fi
  [ -d players/node_modules/playwright-core ] || m+=("players/node_modules")
  echo "${m[*]:-}"
}

need=$(missing)
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "missing: $need; installing (scripts/install-deps.sh)" >&2
  scripts/install-deps.sh || exit 1
  need=$(missing)
elif [ "$need" = "players/node_modules" ] && command -v npm >/dev/null 2>&1; then
  (cd players && npm ci --no-audit --no-fund) || exit 1
  need=$(missing)
fi
[ -z "$need" ] && exit 0
if [ "${CI:-}" = "true" ]; then
  echo "missing: $need; install them as root: $PWD/scripts/install-deps.sh" >&2
  exit 1
fi
echo "missing: $need; install them as root: $PWD/scripts/install-deps.sh (meanwhile the tests that need them are skipped)" >&2
exit 0

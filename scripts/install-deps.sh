#!/usr/bin/env bash
# Installs what the test suite drives: a C compiler (go test -race needs
# cgo), ffmpeg, Chromium, qemu-user, shellcheck, systemd-analyze, openssl,
# cfn-lint (pip), GStreamer's adaptive demuxers
# (mssdemux, hlsdemux, dashdemux) and VLC 3 from Debian's packages (and Node.js/npm
# when missing; Node.js 20 from the npm registry when Debian's is older),
# then the players' npm packages (dash.js, hls.js, playwright-core) from
# players/package-lock.json. It needs root for the packages; make test
# runs it itself when it runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user) # runs the linux/arm64 Lambda bootstrap in its test
# The relay's boot script and unit are checked by shellcheck and
# systemd-analyze verify, and the script's self-signed certificate made
# with openssl, in the boot test.
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# VLC 3 plays the three formats in e2e/vlc_test.go: the player, and its
# adaptive streaming demuxer, decoders and command-line interface.
command -v vlc >/dev/null 2>&1 || need+=(vlc-bin vlc-plugin-base)
if ! command -v gst-inspect-1.0 >/dev/null 2>&1 ||
  ! gst-inspect-1.0 --exists mssdemux || ! gst-inspect-1.0 --exists souphttpsrc ||
  ! gst-inspect-1.0 --exists avdec_h264 || ! gst-inspect-1.0 --exists decodebin; then
  need+=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: Debian packages ${need[*]} need root: run $PWD/scripts/install-deps.sh as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# playwright-core (players/) refuses Node.js before 20, and Debian 12's
# nodejs is 18: then Node.js 20 comes from the npm registry, whose "node"
# package carries the official binary, into /usr/local (ahead of /usr on
# PATH).
if ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: Node.js $(node --version) is older than 20, which players/ needs: run $PWD/scripts/install-deps.sh as root" >&2
    exit 1
  fi
  npm install -g --no-audit --no-fund node@20
  hash -r
  node --version
fi
# CloudFormation's linter checks the synthesized templates (infra tests,
# make synth); it comes from PyPI.
if ! command -v cfn-lint >/dev/null 2>&1; then
  { command -v pip3 >/dev/null 2>&1 && pip3 install --quiet cfn-lint==1.51.0; } ||
    echo "install-deps: cfn-lint is missing and pip3 could not install it: pip3 install cfn-lint==1.51.0" >&2
fi
if [ ! -d players/node_modules/playwright-core ]; then
  (cd players && npm ci --no-audit --no-fund)
fi
echo "dependencies present"

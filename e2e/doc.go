// Package e2e drives the whole local stack with real third-party
// software: ffmpeg as the encoder (Smooth and CMAF pushes, DASH and HLS
// uploads) and as a reader, hls.js and dash.js in Chromium, GStreamer's
// demuxers, and the relay and Lambda binaries as shipped. It holds tests
// only; `go test -short` skips them, and in CI (CI=true) a missing program
// fails them (internal/testtool).
package e2e

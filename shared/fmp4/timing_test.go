package fmp4

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// Timescales, durations and start times no real encoder sends are refused
// with ErrTiming and words that say why; what encoders send passes.
func TestTimingNoEncoderSendsIsRefused(t *testing.T) {
	const smooth = 10_000_000
	year := int64(365.25 * 24 * 3600)
	for _, tc := range []struct {
		name  string
		start int64
		dur   uint64
		ts    uint32
		says  string // "" when accepted
	}{
		{"Smooth video: 2 s at 10 MHz", 0, 2 * smooth, smooth, ""},
		{"ffmpeg's audio, one AAC frame before zero", -213_333, 2 * smooth, smooth, ""},
		{"MPEG's 90 kHz", 90_000 * 3600, 180_000, 90_000, ""},
		{"48 kHz audio, one AAC frame (low-latency chunk)", 0, 1024, 48_000, ""},
		{"44.1 kHz audio", 0, 44_100 * 2, 44_100, ""},
		{"milliseconds (FLV)", 5_000, 2_000, 1_000, ""},
		{"one frame at 120 fps", 0, 750, 90_000, ""},
		{"a minute's fragment", 0, 60 * smooth, smooth, ""},
		{"media time since 1970 (DASH-IF ingest)", 56 * year * smooth, 2 * smooth, smooth, ""},
		{"media time since 1900 (NTP)", 126 * year * 90_000, 180_000, 90_000, ""},
		{"timescale 1: each fragment 115 days", 0, 10_000_000, 1, "timescale 1"},
		{"timescale 999", 0, 2_000, 999, "timescale 999"},
		{"timescale 2^32-1", 0, 2 * math.MaxUint32, math.MaxUint32, "timescale 4294967295"},
		{"a fragment of 1.4 years", 0, uint64(1.4 * float64(year) * 1_000), 1_000, "1.4 years"},
		{"a fragment of 61 s", 0, 61 * smooth, smooth, "61 s"},
		{"a fragment of one tick", 0, 1, smooth, "0.0001 ms"},
		{"a fragment of 4 ms", 0, 4, 1_000, "4 ms"},
		{"tfxd time 2^63-1", math.MaxInt64, 2 * smooth, smooth, "years of media time"},
		{"media time 200 years", 200 * year * 1_000, 2_000, 1_000, "200.0 years"},
		{"tfxd time 2^63 (as signed, the most negative)", math.MinInt64, 2 * smooth, smooth, "before time zero"},
		{"eleven seconds before zero", -11 * smooth, 2 * smooth, smooth, "11 s before time zero"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckTiming(tc.start, tc.dur, tc.ts)
			if tc.says == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrTiming) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err %v, want ErrTiming saying %q", err, tc.says)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		ticks int64
		ts    uint32
		want  time.Duration
	}{
		{20_000_000, 10_000_000, 2 * time.Second},
		{-213_333, 10_000_000, -21_333_300 * time.Nanosecond},
		{1, 3, 333_333_333 * time.Nanosecond},
		{int64(MaxMediaTime/time.Second) * MaxTimescale, MaxTimescale, MaxMediaTime.Truncate(time.Second)},
		{5, 0, 0},
	} {
		if got := Duration(tc.ticks, tc.ts); got != tc.want {
			t.Errorf("Duration(%d, %d) = %v, want %v", tc.ticks, tc.ts, got, tc.want)
		}
	}
}

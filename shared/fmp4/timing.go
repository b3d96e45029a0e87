package fmp4

import (
	"errors"
	"fmt"
	"time"
)

// Bounds on a track's timing, from what real encoders send. A value
// outside them is no encoder's clock but a bug or an attack, and stored it
// would poison the channel's clock for every push after it (a track ten
// years ahead moves the channel's published end ten years ahead).
const (
	// MinTimescale and MaxTimescale bound a track's timescale (mdhd):
	// the coarsest clock encoders use is the millisecond (1 kHz, streams
	// that went through FLV/RTMP), the finest Smooth's 10 MHz; 90 kHz
	// (MPEG), 48 and 44.1 kHz (audio) lie between. MaxTimescale is ten
	// times Smooth's, low enough that MaxMediaTime in ticks, plus any
	// offset, fits in 64 bits.
	MinTimescale = 1_000
	MaxTimescale = 100_000_000
	// MinFragmentDuration and MaxFragmentDuration bound the duration of a
	// fragment (the sum of its samples'): one frame at 120 fps or one AAC
	// frame at 96 kHz lasts 8 to 11 ms (a low-latency encoder's chunk), a
	// live GOP a few seconds; a minute is longer than any encoder's
	// fragment, and shorter than a player's patience.
	MinFragmentDuration = 5 * time.Millisecond
	MaxFragmentDuration = time.Minute
	// MaxMediaTime is the latest media time a fragment may start at.
	// Encoders count from their own start, or from the Unix epoch (1970,
	// as DASH-IF live ingest recommends) or NTP's (1900); 150 years covers
	// them all until 2050 and keeps every time the pipeline computes in
	// nanoseconds within 64 bits (292 years).
	MaxMediaTime = 150 * 36525 * 24 * (time.Hour / 100)
	// MaxBeforeZero is the earliest a fragment may start before media
	// time zero: AAC priming (ffmpeg's audio starts one frame, 21 ms,
	// early) and B-frame delay put a stream's first samples a little
	// before zero, never seconds.
	MaxBeforeZero = 10 * time.Second
)

// ErrTiming is wrapped by the errors of CheckTimescale and CheckTiming.
var ErrTiming = errors.New("timing no real encoder sends")

// CheckTimescale refuses a timescale outside MinTimescale..MaxTimescale.
func CheckTimescale(ts uint32) error {
	if ts < MinTimescale || ts > MaxTimescale {
		return fmt.Errorf("%w: timescale %d: real encoders use %d to %d ticks per second (90 kHz video, 48 kHz audio, 10 MHz Smooth)",
			ErrTiming, ts, MinTimescale, MaxTimescale)
	}
	return nil
}

// CheckTiming refuses a fragment whose start (in the encoder's time,
// signed: encoders put negative times in tfxd as two's complement) or
// duration, in ticks of timescale ts, lies outside the bounds above. It
// checks ts first.
func CheckTiming(start int64, dur uint64, ts uint32) error {
	if err := CheckTimescale(ts); err != nil {
		return err
	}
	// In ticks: ts is at most MaxTimescale, so these products fit.
	perSec := uint64(ts)
	if dur > uint64(MaxFragmentDuration/time.Second)*perSec || dur*uint64(time.Second) < uint64(MinFragmentDuration)*perSec {
		return fmt.Errorf("%w: a fragment of %s (%d ticks at %d per second): a fragment lasts %v to %v",
			ErrTiming, ticksText(dur, ts), dur, ts, MinFragmentDuration, MaxFragmentDuration)
	}
	if limit := int64(MaxMediaTime/time.Second) * int64(ts); start > limit {
		return fmt.Errorf("%w: a fragment at %s of media time (%d ticks at %d per second): media time ends at %.0f years",
			ErrTiming, ticksText(uint64(start), ts), start, ts, MaxMediaTime.Hours()/24/365.25)
	}
	if limit := -int64(MaxBeforeZero/time.Second) * int64(ts); start < limit {
		return fmt.Errorf("%w: a fragment %s before time zero (%d ticks at %d per second, %d unsigned): at most %v before it",
			ErrTiming, ticksText(uint64(-(start+1))+1, ts), start, ts, uint64(start), MaxBeforeZero)
	}
	return nil
}

// Duration is t ticks of timescale ts as a duration, rounded towards zero;
// t and ts within the bounds above (CheckTiming), it does not overflow.
func Duration(t int64, ts uint32) time.Duration {
	if ts == 0 {
		return 0
	}
	s, frac := t/int64(ts), t%int64(ts)
	return time.Duration(s)*time.Second + time.Duration(frac*int64(time.Second)/int64(ts))
}

// ticksText says how long t ticks of timescale ts last, in words a
// person reads: milliseconds to years.
func ticksText(t uint64, ts uint32) string { return secondsText(float64(t) / float64(ts)) }

// DurationText says how long d is in words a person reads, milliseconds
// to years ("21.3 ms", "2 s", "10.0 years"): for refusals.
func DurationText(d time.Duration) string {
	if d < 0 {
		return "-" + secondsText(-d.Seconds())
	}
	return secondsText(d.Seconds())
}

func secondsText(sec float64) string {
	switch {
	case sec >= 365.25*24*3600:
		return fmt.Sprintf("%.1f years", sec/(365.25*24*3600))
	case sec >= 2*24*3600:
		return fmt.Sprintf("%.1f days", sec/(24*3600))
	case sec >= 1:
		return fmt.Sprintf("%.3g s", sec)
	}
	return fmt.Sprintf("%.3g ms", sec*1000)
}

package supervise

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const sec = int64(time.Second)

// TestBackoffDoublesToCap: crashes in a row double the delay from Initial
// up to Max; a stable session starts it over.
func TestBackoffDoublesToCap(t *testing.T) {
	b := newBreaker(Policy{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Failures: 100, Window: time.Second})
	var got []time.Duration
	now := int64(0)
	for range 5 {
		now += 10 * sec // apart: never a crash loop
		d, tripped := b.crashed(now, false)
		require.False(t, tripped)
		got = append(got, d)
	}
	require.Equal(t, []time.Duration{10, 20, 40, 50, 50}, scale(got, time.Millisecond))
	b.stable()
	d, _ := b.crashed(now+sec, false)
	require.Equal(t, 10*time.Millisecond, d, "a stable session forgives the streak")
}

func scale(ds []time.Duration, unit time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d / unit
	}
	return out
}

// TestDefaultFirstRestartIsFast: the first restart is attempted well within
// 100 ms of a crash; the cap is 30 s.
func TestDefaultFirstRestartIsFast(t *testing.T) {
	b := newBreaker(Policy{})
	d, _ := b.crashed(0, false)
	require.LessOrEqual(t, d, 100*time.Millisecond)
	require.Equal(t, 30*time.Second, b.p.Max)
}

// TestBreakerTripsOnCrashLoop: Failures crashes within Window mark the
// plugin failed once (tripped is reported on the crash that does it), the
// delay is then Max; crashes spread wider than Window never trip it.
func TestBreakerTripsOnCrashLoop(t *testing.T) {
	b := newBreaker(Policy{Initial: time.Millisecond, Max: 30 * time.Second, Failures: 3, Window: 10 * time.Second})
	_, tripped := b.crashed(0, false)
	require.False(t, tripped)
	_, tripped = b.crashed(1*sec, false)
	require.False(t, tripped)
	d, tripped := b.crashed(2*sec, false)
	require.True(t, tripped)
	require.True(t, b.failed)
	require.Equal(t, "crash loop", b.tripped)
	require.Equal(t, 30*time.Second, d)
	d, tripped = b.crashed(3*sec, false)
	require.False(t, tripped, "reported once")
	require.Equal(t, 30*time.Second, d)
	b.stable()
	require.False(t, b.failed)

	// One crash every 6 s with a window of 10 s: at most 2 in a window.
	b = newBreaker(Policy{Failures: 3, Window: 10 * time.Second})
	for i := range int64(20) {
		_, tripped := b.crashed(i*6*sec, false)
		require.False(t, tripped, "crash %d", i)
	}
	require.LessOrEqual(t, len(b.ends), 3, "the window's list is bounded")
}

// TestPermanentFailsAtOnce: a failure a restart cannot fix marks the plugin
// failed on its first occurrence, and it is retried only at Max.
func TestPermanentFailsAtOnce(t *testing.T) {
	b := newBreaker(Policy{})
	d, tripped := b.crashed(0, true)
	require.True(t, tripped)
	require.Equal(t, DefaultMax, d)
	require.Contains(t, b.tripped, "cannot change")
}

// TestRetryDoesNotTrip: unreachable sockets back off without tripping.
func TestRetryDoesNotTrip(t *testing.T) {
	b := newBreaker(Policy{Initial: time.Millisecond, Max: 4 * time.Millisecond})
	var got []time.Duration
	for range 5 {
		got = append(got, b.retry())
	}
	require.Equal(t, []time.Duration{1, 2, 4, 4, 4}, scale(got, time.Millisecond))
	require.False(t, b.failed)
}

package clock

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRuntimeClockIsMonotonic(t *testing.T) {
	c := New()
	a := c.Now()
	time.Sleep(time.Millisecond)
	b := c.Now()
	require.Greater(t, b, a)
	require.GreaterOrEqual(t, b-a, int64(time.Millisecond))
	require.Panics(t, func() { c.Advance(time.Second) })
}

func TestManualClock(t *testing.T) {
	c := NewManual(100)
	require.Equal(t, int64(100), c.Now())
	c.Advance(time.Second)
	require.Equal(t, int64(100)+int64(time.Second), c.Now())
	// Time keeps the distance between a reading and now.
	d := time.Until(c.Time(c.Now() + int64(time.Hour)))
	require.InDelta(t, float64(time.Hour), float64(d), float64(time.Second))
}

// TestDeadline: a deadline d from now is d from time.Now on either kind of
// clock, and carries the runtime's monotonic reading (its String shows
// "m=").
func TestDeadline(t *testing.T) {
	for _, c := range []*Clock{New(), NewManual(7)} {
		at := c.Deadline(time.Hour)
		require.InDelta(t, float64(time.Hour), float64(time.Until(at)), float64(time.Second))
		require.Contains(t, at.String(), "m=")
	}
}

// Package clock is Strand's one source of time for deadlines: a monotonic
// reading in nanoseconds, immune to steps of the wall clock, that tests can
// replace with a clock they move by hand.
//
// A Clock is safe for concurrent use.
package clock

import (
	"sync/atomic"
	"time"
)

// Clock reads monotonic time as nanoseconds since an arbitrary origin (its
// creation). Readings of two Clocks are not comparable.
type Clock struct {
	base   time.Time     // carries the runtime's monotonic reading
	manual *atomic.Int64 // set for a clock moved by hand
}

// New returns a Clock that follows the runtime's monotonic clock.
func New() *Clock { return &Clock{base: time.Now()} }

// NewManual returns a Clock that reads start until Advance or Set moves it.
func NewManual(start int64) *Clock {
	c := &Clock{base: time.Now(), manual: new(atomic.Int64)}
	c.manual.Store(start)
	return c
}

// Now returns the current reading.
func (c *Clock) Now() int64 {
	if c.manual != nil {
		return c.manual.Load()
	}
	return int64(time.Since(c.base))
}

// Advance moves a manual clock forward by d. It panics on a clock that
// follows the runtime.
func (c *Clock) Advance(d time.Duration) {
	if c.manual == nil {
		panic("clock: Advance on a runtime clock")
	}
	c.manual.Add(int64(d))
}

// Deadline returns the time.Time d from the clock's current reading, for
// APIs such as net.Conn.SetWriteDeadline: Time(Now()+d), with one reading
// of the runtime's clock for a clock that follows it.
func (c *Clock) Deadline(d time.Duration) time.Time {
	if c.manual != nil {
		return c.Time(c.Now() + int64(d))
	}
	return time.Now().Add(d)
}

// Time converts a reading to a time.Time for APIs such as
// net.Conn.SetReadDeadline. The result carries a monotonic reading, so a
// deadline made from it does not move when the wall clock steps. For a
// manual clock it is the same distance from time.Now as at from Now.
func (c *Clock) Time(at int64) time.Time {
	return time.Now().Add(time.Duration(at - c.Now()))
}

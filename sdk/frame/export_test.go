package frame

import "time"

// ForceKeyCollisions makes every header set hash to the same key, so tests
// can check that a collision never returns another set's bytes.
func ForceKeyCollisions(c *HeaderCache) { c.keyMask = 0 }

// Shards returns the number of shards of c.
func Shards(c *HeaderCache) int { return len(c.shards) }

// Headers returns a copy of the set e holds, in its encoded order.
func (e *EncodedHeaders) Headers() []Header { return append([]Header(nil), e.headers...) }

// IndexedByShape reports whether the shape index points at the cached set
// equal to hs, so that Get(hs) finds it without hashing.
func IndexedByShape(c *HeaderCache, hs []Header) bool {
	shape := c.hash.shape(hs)
	e := c.byShape[shape&c.slotMask].Load()
	return e != nil && e.shape == shape && e.enc != nil && sameSet(hs, e.headers)
}

// UseCoarseClock makes c read now the way it reads the default clock: on
// misses and every clockEvery-th hit of a shard.
func UseCoarseClock(c *HeaderCache, now func() time.Time) { c.setClock(now, false) }

// ClockEvery is how many hits of a shard share a coarse clock reading.
const ClockEvery = clockEvery

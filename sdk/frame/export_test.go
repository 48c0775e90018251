package frame

// ForceKeyCollisions makes every header set hash to the same key, so tests
// can check that a collision never returns another set's bytes.
func ForceKeyCollisions(c *HeaderCache) { c.keyMask = 0 }

// Shards returns the number of shards of c.
func Shards(c *HeaderCache) int { return len(c.shards) }

// Headers returns a copy of the set e holds, in its encoded order.
func (e *EncodedHeaders) Headers() []Header { return append([]Header(nil), e.headers...) }

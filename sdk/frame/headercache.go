package frame

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"
)

// maxCachedHeaders is the largest header set a HeaderCache stores; larger
// sets are encoded on every Get (and counted as misses).
const maxCachedHeaders = 64

// Defaults of HeaderCacheConfig.
const (
	DefaultHeaderCacheEntries = 1000
	DefaultHeaderCacheTTL     = 5 * time.Minute
)

// entriesPerShard is the smallest shard a HeaderCache splits into; a cache
// of fewer than 2*entriesPerShard entries has one shard.
const (
	entriesPerShard = 128
	maxShards       = 16
)

// clockEvery is how many hits of a shard share one reading of the default
// clock.
const clockEvery = 32

// Each lock-free index has twice as many slots as the cache has entries,
// within these bounds (8 bytes a slot).
const (
	minIndexSlots = 1 << 6
	maxIndexSlots = 1 << 16
)

// HeaderCacheConfig configures a HeaderCache. The zero value is valid.
type HeaderCacheConfig struct {
	// MaxEntries caps the number of cached header sets. Zero means
	// DefaultHeaderCacheEntries (1000); negative is an error.
	MaxEntries int
	// TTL drops an entry that has not been used for that long. Zero means
	// DefaultHeaderCacheTTL (5 minutes); negative means entries never
	// expire (then Get does not read the clock).
	TTL time.Duration
	// Now is the clock, read on every Get (tests use it to control expiry
	// exactly). Nil means the monotonic clock, read coarsely: on every miss
	// and on every 32nd hit of a shard, the hits in between using the last
	// reading. A hit can then serve an entry that expired since that
	// reading, and an entry hit just after its shard was idle for a whole
	// TTL can be dropped early; either way Get returns the bytes of the set
	// it was given.
	Now func() time.Time
}

// HeaderCacheStats are a HeaderCache's counters since it was created.
type HeaderCacheStats struct {
	Hits      uint64 // Get found the set
	Misses    uint64 // Get encoded the set
	Evictions uint64 // entries dropped for room (LRU) or age (TTL); Clear does not count
	Expired   uint64 // of Evictions, those dropped because of TTL
	Size      int    // entries held, not counting expired ones
}

// HeaderCache caches encoded header sets, so that a request whose headers
// were seen before (same clients, same proxies) skips encoding them.
//
// Entries live in shards (a map and an eviction queue under a lock; a cache
// of fewer than 256 entries has one shard). Hits normally take no lock:
// two lock-free indexes in front of the shards find a set's entry, both
// independently of header order:
//
//   - by shape, the number of headers and the lengths of their names and
//     values, which costs no hashing of the bytes: the index points at the
//     entry when it is the only cached set of its shape;
//   - otherwise by key, a commutative combination (sum and xor) of
//     per-header hashes of every byte, seeded per cache; its index, like
//     the shape index, keeps one entry a slot, and a set it misses is
//     looked up in its shard under the lock.
//
// Any hit compares the whole set, so a collision of shapes or keys costs a
// miss, never wrong bytes. Eviction is per shard: entries idle for the TTL
// go first, then the least recently used, approximated by second chance
// (an entry hit since it was queued goes back to the front instead of out),
// so that a hit only sets a flag.
//
// A HeaderCache is safe for concurrent use. The *EncodedHeaders it returns
// are immutable and stay valid after eviction or Clear. Locks: a shard's
// before the shape counts'; none is held while encoding.
type HeaderCache struct {
	hash      setHasher
	keyMask   uint64                       // all ones; tests set 0 to force key collisions
	byShape   []atomic.Pointer[cacheEntry] // see index
	byKey     []atomic.Pointer[cacheEntry]
	slotMask  uint64
	shards    []cacheShard
	shardBits int // key >> (64 - shardBits) picks the shard
	perShard  int
	ttl       int64 // nanoseconds; < 0 never expires

	// clock returns nanoseconds since the cache was created; exact says
	// whether hits read it (HeaderCacheConfig.Now) or use coarse, its last
	// reading.
	clock  func() int64
	exact  bool
	coarse atomic.Int64

	shapeMu sync.Mutex
	shapes  map[uint64]int32 // cached sets of each shape

	builders sync.Pool // *flatbuffers.Builder for misses
}

type cacheShard struct {
	mu         sync.Mutex
	m          map[uint64]*cacheEntry
	head, tail *cacheEntry      // queue: new and second-chance entries go to head
	stats      HeaderCacheStats // Misses, Evictions, Expired
	hits       atomic.Uint64    // counted without mu
	_          [64]byte         // keep shards' locks on separate cache lines
}

// A cacheEntry is a cached set, or, with a nil enc, the shape index's
// marker for a shape that several cached sets share.
type cacheEntry struct {
	key, shape uint64
	headers    []Header // enc.headers
	enc        *EncodedHeaders
	shard      *cacheShard
	used       atomic.Int64 // clock reading at last use
	ref        atomic.Bool  // hit since queued at head
	prev, next *cacheEntry  // under shard.mu
}

// NewHeaderCache returns an empty cache configured by cfg.
func NewHeaderCache(cfg HeaderCacheConfig) (*HeaderCache, error) {
	if cfg.MaxEntries < 0 {
		return nil, errors.New("frame: HeaderCacheConfig.MaxEntries is negative")
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = DefaultHeaderCacheEntries
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultHeaderCacheTTL
	}
	shardBits := 0
	for (1<<(shardBits+1)) <= maxShards && cfg.MaxEntries>>(shardBits+1) >= entriesPerShard {
		shardBits++
	}
	slots := minIndexSlots
	for slots < 2*cfg.MaxEntries && slots < maxIndexSlots {
		slots <<= 1
	}
	c := &HeaderCache{
		hash:      newSetHasher(),
		keyMask:   ^uint64(0),
		byShape:   make([]atomic.Pointer[cacheEntry], slots),
		byKey:     make([]atomic.Pointer[cacheEntry], slots),
		slotMask:  uint64(slots - 1),
		shards:    make([]cacheShard, 1<<shardBits),
		shardBits: shardBits,
		perShard:  cfg.MaxEntries >> shardBits,
		ttl:       int64(cfg.TTL),
		shapes:    make(map[uint64]int32),
	}
	c.setClock(cfg.Now, cfg.Now != nil)
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]*cacheEntry)
	}
	return c, nil
}

// setClock makes now (nil for time.Now) the clock, read on every Get if
// exact, else coarsely.
func (c *HeaderCache) setClock(now func() time.Time, exact bool) {
	if now == nil {
		base := time.Now()
		c.clock = func() int64 { return int64(time.Since(base)) }
	} else {
		base := now()
		c.clock = func() int64 { return int64(now().Sub(base)) }
	}
	c.exact = exact && c.ttl >= 0
	c.coarse.Store(0)
}

// Get returns the encoded form of hs: the cached one when an equal set
// (see below) is cached and not expired, otherwise a new encoding, which it
// caches. Two sets are equal when they hold the same (name, value) pairs;
// pairs of different names may come in any order, values of one name must
// come in the same order. The cached encoding keeps the order of the set
// that was cached first. Sets of more than 64 headers are encoded but not
// cached. hs is not retained.
func (c *HeaderCache) Get(hs []Header) *EncodedHeaders {
	shape := c.hash.shape(hs)
	shapeSlot := &c.byShape[shape&c.slotMask]
	if e := shapeSlot.Load(); e != nil && e.shape == shape && e.enc != nil && sameSet(hs, e.headers) {
		if now := c.hitClock(); !c.expired(e, now) {
			c.use(e, now)
			return e.enc
		}
	}

	key := c.hash.key(hs) & c.keyMask
	keySlot := &c.byKey[key&c.slotMask]
	now := c.hitClock()
	sh := c.shard(key)
	if e := keySlot.Load(); e != nil && e.key == key && sameSet(hs, e.headers) && !c.expired(e, now) {
		c.use(e, now)
		if shapeSlot.Load() == nil {
			// Perhaps the last set of its shape: see index.
			sh.mu.Lock()
			if sh.m[key] == e {
				c.reindex(e, shapeSlot, keySlot)
			}
			sh.mu.Unlock()
		}
		return e.enc
	}

	sh.mu.Lock()
	if e := sh.m[key]; e != nil {
		switch {
		case c.expired(e, now):
			c.remove(e)
			sh.stats.Evictions++
			sh.stats.Expired++
		case sameSet(hs, e.headers):
			c.use(e, now)
			c.reindex(e, shapeSlot, keySlot)
			sh.mu.Unlock()
			return e.enc
		}
	}
	sh.stats.Misses++
	sh.mu.Unlock()

	enc := c.encode(hs)
	if len(hs) > maxCachedHeaders {
		return enc
	}
	now = c.readClock()

	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.m[key]; e != nil {
		if sameSet(hs, e.headers) {
			// Another Get cached the same set meanwhile: share it.
			return e.enc
		}
		// A different set with the same key: the newer one wins.
		c.remove(e)
		sh.stats.Evictions++
	}
	c.evict(sh, now, 1)
	e := &cacheEntry{key: key, shape: shape, headers: enc.headers, enc: enc, shard: sh}
	e.used.Store(now)
	sh.m[key] = e
	sh.pushFront(e)
	c.index(e, shapeSlot, keySlot)
	return enc
}

// use records a hit on e.
func (c *HeaderCache) use(e *cacheEntry, now int64) {
	if e.used.Load() < now {
		e.used.Store(now)
	}
	if !e.ref.Load() {
		e.ref.Store(true)
	}
	if n := e.shard.hits.Add(1); n%clockEvery == 0 && !c.exact {
		c.readClock()
	}
}

// evict drops the expired entries from the tail of sh's queue, and more
// until room entries more fit, giving entries hit since they were queued a
// second chance at the head. The caller holds sh.mu.
func (c *HeaderCache) evict(sh *cacheShard, now int64, room int) {
	// Hits can set ref again meanwhile: give at most one pass of second
	// chances.
	for chances := len(sh.m); sh.tail != nil; {
		e := sh.tail
		switch {
		case c.expired(e, now):
			c.remove(e)
			sh.stats.Evictions++
			sh.stats.Expired++
		case chances > 0 && e.ref.Load():
			e.ref.Store(false)
			sh.unlink(e)
			sh.pushFront(e)
			chances--
		case len(sh.m)+room > c.perShard:
			c.remove(e)
			sh.stats.Evictions++
		default:
			return
		}
	}
}

// Stats drops expired entries (looking at every entry), then returns the
// counters summed over shards.
func (c *HeaderCache) Stats() HeaderCacheStats {
	var s HeaderCacheStats
	now := c.readClock()
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		if c.ttl >= 0 {
			for e := sh.head; e != nil; {
				next := e.next
				if c.expired(e, now) {
					c.remove(e)
					sh.stats.Evictions++
					sh.stats.Expired++
				}
				e = next
			}
		}
		s.Hits += sh.hits.Load()
		s.Misses += sh.stats.Misses
		s.Evictions += sh.stats.Evictions
		s.Expired += sh.stats.Expired
		s.Size += len(sh.m)
		sh.mu.Unlock()
	}
	return s
}

// Clear drops every entry. Counters are kept; sets already returned stay
// valid.
func (c *HeaderCache) Clear() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for sh.tail != nil {
			c.remove(sh.tail)
		}
		sh.mu.Unlock()
	}
}

func (c *HeaderCache) shard(key uint64) *cacheShard {
	if c.shardBits == 0 {
		return &c.shards[0]
	}
	return &c.shards[key>>(64-c.shardBits)]
}

// hitClock returns the time for a hit: a reading of the clock if exact,
// else the last one (always 0 when entries never expire).
func (c *HeaderCache) hitClock() int64 {
	if c.exact {
		return c.clock()
	}
	return c.coarse.Load()
}

// readClock reads the clock, and for the coarse clock publishes the
// reading; 0 when entries never expire.
func (c *HeaderCache) readClock() int64 {
	if c.ttl < 0 {
		return 0
	}
	now := c.clock()
	if !c.exact {
		for {
			old := c.coarse.Load()
			if old >= now || c.coarse.CompareAndSwap(old, now) {
				break
			}
		}
	}
	return now
}

func (c *HeaderCache) expired(e *cacheEntry, now int64) bool {
	return c.ttl >= 0 && now-e.used.Load() >= c.ttl
}

func (c *HeaderCache) encode(hs []Header) *EncodedHeaders {
	b, _ := c.builders.Get().(*flatbuffers.Builder)
	if b == nil {
		b = flatbuffers.NewBuilder(initialBuffer)
	}
	enc := encodeHeaders(b, hs)
	if cap(b.Bytes) <= maxPooledBuffer {
		c.builders.Put(b)
	}
	return enc
}

// remove drops e from its shard and the indexes. The caller holds
// e.shard.mu.
func (c *HeaderCache) remove(e *cacheEntry) {
	e.shard.unlink(e)
	delete(e.shard.m, e.key)
	c.unindex(e)
}

// The indexes are direct-mapped tables of atomic pointers, written only
// with the entry's shard lock held (and, for shapes, shapeMu), read by Get
// without locks. Different keys or shapes that share a slot take it in
// turn. The shape slot points at the only cached set of its shape, or at a
// marker (an entry without enc) while several are cached; when one remains
// the slot is emptied, and the next hit of a set of that shape fills it
// again (taking the lock once). A hit under the lock also fills an empty
// key slot.

// index adds e, which was just cached.
func (c *HeaderCache) index(e *cacheEntry, shapeSlot, keySlot *atomic.Pointer[cacheEntry]) {
	keySlot.Store(e)
	c.shapeMu.Lock()
	n := c.shapes[e.shape] + 1
	c.shapes[e.shape] = n
	if n == 1 {
		shapeSlot.Store(e)
	} else if cur := shapeSlot.Load(); cur == nil || cur.shape == e.shape && cur.enc != nil {
		shapeSlot.Store(&cacheEntry{shape: e.shape})
	}
	c.shapeMu.Unlock()
}

// reindex fills the slots of e, which was hit under the lock, if empty.
func (c *HeaderCache) reindex(e *cacheEntry, shapeSlot, keySlot *atomic.Pointer[cacheEntry]) {
	keySlot.CompareAndSwap(nil, e)
	if shapeSlot.Load() != nil {
		return
	}
	c.shapeMu.Lock()
	if shapeSlot.Load() == nil {
		if c.shapes[e.shape] == 1 {
			shapeSlot.Store(e)
		} else {
			shapeSlot.Store(&cacheEntry{shape: e.shape})
		}
	}
	c.shapeMu.Unlock()
}

// unindex removes e, which is leaving the cache.
func (c *HeaderCache) unindex(e *cacheEntry) {
	c.byKey[e.key&c.slotMask].CompareAndSwap(e, nil)
	c.shapeMu.Lock()
	n := c.shapes[e.shape] - 1
	if n > 0 {
		c.shapes[e.shape] = n
	} else {
		delete(c.shapes, e.shape)
	}
	slot := &c.byShape[e.shape&c.slotMask]
	if cur := slot.Load(); cur == e || n == 1 && cur != nil && cur.shape == e.shape && cur.enc == nil {
		slot.Store(nil)
	}
	c.shapeMu.Unlock()
}

// The queue: head is the most recently queued entry.

func (s *cacheShard) pushFront(e *cacheEntry) {
	e.prev, e.next = nil, s.head
	if s.head != nil {
		s.head.prev = e
	}
	s.head = e
	if s.tail == nil {
		s.tail = e
	}
}

func (s *cacheShard) unlink(e *cacheEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

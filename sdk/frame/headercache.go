package frame

import (
	"errors"
	"hash/maphash"
	"math/bits"
	"sync"
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
// of fewer than 2*entriesPerShard entries has one shard and so an exact LRU.
const (
	entriesPerShard = 128
	maxShards       = 16
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
	// Now is the clock. Nil means time.Now (through the monotonic clock).
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
// were seen before (same clients, same proxies) skips encoding them. The key
// does not depend on header order: it is a commutative combination (sum and
// xor) of per-header hashes seeded per cache, and a hit compares the whole
// set, so a hash collision costs a miss, never wrong bytes. Eviction is LRU
// (per shard; a cache of fewer than 256 entries has one shard) plus an idle
// TTL.
//
// A HeaderCache is safe for concurrent use. The *EncodedHeaders it returns
// are immutable and stay valid after eviction or Clear.
type HeaderCache struct {
	seed      maphash.Seed
	shards    []cacheShard
	shardBits int // key >> (64 - shardBits) picks the shard
	perShard  int
	ttl       int64 // nanoseconds; < 0 never expires
	now       func() time.Time
	base      time.Time
	keyMask   uint64    // all ones; tests set 0 to force collisions
	builders  sync.Pool // *flatbuffers.Builder for misses
}

type cacheShard struct {
	mu         sync.Mutex
	m          map[uint64]*cacheEntry
	head, tail *cacheEntry // most and least recently used
	stats      HeaderCacheStats
	_          [64]byte // keep shards' locks on separate cache lines
}

type cacheEntry struct {
	key        uint64
	enc        *EncodedHeaders
	used       int64 // clock reading at last use
	prev, next *cacheEntry
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
	c := &HeaderCache{
		seed:      maphash.MakeSeed(),
		shards:    make([]cacheShard, 1<<shardBits),
		shardBits: shardBits,
		perShard:  cfg.MaxEntries >> shardBits,
		ttl:       int64(cfg.TTL),
		now:       cfg.Now,
		keyMask:   ^uint64(0),
	}
	if c.now != nil {
		c.base = c.now()
	} else {
		c.base = time.Now()
	}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]*cacheEntry)
	}
	return c, nil
}

// Get returns the encoded form of hs: the cached one when an equal set
// (see below) is cached and not expired, otherwise a new encoding, which it
// caches. Two sets are equal when they hold the same (name, value) pairs;
// pairs of different names may come in any order, values of one name must
// come in the same order. The cached encoding keeps the order of the set
// that was cached first. Sets of more than 64 headers are encoded but not
// cached. hs is not retained.
func (c *HeaderCache) Get(hs []Header) *EncodedHeaders {
	key := c.key(hs)
	sh := c.shard(key)
	now := c.clock()

	sh.mu.Lock()
	if e := sh.m[key]; e != nil {
		switch {
		case c.expired(e, now):
			sh.remove(e)
			sh.stats.Evictions++
			sh.stats.Expired++
		case e.enc.equal(hs):
			e.used = now
			sh.toFront(e)
			sh.stats.Hits++
			enc := e.enc
			sh.mu.Unlock()
			return enc
		}
	}
	sh.stats.Misses++
	sh.mu.Unlock()

	enc := c.encode(hs)
	if len(hs) > maxCachedHeaders {
		return enc
	}

	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.m[key]; e != nil {
		if e.enc.equal(hs) {
			// Another Get cached the same set meanwhile: share it.
			return e.enc
		}
		// A different set with the same key: the newer one wins.
		sh.remove(e)
		sh.stats.Evictions++
	}
	e := &cacheEntry{key: key, enc: enc, used: now}
	sh.m[key] = e
	sh.pushFront(e)
	c.prune(sh, now)
	for len(sh.m) > c.perShard {
		sh.remove(sh.tail)
		sh.stats.Evictions++
	}
	return enc
}

// prune drops the expired entries of sh: they are the tail of its LRU list,
// since expiry counts from the last use. The caller holds sh.mu.
func (c *HeaderCache) prune(sh *cacheShard, now int64) {
	for sh.tail != nil && c.expired(sh.tail, now) {
		sh.remove(sh.tail)
		sh.stats.Evictions++
		sh.stats.Expired++
	}
}

// Stats drops expired entries, then returns the counters summed over
// shards.
func (c *HeaderCache) Stats() HeaderCacheStats {
	var s HeaderCacheStats
	now := c.clock()
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		c.prune(sh, now)
		s.Hits += sh.stats.Hits
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
		for e := sh.head; e != nil; {
			next := e.next
			e.prev, e.next = nil, nil
			e = next
		}
		clear(sh.m)
		sh.head, sh.tail = nil, nil
		sh.mu.Unlock()
	}
}

// key combines per-header hashes with sum and xor, so the order of hs does
// not matter. A header's hash covers its name and value in order, so the
// two cannot swap roles.
func (c *HeaderCache) key(hs []Header) uint64 {
	var sum, x uint64
	for i := range hs {
		h := maphash.Comparable(c.seed, hs[i])
		sum += h
		x ^= h
	}
	return (sum ^ bits.RotateLeft64(x*0xbf58476d1ce4e5b9, 31) ^ uint64(len(hs))) & c.keyMask
}

func (c *HeaderCache) shard(key uint64) *cacheShard {
	if c.shardBits == 0 {
		return &c.shards[0]
	}
	return &c.shards[key>>(64-c.shardBits)]
}

// clock returns nanoseconds since the cache was created, or 0 when entries
// never expire.
func (c *HeaderCache) clock() int64 {
	switch {
	case c.ttl < 0:
		return 0
	case c.now != nil:
		return int64(c.now().Sub(c.base))
	default:
		return int64(time.Since(c.base))
	}
}

func (c *HeaderCache) expired(e *cacheEntry, now int64) bool {
	return c.ttl >= 0 && now-e.used >= c.ttl
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

// The LRU list: head is the most recently used entry.

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

func (s *cacheShard) toFront(e *cacheEntry) {
	if s.head == e {
		return
	}
	s.unlink(e)
	s.pushFront(e)
}

func (s *cacheShard) remove(e *cacheEntry) {
	s.unlink(e)
	delete(s.m, e.key)
}

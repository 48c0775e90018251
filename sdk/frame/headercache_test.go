package frame_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/sdk/frame"
)

// fakeClock is an injectable clock for TTL tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newCache(t *testing.T, cfg frame.HeaderCacheConfig) *frame.HeaderCache {
	t.Helper()
	c, err := frame.NewHeaderCache(cfg)
	require.NoError(t, err)
	return c
}

// set returns a small header set that differs by i.
func set(i int) []frame.Header {
	return []frame.Header{{Name: "Host", Value: "example.com"}, {Name: "X-N", Value: fmt.Sprint(i)}}
}

// requireEncodes checks that enc encodes exactly want (in want's order).
func requireEncodes(t *testing.T, want []frame.Header, enc *frame.EncodedHeaders) {
	t.Helper()
	v, err := frame.Decode(frame.NewEncoder().Encode(&frame.Frame{Request: &frame.Request{CachedHeaders: enc}}))
	require.NoError(t, err)
	r, ok := v.Request()
	require.True(t, ok)
	var got []frame.Header
	for i := range r.NumHeaders() {
		n, val := r.Header(i)
		got = append(got, frame.Header{Name: string(n), Value: string(val)})
	}
	require.Equal(t, want, got)
}

func TestHeaderCacheHitAndMiss(t *testing.T) {
	c := newCache(t, frame.HeaderCacheConfig{})
	hs := typicalHeaders()
	first := c.Get(hs)
	requireEncodes(t, hs, first)
	require.Same(t, first, c.Get(hs))
	require.Equal(t, frame.HeaderCacheStats{Hits: 1, Misses: 1, Size: 1}, c.Stats())

	// Get does not retain its argument.
	hs[0].Value = "changed"
	requireEncodes(t, typicalHeaders(), first)
	require.NotSame(t, first, c.Get(hs))
}

func TestHeaderCacheOrderIndependent(t *testing.T) {
	c := newCache(t, frame.HeaderCacheConfig{})
	hs := typicalHeaders()
	first := c.Get(hs)
	reversed := make([]frame.Header, len(hs))
	for i := range hs {
		reversed[len(hs)-1-i] = hs[i]
	}
	require.Same(t, first, c.Get(reversed))
	rotated := append(append([]frame.Header{}, hs[3:]...), hs[:3]...)
	require.Same(t, first, c.Get(rotated))
	require.Equal(t, uint64(2), c.Stats().Hits)
	requireEncodes(t, hs, first) // the first order is kept
}

func TestHeaderCacheSetsThatDiffer(t *testing.T) {
	base := []frame.Header{{"A", "1"}, {"B", "2"}, {"A", "3"}}
	cases := map[string][]frame.Header{
		"other value":         {{"A", "1"}, {"B", "x"}, {"A", "3"}},
		"swapped name, value": {{"1", "A"}, {"B", "2"}, {"A", "3"}},
		"one less":            {{"A", "1"}, {"B", "2"}},
		"one more":            {{"A", "1"}, {"B", "2"}, {"A", "3"}, {"C", ""}},
		"same-name reorder":   {{"A", "3"}, {"B", "2"}, {"A", "1"}},
		"duplicate":           {{"A", "1"}, {"B", "2"}, {"A", "1"}},
		"name case":           {{"a", "1"}, {"B", "2"}, {"A", "3"}},
	}
	for name, hs := range cases {
		for _, collide := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/collide=%v", name, collide), func(t *testing.T) {
				c := newCache(t, frame.HeaderCacheConfig{})
				if collide {
					frame.ForceKeyCollisions(c)
				}
				requireEncodes(t, base, c.Get(base))
				requireEncodes(t, hs, c.Get(hs))
				require.Equal(t, frame.HeaderCacheStats{Misses: 2}, withoutSize(c.Stats()), "a different set is a miss")
				requireEncodes(t, base, c.Get(base))
				requireEncodes(t, hs, c.Get(hs))
			})
		}
	}
	t.Run("same set with other-name reorder hits", func(t *testing.T) {
		c := newCache(t, frame.HeaderCacheConfig{})
		frame.ForceKeyCollisions(c)
		first := c.Get(base)
		require.Same(t, first, c.Get([]frame.Header{{"B", "2"}, {"A", "1"}, {"A", "3"}}))
		require.Same(t, first, c.Get([]frame.Header{{"A", "1"}, {"A", "3"}, {"B", "2"}}))
	})
}

func withoutSize(s frame.HeaderCacheStats) frame.HeaderCacheStats {
	s.Size = 0
	s.Evictions = 0
	return s
}

func TestHeaderCacheCollisions(t *testing.T) {
	// Every set has the same key: a hit must still compare the whole set.
	c := newCache(t, frame.HeaderCacheConfig{})
	frame.ForceKeyCollisions(c)
	for round := range 3 {
		for i := range 5 {
			requireEncodes(t, set(i), c.Get(set(i)))
		}
		require.Equal(t, 1, c.Stats().Size, "round %d", round)
	}
	s := c.Stats()
	require.Zero(t, s.Hits)
	require.Equal(t, uint64(15), s.Misses)
	require.Equal(t, uint64(14), s.Evictions, "each set replaced the previous one")
}

func TestHeaderCacheLRU(t *testing.T) {
	c := newCache(t, frame.HeaderCacheConfig{MaxEntries: 3})
	a, b := c.Get(set(1)), c.Get(set(2))
	c.Get(set(3))
	require.Same(t, a, c.Get(set(1))) // 1 is now the most recently used
	c.Get(set(4))                     // evicts 2, the least recently used
	s := c.Stats()
	require.Equal(t, 3, s.Size)
	require.Equal(t, uint64(1), s.Evictions)
	require.Same(t, a, c.Get(set(1)), "a recently read entry survives")
	require.NotSame(t, b, c.Get(set(2)), "the LRU entry was evicted")
	// Re-adding 2 evicted 3 (order now: 2, 1, 4, 3 oldest).
	require.Equal(t, uint64(2), c.Stats().Evictions)
	hits := c.Stats().Hits
	c.Get(set(4))
	require.Equal(t, hits+1, c.Stats().Hits)
	c.Get(set(3))
	require.Equal(t, hits+1, c.Stats().Hits, "3 was evicted")

	// An evicted set stays valid for whoever holds it.
	requireEncodes(t, set(2), b)
}

func TestHeaderCacheTTL(t *testing.T) {
	clock := newFakeClock()
	c := newCache(t, frame.HeaderCacheConfig{TTL: time.Minute, Now: clock.Now})
	a := c.Get(set(1))
	c.Get(set(2))

	clock.Advance(59 * time.Second)
	require.Same(t, a, c.Get(set(1)), "used within the TTL") // and refreshed

	clock.Advance(30 * time.Second) // set 2 idle 89s, set 1 idle 30s
	require.Same(t, a, c.Get(set(1)))
	c.Get(set(3)) // set 2 has expired
	s := c.Stats()
	require.Equal(t, 2, s.Size)
	require.Equal(t, uint64(1), s.Expired)
	require.Equal(t, uint64(1), s.Evictions)

	clock.Advance(time.Minute) // everything idle for a minute
	got := c.Get(set(1))
	require.NotSame(t, a, got, "an expired entry is not served")
	requireEncodes(t, set(1), got)
	requireEncodes(t, set(1), a)
	s = c.Stats()
	require.Equal(t, uint64(3), s.Expired) // set 1 on lookup, set 3 at insert
	require.Equal(t, 1, s.Size)

	t.Run("default is five minutes", func(t *testing.T) {
		clock := newFakeClock()
		c := newCache(t, frame.HeaderCacheConfig{Now: clock.Now})
		a := c.Get(set(1))
		clock.Advance(5*time.Minute - 1)
		require.Same(t, a, c.Get(set(1)))
		clock.Advance(5 * time.Minute)
		require.NotSame(t, a, c.Get(set(1)))
	})
	t.Run("negative never expires", func(t *testing.T) {
		clock := newFakeClock()
		c := newCache(t, frame.HeaderCacheConfig{TTL: -1, Now: clock.Now})
		a := c.Get(set(1))
		clock.Advance(1000 * time.Hour)
		require.Same(t, a, c.Get(set(1)))
	})
}

func TestHeaderCacheClear(t *testing.T) {
	c := newCache(t, frame.HeaderCacheConfig{})
	a := c.Get(set(1))
	c.Get(set(2))
	c.Clear()
	s := c.Stats()
	require.Zero(t, s.Size)
	require.Equal(t, uint64(2), s.Misses, "counters survive Clear")
	require.NotSame(t, a, c.Get(set(1)))
	requireEncodes(t, set(1), a)
}

func TestHeaderCacheConfig(t *testing.T) {
	_, err := frame.NewHeaderCache(frame.HeaderCacheConfig{MaxEntries: -1})
	require.Error(t, err)

	c := newCache(t, frame.HeaderCacheConfig{})
	require.Greater(t, frame.Shards(c), 1, "the default size is sharded")
	for i := range 3000 {
		c.Get(set(i))
	}
	s := c.Stats()
	require.LessOrEqual(t, s.Size, frame.DefaultHeaderCacheEntries)
	require.Greater(t, s.Size, frame.DefaultHeaderCacheEntries*3/4)
	require.Equal(t, uint64(3000-s.Size), s.Evictions)

	require.Equal(t, 1, frame.Shards(newCache(t, frame.HeaderCacheConfig{MaxEntries: 255})))
}

func TestHeaderCacheLargeSetNotCached(t *testing.T) {
	c := newCache(t, frame.HeaderCacheConfig{})
	var hs []frame.Header
	for i := range 65 {
		hs = append(hs, frame.Header{Name: fmt.Sprint("H", i), Value: "v"})
	}
	requireEncodes(t, hs, c.Get(hs))
	requireEncodes(t, hs, c.Get(hs))
	s := c.Stats()
	require.Zero(t, s.Size)
	require.Equal(t, uint64(2), s.Misses)

	hs = hs[:64]
	c.Get(hs)
	require.Same(t, c.Get(hs), c.Get(hs))
}

func TestHeaderCacheConcurrent(t *testing.T) {
	clock := newFakeClock()
	c := newCache(t, frame.HeaderCacheConfig{MaxEntries: 300, TTL: time.Second, Now: clock.Now})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			enc := frame.NewEncoder()
			for i := range 2000 {
				hs := set((i * (g + 1)) % 400)
				got := c.Get(hs)
				// Encode from the shared set while others evict it.
				v, err := frame.Decode(enc.Encode(&frame.Frame{Request: &frame.Request{CachedHeaders: got}}))
				if err != nil {
					t.Error(err)
					return
				}
				r, _ := v.Request()
				if _, val := r.Header(1); string(val) != hs[1].Value {
					t.Errorf("got %q for %q", val, hs[1].Value)
					return
				}
				switch i % 500 {
				case 0:
					clock.Advance(2 * time.Second)
				case 250:
					c.Clear()
				}
				c.Stats()
			}
		}()
	}
	wg.Wait()
	s := c.Stats()
	require.Equal(t, uint64(8000), s.Hits+s.Misses)
	require.LessOrEqual(t, s.Size, 300)
}

func TestHeaderCacheShapeIndex(t *testing.T) {
	// set(1) and set(2) have the same shape (lengths).
	clock := newFakeClock()
	c := newCache(t, frame.HeaderCacheConfig{TTL: time.Minute, Now: clock.Now})
	a := c.Get(set(1))
	require.True(t, frame.IndexedByShape(c, set(1)), "the only set of its shape")
	clock.Advance(30 * time.Second)
	b := c.Get(set(2))
	require.False(t, frame.IndexedByShape(c, set(1)), "two sets share the shape")
	require.False(t, frame.IndexedByShape(c, set(2)))

	clock.Advance(40 * time.Second)
	require.Equal(t, 1, c.Stats().Size, "set(1) expired")
	require.False(t, frame.IndexedByShape(c, set(2)), "refilled on the next hit")
	require.Same(t, b, c.Get(set(2)))
	require.True(t, frame.IndexedByShape(c, set(2)))
	require.Same(t, b, c.Get(set(2)))

	require.NotSame(t, a, c.Get(set(1)))
	require.False(t, frame.IndexedByShape(c, set(1)))
	require.False(t, frame.IndexedByShape(c, set(2)))
	require.Equal(t, frame.HeaderCacheStats{Hits: 2, Misses: 3, Evictions: 1, Expired: 1, Size: 2}, c.Stats())

	c.Clear()
	require.False(t, frame.IndexedByShape(c, set(1)))
	require.False(t, frame.IndexedByShape(c, set(2)))
	require.NotSame(t, b, c.Get(set(2)))
	require.True(t, frame.IndexedByShape(c, set(2)))
}

func TestHeaderCacheSameShapeSets(t *testing.T) {
	// Sets that share their shape are found by key, in any order.
	c := newCache(t, frame.HeaderCacheConfig{})
	var sets [][]frame.Header
	var encs []*frame.EncodedHeaders
	for i := range 50 {
		hs := append(typicalHeaders(), frame.Header{Name: "X-Id", Value: fmt.Sprintf("%04d", i)})
		sets = append(sets, hs)
		encs = append(encs, c.Get(hs))
	}
	for round := range 2 {
		for i, hs := range sets {
			reversed := make([]frame.Header, len(hs))
			for j := range hs {
				reversed[len(hs)-1-j] = hs[j]
			}
			require.Same(t, encs[i], c.Get(hs), "round %d set %d", round, i)
			require.Same(t, encs[i], c.Get(reversed), "round %d set %d reversed", round, i)
			require.False(t, frame.IndexedByShape(c, hs))
		}
	}
	require.Equal(t, frame.HeaderCacheStats{Hits: 200, Misses: 50, Size: 50}, c.Stats())
	for i, enc := range encs {
		requireEncodes(t, sets[i], enc)
	}
}

func TestHeaderCacheCoarseClock(t *testing.T) {
	cases := []struct {
		name string
		// then runs after set(1) was cached and the clock advanced past the
		// TTL; it returns how many more hits set(1) gets before expiring.
		then func(c *frame.HeaderCache) int
		hits uint64
	}{
		{"hits reuse a reading until the shard's ClockEvery-th", func(*frame.HeaderCache) int {
			return frame.ClockEvery
		}, frame.ClockEvery},
		{"a miss reads the clock", func(c *frame.HeaderCache) int {
			c.Get(set(10))
			return 0
		}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			c := newCache(t, frame.HeaderCacheConfig{TTL: time.Minute})
			frame.UseCoarseClock(c, clock.Now)
			a := c.Get(set(1))
			clock.Advance(2 * time.Minute)
			for i := range tc.then(c) {
				require.Same(t, a, c.Get(set(1)), "hit %d uses the last reading", i)
			}
			require.NotSame(t, a, c.Get(set(1)), "expired at the next reading")
			s := c.Stats()
			require.Equal(t, tc.hits, s.Hits)
			require.Equal(t, uint64(1), s.Expired)
		})
	}
}

func TestHeaderCacheSecondChance(t *testing.T) {
	// A set hit since it was queued survives the next eviction; the new set
	// is never the one evicted.
	c := newCache(t, frame.HeaderCacheConfig{MaxEntries: 3})
	encs := []*frame.EncodedHeaders{c.Get(set(0)), c.Get(set(1)), c.Get(set(2))}
	for _, i := range []int{0, 1, 2} {
		require.Same(t, encs[i], c.Get(set(i)))
	}
	// All three were hit: each gets its second chance, then set(0), queued
	// first, goes.
	d := c.Get(set(3))
	require.Same(t, d, c.Get(set(3)), "the new set stays")
	require.Same(t, encs[1], c.Get(set(1)))
	require.Same(t, encs[2], c.Get(set(2)))
	require.NotSame(t, encs[0], c.Get(set(0)))
}

func TestHeaderCacheConcurrentIndexes(t *testing.T) {
	// Sets of unique shapes (served by the shape index) and of shared
	// shapes (served by key), with evictions, expiry and Clear running
	// meanwhile; every Get must return its own set's bytes.
	mkSet := func(i int) []frame.Header {
		return []frame.Header{
			{Name: "Host", Value: "example.com"},
			{Name: "X-Pad", Value: strings.Repeat("p", i%40)},
			{Name: "X-N", Value: fmt.Sprint(i)},
		}
	}
	for _, coarse := range []bool{false, true} {
		t.Run(fmt.Sprintf("coarse=%v", coarse), func(t *testing.T) {
			clock := newFakeClock()
			c := newCache(t, frame.HeaderCacheConfig{MaxEntries: 60, TTL: time.Second, Now: clock.Now})
			if coarse {
				frame.UseCoarseClock(c, clock.Now)
			}
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					enc := frame.NewEncoder()
					for i := range 3000 {
						hs := mkSet((i*(g+1) + g) % 97)
						if i%2 == 1 {
							hs[0], hs[2] = hs[2], hs[0]
						}
						v, err := frame.Decode(enc.Encode(&frame.Frame{Request: &frame.Request{CachedHeaders: c.Get(hs)}}))
						if err != nil {
							t.Error(err)
							return
						}
						r, _ := v.Request()
						got := map[string]string{}
						for j := range r.NumHeaders() {
							n, val := r.Header(j)
							got[string(n)] = string(val)
						}
						for _, h := range hs {
							if got[h.Name] != h.Value {
								t.Errorf("got %q=%q for %q", h.Name, got[h.Name], h.Value)
								return
							}
						}
						switch i % 700 {
						case 100:
							clock.Advance(2 * time.Second)
						case 400:
							c.Clear()
						}
					}
				}()
			}
			wg.Wait()
			s := c.Stats()
			require.Equal(t, uint64(12000), s.Hits+s.Misses)
			require.NotZero(t, s.Hits)
			require.LessOrEqual(t, s.Size, 60)
		})
	}
}

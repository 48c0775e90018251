package bufpool_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strandws/strand/sdk/bufpool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestGetSizes(t *testing.T) {
	p := bufpool.New(bufpool.Config{})
	for _, tc := range []struct {
		n, wantCap int
	}{
		{0, 64}, {1, 64}, {64, 64}, {65, 128}, {1000, 1024}, {1024, 1024},
		{1025, 2048}, {bufpool.MaxSize, bufpool.MaxSize}, {bufpool.MaxSize + 1, bufpool.MaxSize + 1},
	} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			b := p.Get(tc.n)
			assert.Len(t, b.B, tc.n)
			assert.Equal(t, tc.wantCap, cap(b.B))
			assert.EqualValues(t, 1, b.Refs())
			b.Release()
		})
	}
	s := p.Stats()
	assert.EqualValues(t, 9, s.Gets)
	assert.EqualValues(t, 1, s.Oversize)
	assert.EqualValues(t, 8, s.Releases)
	assert.Equal(t, s.Gets, s.Hits+s.Misses+s.Oversize)
}

func TestReuseCountsHits(t *testing.T) {
	p := bufpool.New(bufpool.Config{})
	// sync.Pool may drop items at any GC, so count hits over many rounds.
	for range 100 {
		p.Get(100).Release()
	}
	s := p.Stats()
	assert.EqualValues(t, 100, s.Gets)
	assert.Positive(t, s.Hits, "a released buffer is reused")
	assert.EqualValues(t, s.Gets, s.Hits+s.Misses)
}

func TestPoisonCatchesUseAfterRelease(t *testing.T) {
	p := bufpool.New(bufpool.Config{Poison: true})
	require.True(t, p.Poisoning())
	b := p.Get(5)
	copy(b.B, "hello")
	kept := b.B // a handler that keeps the slice past release
	b.Release()
	assert.Equal(t, bytes.Repeat([]byte{bufpool.PoisonByte}, 5), kept,
		"released bytes are poisoned, so a kept slice shows garbage")
	assert.PanicsWithValue(t, "bufpool: buffer released twice", b.Release)
}

func TestPoisonDefaultFollowsBuildTag(t *testing.T) {
	p := bufpool.New(bufpool.Config{})
	require.Equal(t, bufpool.DebugDefault, p.Poisoning(), "zero Config poisons exactly under -tags strand_debug")
	b := p.Get(5)
	copy(b.B, "hello")
	b.Release()
	if p.Poisoning() {
		assert.Panics(t, b.Release)
	} else {
		assert.NotPanics(t, b.Release, "double release is ignored without poisoning")
	}
}

func TestRefCounting(t *testing.T) {
	p := bufpool.New(bufpool.Config{Poison: true})
	b := p.Get(3)
	copy(b.B, "abc")
	const owners = 50
	for range owners - 1 {
		b.Retain()
	}
	var wg sync.WaitGroup
	for range owners {
		wg.Go(func() {
			assert.Equal(t, "abc", string(b.B))
			b.Release()
		})
	}
	wg.Wait()
	assert.EqualValues(t, 0, b.Refs())
	assert.Panics(t, b.Retain, "a released buffer cannot be retained")
}

func TestGrow(t *testing.T) {
	p := bufpool.New(bufpool.Config{Poison: true})
	b := p.Get(3)
	copy(b.B, "abc")
	same := p.Grow(b, 60)
	assert.Same(t, b, same)
	g := p.Grow(b, 1000)
	assert.Equal(t, "abc", string(g.B))
	assert.GreaterOrEqual(t, cap(g.B), 1000)
	g.Release()
}

func ExamplePool() {
	pool := bufpool.New(bufpool.Config{})
	b := pool.Get(5)
	copy(b.B, "hello")
	fmt.Println(string(b.B), cap(b.B))
	b.Release() // exactly once per reference
	// Output: hello 64
}

var sink []byte

func BenchmarkBufferPool(b *testing.B) {
	p := bufpool.New(bufpool.Config{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			buf := p.Get(1000)
			buf.B[0] = 1
			buf.Release()
		}
	})
}

func BenchmarkBaselineMake(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			buf := make([]byte, 1000)
			buf[0] = 1
			sink = buf
		}
	})
}

package bufpool

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

const (
	minShift   = 6  // 64 B
	maxShift   = 20 // 1 MiB
	numClasses = maxShift - minShift + 1

	// MinSize is the smallest pooled capacity.
	MinSize = 1 << minShift
	// MaxSize is the largest pooled capacity; larger buffers are not pooled.
	MaxSize = 1 << maxShift

	// PoisonByte fills released buffers when poisoning is on.
	PoisonByte = 0xDB

	oversizeClass = -1
)

// Config configures a Pool. The zero value is valid.
type Config struct {
	// Poison overwrites released buffers with PoisonByte and panics on a
	// release past zero references. Zero means the build default: on when
	// built with -tags strand_debug, off otherwise.
	Poison bool
}

// Stats are a Pool's counters since it was created.
type Stats struct {
	Gets     uint64 // calls to Get
	Hits     uint64 // Gets served from a pooled buffer
	Misses   uint64 // Gets that allocated a poolable buffer
	Oversize uint64 // Gets larger than MaxSize (allocated, never pooled)
	Releases uint64 // buffers returned to the pool
}

// Pool hands out size-classed byte buffers. Create one with New; the zero
// Pool is not usable.
type Pool struct {
	classes [numClasses]sync.Pool
	poison  bool

	gets     atomic.Uint64
	misses   atomic.Uint64
	oversize atomic.Uint64
	releases atomic.Uint64
}

// New returns a Pool.
func New(cfg Config) *Pool {
	p := &Pool{poison: cfg.Poison || debugDefault}
	for i := range p.classes {
		size := 1 << (minShift + i)
		class := int8(i)
		p.classes[i].New = func() any {
			p.misses.Add(1)
			return &Buffer{B: make([]byte, 0, size), pool: p, class: class}
		}
	}
	return p
}

// Poisoning reports whether released buffers are poisoned.
func (p *Pool) Poisoning() bool { return p.poison }

// classOf returns the size class for n bytes, or oversizeClass.
func classOf(n int) int {
	if n <= MinSize {
		return 0
	}
	if n > MaxSize {
		return oversizeClass
	}
	return bits.Len(uint(n-1)) - minShift
}

// Get returns a buffer whose B has length n, holding one reference. Its
// contents are unspecified (not zeroed).
func (p *Pool) Get(n int) *Buffer {
	if n < 0 {
		panic("bufpool: negative size")
	}
	p.gets.Add(1)
	c := classOf(n)
	if c == oversizeClass {
		p.oversize.Add(1)
		b := &Buffer{B: make([]byte, n), pool: p, class: oversizeClass}
		b.refs.Store(1)
		return b
	}
	b := p.classes[c].Get().(*Buffer)
	b.B = b.B[:n]
	b.refs.Store(1)
	return b
}

// Grow returns a buffer holding b's bytes with room for at least n bytes in
// total (len(B) is unchanged). If b is already large enough it is returned as
// is; otherwise b is released and a new buffer is returned. b must have a
// single reference.
func (p *Pool) Grow(b *Buffer, n int) *Buffer {
	if cap(b.B) >= n {
		return b
	}
	nb := p.Get(n)
	nb.B = nb.B[:copy(nb.B[:n], b.B)]
	b.Release()
	return nb
}

// Stats returns a snapshot of the counters.
func (p *Pool) Stats() Stats {
	gets, misses, oversize := p.gets.Load(), p.misses.Load(), p.oversize.Load()
	s := Stats{Gets: gets, Misses: misses, Oversize: oversize, Releases: p.releases.Load()}
	if used := misses + oversize; gets > used {
		s.Hits = gets - used
	}
	return s
}

// Buffer is a pooled byte slice with a reference count.
//
// B is the payload; its length is what Get was asked for and may be changed
// by the owner within cap(B). B is valid until the last reference is
// released; keep no slice of it after that.
type Buffer struct {
	B     []byte
	pool  *Pool
	refs  atomic.Int32
	class int8
}

// Retain adds a reference. Each Retain must be paired with one Release.
func (b *Buffer) Retain() {
	if b.refs.Add(1) <= 1 {
		panic("bufpool: retain of a released buffer")
	}
}

// Refs returns the current number of references (for tests and assertions).
func (b *Buffer) Refs() int32 { return b.refs.Load() }

// Release drops a reference; the last one returns the buffer to its pool.
// A release past zero panics when the pool poisons and is ignored otherwise.
func (b *Buffer) Release() {
	n := b.refs.Add(-1)
	if n > 0 {
		return
	}
	p := b.pool
	if n < 0 {
		if p.poison {
			panic("bufpool: buffer released twice")
		}
		return
	}
	if p.poison {
		full := b.B[:cap(b.B)]
		for i := range full {
			full[i] = PoisonByte
		}
	}
	if b.class == oversizeClass {
		return
	}
	p.releases.Add(1)
	b.B = b.B[:0]
	p.classes[b.class].Put(b)
}

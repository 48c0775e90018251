package dispatcher

import (
	"math/bits"
	"sync/atomic"
)

// cacheLinePad separates fields written by different cores. 128 bytes covers
// the adjacent-line prefetcher of current x86 and the 128-byte lines of some
// arm64 cores.
type cacheLinePad [128]byte

// ring is a bounded lock-free multi-producer multi-consumer FIFO (Dmitry
// Vyukov's design): each cell carries a sequence number that says whether it
// is free for the producer of a given lap or full for its consumer.
type ring[T any] struct {
	_     cacheLinePad
	enq   atomic.Uint64
	_     cacheLinePad
	deq   atomic.Uint64
	_     cacheLinePad
	mask  uint64
	cells []ringCell[T]
}

type ringCell[T any] struct {
	seq atomic.Uint64
	val T
}

// init sizes the ring to at least capacity cells: a power of two, at least 2
// (with one cell a full cell's sequence would read as free to the next lap).
func (q *ring[T]) init(capacity int) {
	capacity = 1 << bits.Len(uint(max(capacity, 2)-1))
	q.cells = make([]ringCell[T], capacity)
	q.mask = uint64(capacity - 1)
	for i := range q.cells {
		q.cells[i].seq.Store(uint64(i))
	}
}

// tryPush appends v, or returns false when the ring is full. The ring also
// looks full for the moment a consumer has claimed the oldest cell but not
// released it yet.
func (q *ring[T]) tryPush(v T) bool {
	pos := q.enq.Load()
	for {
		c := &q.cells[pos&q.mask]
		seq := c.seq.Load()
		switch dif := int64(seq - pos); {
		case dif == 0:
			if q.enq.CompareAndSwap(pos, pos+1) {
				c.val = v
				c.seq.Store(pos + 1)
				return true
			}
			pos = q.enq.Load()
		case dif < 0:
			return false
		default:
			pos = q.enq.Load()
		}
	}
}

// pop removes the oldest value; ok is false when the ring is empty (or its
// oldest value is still being published by its producer).
func (q *ring[T]) pop() (v T, ok bool) {
	pos := q.deq.Load()
	for {
		c := &q.cells[pos&q.mask]
		seq := c.seq.Load()
		switch dif := int64(seq - (pos + 1)); {
		case dif == 0:
			if q.deq.CompareAndSwap(pos, pos+1) {
				v = c.val
				var zero T
				c.val = zero // drop the reference for the GC
				c.seq.Store(pos + q.mask + 1)
				return v, true
			}
			pos = q.deq.Load()
		case dif < 0:
			return v, false
		default:
			pos = q.deq.Load()
		}
	}
}

// size is the number of values queued or being pushed or popped
// (approximate while others push or pop).
func (q *ring[T]) size() int {
	d := q.deq.Load() // first: enq only grows, so the difference is not negative
	return int(q.enq.Load() - d)
}

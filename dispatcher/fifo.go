package dispatcher

// fifo is a bounded queue of entries: a shard's shared queue, or the queue of
// one key detached from its shard (keyQueue). Its fields are guarded by the
// lock of the shard it belongs to.
type fifo struct {
	ring    []entry // grows lazily up to QueueSize (beyond it only by SubmitLast)
	head, n int
	roomCh  chan struct{} // made by a submitter that waits for room; closed when room appears
	wakes   []wakeReq     // TrySubmit callbacks to call once when room appears
	spare   []wakeReq
}

type entry struct {
	key uint64
	t   Task
}

type wakeReq struct {
	key uint64
	fn  func()
}

// push appends e, growing the ring if it is full.
func (f *fifo) push(e entry, qsize int) {
	if f.n == len(f.ring) {
		f.grow(qsize)
	}
	i := f.head + f.n
	if i >= len(f.ring) {
		i -= len(f.ring)
	}
	f.ring[i] = e
	f.n++
}

// grow doubles the ring (capped at qsize while below it) and lays the queued
// entries out from index 0.
func (f *fifo) grow(qsize int) {
	c := 2 * len(f.ring)
	switch {
	case c == 0:
		c = min(8, qsize)
	case len(f.ring) < qsize:
		c = min(c, qsize)
	}
	ring := make([]entry, c)
	k := copy(ring, f.ring[f.head:])
	copy(ring[k:], f.ring[:f.head])
	f.ring = ring
	f.head = 0
}

// take moves the oldest entries into batch, at most len(batch) of them, and
// returns how many it moved.
func (f *fifo) take(batch []entry) int {
	k := min(f.n, len(batch))
	for i := range k {
		batch[i] = f.ring[f.head]
		f.ring[f.head] = entry{}
		if f.head++; f.head == len(f.ring) {
			f.head = 0
		}
	}
	f.n -= k
	return k
}

// requeue puts back, in front of f's entries, the entries of back whose key
// is not key, and moves to dst every entry of key — those of back first, then
// f's — keeping the order of each. back are tasks taken from f earlier (so
// they precede f's in submission order) that did not run.
func (f *fifo) requeue(back []entry, key uint64, dst *fifo, qsize int) {
	kept := make([]entry, 0, len(back)+f.n)
	for _, e := range back {
		if e.key == key {
			dst.push(e, qsize)
		} else {
			kept = append(kept, e)
		}
	}
	for i := range f.n {
		e := f.ring[(f.head+i)%len(f.ring)]
		if e.key == key {
			dst.push(e, qsize)
		} else {
			kept = append(kept, e)
		}
	}
	if len(kept) > len(f.ring) {
		f.ring = make([]entry, len(kept))
	} else {
		clear(f.ring)
	}
	copy(f.ring, kept)
	f.head, f.n = 0, len(kept)
}

// moveTo appends f's entries, in order, to dst and empties f.
func (f *fifo) moveTo(dst *fifo, qsize int) {
	for f.n > 0 {
		dst.push(f.ring[f.head], qsize)
		f.ring[f.head] = entry{}
		if f.head++; f.head == len(f.ring) {
			f.head = 0
		}
		f.n--
	}
}

// roomLocked, when f has room below qsize, wakes the submitters waiting for
// it and returns the TrySubmit callbacks to call (outside the lock, then give
// back with callWakes); nil if none.
func (f *fifo) roomLocked(qsize int) []wakeReq {
	if f.n >= qsize {
		return nil
	}
	if f.roomCh != nil {
		close(f.roomCh)
		f.roomCh = nil
	}
	if len(f.wakes) == 0 {
		return nil
	}
	wakes := f.wakes
	f.wakes, f.spare = f.spare[:0], nil
	return wakes
}

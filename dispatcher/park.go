package dispatcher

import (
	"runtime"
	"sync/atomic"
)

// searchRounds is how many times an idle worker yields and looks at its queue
// again before it parks: it saves a park and a wake-up per task when tasks
// arrive a little slower than the workers run them.
const searchRounds = 32

// parking lets a fixed set of workers sleep when their queue is empty
// without a wake-up per queued item. Workers that find nothing first search
// (yield and look again), then park on notify. A producer, after publishing
// an item, wakes a parked worker only when none is searching; a searching
// worker that finds an item wakes another if it was the last searcher and
// items remain, so parallelism follows the backlog.
//
// No wake-up is lost: a producer publishes, then reads searching, then
// parked; a worker increments parked, decrements searching, then looks at
// the queue once more before it sleeps. Either the worker sees the item, or
// the producer sees it parked with nobody searching (a worker still
// searching sees the item or wakes another when it finds other work).
type parking struct {
	_         cacheLinePad
	searching atomic.Int32
	parked    atomic.Int32
	stopping  atomic.Bool
	_         cacheLinePad
	notify    chan struct{} // wake tokens, cap = number of workers
	stopCh    chan struct{} // closed by stop
}

func (p *parking) init(workers int) {
	p.notify = make(chan struct{}, workers)
	p.stopCh = make(chan struct{})
}

// wake is called by a producer after it published an item.
func (p *parking) wake() {
	if p.searching.Load() == 0 && p.parked.Load() > 0 {
		select {
		case p.notify <- struct{}{}:
		default: // enough wake tokens are pending
		}
	}
}

// stop makes workers exit once their queue is empty. The caller guarantees
// no more items are published except by the workers themselves.
func (p *parking) stop() {
	p.stopping.Store(true)
	close(p.stopCh)
}

// findWork is called by a worker whose pop failed. It returns an item, or
// ok == false when the worker should exit: stop was called and the queue is
// empty, or retire (if not nil), asked each time the worker is about to
// park, returned true.
func findWork[T any](p *parking, q *ring[T], retire func() bool) (v T, ok bool) {
	p.searching.Add(1)
	for range searchRounds {
		runtime.Gosched()
		if v, ok = q.pop(); ok {
			p.stopSearching(q.size() > 0)
			return v, true
		}
	}
	for {
		if retire != nil && retire() {
			// Leave as a searcher that found nothing: hand an item that a
			// producer published meanwhile (and did not wake anyone for,
			// seeing this worker search) to a parked worker.
			p.searching.Add(-1)
			if q.size() > 0 {
				p.wake()
			}
			return v, false
		}
		p.parked.Add(1)
		p.searching.Add(-1)
		if v, ok = q.pop(); ok {
			p.parked.Add(-1)
			if q.size() > 0 {
				p.wake()
			}
			return v, true
		}
		if p.stopping.Load() {
			p.parked.Add(-1)
			return v, false
		}
		select {
		case <-p.notify:
		case <-p.stopCh:
		}
		p.searching.Add(1)
		p.parked.Add(-1)
		if v, ok = q.pop(); ok {
			p.stopSearching(q.size() > 0)
			return v, true
		}
	}
}

func (p *parking) stopSearching(more bool) {
	if p.searching.Add(-1) == 0 && more {
		p.wake()
	}
}

package wsframework

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/strandws/strand/internal/clock"
	"github.com/strandws/strand/internal/core"
)

// deadlines expires phase waits without a runtime timer per wait: a Go
// timer armed and stopped around every blocking select costs more than the
// phase hand-off itself. Waits register in a small sharded intrusive list;
// one goroutine, started on first use and stopped by stop, scans them every
// tick while any is registered and interrupts those past their deadline:
// it puts mark on the phase's own signal channel, so a waiting host
// receives from that one channel only (and checks the mark against its
// deadline: a mark from before a re-arm is stale). Precision is one tick
// (a twentieth of the timeout, 1 ms to 250 ms).
type deadlines struct {
	clock    *clock.Clock
	now      func() int64 // clock.Now, made once
	timeout  time.Duration
	tick     time.Duration
	shards   [16]deadlineShard
	next     atomic.Uint32
	mark     *core.HostCall // what an expiry puts on a phase's signal channel
	active   atomic.Int64
	sleeping atomic.Bool // the scanner waits for a kick
	kick     chan struct{}
	stopped  chan struct{} // closed by stop
	done     chan struct{} // closed when run returns

	stopMu  sync.Mutex // guards running and isStop
	running bool
	isStop  bool
	live    atomic.Bool // running and not stopped: arm skips stopMu
}

type deadlineShard struct {
	mu   sync.Mutex
	head *deadlineWait
	_    [40]byte // keep shards on separate cache lines
}

// deadlineWait is one registered wait.
type deadlineWait struct {
	prev, next *deadlineWait
	shard      *deadlineShard
	at         int64       // a clock reading; written by the waiter only
	p          phaseSignal // interrupted at expiry
	listed     bool
}

func newDeadlines(timeout time.Duration, clk *clock.Clock) *deadlines {
	tick := min(max(timeout/20, time.Millisecond), 250*time.Millisecond)
	return &deadlines{
		clock:   clk,
		now:     clk.Now,
		timeout: timeout, tick: tick,
		mark:    &core.HostCall{},
		kick:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// arm registers w to interrupt p one timeout from now, replacing an
// earlier registration. It reports false after stop (the caller must not
// wait).
func (d *deadlines) arm(w *deadlineWait, p phaseSignal) bool {
	return d.armAt(w, d.clock.Now()+int64(d.timeout), p)
}

// armAt is arm with the expiry at, a reading of d's clock.
func (d *deadlines) armAt(w *deadlineWait, at int64, p phaseSignal) bool {
	d.disarm(w)
	if !d.live.Load() {
		d.stopMu.Lock()
		if d.isStop {
			d.stopMu.Unlock()
			return false
		}
		if !d.running {
			d.running = true
			d.live.Store(true)
			go d.run()
		}
		d.stopMu.Unlock()
	}
	sh := &d.shards[d.next.Add(1)%uint32(len(d.shards))]
	w.at, w.p = at, p
	sh.mu.Lock()
	w.shard, w.prev, w.next, w.listed = sh, nil, sh.head, true
	if sh.head != nil {
		sh.head.prev = w
	}
	sh.head = w
	sh.mu.Unlock()
	d.active.Add(1)
	if d.sleeping.Load() && d.sleeping.CompareAndSwap(true, false) {
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
	return true
}

// disarm removes w if registered.
func (d *deadlines) disarm(w *deadlineWait) {
	sh := w.shard
	if sh == nil {
		return
	}
	sh.mu.Lock()
	if w.listed {
		d.unlinkLocked(sh, w)
		d.active.Add(-1)
	}
	sh.mu.Unlock()
	w.shard, w.p = nil, nil // keep no phase context the pool may reuse
}

// expired reports whether a mark the waiter of w received is for its
// current deadline (false: a stale mark from before a re-arm).
func (d *deadlines) expired(w *deadlineWait) bool { return d.clock.Now() >= w.at }

func (d *deadlines) unlinkLocked(sh *deadlineShard, w *deadlineWait) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		sh.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	}
	w.prev, w.next, w.listed = nil, nil, false
}

func (d *deadlines) run() {
	defer close(d.done)
	t := time.NewTicker(d.tick)
	defer t.Stop()
	// The scanner sleeps only after a second without waits, so a steady
	// stream of short waits does not pay a wake-up each.
	idleTicks, sleepAfter := 0, int(time.Second/d.tick)+1
	for {
		if d.active.Load() == 0 {
			idleTicks++
		} else {
			idleTicks = 0
		}
		if idleTicks > sleepAfter {
			t.Stop()
			d.sleeping.Store(true)
			if d.active.Load() == 0 { // re-check: an arm may have missed the flag
				select {
				case <-d.kick:
				case <-d.stopped:
					return
				}
			}
			d.sleeping.Store(false)
			idleTicks = 0
			t.Reset(d.tick)
		}
		select {
		case <-t.C:
		case <-d.stopped:
			return
		}
		now := d.clock.Now()
		for i := range d.shards {
			sh := &d.shards[i]
			sh.mu.Lock()
			for w := sh.head; w != nil; {
				next := w.next
				if w.at <= now {
					d.unlinkLocked(sh, w)
					d.active.Add(-1)
					// Nothing pending there otherwise: the waiter will read
					// the decision or call that is.
					w.p.Interrupt(d.mark)
				}
				w = next
			}
			sh.mu.Unlock()
		}
	}
}

// stop ends the scanning goroutine and waits for it; later arms fail.
// Idempotent.
func (d *deadlines) stop() {
	d.stopMu.Lock()
	if d.isStop {
		d.stopMu.Unlock()
		return
	}
	d.isStop = true
	d.live.Store(false)
	running := d.running
	d.stopMu.Unlock()
	close(d.stopped)
	if running {
		<-d.done
	}
}

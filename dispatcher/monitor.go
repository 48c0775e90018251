package dispatcher

import "time"

// The monitor and the elastic worker set of a Sharded.
//
// One monitor goroutine per Sharded refreshes the clock workers stamp their
// tasks with and looks at every worker once per tick: it reports tasks that
// run longer than SlowThreshold (OnSlow) and detaches the key of a task that
// runs longer than BlockThreshold. It ticks every tick while some worker is
// busy and every idleTick otherwise.
//
// Identifying a long task costs the workers nothing per task: a worker
// stores its start stamp only when the clock changed since its last task,
// and the clock changes at every tick. So if the monitor reads the same
// stamp at two ticks, the worker has been in one task since before the
// first, at least as long as the time between them — whatever the ticks'
// length. A task that has run for BlockThreshold this way has its key
// detached if its worker still holds the shard (the shard's holder, which
// the worker sets under the shard's lock at the turn's start). A worker
// that is only descheduled in the middle of a turn of short tasks is thus
// not taken for blocked.
//
// Detaching (detachLocked) moves the turn's key off its shard: its queued
// tasks go to a keyQueue of the shard, which the blocked worker runs when
// its task returns (runDetached), and the shard is put back on the ready
// queue for the others; the key comes back to its shard as soon as its
// tasks run fast again (runDetached). The worker set then grows by one (spawnLocked) if
// fewer than Workers workers are left that do not run a detached key, up to
// MaxWorkers. A worker beyond the base set exits when it finds nothing to
// do instead of parking (retireIdle), so the set shrinks back once the
// blocked ones return and the backlog is gone.

// idleTickMin is the monitor's period while no worker is busy: a task that
// starts then is first seen up to this late.
const idleTickMin = 20 * time.Millisecond

// monitorTicks returns the monitor's periods for these (filled-in)
// thresholds; a non-positive threshold has no say.
func monitorTicks(slow, block time.Duration) (tick, idle time.Duration) {
	tick = time.Second
	if slow > 0 {
		tick = min(max(slow/8, time.Millisecond), time.Second)
	}
	if block > 0 {
		tick = min(tick, min(max(block/4, 250*time.Microsecond), 100*time.Millisecond))
	}
	return tick, max(tick, idleTickMin)
}

// slotState is what the monitor remembers of a worker slot between ticks.
type slotState struct {
	w        *worker
	stamp    int64 // start stamp last read
	seen     int64 // when that stamp was first read
	reported bool  // the task of stamp was reported as slow
}

func (s *Sharded) monitorLoop() {
	defer close(s.done)
	t := time.NewTimer(s.idleTick)
	defer t.Stop()
	var seen []slotState
	for {
		select {
		case <-s.watchStop:
			return
		case <-t.C:
		}
		now := int64(time.Since(s.epoch)) + 1
		s.clock.Store(now)
		n := int(s.nslots.Load())
		if len(seen) < n {
			seen = append(seen, make([]slotState, n-len(seen))...)
		}
		busy := false
		for i := range n {
			if s.look(&seen[i], s.slots[i].Load(), now) {
				busy = true
			}
		}
		if busy {
			t.Reset(s.tick)
		} else {
			t.Reset(s.idleTick)
		}
	}
}

// look examines one worker (nil: an empty slot) at time now and reports
// whether it is busy.
func (s *Sharded) look(st *slotState, w *worker, now int64) bool {
	if w == nil {
		*st = slotState{}
		return false
	}
	if st.w != w {
		*st = slotState{w: w}
	}
	start := w.start.Load()
	if start == 0 {
		st.stamp = 0
		return false
	}
	if start != st.stamp {
		st.stamp, st.seen, st.reported = start, now, false
		return true
	}
	if s.isolate && now-st.seen >= s.block && !w.detached.Load() {
		s.detachIfStuck(w, start)
	}
	if s.watch && !st.reported && now-st.seen >= s.threshold {
		key, ok := s.keyOf(w)
		if ok && w.start.Load() == start { // else it finished meanwhile; key may be the next task's
			st.reported = true
			s.slow.Add(1)
			if s.onSlow != nil {
				s.onSlow(key, time.Duration(now-start))
			}
		}
	}
	return true
}

// keyOf returns the key w runs now; ok is false if w is between turns.
func (s *Sharded) keyOf(w *worker) (key uint64, ok bool) {
	if w.detached.Load() {
		return w.dkey.Load(), true
	}
	p := w.pos.Load() &^ stolenBit
	sh := &s.shards[p>>32]
	sh.mu.Lock()
	if sh.holder == w {
		key, ok = w.batch[p&posMask].key, true
	}
	sh.mu.Unlock()
	return key, ok
}

const (
	posMask   = 1<<32 - 1
	stolenBit = 1 << 62 // in worker.pos: the monitor took the batch from the next change of key on
)

// detachIfStuck detaches the key of the task w has been running since the
// clock read start, if w still runs it. The position is read before the
// lock: if it is stale, w does not hold that shard, or it left the task.
func (s *Sharded) detachIfStuck(w *worker, start int64) {
	p := w.pos.Load() &^ stolenBit
	sh := &s.shards[p>>32]
	sh.mu.Lock()
	if sh.holder != w || w.start.Load() != start {
		sh.mu.Unlock()
		return
	}
	s.detachLocked(sh, w)
}

// detachLocked moves the key w is stuck in off sh (whose lock is held, and
// released on return): the tasks of w's batch that w has not reached go
// back (those of other keys to the front of sh's queue, those of the key to
// a queue of its own, followed by the key's tasks still in sh's queue); w
// runs that queue once its current task returns; sh goes back on the ready
// queue if it has tasks, and the worker set grows.
func (s *Sharded) detachLocked(sh *shard, w *worker) {
	// Mark w's position: its next compare-and-swap, at the next change of
	// key in its batch, fails, and the rest from there is ours.
	var p int
	for {
		v := w.pos.Load()
		if w.pos.CompareAndSwap(v, v|stolenBit) {
			p = int(v & posMask)
			break
		}
	}
	key := w.batch[p].key
	r := p + 1
	for r < sh.holdN && w.batch[r].key == key {
		r++
	}
	q := &keyQueue{key: key, w: w}
	sh.requeue(w.batch[r:sh.holdN], key, &q.fifo, s.qsize)
	sh.taken -= uint64(sh.holdN - r)
	sh.maxDepth = max(sh.maxDepth, sh.n, q.n)
	sh.own = append(sh.own, q)
	sh.holder = nil
	w.dkey.Store(key)
	w.detached.Store(true)
	wakes := sh.roomLocked(s.qsize)
	more := sh.n > 0
	if more {
		s.pushReady(sh.idx) // sched stays true: the shard changes hands
	} else {
		sh.sched = false
	}
	sh.mu.Unlock()
	s.detaches.Add(1)
	if more {
		s.park.wake()
	}
	if wakes != nil {
		s.callWakes(sh, &sh.fifo, wakes)
	}

	s.emu.Lock()
	s.ndetached++
	if s.nactive-s.ndetached < s.base && s.nlive < s.maxWorkers {
		s.spawnLocked()
	}
	s.setSurplusLocked()
	s.emu.Unlock()
}

// reattach is called by w when the key it ran detached is back on its shard.
func (s *Sharded) reattach(w *worker) {
	s.emu.Lock()
	s.ndetached--
	w.detached.Store(false)
	s.setSurplusLocked()
	s.emu.Unlock()
}

func (s *Sharded) setSurplusLocked() {
	s.surplus.Store(int32(s.nactive - s.ndetached - s.base))
}

// spawnLocked starts a worker in a free slot. The caller holds emu, and
// either is NewSharded or a worker is live (so the monitor is not stopping
// before this one exits).
func (s *Sharded) spawnLocked() {
	var slot int32
	if n := len(s.free); n > 0 {
		slot = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		slot = s.nslots.Load()
		s.nslots.Store(slot + 1)
	}
	w := &worker{slot: slot, batch: make([]entry, s.perTurn)}
	w.retire = func() bool {
		w.retired = s.retireIdle()
		return w.retired
	}
	s.nlive++
	s.nactive++
	s.slots[slot].Store(w)
	go s.work(w)
}

// retireIdle is called by a worker that found nothing to do, before it
// parks: it reports whether the worker leaves the set instead (there are
// more than Workers free workers).
func (s *Sharded) retireIdle() bool {
	if s.surplus.Load() <= 0 {
		return false
	}
	s.emu.Lock()
	defer s.emu.Unlock()
	if s.nactive-s.ndetached <= s.base {
		return false
	}
	s.nactive--
	s.setSurplusLocked()
	return true
}

// workerExit is the last thing a worker does. The last worker out stops the
// monitor (or, without one, marks the Sharded done).
func (s *Sharded) workerExit(w *worker) {
	s.slots[w.slot].Store(nil)
	s.exitedDone.Add(w.done)
	s.emu.Lock()
	if !w.retired {
		s.nactive--
	}
	s.nlive--
	s.free = append(s.free, w.slot)
	last := s.nlive == 0
	s.setSurplusLocked()
	s.emu.Unlock()
	if !last {
		return
	}
	if s.monitor {
		close(s.watchStop)
	} else {
		close(s.done)
	}
}

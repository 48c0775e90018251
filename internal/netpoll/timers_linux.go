//go:build linux

package netpoll

import "time"

// Each loop keeps its handles' timers in a min-heap ordered by due time and
// one time.Timer for the earliest, so a connection's deadlines cost two
// words in its handle instead of a runtime timer each. A due timer runs
// the Handler on the loop like a readiness report.

type timerHeap []*Handle

func (h timerHeap) less(i, j int) bool { return h[i].when < h[j].when }

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].tidx = int32(i)
	h[j].tidx = int32(j)
}

func (h timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h timerHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h.swap(i, m)
		i = m
	}
}

// SetTimer makes the Handler run on its loop at when (a reading of the
// Poller's clock, Poller.Now), replacing the handle's previous
// timer; 0 stops it. Call it from the Handler.
func (hd *Handle) SetTimer(when int64) {
	l := hd.l
	if when == 0 {
		l.stopTimer(hd)
		return
	}
	hd.when = when
	if i := int(hd.tidx); i >= 0 {
		l.timers.up(i)
		l.timers.down(int(hd.tidx))
	} else {
		hd.tidx = int32(len(l.timers))
		l.timers = append(l.timers, hd)
		l.timers.up(int(hd.tidx))
	}
	l.resetTimer(l.clock.Now())
}

// Timer returns when the handle's timer is due, or 0 when it is not set
// (never set, stopped, or it ran). Call it from the Handler.
func (hd *Handle) Timer() int64 { return hd.when }

// stopTimer removes hd's timer, if set.
func (l *loop) stopTimer(hd *Handle) {
	i := int(hd.tidx)
	if i < 0 {
		return
	}
	last := len(l.timers) - 1
	if i != last {
		l.timers.swap(i, last)
	}
	l.timers[last] = nil
	l.timers = l.timers[:last]
	if i != last {
		l.timers.up(i)
		l.timers.down(i)
	}
	hd.tidx, hd.when = -1, 0
	// The loop's timer may now fire early: runTimers finds nothing due and
	// sets it again.
}

// resetTimer makes the loop's timer due at the earliest handle timer.
func (l *loop) resetTimer(now int64) {
	if len(l.timers) == 0 {
		return // a timer left running finds nothing to do
	}
	next := l.timers[0].when
	if l.timerAt != 0 && l.timerAt <= next {
		return // it fires in time; runTimers sets it for what remains
	}
	l.timerAt = next
	d := time.Duration(max(next-now, 0))
	if l.timer == nil {
		l.timer = time.AfterFunc(d, l.timerFired)
	} else {
		l.timer.Reset(d)
	}
}

// timerFired runs on the timer's goroutine: it wakes the loop.
func (l *loop) timerFired() {
	l.timerDue.Store(true)
	l.mu.Lock()
	if !l.closed {
		l.wakeLocked()
	}
	l.mu.Unlock()
}

// runTimers runs the Handlers whose timers are due, on the loop.
func (l *loop) runTimers() {
	l.timerAt = 0
	now := l.clock.Now()
	for len(l.timers) > 0 && l.timers[0].when <= now {
		hd := l.timers[0]
		l.stopTimer(hd)
		hd.h.Ready()
	}
	l.resetTimer(l.clock.Now())
}

package remote

import (
	"sync"
	"time"
)

// credits is the host's side of the plugin's credit window: how many more
// WebSocket events the plugin takes. Callers that find it empty wait in
// arrival order, and a grant serves them first: a caller never overtakes
// one that waits. (Before this queue, every waiter woke on each grant and
// raced the callers that had just arrived; under a full window a waiter
// could lose for seconds: in the 1000-connection echo through a plugin
// process, p99.9 was 0.5-1 s and the worst message waited 3 s.)
type credits struct {
	mu     sync.Mutex
	avail  int64 // never below zero
	window int64
	grants uint64          // grants so far: the no-progress clock of a waiter
	queue  []chan struct{} // waiters, first come first; each cap 1
}

func newCredits(window uint32) *credits {
	return &credits{avail: int64(window), window: int64(window)}
}

// take takes one credit. When none is free it waits its turn, for as long
// as the plugin keeps granting credits (to anyone) at least once per
// timeout; it reports false when a timeout passed with no grant at all, or
// when dead is closed.
func (c *credits) take(timeout time.Duration, dead <-chan struct{}) bool {
	c.mu.Lock()
	if len(c.queue) == 0 && c.avail > 0 {
		c.avail--
		c.mu.Unlock()
		return true
	}
	turn := make(chan struct{}, 1)
	c.queue = append(c.queue, turn)
	seen := c.grants
	c.mu.Unlock()

	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-turn:
			return true
		case <-dead:
			c.leave(turn) // a credit handed over meanwhile goes with the session
			return false
		case <-t.C:
			c.mu.Lock()
			if c.grants != seen {
				// The plugin progresses: wait on, in turn.
				seen = c.grants
				c.mu.Unlock()
				t.Reset(timeout)
				continue
			}
			left := c.leaveLocked(turn)
			c.mu.Unlock()
			if !left {
				<-turn // served between the timer and the lock
				return true
			}
			return false
		}
	}
}

// grant adds n credits from the plugin and serves the waiters in turn. It
// reports false if that would exceed the window (a protocol error).
func (c *credits) grant(n uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.avail+int64(n) > c.window {
		return false
	}
	c.grants++
	c.avail += int64(n)
	c.serveLocked()
	return true
}

// giveBack returns a credit taken for an event that was not sent.
func (c *credits) giveBack() {
	c.mu.Lock()
	c.avail = min(c.avail+1, c.window)
	c.serveLocked()
	c.mu.Unlock()
}

// available returns the free credits (tests).
func (c *credits) available() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.avail
}

func (c *credits) serveLocked() {
	n := 0
	for n < len(c.queue) && c.avail > 0 {
		c.avail--
		c.queue[n] <- struct{}{}
		c.queue[n] = nil
		n++
	}
	if n > 0 {
		c.queue = c.queue[n:]
		if len(c.queue) == 0 {
			c.queue = nil // let a long backlog's array go
		}
	}
}

func (c *credits) leave(turn chan struct{}) {
	c.mu.Lock()
	c.leaveLocked(turn)
	c.mu.Unlock()
}

// leaveLocked takes turn out of the queue; false if it was served already.
func (c *credits) leaveLocked(turn chan struct{}) bool {
	for i, w := range c.queue {
		if w == turn {
			c.queue = append(c.queue[:i], c.queue[i+1:]...)
			return true
		}
	}
	return false
}

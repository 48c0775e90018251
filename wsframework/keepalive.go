package wsframework

import (
	"time"
)

// armPing schedules a reader goroutine's keepalive pings (a poll reader's
// are due on its loop's timer).
func (c *conn) armPing() {
	if c.srv.cfg.PingInterval <= 0 || c.poll != nil {
		return
	}
	// Under mu: the timer may fire before AfterFunc returns, and sendPing
	// reads c.ping.
	c.mu.Lock()
	c.ping = time.AfterFunc(c.srv.cfg.PingInterval, func() { c.sendPing() })
	c.mu.Unlock()
}

// sendPing queues a keepalive ping; false once the connection is closing.
func (c *conn) sendPing() bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	c.trimQueueLocked()
	start := c.controlLocked(opPing, nil)
	if c.ping != nil {
		c.ping.Reset(c.srv.cfg.PingInterval) // under mu: never re-armed after teardown's Stop
	}
	c.mu.Unlock()
	if start {
		go c.writeFn()
	}
	return true
}

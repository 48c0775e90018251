package wsframework

import (
	"context"
	"net"
	"time"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk/bufpool"
)

// outItem is one queued outgoing frame: opcode and payload (owned).
type outItem struct {
	// op is the frame's opcode, with rsv1 set when buf holds a compressed
	// message.
	op byte
	// deflate: the writer compresses buf with the connection's own
	// compressor before writing it (context takeover, compress.go).
	deflate bool
	buf     *bufpool.Buffer
}

// writeQueue is a connection's queue of outgoing frames, behind a pointer
// so that a connection that never wrote holds none of it.
type writeQueue struct {
	q     []outItem // queued, in order
	spare []outItem // the writer's last batch, emptied: the next q
}

// maxIdleQueue is the capacity a drained queue keeps for the next burst; a
// larger one (after a burst) is dropped at the next keepalive ping that
// finds the writer idle, so an idle connection's memory stays bounded
// without a busy one regrowing its queue after every burst.
const maxIdleQueue = 64

// trimQueueLocked drops a drained queue's capacity beyond maxIdleQueue.
// c.mu must be held.
func (c *conn) trimQueueLocked() {
	wq := c.wq
	if wq == nil || c.writing || len(wq.q) > 0 {
		return
	}
	if cap(wq.q) > maxIdleQueue {
		wq.q = nil
	}
	if cap(wq.spare) > maxIdleQueue {
		wq.spare = nil
	}
}

// queueLocked returns the write queue, made on first use. c.mu must be
// held.
func (c *conn) queueLocked() *writeQueue {
	if c.wq == nil {
		c.wq = new(writeQueue)
	}
	return c.wq
}

// queuedLocked returns how many frames are queued. c.mu must be held.
func (c *conn) queuedLocked() int {
	if c.wq == nil {
		return 0
	}
	return len(c.wq.q)
}

// Write implements the runtime's ConnHost: queue one data message, never blocking.
//
// A message larger than WriteQueueBytes on its own is refused with
// sdk.ErrTooBig and the connection stays open: no queue could ever hold
// it, however fast the peer reads, so it says nothing about the peer. One
// that fits on its own but not behind what is queued (or one more than
// WriteQueueMessages) means the peer is not taking what it is sent: the
// connection is closed with 1008 (slow consumer) and the queue dropped.
//
// When the connection negotiated permessage-deflate, a message of
// CompressionConfig.Threshold bytes or more is compressed: here, before it
// is queued, or by the connection's writer with context takeover.
func (c *conn) Write(typ core.MessageType, b *bufpool.Buffer) error {
	return c.write(typ, b, true)
}

// WriteUncompressed is Write for a message that must go uncompressed
// whatever was negotiated: already compressed data, or a secret next to
// data the peer controls in one compressed message (the CRIME and BREACH
// attacks read such secrets from compressed sizes).
func (c *conn) WriteUncompressed(typ core.MessageType, b *bufpool.Buffer) error {
	return c.write(typ, b, false)
}

func (c *conn) write(typ core.MessageType, b *bufpool.Buffer, compress bool) error {
	if typ != core.Text && typ != core.Binary {
		b.Release()
		return core.ErrMessageType
	}
	raw := len(b.B)
	op, deflate := byte(typ), false
	if compress && c.compresses(raw) {
		if c.pmd == pmdOwn {
			deflate = true
		} else if z := c.srv.deflater.compress(b.B); z != nil {
			c.srv.metrics.compressed(raw, len(z.B))
			b.Release()
			b, op = z, op|rsv1
		}
	}
	return c.enqueue(op, deflate, b, int64(raw))
}

// enqueue queues one data frame (op may have rsv1 set) whose message had
// raw bytes before compression; it takes b. See Write.
func (c *conn) enqueue(op byte, deflate bool, b *bufpool.Buffer, raw int64) error {
	if raw > c.srv.cfg.WriteQueueBytes {
		b.Release()
		c.srv.stats.sendsTooBig.Add(1)
		return core.ErrTooBig
	}
	n := int64(len(b.B))
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		b.Release()
		return core.ErrClosed
	}
	if c.queuedLocked() >= c.srv.cfg.WriteQueueMessages || c.qBytes+n > c.srv.cfg.WriteQueueBytes {
		c.mu.Unlock()
		b.Release()
		c.closeWith(ReasonSlowConsumer, core.ClosePolicyViolation, "slow consumer")
		return core.ErrSlowConsumer
	}
	wq := c.queueLocked()
	wq.q = append(wq.q, outItem{op: op, deflate: deflate, buf: b})
	c.qBytes += n
	start := c.startWriterLocked()
	c.mu.Unlock()
	if start {
		go c.writeFn()
	}
	return nil
}

// startWriterLocked marks a writer as running and reports whether the caller
// must start it. c.mu must be held.
func (c *conn) startWriterLocked() bool {
	if c.writing || c.dead {
		return false
	}
	c.writing = true
	return true
}

// control queues a control frame; it bypasses the queue bounds.
func (c *conn) controlLocked(op byte, payload []byte) bool {
	if c.dead {
		return false
	}
	b := c.srv.cfg.Buffers.Get(len(payload))
	copy(b.B, payload)
	wq := c.queueLocked()
	wq.q = append(wq.q, outItem{op: op, buf: b})
	c.qBytes += int64(len(payload))
	return c.startWriterLocked()
}

// writeSocket writes all of v (consuming it) before deadline.
func (c *conn) writeSocket(v *net.Buffers, deadline time.Time) error {
	if c.nc == nil {
		_, err := c.poll.hd.Writev(v, deadline)
		return err
	}
	_ = c.nc.SetWriteDeadline(deadline)
	_, err := v.WriteTo(c.nc)
	return err
}

// dropQueueLocked releases every queued, unwritten item.
func (c *conn) dropQueueLocked() {
	if wq := c.wq; wq != nil {
		for i := range wq.q {
			wq.q[i].buf.Release()
			wq.q[i] = outItem{}
			c.srv.stats.dropped.Add(1)
		}
		wq.q = wq.q[:0]
	}
	c.qBytes = 0
	c.wakeReaderLocked()
}

// outboundHighLocked reports whether the write queue is over half of either
// bound. The reader then stops reading until the writer catches up, so a
// client that sends faster than it reads its answers (an echo pipeline) is
// slowed by TCP backpressure instead of being closed as a slow consumer.
func (c *conn) outboundHighLocked() bool {
	cfg := &c.srv.cfg
	return c.queuedLocked() > cfg.WriteQueueMessages/2 || c.qBytes > cfg.WriteQueueBytes/2
}

// waitOutbound blocks the reader while the write queue is high.
func (c *conn) waitOutbound(ctx context.Context) {
	c.mu.Lock()
	for !c.closing && c.outboundHighLocked() {
		if c.outWait == nil {
			c.outWait = make(chan struct{}, 1)
		}
		c.readerWaiting = true
		ch := c.outWait
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			c.mu.Lock()
			c.readerWaiting = false
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
	}
	c.readerWaiting = false
	c.mu.Unlock()
}

// wakeReaderLocked wakes a reader paused by waitOutbound (or a poll reader
// paused for the same reason).
func (c *conn) wakeReaderLocked() {
	if c.readerWaiting && c.poll != nil {
		c.readerWaiting = false
		c.poll.hd.Trigger()
		return
	}
	if c.readerWaiting {
		select {
		case c.outWait <- struct{}{}:
		default:
		}
	}
}

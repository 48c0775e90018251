package wsframework

import (
	"encoding/binary"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"unicode/utf8"

	"github.com/strandws/strand/internal/core"
)

// maxHeader is the largest server frame header (unmasked, 64-bit length).
const maxHeader = 10

// writeBatch is the scratch space of one writer run, pooled per Server.
type writeBatch struct {
	hdrs []byte
	vec  net.Buffers
	out  net.Buffers // what WriteTo consumes; a field so that it does not escape per write
}

// putHeader writes a server (unmasked) frame header for op (an opcode,
// with rsv1 set for a compressed message) and n payload bytes into dst and
// returns its length.
func putHeader(dst []byte, op byte, n int) int {
	dst[0] = 0x80 | op
	switch {
	case n <= 125:
		dst[1] = byte(n)
		return 2
	case n <= 0xffff:
		dst[1] = 126
		binary.BigEndian.PutUint16(dst[2:], uint16(n))
		return 4
	default:
		dst[1] = 127
		binary.BigEndian.PutUint64(dst[2:], uint64(n))
		return 10
	}
}

// appendFrame appends a whole server frame to dst.
func appendFrame(dst []byte, op byte, payload []byte) []byte {
	var h [maxHeader]byte
	n := putHeader(h[:], op, len(payload))
	dst = append(dst, h[:n]...)
	return append(dst, payload...)
}

// closePayload encodes a close frame body.
func closePayload(code core.CloseCode, reason string) []byte {
	reason = truncateReason(reason)
	p := make([]byte, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	copy(p[2:], reason)
	return p
}

// truncateReason cuts a close reason to the 123 bytes a close frame holds,
// on a rune boundary so that valid UTF-8 stays valid.
func truncateReason(s string) string {
	const max = maxControlPayload - 2
	s = strings.ToValidUTF8(s, "") // a peer may fail a close whose reason is not UTF-8 (1007)
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// writeLoop drains the write queue: everything queued at a time goes out in
// one vectored write. It runs while the queue is non-empty and exits when it
// is empty, so an idle connection holds no writer goroutine.
func (c *conn) writeLoop() {
	s := c.srv
	wb := s.batches.Get().(*writeBatch)
	defer func() {
		if r := recover(); r != nil {
			c.writerPanic(r) // wb is dropped: it may be half-updated
			return
		}
		s.batches.Put(wb)
	}()
	for {
		c.mu.Lock()
		wq := c.wq
		if c.queuedLocked() == 0 || c.dead && c.writeErr {
			c.writing = false
			if c.idle != nil {
				close(c.idle)
				c.idle = nil
			}
			c.mu.Unlock()
			return
		}
		items := wq.q
		wq.q, wq.spare = wq.spare[:0], nil
		c.qBytes = 0
		c.wakeReaderLocked()
		c.mu.Unlock()

		need := len(items) * maxHeader
		if cap(wb.hdrs) < need {
			wb.hdrs = make([]byte, need)
		}
		hdrs := wb.hdrs[:need]
		vec := wb.vec[:0]
		off := 0
		data, compressed, dataBytes := 0, 0, 0
		for i := range items {
			it := &items[i]
			if it.deflate {
				c.deflateOwn(it)
			}
			n := putHeader(hdrs[off:], it.op, len(it.buf.B))
			vec = append(vec, hdrs[off:off+n])
			if len(it.buf.B) > 0 {
				vec = append(vec, it.buf.B)
			}
			off += n
			if op := it.op &^ rsv1; op == opText || op == opBinary {
				data++
				dataBytes += len(it.buf.B)
				if it.op&rsv1 != 0 {
					compressed++
				}
			}
		}
		wb.vec = vec[:0]
		wb.out = vec
		if h := s.hooks.write; h != nil {
			h(c, vec)
		}
		err := c.writeSocket(&wb.out, s.clock.Deadline(s.cfg.WriteTimeout))
		wb.out = nil
		for i := range items {
			items[i].buf.Release()
			items[i] = outItem{}
		}
		clear(wb.vec[:cap(wb.vec)])
		c.mu.Lock()
		if wq := c.wq; wq != nil && wq.spare == nil {
			wq.spare = items[:0] // (teardown may have dropped the queue meanwhile)
		}
		if err != nil {
			c.writeErr = true
			c.closing = true
			if !c.localSet {
				if isTimeout(err) {
					// The peer stopped reading for WriteTimeout: a slow
					// consumer, though no close frame can reach it.
					c.reason, c.localSet, c.localCode, c.localText = ReasonSlowConsumer, true, core.ClosePolicyViolation, "slow consumer"
				} else {
					c.reason, c.localSet, c.localCode = ReasonWriteFailed, true, core.CloseAbnormal
				}
			}
			c.dropQueueLocked()
		}
		c.mu.Unlock()
		if err != nil {
			// Unblock the reader: the connection is unusable.
			c.closeSocket()
			c.kickReader()
			continue
		}
		s.metrics.sent(dataBytes)
		s.stats.messagesOut.Add(uint64(data))
		if compressed > 0 {
			s.stats.messagesOutZ.Add(uint64(compressed))
		}
	}
}

// writerPanic ends a connection whose writer panicked: its socket is
// closed (no close frame can be trusted to go out), the panic is logged
// with its stack and counted, and OnClose reports 1011. No other
// connection is affected.
func (c *conn) writerPanic(r any) {
	s := c.srv
	s.stats.panics.Add(1)
	c.logConn(slog.LevelError, "strand: panic while writing a connection; closing its socket (OnClose reports 1011)",
		"panic", r, "stack", string(debug.Stack()))
	c.mu.Lock()
	c.writing = false
	if c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
	c.writeErr = true
	c.closing = true
	if !c.localSet {
		c.reason, c.localSet, c.localCode, c.localText = ReasonInternal, true, core.CloseInternalError, "internal error"
	}
	c.dropQueueLocked()
	c.mu.Unlock()
	c.closeSocket()
	c.kickReader()
}

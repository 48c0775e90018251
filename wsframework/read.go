package wsframework

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/bufpool"
)

// WebSocket opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

const maxControlPayload = 125

// maxClientHeader is the largest client frame header (masked, 64-bit length).
const maxClientHeader = 14

// frameHeader is a parsed frame header.
type frameHeader struct {
	length int64
	mask   [4]byte
	fin    bool
	rsv    byte
	op     byte
	masked bool
}

// errProtocol carries a protocol violation's description.
type errProtocol string

func (e errProtocol) Error() string { return string(e) }

// headerLen returns the size of a client frame header whose second byte is
// b1.
func headerLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// parseHeader parses a whole frame header: len(p) is headerLen(p[1]).
func parseHeader(p []byte) (h frameHeader, err error) {
	b0, b1 := p[0], p[1]
	h.fin = b0&0x80 != 0
	h.rsv = (b0 >> 4) & 0x7
	h.op = b0 & 0x0f
	h.masked = b1&0x80 != 0
	switch l := b1 & 0x7f; l {
	case 126:
		h.length = int64(binary.BigEndian.Uint16(p[2:4]))
	case 127:
		u := binary.BigEndian.Uint64(p[2:10])
		if u>>63 != 0 {
			return h, errProtocol("64-bit length with the most significant bit set")
		}
		h.length = int64(u)
	default:
		h.length = int64(l)
	}
	if h.masked {
		copy(h.mask[:], p[len(p)-4:])
	}
	return h, nil
}

// readHeader parses one frame header from the buffered reader without
// allocating.
func (c *conn) readHeader() (h frameHeader, err error) {
	p, err := c.br.Peek(2)
	if err != nil {
		return h, err
	}
	n := headerLen(p[1])
	if n > 2 {
		if p, err = c.br.Peek(n); err != nil {
			return h, err
		}
	}
	if h, err = parseHeader(p[:n]); err != nil {
		return h, err
	}
	_, err = c.br.Discard(n)
	return h, err
}

func isControl(op byte) bool { return op&0x8 != 0 }

// checkFrame applies the frame rules to a header; inMessage reports that a
// fragmented message of msgLen bytes is being reassembled. done reports a
// violation, which closed the connection with res.
func (c *conn) checkFrame(h *frameHeader, inMessage bool, msgLen int64) (res readResult, done bool) {
	if h.rsv != 0 {
		return c.fail(ReasonProtocol, "reserved bits set without a negotiated extension"), true
	}
	if !h.masked {
		return c.fail(ReasonProtocol, "client frame is not masked"), true
	}
	switch h.op {
	case opClose, opPing, opPong:
		if !h.fin {
			return c.fail(ReasonProtocol, "fragmented control frame"), true
		}
		if h.length > maxControlPayload {
			return c.fail(ReasonProtocol, "control frame payload over 125 bytes"), true
		}
		return readResult{}, false
	case opText, opBinary:
		if inMessage {
			return c.fail(ReasonProtocol, "new data frame inside a fragmented message"), true
		}
	case opContinuation:
		if !inMessage {
			return c.fail(ReasonProtocol, "continuation frame without a message to continue"), true
		}
	default:
		return c.fail(ReasonProtocol, "reserved opcode"), true
	}
	// Compared against what is left of the budget: h.length may be as large
	// as 2^63-1, and h.length+msgLen would overflow.
	if h.length > c.srv.cfg.MaxMessageBytes-msgLen {
		return c.fail(ReasonTooBig, "message too big"), true
	}
	return readResult{}, false
}

// dataSpace makes room for n payload bytes of a data frame at the end of
// the message being reassembled (a new buffer when msg is nil) and returns
// the message and the payload's offset in it.
func (c *conn) dataSpace(msg *bufpool.Buffer, n int64) (*bufpool.Buffer, int) {
	bufs := c.srv.cfg.Buffers
	if msg == nil {
		return bufs.Get(int(n)), 0
	}
	start := len(msg.B)
	total := start + int(n)
	msg = bufs.Grow(msg, total)
	msg.B = msg.B[:total]
	return msg, start
}

// completeMessage checks a reassembled message and takes ownership of msg.
// deliver reports that it is to be handed to the runtime (it was counted);
// otherwise msg was released: discarded after the server's close frame, or
// refused (done, with res).
func (c *conn) completeMessage(typ byte, msg *bufpool.Buffer) (deliver bool, res readResult, done bool) {
	if c.isClosing() {
		// Data after the server sent its close frame is discarded.
		msg.Release()
		return false, readResult{}, false
	}
	if typ == opText && !utf8.Valid(msg.B) {
		msg.Release()
		return false, c.fail(ReasonBadUTF8, "invalid UTF-8 in text message"), true
	}
	c.srv.stats.messagesIn.Add(1)
	return true, readResult{}, false
}

// shutdownResult ends a read loop whose runtime refused a message: the
// server is being torn down under it.
var shutdownResult = readResult{reason: ReasonShutdown, code: sdk.CloseGoingAway, text: "server shutting down"}

// readPayload reads n payload bytes into dst and unmasks them.
func (c *conn) readPayload(h *frameHeader, dst []byte) error {
	if len(dst) == 0 {
		return nil
	}
	if c.br.Buffered() < len(dst) {
		// The rest of the frame must arrive within ReadTimeout.
		c.setReadDeadline(time.Now().Add(c.srv.cfg.ReadTimeout))
		c.deadlineIdle = false
	}
	if _, err := io.ReadFull(c.br, dst); err != nil {
		return err
	}
	ws.Cipher(dst, h.mask, 0)
	return nil
}

// readLoop reads frames until the connection ends and submits each complete
// message to the runtime in wire order (ReaderGoroutine).
func (c *conn) readLoop(ctx context.Context) readResult {
	var (
		msg     *bufpool.Buffer // message being reassembled from fragments
		msgType byte
	)
	defer func() {
		if msg != nil {
			msg.Release()
		}
	}()
	for {
		c.waitOutbound(ctx)
		c.armIdleDeadline()
		h, err := c.readHeader()
		if err != nil {
			return c.readError(err)
		}
		var msgLen int64
		if msg != nil {
			msgLen = int64(len(msg.B))
		}
		if res, done := c.checkFrame(&h, msg != nil, msgLen); done {
			return res
		}
		if isControl(h.op) {
			var payload [maxControlPayload]byte
			p := payload[:h.length]
			if err := c.readPayload(&h, p); err != nil {
				return c.readError(err)
			}
			if res, done := c.control(h.op, p); done {
				return res
			}
			continue
		}

		// Data frame.
		if msg == nil {
			msgType = h.op
		}
		var start int
		msg, start = c.dataSpace(msg, h.length)
		if err := c.readPayload(&h, msg.B[start:]); err != nil {
			return c.readError(err)
		}
		if !h.fin {
			continue
		}
		b := msg
		msg = nil
		deliver, res, done := c.completeMessage(msgType, b)
		if done {
			return res
		}
		if !deliver {
			continue
		}
		if err := c.rt.Message(ctx, c.sc, sdk.MessageType(msgType), b); err != nil {
			return shutdownResult
		}
	}
}

// armIdleDeadline sets the idle read deadline before waiting for a header.
// It is refreshed at most every eighth of IdleTimeout to keep a syscall-free
// hot path.
func (c *conn) armIdleDeadline() {
	idle := c.srv.cfg.IdleTimeout
	if idle <= 0 {
		if !c.deadlineIdle {
			c.setReadDeadline(time.Time{})
			c.deadlineIdle = true
		}
		return
	}
	if c.br.Buffered() >= maxClientHeader && c.deadlineIdle {
		// The next header is buffered whole: reading it needs no deadline
		// (readPayload sets its own). With less buffered, the read must
		// not run on a deadline that went stale while the reader was
		// paused (blocked in Message for longer than IdleTimeout).
		return
	}
	now := time.Now()
	if c.deadlineIdle && now.UnixNano()-c.deadlineSet < int64(idle/8) {
		return
	}
	c.setReadDeadline(now.Add(idle))
	c.deadlineSet = now.UnixNano()
	c.deadlineIdle = true
}

func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// control handles a control frame; done reports that the read loop ends.
func (c *conn) control(op byte, p []byte) (readResult, bool) {
	switch op {
	case opPing:
		// A pong counts against the write queue bounds like a message: a
		// client that pings and never reads is a slow consumer, not a
		// reason to queue pongs without end.
		cfg := &c.srv.cfg
		c.mu.Lock()
		start, full := false, false
		if !c.closing {
			full = c.queuedLocked() >= cfg.WriteQueueMessages || c.qBytes+int64(len(p)) > cfg.WriteQueueBytes
			if !full {
				start = c.controlLocked(opPong, p)
			}
		}
		c.mu.Unlock()
		if full {
			c.closeWith(ReasonSlowConsumer, sdk.ClosePolicyViolation, "slow consumer")
		}
		if start {
			go c.writeLoop()
		}
		return readResult{}, false
	case opPong:
		return readResult{}, false
	}
	// Close frame.
	code, text := sdk.CloseNoStatus, ""
	switch {
	case len(p) == 1:
		return c.fail(ReasonProtocol, "close frame with a 1-byte payload"), true
	case len(p) >= 2:
		code = sdk.CloseCode(binary.BigEndian.Uint16(p))
		if !code.ValidOnWire() {
			return c.fail(ReasonProtocol, "invalid close code"), true
		}
		if !utf8.Valid(p[2:]) {
			return c.fail(ReasonBadUTF8, "invalid UTF-8 in close reason"), true
		}
		text = string(p[2:])
	}
	c.mu.Lock()
	start := false
	if !c.closing {
		// Answer the peer's close with the same code.
		c.closing = true
		reply := closePayload(code, "")
		if code == sdk.CloseNoStatus {
			reply = nil
		}
		start = c.controlLocked(opClose, reply)
	}
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
	return readResult{reason: ReasonPeer, code: code, text: text, peerClosed: true}, true
}

// fail closes the connection for a violation found by the reader: the close
// frame is sent without waiting for the peer's reply.
func (c *conn) fail(reason CloseReason, text string) readResult {
	code := reason.Code()
	c.closeWith(reason, code, text)
	return readResult{reason: reason, code: code, text: text}
}

// readError maps a read error to a result.
func (c *conn) readError(err error) readResult {
	var pe errProtocol
	switch {
	case errors.As(err, &pe):
		return c.fail(ReasonProtocol, string(pe))
	case errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err):
		if c.isClosing() {
			// The peer did not answer our close in time.
			return readResult{reason: ReasonAbnormal, code: sdk.CloseAbnormal}
		}
		if !c.deadlineIdle {
			return c.fail(ReasonReadTimeout, "frame read timeout")
		}
		return c.fail(ReasonIdle, "idle timeout")
	}
	return readResult{reason: ReasonAbnormal, code: sdk.CloseAbnormal}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

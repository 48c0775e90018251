package wsframework

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"time"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk/bufpool"
	"github.com/strandws/strand/wsframework/internal/wsproto"
)

// WebSocket opcodes.
const (
	opContinuation = wsproto.OpContinuation
	opText         = wsproto.OpText
	opBinary       = wsproto.OpBinary
	opClose        = wsproto.OpClose
	opPing         = wsproto.OpPing
	opPong         = wsproto.OpPong
)

const maxControlPayload = wsproto.MaxControlPayload

// Both readers only move bytes: every framing rule (header, masking,
// fragmentation, control frames, size and fragment budgets, UTF-8 as it
// arrives, close bodies) lives in the connection's wsproto.Parser. What a
// reader does with the parser's events is shared below: onEvent for control
// frames, the peer's close and violations, acceptMessage for messages.

// directMin is the payload still expected of a frame from which a reader
// reads straight into the message buffer instead of through its read
// buffer (a smaller rest is read with whatever follows it).
const directMin = 4 << 10

// readHook is what readEvent calls before a read that may block.
type readHook interface {
	beforeRead(ps *wsproto.Parser)
}

// readEvent reads from br until the parser yields an event (the goroutine
// reader's way of feeding it). hook runs before every read that may block.
func readEvent(br *bufio.Reader, ps *wsproto.Parser, hook readHook) (*wsproto.Event, error) {
	for {
		if br.Buffered() == 0 {
			hook.beforeRead(ps)
			if ps.DirectRemaining() >= directMin {
				n, err := br.Read(ps.Direct())
				if n > 0 {
					if ev := ps.Wrote(n); ev.Kind != wsproto.None {
						return ev, nil
					}
				}
				if err != nil {
					return nil, err
				}
				continue
			}
			if _, err := br.Peek(1); err != nil {
				return nil, err
			}
		}
		b, _ := br.Peek(br.Buffered())
		n, ev := ps.Feed(b)
		_, _ = br.Discard(n)
		if ev.Kind != wsproto.None {
			return ev, nil
		}
	}
}

// readLoop reads frames until the connection ends and submits each complete
// message to the runtime in wire order (ReaderGoroutine).
func (c *conn) readLoop(ctx context.Context) (res readResult) {
	ps := c.takeParser()
	defer func() {
		if r := recover(); r != nil {
			res = c.readerPanic(r)
			c.dropParser(true) // the panic may have left it half-updated
			return
		}
		c.dropParser(false)
	}()
	for {
		if ps.AtBoundary() {
			c.waitOutbound(ctx)
			if res, done := c.rateWait(ctx); done {
				return res
			}
		}
		ev, err := readEvent(c.br, ps, c)
		if err != nil {
			return c.readError(err)
		}
		if h := c.srv.hooks.event; h != nil {
			h(c, ev)
		}
		if ev.Kind != wsproto.Message {
			// A control frame inside a fragmented message: note the
			// message's start before answering it (beforeRead would note
			// it only at the next read, after the peer saw the answer).
			c.trackMessage(ps, c.srv.clock.Now())
			if res, done := c.onEvent(ev); done {
				return res
			}
			continue
		}
		res, deliver, done := c.acceptMessage(ev)
		if done {
			return res
		}
		if !deliver {
			continue
		}
		if err := c.rt.Message(ctx, c.sc, core.MessageType(ev.Op), ev.Msg); err != nil {
			return shutdownResult
		}
	}
}

// beforeRead implements readHook for the goroutine reader: it sets the read
// deadline the next read runs under: IdleTimeout between frames, ReadTimeout
// from the start of a frame, and no later than MessageTimeout from the first
// frame of a fragmented message. To keep the hot path free of syscalls, a
// deadline is only moved later when it gains more than an eighth of
// IdleTimeout.
func (c *conn) beforeRead(ps *wsproto.Parser) {
	c.flushReceived()
	cfg := &c.srv.cfg
	now := c.srv.clock.Now()
	c.trackMessage(ps, now)
	d := c.rd
	if d == nil {
		d = new(readDeadlines)
		c.rd = d
	}
	var want int64
	if ps.AtBoundary() {
		d.idle = true
		if cfg.IdleTimeout > 0 {
			want = now + int64(cfg.IdleTimeout)
		}
	} else {
		if f := ps.Frame(); d.idle || f != d.frame {
			// A frame started: its rest must arrive within ReadTimeout.
			d.frameAt, d.frame = now+int64(cfg.ReadTimeout), f
			d.idle = false
		}
		want = d.frameAt
	}
	if c.msgStart != 0 {
		if at := c.msgStart + int64(cfg.MessageTimeout); want == 0 || at < want {
			want = at
		}
	}
	have := d.at
	switch {
	case want == have:
	case want == 0, have == 0, want < have, want-have > int64(cfg.IdleTimeout/8):
		c.setReadDeadline(want)
	}
}

// trackMessage notes when the parser started assembling a fragmented
// message (msgStart, 0 outside one).
func (c *conn) trackMessage(ps *wsproto.Parser, now int64) {
	switch {
	case !ps.InMessage():
		c.msgStart = 0
	case c.msgStart == 0 || c.msgID != ps.MessageID():
		c.msgStart, c.msgID = now, ps.MessageID()
	}
}

// onEvent handles a parser event other than a message: done reports that
// the reader ends with res.
func (c *conn) onEvent(ev *wsproto.Event) (res readResult, done bool) {
	switch ev.Kind {
	case wsproto.Ping:
		c.pong(ev.Payload)
		return readResult{}, false
	case wsproto.Pong:
		return readResult{}, false
	case wsproto.Close:
		// The reply goes out in teardown, after the handlers of what was
		// read before it.
		return readResult{reason: ReasonPeer, code: ev.Code, text: ev.Reason, peerClosed: true}, true
	case wsproto.Violation:
		return c.fail(violationReason(ev), ev.Reason), true
	}
	panic(fmt.Sprintf("wsframework: unexpected parser event %v", ev.Kind))
}

// violationReason maps a parser violation to its reason.
func violationReason(ev *wsproto.Event) CloseReason {
	switch ev.Code {
	case core.CloseMessageTooBig:
		return ReasonTooBig
	case core.CloseInvalidPayload:
		if ev.Reason == wsproto.BadDeflate {
			return ReasonBadDeflate
		}
		return ReasonBadUTF8
	case core.ClosePolicyViolation:
		return ReasonMessageLimit
	}
	return ReasonProtocol
}

// pong answers a ping. A pong counts against the write queue bounds like a
// message: a client that pings and never reads is a slow consumer, not a
// reason to queue pongs without end.
func (c *conn) pong(p []byte) {
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
		c.closeWith(ReasonSlowConsumer, core.ClosePolicyViolation, "slow consumer")
	}
	if start {
		go c.writeFn()
	}
}

// acceptMessage decides what becomes of a complete message (the reader
// owns ev.Msg). deliver reports that it is to be handed to the runtime (it
// was counted); otherwise it was released: discarded after the server's
// close frame, or refused (done, with res).
func (c *conn) acceptMessage(ev *wsproto.Event) (res readResult, deliver, done bool) {
	if c.isClosing() {
		// Data after the server sent its close frame is discarded.
		ev.Msg.Release()
		return readResult{}, false, false
	}
	if c.srv.cfg.MessageRate > 0 && !c.takeToken() && c.srv.cfg.MessageRateClose {
		ev.Msg.Release()
		return c.fail(ReasonMessageLimit, "message rate exceeded"), false, true
	}
	c.srv.stats.messagesIn.Add(1)
	c.countReceived(len(ev.Msg.B))
	if ev.Wire > 0 {
		c.srv.metrics.decompressed(ev.Wire, len(ev.Msg.B))
	}
	return readResult{}, true, false
}

// rateState is a connection's message token bucket (Config.MessageRate),
// made by its first message.
type rateState struct {
	tokens float64
	last   int64 // clock reading of the last refill
}

// takeToken takes a token for a message; false when there was none (the
// bucket is then in debt until rateDelay has passed).
func (c *conn) takeToken() bool {
	cfg := &c.srv.cfg
	now := c.srv.clock.Now()
	r := c.rate
	if r == nil {
		r = &rateState{tokens: float64(cfg.MessageBurst), last: now}
		c.rate = r
	}
	r.tokens = min(float64(cfg.MessageBurst), r.tokens+float64(now-r.last)/1e9*cfg.MessageRate)
	r.last = now
	r.tokens--
	return r.tokens >= 0
}

// rateDelay returns how long reading must pause before the next message
// is within the rate (0: none).
func (c *conn) rateDelay(now int64) time.Duration {
	r := c.rate
	if r == nil || c.srv.cfg.MessageRate <= 0 {
		return 0
	}
	have := r.tokens + float64(now-r.last)/1e9*c.srv.cfg.MessageRate
	if have >= 0 {
		return 0
	}
	return time.Duration(-have / c.srv.cfg.MessageRate * 1e9)
}

// rateWait pauses a reader goroutine while its connection is over its
// message rate.
func (c *conn) rateWait(ctx context.Context) (readResult, bool) {
	d := c.rateDelay(c.srv.clock.Now())
	if d <= 0 {
		return readResult{}, false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return readResult{}, false
	case <-ctx.Done():
		return shutdownResult, true
	}
}

// abnormalResult ends a read loop whose socket failed or whose peer did
// not answer a close in time: 1006, no close frame.
var abnormalResult = readResult{reason: ReasonAbnormal, code: core.CloseAbnormal}

// shutdownResult ends a read loop whose runtime refused a message: the
// server is being torn down under it.
var shutdownResult = readResult{reason: ReasonShutdown, code: core.CloseGoingAway, text: "server shutting down"}

func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// fail ends reading for a violation found by the reader. The close frame
// is sent by teardown, after the handlers of the messages read before the
// violation ran (what they send goes out first).
func (c *conn) fail(reason CloseReason, text string) readResult {
	return readResult{reason: reason, code: reason.code(), text: text, violation: true}
}

// readerPanic turns a panic in a reader (parsing, or handing a message
// over) into the connection's end with 1011: logged with its stack and
// counted; no other connection is affected.
func (c *conn) readerPanic(r any) readResult {
	c.srv.stats.panics.Add(1)
	c.logConn(slog.LevelError, "strand: panic while reading a connection; closing it with 1011",
		"panic", r, "stack", string(debug.Stack()))
	return readResult{reason: ReasonInternal, code: core.CloseInternalError, text: "internal error", violation: true}
}

// readError maps a read error to a result (the goroutine reader).
func (c *conn) readError(err error) readResult {
	if errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err) {
		now := c.srv.clock.Now()
		switch {
		case c.isClosing():
			// The peer did not answer our close in time.
			return abnormalResult
		case c.msgStart != 0 && now >= c.msgStart+int64(c.srv.cfg.MessageTimeout):
			return c.fail(ReasonMessageLimit, "message assembly timeout")
		case c.rd != nil && !c.rd.idle:
			return c.fail(ReasonReadTimeout, "frame read timeout")
		}
		return c.fail(ReasonIdle, "idle timeout")
	}
	return abnormalResult
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// releaseParser releases ps's buffers after a panic, ignoring a second
// panic from state the first left half-updated.
func releaseParser(ps *wsproto.Parser) {
	defer func() { _ = recover() }()
	ps.Release()
}

// releaseAll releases the buffers in bs that are set, ignoring a panic of
// a buffer already released (used after a panic left state half-updated).
func releaseAll(bs ...**bufpool.Buffer) {
	for _, b := range bs {
		if *b == nil {
			continue
		}
		func() {
			defer func() { _ = recover() }()
			(*b).Release()
		}()
		*b = nil
	}
}

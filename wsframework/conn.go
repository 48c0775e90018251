package wsframework

import (
	"bufio"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk/bufpool"
	"github.com/strandws/strand/wsframework/internal/wsproto"
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

// conn is one WebSocket connection on the host side. Its reader owns its
// lifetime: a goroutine of its own (serve, ReaderGoroutine), or its poll
// loop (poll set, ReaderPoll; read_poll.go). Writes are queued by any
// goroutine and drained by at most one writer goroutine at a time, started
// when the queue becomes non-empty and gone when it is empty again.
type conn struct {
	srv *Server
	id  uint64
	// nc is the socket, until a poll reader takes its descriptor over
	// (then nil: poll.hd is the socket). Set before the connection is
	// published; use closeSocket and writeSocket.
	nc net.Conn
	br *bufio.Reader // the upgrade's reader; nil once a poll reader took its bytes
	rt *core.Runtime
	// route is the route it was upgraded on, for its log lines (log.go);
	// set before serve, nil in tests that make connections by hand.
	route *route
	// poll is the poll reader's state, set before the connection is
	// published (nil: a reader goroutine).
	poll *pollState
	sc   *core.Conn

	writeFn       func()                    // c.writeLoop, bound once: `go c.writeFn()` allocates nothing
	closeDeadline atomic.Int64              // clock reading; reads must end by then (0: none)
	ping          *time.Timer               // a reader goroutine's keepalive; set once, under mu (sendPing reads it under mu)
	rooms         atomic.Pointer[connRooms] // the rooms it is in (rooms.go); made by the first join
	pmd           pmdMode                   // permessage-deflate, as negotiated (compress.go); set before the connection is published

	// zw is the connection's own compressor (pmdOwn), made by its first
	// compressed message: used by the writer, given back by teardown once
	// no writer runs.
	zw      *flateWriter
	metrics *routeMetrics // its route's counters (metrics.go); set before serve, nil without metrics

	mu        sync.Mutex  // guards the fields below
	wq        *writeQueue // made by the first queued frame
	qBytes    int64
	idle      chan struct{} // closed by the writer when it stops, if teardown waits
	outWait   chan struct{} // wakes a reader waiting in waitOutbound; made on first wait
	localText string
	localCode core.CloseCode
	reason    CloseReason // why the server closed, when it did (localSet)
	localSet  bool
	writing   bool // a writer goroutine is draining q
	closing   bool // a close frame is queued or the connection is gone: no more data
	dead      bool // torn down: nothing is queued any more
	writeErr  bool // a write failed: the socket is closed
	// readerWaiting: the reader waits in waitOutbound (or a poll reader
	// paused for the write queue).
	readerWaiting bool

	// Reader-owned state.
	parser   wsproto.Parser
	msgStart int64      // clock reading at the first frame of the fragmented message being read (0: none)
	msgID    uint32     // the parser's MessageID that msgStart is for
	rxBytes  uint64     // payload bytes read and not yet published to the metrics (metrics.go)
	rate     *rateState // the message token bucket (Config.MessageRate), made by the first message

	// Reader-owned deadline state (ReaderGoroutine), clock readings.
	deadlineAt   int64  // the read deadline set on the socket (0: none)
	frameAt      int64  // the deadline of the frame being read
	frame        uint32 // the parser's frame that frameAt is for
	deadlineIdle bool   // the read deadline is the idle one
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

func newConn(s *Server, id uint64, nc net.Conn, br *bufio.Reader, rt *core.Runtime) *conn {
	c := &conn{srv: s, id: id, nc: nc, br: br, rt: rt}
	c.writeFn = c.writeLoop
	c.parser.Init(&s.limits)
	return c
}

var _ core.ConnHost = (*conn)(nil)

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

// Close implements the runtime's ConnHost: the plugin's own close, ReasonLocal
// whatever its code (a panic comes through ClosePanic).
func (c *conn) Close(code core.CloseCode, reason string) error {
	if !code.ValidOnWire() {
		code = core.CloseNormal
	}
	c.closeWith(ReasonLocal, code, truncateReason(reason)) // a second close is a no-op
	return nil
}

// ClosePanic implements the runtime's ConnHost: the runtime closes a panicking
// handler's connection with 1011, counted as ReasonPanic.
func (c *conn) ClosePanic(reason string) error {
	c.closeWith(ReasonPanic, core.CloseInternalError, truncateReason(reason)) // a second close is a no-op
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

// closeWith starts a server-side close: queued data is kept (except for a
// slow consumer, whose queue is dropped), a close frame is queued, and the
// reader is given CloseTimeout to see the peer's reply. It reports whether
// this call started the close.
func (c *conn) closeWith(reason CloseReason, code core.CloseCode, text string) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	c.closing = true
	c.reason, c.localSet, c.localCode, c.localText = reason, true, code, text
	if reason == ReasonSlowConsumer {
		c.dropQueueLocked()
	}
	start := c.controlLocked(opClose, closePayload(code, text))
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
	c.setCloseDeadline(c.srv.clock.Now() + int64(c.srv.cfg.CloseTimeout))
	return true
}

// abort ends the connection at once (Shutdown past its deadline).
func (c *conn) abort() {
	c.mu.Lock()
	if !c.localSet {
		c.reason, c.localSet, c.localCode, c.localText = ReasonShutdown, true, core.CloseGoingAway, "server shutting down"
	}
	c.closing = true
	c.mu.Unlock()
	c.closeSocket()
	c.kickReader()
}

// closeSocket closes the connection's socket. Idempotent; safe from any
// goroutine.
func (c *conn) closeSocket() {
	if c.nc != nil {
		_ = c.nc.Close()
		return
	}
	_ = c.poll.hd.Close()
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

// setCloseDeadline makes reads end by at (a clock reading).
func (c *conn) setCloseDeadline(at int64) {
	c.closeDeadline.Store(at)
	if c.poll != nil {
		c.kickReader() // to arm its timer for the close deadline
		return
	}
	_ = c.nc.SetReadDeadline(c.srv.clock.Time(at))
}

// setReadDeadline sets the goroutine reader's read deadline to at (a clock
// reading; 0: none), never past a close deadline set concurrently by
// closeWith.
func (c *conn) setReadDeadline(at int64) {
	c.deadlineAt = at
	if cd := c.closeDeadline.Load(); cd != 0 {
		_ = c.nc.SetReadDeadline(c.srv.clock.Time(cd))
		return
	}
	var t time.Time
	if at != 0 {
		t = c.srv.clock.Time(at)
	}
	_ = c.nc.SetReadDeadline(t)
	if cd := c.closeDeadline.Load(); cd != 0 {
		_ = c.nc.SetReadDeadline(c.srv.clock.Time(cd))
	}
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

// serve runs the connection: OnOpen, the read loop, then teardown and
// OnClose. With a reader goroutine it returns when the connection is fully
// closed; with a poll reader it returns once the connection is handed to
// its poll loop.
func (c *conn) serve(ctx context.Context, info core.ConnInfo) {
	s := c.srv
	_, isTLS := c.nc.(*tls.Conn)
	if s.usePoll(c.nc) {
		c.poll = c.newPollState() // nil if the poller is unavailable
	} else if isTLS {
		s.stats.tls.Add(1) // the poll reader reads plain TCP only
	}
	s.conns.Store(c.id, c)
	// Shutdown may have started between admit and Store: it would miss us.
	s.mu.Lock()
	draining := s.draining
	s.mu.Unlock()

	sc, err := c.rt.Open(ctx, c, info)
	if err != nil {
		c.abortHandshake(core.CloseGoingAway, "server shutting down")
		c.forget(info.Request.ClientIP)
		return
	}
	c.sc = sc
	if s.connLogOn(slog.LevelDebug) {
		reader := "goroutine"
		if c.poll != nil {
			reader = "poll"
		}
		c.logConn(slog.LevelDebug, "strand: connection open", "remote", info.Request.RemoteAddr,
			"client_ip", info.Request.ClientIP, "reader", reader, "tls", isTLS)
	}
	if draining {
		c.closeWith(ReasonShutdown, core.CloseGoingAway, "server shutting down")
	}
	c.armPing()
	if c.poll != nil {
		c.startPoll()
		return
	}
	res := c.readLoop(ctx)
	c.teardown(res)
	c.forget(sc.Request().ClientIP)
}

// forget removes a closed connection from the server and frees its slot
// (admitted for clientIP).
func (c *conn) forget(clientIP string) {
	c.srv.conns.Delete(c.id)
	c.srv.release(clientIP)
	c.metrics.released()
}

// abortHandshake closes a connection that never reached the plugin.
func (c *conn) abortHandshake(code core.CloseCode, text string) {
	v := net.Buffers{appendFrame(nil, opClose, closePayload(code, text))}
	_ = c.writeSocket(&v, c.srv.clock.Time(c.srv.clock.Now()+int64(c.srv.cfg.CloseTimeout)))
	c.closeSocket()
}

// readResult is how the read loop ended.
type readResult struct {
	reason     CloseReason
	code       core.CloseCode
	text       string
	peerClosed bool // the peer's close frame was read: the handshake is complete
	// violation: the reader found a violation (or a deadline passed); the
	// close frame with code is sent by teardown.
	violation bool
}

// drainHandlers waits, within CloseTimeout, until the handlers of every
// event submitted for the connection so far have run.
func (c *conn) drainHandlers() {
	done := make(chan struct{})
	if c.rt.Sync(c.sc, func() { close(done) }) != nil {
		return
	}
	t := time.NewTimer(c.srv.cfg.CloseTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-c.srv.hardCtx.Done():
	}
}

// replyClose answers the peer's close frame with its code, unless the
// server closed first.
func (c *conn) replyClose(code core.CloseCode) {
	c.mu.Lock()
	start := false
	if !c.closing {
		c.closing = true
		var reply []byte
		if code != core.CloseNoStatus {
			reply = closePayload(code, "")
		}
		start = c.controlLocked(opClose, reply)
	}
	c.mu.Unlock()
	if start {
		go c.writeFn()
	}
}

// teardown flushes what can be flushed, closes the socket, releases queued
// buffers and submits OnClose with the code that describes the close.
func (c *conn) teardown(res readResult) {
	s := c.srv
	if res.peerClosed || res.violation {
		// What the handlers of the messages read before the peer's close
		// (or the violation) send goes out before the close frame.
		c.drainHandlers()
		if res.violation {
			c.closeWith(res.reason, res.code, res.text)
		} else {
			c.replyClose(res.code)
		}
	}
	c.mu.Lock()
	c.closing = true
	c.dead = true
	var idle chan struct{}
	if c.writing {
		idle = make(chan struct{})
		c.idle = idle
	}
	reason, code, text := res.reason, res.code, res.text
	if c.localSet && !res.violation {
		// The server closed first: report its code, whatever happened next.
		reason, code, text = c.reason, c.localCode, c.localText
	}
	c.mu.Unlock()
	if c.ping != nil {
		c.ping.Stop()
	}
	if idle != nil {
		if res.peerClosed || c.localSet {
			// Let the close frame go out, within CloseTimeout.
			t := time.NewTimer(s.cfg.CloseTimeout)
			select {
			case <-idle:
			case <-t.C:
				c.closeSocket()
				<-idle
			}
			t.Stop()
		} else {
			c.closeSocket()
			<-idle
		}
	}
	c.closeSocket()
	c.mu.Lock()
	c.dropQueueLocked()
	c.wq = nil
	zw := c.zw // no writer runs any more (dead)
	c.zw = nil
	c.mu.Unlock()
	if zw != nil {
		s.deflater.give(zw)
	}
	s.rooms.leaveAll(c)
	s.stats.closes[reason].Add(1)
	if s.connLogOn(slog.LevelDebug) {
		c.logConn(slog.LevelDebug, "strand: connection closed", "reason", reason.String(), "code", int(code), "text", text)
	}
	s.metrics.closed(reason, code)
	c.flushReceived()
	c.rt.Closed(c.sc, code, text)
}

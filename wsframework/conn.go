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
	"github.com/strandws/strand/wsframework/internal/wsproto"
)

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

	// Reader-owned state. parser is the frame parser while one is in use;
	// a poll-read connection between messages gives it back to the
	// Server's pool and keeps only parked (takeParser, parkParser).
	parser   *wsproto.Parser
	parked   wsproto.Parked
	msgStart int64      // clock reading at the first frame of the fragmented message being read (0: none)
	msgID    uint32     // the parser's MessageID that msgStart is for
	rxBytes  uint64     // payload bytes read and not yet published to the metrics (metrics.go)
	rate     *rateState // the message token bucket (Config.MessageRate), made by the first message

	// rd is the goroutine reader's deadline state, made by its first read
	// (a poll-read connection keeps its deadlines in pollState).
	rd *readDeadlines
}

// readDeadlines is the goroutine reader's deadline state, clock readings.
type readDeadlines struct {
	at      int64  // the read deadline set on the socket (0: none)
	frameAt int64  // the deadline of the frame being read
	frame   uint32 // the parser's frame that frameAt is for
	idle    bool   // the read deadline is the idle one
}

func newConn(s *Server, id uint64, nc net.Conn, br *bufio.Reader, rt *core.Runtime) *conn {
	c := &conn{srv: s, id: id, nc: nc, br: br, rt: rt}
	c.writeFn = c.writeLoop
	return c
}

// takeParser returns the connection's frame parser, taking one from the
// Server's pool if it has none.
func (c *conn) takeParser() *wsproto.Parser {
	if c.parser == nil {
		ps, _ := c.srv.parsers.Get().(*wsproto.Parser)
		if ps == nil {
			ps = new(wsproto.Parser)
		}
		ps.Unpark(&c.srv.limits, c.parked)
		c.parser = ps
	}
	return c.parser
}

// parkParser gives the parser back to the pool when it is at rest between
// messages (see wsproto.Parser.Park).
func (c *conn) parkParser() {
	ps := c.parser
	if ps == nil {
		return
	}
	if st, ok := ps.Park(); ok {
		c.parked, c.parser = st, nil
		c.srv.parsers.Put(ps)
	}
}

// dropParser ends the reader's use of its parser: its buffers are
// released and, unless a panic may have left it half-updated, it goes back
// to the pool.
func (c *conn) dropParser(panicked bool) {
	ps := c.parser
	if ps == nil {
		return
	}
	c.parser = nil
	if panicked {
		releaseParser(ps)
		return
	}
	ps.Release()
	c.srv.parsers.Put(ps)
}

var _ core.ConnHost = (*conn)(nil)

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
	c.rd.at = at
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
	_ = c.writeSocket(&v, c.srv.clock.Deadline(c.srv.cfg.CloseTimeout))
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

package wsframework

import (
	"errors"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/strandws/strand/dispatcher"
	"github.com/strandws/strand/internal/netpoll"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/bufpool"
)

// The poll reader (ReaderPoll). A connection with nothing to read holds no
// goroutine and no read buffer: its descriptor is armed in one of the
// Server's epoll loops (internal/netpoll) with EPOLLONESHOT, and when it is
// readable the loop runs conn.Ready, which reads what is available without
// waiting, parses it incrementally with the same frame rules as readLoop
// (checkFrame, control, completeMessage), submits each complete message with
// Runtime.TryMessage, and arms the descriptor again. Nothing in a turn
// blocks: where the goroutine reader would wait, the poll reader pauses and
// is resumed by a Trigger on its loop:
//
//   - the dispatcher has no room (dispatcher.ErrFull): the message is held
//     and TryMessage's wake resumes it;
//   - the write queue is high (outboundHighLocked): the writer's
//     wakeReaderLocked resumes it;
//   - the connection's pending bytes exceed MaxPendingBytes: its timer
//     retries (from 0.5 ms, doubling to 10 ms), as the runtime offers no
//     wake-up for that bound;
//   - deadlines (a partial frame past ReadTimeout, IdleTimeout, the close
//     deadline) and the keepalive ping are one timer in the loop's timer
//     heap (netpoll.Handle.SetTimer: no runtime timer, no goroutine), set
//     for the earliest; it runs a turn, which checks them.
//
// The connection's descriptor is taken over from its *net.TCPConn when the
// poll reader starts (netpoll.Poller.Detach): an idle connection then keeps
// none of net's state (netFD, addresses, runtime poll descriptor and its
// deadline timers), and the writer writes through the handle (Writev,
// waiting for writability on the loop when the socket is full).
//
// A frame's bytes are held in pooled buffers only while it is partial: the
// read buffer is released as soon as its bytes are parsed (a partial header
// is kept in pollState.hdr), a data frame's payload is read straight into
// its message buffer, and a control frame's into a small pooled buffer.
//
// Everything in pollState below "loop-owned" is touched only by Ready (on
// the loop), by startPoll before the first Trigger, and by pollEnd.

const (
	// readBufSize is the pooled buffer a turn reads headers and small frames
	// into while no frame's payload is pending.
	readBufSize = 8 << 10
	// pollBudget bounds the bytes one turn reads from a connection before it
	// lets its loop serve others (the descriptor is armed again).
	pollBudget = 256 << 10

	minPendingRetry = 500 * time.Microsecond
	maxPendingRetry = 10 * time.Millisecond
)

type pauseKind uint8

const (
	pauseNone     pauseKind = iota
	pauseFull               // the dispatcher had no room for held; its wake resumes
	pausePending            // over MaxPendingBytes: the timer retries
	pauseOutbound           // the write queue is high: the writer resumes
)

type pollState struct {
	hd   *netpoll.Handle // owns the descriptor: the connection's socket
	wake func()          // hd.Trigger, bound once
	// src, in tests only, replaces the socket: it is read instead, and
	// arming and the timer are no-ops.
	src func([]byte) (int, error)

	// Loop-owned from here on.
	pingDue       int64 // when the next keepalive ping is due (0: none)
	lastRead      int64 // when bytes last arrived, or the reader resumed
	frameDeadline int64 // a frame's payload is partial: when ReadTimeout ends it
	retryAt       int64
	retry         time.Duration

	rb   *bufpool.Buffer // bytes read and not yet parsed: rb.B[roff:]
	ctl  *bufpool.Buffer // a control frame's partial payload
	msg  *bufpool.Buffer // message being reassembled
	held *bufpool.Buffer // a complete message the dispatcher had no room for

	h     frameHeader // the frame being read (inFrame)
	got   int64       // payload bytes of h read so far
	start int         // offset of h's payload in msg
	roff  int32

	live     atomic.Bool           // startPoll has handed the connection to its loop (any goroutine)
	hdr      [maxClientHeader]byte // a partial header
	hn       uint8
	inFrame  bool // h is parsed; its payload is being read
	done     bool
	paused   pauseKind
	msgType  byte
	heldType byte
}

// usePoll reports whether a connection on nc is read by the poll reader.
func (s *Server) usePoll(nc net.Conn) bool {
	if s.cfg.Reader == ReaderGoroutine || !netpoll.Supported {
		return false
	}
	_, ok := nc.(*net.TCPConn)
	return ok
}

// netPoller returns the Server's poller, started on first use; nil if it
// cannot start or the Server is shutting down.
func (s *Server) netPoller() *netpoll.Poller {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	if s.pollDone || s.pollErr != nil {
		return nil
	}
	if s.poller == nil {
		s.poller, s.pollErr = netpoll.New(runtime.GOMAXPROCS(0))
		if s.pollErr != nil {
			s.cfg.Logger.Warn("strand: poll reader unavailable, reading with goroutines", "err", s.pollErr)
			return nil
		}
	}
	return s.poller
}

// closePoller stops the poller's loops once every connection is gone.
func (s *Server) closePoller() {
	s.pollMu.Lock()
	p := s.poller
	s.pollDone = true
	s.pollMu.Unlock()
	if p != nil {
		_ = p.Close()
	}
}

// newPollState prepares the poll reader, or returns nil for a reader
// goroutine. The poll reader takes over the descriptor: c.nc is closed and
// set to nil, and the handle is the connection's socket from then on.
func (c *conn) newPollState() *pollState {
	tc, ok := c.nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	pl := c.srv.netPoller()
	if pl == nil {
		return nil
	}
	h, err := pl.Detach(tc, c)
	if err != nil {
		return nil // tc is untouched: read it with a goroutine
	}
	c.nc = nil
	return &pollState{hd: h, wake: h.Trigger}
}

// startPoll hands the connection to its loop, after OnOpen was submitted.
// Bytes the upgrade already buffered are parsed first.
func (c *conn) startPoll() {
	p := c.poll
	if n := c.br.Buffered(); n > 0 {
		b := c.srv.cfg.Buffers.Get(n)
		_, _ = io.ReadFull(c.br, b.B) // buffered: no I/O
		p.rb = b
	}
	c.br = nil
	c.srv.stats.polled.Add(1)
	p.lastRead = time.Now().UnixNano()
	if iv := c.srv.cfg.PingInterval; iv > 0 {
		p.pingDue = p.lastRead + int64(iv)
	}
	p.live.Store(true)
	p.hd.Trigger()
}

// kickReader makes a poll reader look at its connection again (it was
// closed, or its close deadline set). A reader goroutine needs no kick.
func (c *conn) kickReader() {
	if p := c.poll; p != nil && p.live.Load() {
		p.hd.Trigger()
	}
}

// Ready implements netpoll.Handler: one turn of the poll reader, on its
// loop.
func (c *conn) Ready() {
	p := c.poll
	if p.done {
		return
	}
	now := time.Now().UnixNano()
	if p.pingDue != 0 && now >= p.pingDue {
		p.pingDue = now + int64(c.srv.cfg.PingInterval)
		if !c.sendPing() {
			p.pingDue = 0 // closing: no more pings
		}
	}
	res, done := c.pollTurn(now)
	if done {
		c.pollEnd(res)
		return
	}
	c.pollArmTimer(now)
}

// pollEnd ends the reader: its buffers are released and the teardown, which
// waits for the writer, runs on a goroutine of its own (tracked by connWG).
func (c *conn) pollEnd(res readResult) {
	p := c.poll
	p.done = true
	for _, b := range []**bufpool.Buffer{&p.rb, &p.ctl, &p.msg, &p.held} {
		if *b != nil {
			(*b).Release()
			*b = nil
		}
	}
	if p.src == nil {
		p.hd.Deregister() // and its timer
	}
	go func() {
		c.teardown(res)
		c.forget(c.sc.Request().ClientIP)
	}()
}

// pollTurn reads and handles what is available. done reports that the
// connection ended with res; otherwise the reader is armed or paused.
func (c *conn) pollTurn(now int64) (res readResult, done bool) {
	p := c.poll
	if res, done := c.pollDeadline(now); done {
		return res, true
	}
	read, drained := 0, false
	for {
		if p.held != nil {
			if res, done, ok := c.pollDeliver(); !ok {
				return res, done
			}
		}
		if !p.inFrame && p.hn == 0 {
			// Between frames: where the goroutine reader waits.
			if c.pollPendingOver(now) {
				return readResult{}, false
			}
			if c.pollOutboundHigh() {
				p.paused = pauseOutbound
				return readResult{}, false
			}
			if p.paused != pauseNone {
				p.paused = pauseNone
				p.lastRead = now // idle time counts from the resume
			}
		}
		if p.rb != nil {
			if res, done := c.pollParse(now); done {
				return res, true
			}
			continue
		}
		if p.inFrame && p.frameDeadline == 0 {
			// The rest of the frame must arrive within ReadTimeout.
			p.frameDeadline = now + int64(c.srv.cfg.ReadTimeout)
		}
		if drained || read >= pollBudget {
			return c.pollArm()
		}
		var dst []byte
		direct := p.inFrame
		if direct {
			dst = p.payloadRest(c.srv.cfg.Buffers)
		} else {
			p.rb, p.roff = c.srv.cfg.Buffers.Get(readBufSize), 0
			dst = p.rb.B
		}
		n, err := p.read(dst)
		if !direct {
			p.rb.B = p.rb.B[:n]
			if n == 0 {
				p.rb.Release()
				p.rb = nil
			}
		}
		if err != nil {
			if errors.Is(err, netpoll.ErrWouldBlock) {
				return c.pollArm()
			}
			return c.readError(err), true
		}
		read += n
		p.lastRead = now
		drained = n < len(dst) // a short read: the socket is most likely empty
		if direct {
			if res, done := c.pollPayload(dst[:n], now); done {
				return res, true
			}
		}
	}
}

func (p *pollState) read(b []byte) (int, error) {
	if p.src != nil {
		return p.src(b)
	}
	return p.hd.Read(b)
}

// pollArm asks for the next readiness report.
func (c *conn) pollArm() (readResult, bool) {
	if c.poll.src != nil {
		return readResult{}, false
	}
	if err := c.poll.hd.Arm(); err != nil {
		return c.readError(err), true // closed under us
	}
	return readResult{}, false
}

// pollDeadline checks the deadlines that readLoop gets from the socket.
func (c *conn) pollDeadline(now int64) (readResult, bool) {
	p := c.poll
	if p.paused != pauseNone && c.srv.hardCtx.Err() != nil {
		// Shutdown gave up waiting: a paused reader ends (readLoop's waits
		// end on the same context).
		return shutdownResult, true
	}
	if cd := c.closeDeadline.Load(); cd != 0 {
		if now >= cd {
			// The peer did not answer our close in time.
			return readResult{reason: ReasonAbnormal, code: sdk.CloseAbnormal}, true
		}
		return readResult{}, false
	}
	if p.paused != pauseNone {
		return readResult{}, false
	}
	if p.frameDeadline != 0 {
		if now >= p.frameDeadline {
			return c.fail(ReasonReadTimeout, "frame read timeout"), true
		}
		return readResult{}, false
	}
	if idle := c.srv.cfg.IdleTimeout; idle > 0 && now >= p.lastRead+int64(idle) {
		return c.fail(ReasonIdle, "idle timeout"), true
	}
	return readResult{}, false
}

// pollArmTimer sets the connection's timer for pollDue. A timer that fires
// early is harmless: the turn sets it again.
func (c *conn) pollArmTimer(now int64) {
	p := c.poll
	want := c.pollDue()
	if want == 0 || p.src != nil {
		return
	}
	if due := p.hd.Timer(); due != 0 && due <= want {
		return
	}
	p.hd.SetTimer(max(want, now))
}

// pollDue returns when the reader must look at the connection again
// without readiness: its next deadline, retry or ping (0: never).
func (c *conn) pollDue() int64 {
	p := c.poll
	var want int64
	if cd := c.closeDeadline.Load(); cd != 0 {
		want = cd
	} else if p.paused == pauseNone {
		if p.frameDeadline != 0 {
			want = p.frameDeadline
		} else if idle := c.srv.cfg.IdleTimeout; idle > 0 {
			want = p.lastRead + int64(idle)
		}
	}
	if p.paused == pausePending && (want == 0 || p.retryAt < want) {
		want = p.retryAt
	}
	if p.pingDue != 0 && (want == 0 || p.pingDue < want) {
		want = p.pingDue
	}
	return want
}

// pollDeliver submits the held message. ok reports it was taken; otherwise
// the reader pauses (the dispatcher wakes it) or ends (done).
func (c *conn) pollDeliver() (res readResult, done, ok bool) {
	p := c.poll
	err := c.rt.TryMessage(c.sc, sdk.MessageType(p.heldType), p.held, p.wake)
	if err == nil {
		p.held = nil
		return readResult{}, false, true
	}
	if errors.Is(err, dispatcher.ErrFull) {
		p.paused = pauseFull
		return readResult{}, false, false
	}
	p.held.Release()
	p.held = nil
	return shutdownResult, true, false
}

// pollPendingOver reports (and pauses for) pending bytes over the bound.
func (c *conn) pollPendingOver(now int64) bool {
	p := c.poll
	bound := c.srv.cfg.MaxPendingBytes
	if bound == 0 {
		bound = sdk.DefaultMaxPendingBytes
	}
	if bound < 0 || c.sc.PendingBytes() <= bound {
		p.retry = 0
		return false
	}
	p.retry = min(max(2*p.retry, minPendingRetry), maxPendingRetry)
	p.retryAt = now + int64(p.retry)
	p.paused = pausePending
	return true
}

// pollOutboundHigh reports (and registers for a wake on) a high write queue.
func (c *conn) pollOutboundHigh() bool {
	c.mu.Lock()
	high := !c.closing && c.outboundHighLocked()
	c.readerWaiting = high
	c.mu.Unlock()
	return high
}

// pollParse consumes the bytes in rb: a header, or payload of the current
// frame.
func (c *conn) pollParse(now int64) (res readResult, done bool) {
	p := c.poll
	defer func() {
		if p.rb != nil && int(p.roff) == len(p.rb.B) {
			p.rb.Release()
			p.rb = nil
		}
	}()
	in := p.rb.B[p.roff:]
	if !p.inFrame {
		hdr, used, ok := p.takeHeader(in)
		p.roff += int32(used)
		if !ok {
			return readResult{}, false
		}
		h, err := parseHeader(hdr)
		if err != nil {
			return c.readError(err), true
		}
		if res, done := c.startFrame(h); done || !p.inFrame {
			return res, done
		}
		in = p.rb.B[p.roff:]
		if isControl(p.h.op) && int64(len(in)) >= p.h.length {
			// The whole control payload is here: unmask it in place.
			pl := in[:p.h.length]
			p.roff += int32(len(pl))
			ws.Cipher(pl, p.h.mask, 0)
			p.inFrame = false
			return c.control(p.h.op, pl)
		}
	}
	if len(in) == 0 {
		return readResult{}, false
	}
	dst := p.payloadRest(c.srv.cfg.Buffers)
	k := copy(dst, in)
	p.roff += int32(k)
	return c.pollPayload(dst[:k], now)
}

// takeHeader returns a whole header from in (or from the partial header
// saved before it) and how many bytes of in it used; ok is false when in
// ends before the header does (its bytes are saved in hdr).
func (p *pollState) takeHeader(in []byte) (hdr []byte, used int, ok bool) {
	if p.hn == 0 && len(in) >= 2 {
		if n := headerLen(in[1]); len(in) >= n {
			return in[:n], n, true
		}
	}
	need := 2
	if p.hn >= 2 {
		need = headerLen(p.hdr[1])
	}
	for int(p.hn) < need && used < len(in) {
		p.hdr[p.hn] = in[used]
		p.hn++
		used++
		if p.hn == 2 {
			need = headerLen(p.hdr[1])
		}
	}
	if int(p.hn) < need {
		return nil, used, false
	}
	p.hn = 0
	return p.hdr[:need], used, true
}

// startFrame checks a parsed header and prepares for its payload.
func (c *conn) startFrame(h frameHeader) (readResult, bool) {
	p := c.poll
	var msgLen int64
	if p.msg != nil {
		msgLen = int64(len(p.msg.B))
	}
	if res, done := c.checkFrame(&h, p.msg != nil, msgLen); done {
		return res, true
	}
	p.h, p.got, p.inFrame = h, 0, true
	if !isControl(h.op) {
		if p.msg == nil {
			p.msgType = h.op
		}
		p.msg, p.start = c.dataSpace(p.msg, h.length)
	}
	if h.length == 0 {
		return c.frameDone()
	}
	return readResult{}, false
}

// payloadRest returns where the rest of the current frame's payload goes.
func (p *pollState) payloadRest(bufs *bufpool.Pool) []byte {
	if isControl(p.h.op) {
		if p.ctl == nil {
			p.ctl = bufs.Get(int(p.h.length))
		}
		return p.ctl.B[p.got:]
	}
	return p.msg.B[p.start+int(p.got) : p.start+int(p.h.length)]
}

// pollPayload unmasks payload bytes just placed in the frame's buffer.
func (c *conn) pollPayload(b []byte, now int64) (readResult, bool) {
	p := c.poll
	ws.Cipher(b, p.h.mask, int(p.got))
	p.got += int64(len(b))
	if p.got < p.h.length {
		return readResult{}, false
	}
	return c.frameDone()
}

// frameDone handles the frame whose payload is complete.
func (c *conn) frameDone() (readResult, bool) {
	p := c.poll
	p.inFrame, p.frameDeadline = false, 0
	if isControl(p.h.op) {
		var pl []byte
		if p.ctl != nil {
			pl = p.ctl.B
		}
		res, done := c.control(p.h.op, pl)
		if p.ctl != nil {
			p.ctl.Release()
			p.ctl = nil
		}
		return res, done
	}
	if !p.h.fin {
		return readResult{}, false
	}
	b := p.msg
	p.msg = nil
	deliver, res, done := c.completeMessage(p.msgType, b)
	if deliver {
		p.held, p.heldType = b, p.msgType // pollTurn submits it next
	}
	return res, done
}

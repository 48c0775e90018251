package wsframework

import (
	"errors"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/strandws/strand/dispatcher"
	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/internal/netpoll"
	"github.com/strandws/strand/sdk/bufpool"
	"github.com/strandws/strand/wsframework/internal/wsproto"
)

// The poll reader (ReaderPoll). A connection with nothing to read holds no
// goroutine and no read buffer: its descriptor is armed in one of the
// Server's epoll loops (internal/netpoll), level-triggered, and when it is
// readable the loop runs conn.Ready, which reads what is available without
// waiting, feeds it to a wsproto.Parser (pollFeed: the same parser, and the
// same handling of its events, as readLoop; taken from the Server's pool
// for the turn and given back when the connection is between messages) and
// submits each complete message with Runtime.TryMessage. Nothing in a turn
// blocks: where the goroutine reader would wait, the poll reader pauses
// (and disarms the descriptor, which would otherwise be reported by every
// wait while bytes are unread) and is resumed by a Trigger on its loop:
//
//   - the dispatcher has no room (dispatcher.ErrFull): the message is held
//     and TryMessage's wake resumes it;
//   - the write queue is high (outboundHighLocked): the writer's
//     wakeReaderLocked resumes it;
//   - the connection's pending bytes exceed MaxPendingBytes: its timer
//     retries (from 0.5 ms, doubling to 10 ms), as the runtime offers no
//     wake-up for that bound;
//   - the connection is over Config.MessageRate: its timer resumes it when
//     the next message is within the rate;
//   - deadlines (a partial frame past ReadTimeout, a fragmented message
//     past MessageTimeout, IdleTimeout, the close deadline) and the
//     keepalive ping are one timer in the loop's timer heap
//     (netpoll.Handle.SetTimer: no runtime timer, no goroutine), set for
//     the earliest, on the Server's monotonic clock; it runs a turn, which
//     checks them.
//
// The connection's descriptor is taken over from its *net.TCPConn when the
// poll reader starts (netpoll.Poller.Detach): an idle connection then keeps
// none of net's state (netFD, addresses, runtime poll descriptor and its
// deadline timers), and the writer writes through the handle (Writev,
// waiting for writability on the loop when the socket is full).
//
// A frame's bytes are held in pooled buffers only while it is partial: the
// read buffer is released as soon as its bytes are parsed and handled (a
// partial header is kept in the parser), the rest of a large data frame is
// read straight into its message buffer, which grows as payload arrives,
// and a partial control frame's payload is kept in a small pooled buffer.
//
// A panic in a turn is recovered in Ready: that connection ends with 1011,
// its loop and every other connection go on.
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
	// pollBudgetAlone is the turn's budget of a connection that is the only
	// one its loop found ready. Its answers are written only after the
	// turn (the loop then lets the dispatcher and the writer run), so a
	// client that pipelines large messages on one connection would
	// otherwise get them back a whole window at a time and refill the
	// window into an idle server: one connection, 16 × 4 KiB in flight,
	// went from 124-127k to 196k msgs/s. With other connections ready,
	// their turns give the writers that time, and the large budget keeps
	// the system calls per message low.
	pollBudgetAlone = 8 << 10

	minPendingRetry = 500 * time.Microsecond
	maxPendingRetry = 10 * time.Millisecond
)

type pauseKind uint8

const (
	pauseNone     pauseKind = iota
	pauseFull               // the dispatcher had no room for held; its wake resumes
	pausePending            // over MaxPendingBytes: the timer retries
	pauseOutbound           // the write queue is high: the writer resumes
	pauseRate               // over Config.MessageRate: the timer resumes
)

type pollState struct {
	hd *netpoll.Handle // owns the descriptor: the connection's socket (nil in tests reading Server.hooks.pollRead)

	// Loop-owned from here on; times are clock readings.
	pingDue       int64 // when the next keepalive ping is due (0: none)
	lastRead      int64 // when bytes last arrived, or the reader resumed
	frameDeadline int64 // a frame is partly read: when ReadTimeout ends it
	frame         uint32
	retryAt       int64 // when a paused reader (pausePending, pauseRate) looks again
	retry         time.Duration

	feed pollFeed        // bytes read and not yet parsed
	held *bufpool.Buffer // a complete message the dispatcher had no room for

	live     atomic.Bool // startPoll has handed the connection to its loop (any goroutine)
	done     bool
	armed    bool // this turn ended armed (pollArm): readiness runs it again
	paused   pauseKind
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
		s.poller, s.pollErr = netpoll.New(runtime.GOMAXPROCS(0), s.clock)
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
	return &pollState{hd: h}
}

// startPoll hands the connection to its loop, after OnOpen was submitted.
// Bytes the upgrade already buffered are parsed first.
func (c *conn) startPoll() {
	p := c.poll
	if n := c.br.Buffered(); n > 0 {
		b := c.srv.cfg.Buffers.Get(n)
		_, _ = io.ReadFull(c.br, b.B) // buffered: no I/O
		p.feed.rb = b
	}
	c.br = nil
	c.srv.stats.polled.Add(1)
	p.lastRead = c.srv.clock.Now()
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
// loop. A panic in the turn ends this connection only (1011).
func (c *conn) Ready() {
	p := c.poll
	if p.done {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			res := c.readerPanic(r) // logged and counted even if the reader had ended
			if !p.done {
				c.pollEnd(res)
			}
		}
	}()
	now := c.srv.clock.Now()
	if p.pingDue != 0 && now >= p.pingDue {
		p.pingDue = now + int64(c.srv.cfg.PingInterval)
		if !c.sendPing() {
			p.pingDue = 0 // closing: no more pings
		}
	}
	p.armed = false
	res, done := c.pollTurn(now)
	c.flushReceived()
	if done {
		c.pollEnd(res)
		return
	}
	if !p.armed && p.hd != nil {
		// Paused with bytes unread: the handle is level-triggered, so
		// readiness would run the turn again on every wait. A Trigger or
		// the timer resumes it.
		p.hd.Disarm()
	}
	c.pollArmTimer(now)
}

// pollEnd ends the reader: its buffers are released and the teardown, which
// waits for the writer, runs on a goroutine of its own (tracked by connWG).
// A message held for lack of dispatcher room is delivered there first, as
// the goroutine reader delivers it (blocking) before it looks at anything
// else.
func (c *conn) pollEnd(res readResult) {
	p := c.poll
	p.done = true
	held, heldType := p.held, p.heldType
	p.held = nil
	releaseAll(&p.feed.rb)
	c.dropParser(res.reason == ReasonInternal) // after a panic it may be half-updated
	if p.hd != nil {
		p.hd.Deregister() // and its timer
	}
	go func() {
		if held != nil {
			if err := c.rt.Message(c.srv.hardCtx, c.sc, core.MessageType(heldType), held); err != nil && !res.violation {
				res = shutdownResult
			}
		}
		c.teardown(res)
		c.forget(c.sc.Request().ClientIP)
	}()
}

// pollFeed is the poll reader's way of feeding the parser: bytes read from
// the socket into a pooled read buffer (released as soon as they are
// parsed), or straight into the message buffer for the rest of a large
// frame.
type pollFeed struct {
	rb   *bufpool.Buffer // rb.B[off:] is read and not yet parsed
	off  int32
	read int // bytes read in this turn
	// drained: a read in this turn returned less than it asked for, so
	// the socket had nothing more then; bytes that arrive later are
	// reported again once armed. Reading again would only get EAGAIN.
	drained bool
}

// step feeds the parser the bytes it holds, or reads more with read. It
// returns the parser's next event (nil when it only read); with more false
// read would block, or returned an error (err).
func (f *pollFeed) step(ps *wsproto.Parser, bufs *bufpool.Pool, read func([]byte) (int, error)) (ev *wsproto.Event, more bool, err error) {
	f.dropConsumed()
	if f.rb != nil {
		n, ev := ps.Feed(f.rb.B[f.off:])
		f.off += int32(n)
		return ev, true, nil // rb stays until the caller handled ev: its payload may point into it
	}
	if f.drained {
		return nil, false, nil
	}
	if ps.DirectRemaining() >= directMin {
		d := ps.Direct()
		n, err := read(d)
		f.read += n
		f.drained = n < len(d)
		if n > 0 {
			return ps.Wrote(n), true, nil
		}
		return nil, false, err
	}
	b := bufs.Get(readBufSize)
	n, err := read(b.B)
	f.read += n
	f.drained = n < len(b.B)
	if n == 0 {
		b.Release()
		return nil, false, err
	}
	b.B = b.B[:n]
	f.rb, f.off = b, 0
	return nil, true, nil
}

// dropConsumed releases the read buffer once all its bytes are parsed.
func (f *pollFeed) dropConsumed() {
	if f.rb != nil && int(f.off) == len(f.rb.B) {
		f.rb.Release()
		f.rb = nil
	}
}

// pollTurn reads and handles what is available. done reports that the
// connection ended with res; otherwise the reader is armed or paused.
func (c *conn) pollTurn(now int64) (res readResult, done bool) {
	res, done = c.pollTurnWith(c.takeParser(), now)
	if !done {
		c.parkParser() // an idle connection holds no parser
	}
	return res, done
}

func (c *conn) pollTurnWith(ps *wsproto.Parser, now int64) (res readResult, done bool) {
	p := c.poll
	if res, done := c.pollDeadline(now); done {
		return res, true
	}
	p.feed.read, p.feed.drained = 0, false
	budget := c.pollBudget()
	for {
		if p.held != nil {
			if res, done, ok := c.pollDeliver(); !ok {
				return res, done
			}
		}
		if ps.AtBoundary() {
			// Between frames: where the goroutine reader waits.
			p.feed.dropConsumed()
			if c.pollPaused(now) {
				return readResult{}, false
			}
			p.frameDeadline = 0
		} else if f := ps.Frame(); p.frameDeadline == 0 || f != p.frame {
			// The rest of the frame must arrive within ReadTimeout.
			p.frameDeadline, p.frame = now+int64(c.srv.cfg.ReadTimeout), f
		}
		c.trackMessage(ps, now)
		p.feed.dropConsumed()
		if p.feed.rb == nil && p.feed.read >= budget {
			return c.pollArm()
		}
		ev, more, err := p.feed.step(ps, c.srv.cfg.Buffers, c.pollRead)
		if !more {
			if err == nil || errors.Is(err, netpoll.ErrWouldBlock) {
				return c.pollArm()
			}
			return abnormalResult, true
		}
		p.lastRead = now
		if ev == nil || ev.Kind == wsproto.None {
			continue
		}
		if h := c.srv.hooks.event; h != nil {
			h(c, ev)
		}
		switch ev.Kind {
		case wsproto.Message:
			res, deliver, done := c.acceptMessage(ev)
			if done {
				return res, true
			}
			if deliver {
				p.held, p.heldType = ev.Msg, ev.Op // submitted next
			}
		default:
			if res, done := c.onEvent(ev); done {
				return res, true
			}
		}
	}
}

// pollBudget returns how many bytes this turn may read: see
// pollBudgetAlone.
func (c *conn) pollBudget() int {
	if hd := c.poll.hd; hd != nil && hd.LoopReady() <= 1 {
		return pollBudgetAlone
	}
	return pollBudget
}

// pollPaused reports whether the reader pauses before the next frame: the
// connection's pending bytes are over the bound, its write queue is high,
// or it is over its message rate.
func (c *conn) pollPaused(now int64) bool {
	p := c.poll
	if c.pollPendingOver(now) {
		return true
	}
	if c.pollOutboundHigh() {
		p.paused = pauseOutbound
		return true
	}
	if d := c.rateDelay(now); d > 0 {
		p.paused, p.retryAt = pauseRate, now+int64(d)
		return true
	}
	if p.paused != pauseNone {
		p.paused = pauseNone
		p.lastRead = now // idle time counts from the resume
	}
	return false
}

func (c *conn) pollRead(b []byte) (int, error) {
	if r := c.srv.hooks.pollRead; r != nil {
		return r(c, b)
	}
	return c.poll.hd.Read(b)
}

// pollArm asks for the next readiness report.
func (c *conn) pollArm() (readResult, bool) {
	c.poll.armed = true
	if c.poll.hd == nil {
		return readResult{}, false
	}
	if err := c.poll.hd.Arm(); err != nil {
		return abnormalResult, true // closed under us
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
			return abnormalResult, true
		}
		return readResult{}, false
	}
	if p.paused != pauseNone {
		return readResult{}, false
	}
	if c.msgStart != 0 && now >= c.msgStart+int64(c.srv.cfg.MessageTimeout) {
		return c.fail(ReasonMessageLimit, "message assembly timeout"), true
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
	if want == 0 || p.hd == nil {
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
		if at := c.msgStart + int64(c.srv.cfg.MessageTimeout); c.msgStart != 0 && (want == 0 || at < want) {
			want = at
		}
	}
	if (p.paused == pausePending || p.paused == pauseRate) && (want == 0 || p.retryAt < want) {
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
	err := c.rt.TryMessage(c.sc, core.MessageType(p.heldType), p.held, nil)
	if errors.Is(err, dispatcher.ErrFull) && p.hd != nil {
		// Again, now asking to be woken when there is room: binding the
		// wake only here keeps it off the connection and the fast path.
		err = c.rt.TryMessage(c.sc, core.MessageType(p.heldType), p.held, p.hd.Trigger)
	}
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
		bound = core.DefaultMaxPendingBytes
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

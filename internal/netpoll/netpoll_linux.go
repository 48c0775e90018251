//go:build linux

package netpoll

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strandws/strand/internal/clock"
	"github.com/strandws/strand/internal/rawsys"
)

// Supported reports whether New can work on this platform.
const Supported = true

// wakeToken marks the loop's own eventfd in its epoll set; handle tokens
// start at 1.
const wakeToken = 0

const (
	maxEvents  = 128
	eventfdLen = 8
	maxIovec   = 1024 // IOV_MAX

	readable = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR
	writable = unix.EPOLLOUT | unix.EPOLLHUP | unix.EPOLLERR
)

// Poller is a fixed set of epoll loops. Create with New; stop with Close.
type Poller struct {
	clock *clock.Clock
	loops []*loop
	next  atomic.Uint32
	wg    sync.WaitGroup

	mu     sync.Mutex // guards closed
	closed bool
}

type loop struct {
	clock  *clock.Clock // the timers' clock
	epfd   int
	file   *os.File // epfd, for parking in the runtime poller
	wakefd int

	mu sync.Mutex // guards slots, free, gen, queue, spare, closed and writes to wakefd
	// slots are the handles in the epoll set, by token (see add):
	// a slice rather than a map, 8 bytes a connection.
	slots  []*Handle
	free   []uint32 // indexes of nil slots
	gen    uint32   // tells a slot's successive handles apart
	queue  []*Handle
	spare  []*Handle
	closed bool
	woken  atomic.Bool // wakefd has been written and not yet drained
	iovecs sync.Pool   // *[]unix.Iovec: Writev's scratch

	// Handle timers (timers.go). Loop-owned but for timerDue.
	timers   timerHeap
	timer    *time.Timer // wakes the loop for timers[0]; made on first use
	timerAt  int64       // when timer is due (0: stopped)
	timerDue atomic.Bool // timer fired: run the expired timers

	ready int // descriptors the loop's last wait reported (loop-owned)
}

// LoopReady returns how many descriptors the last wait of the handle's
// loop reported, the one running this handler among them. Call it from the
// Handler: a handler alone on its loop may take shorter turns, so that the
// goroutines it feeds run sooner, at no cost to others.
func (hd *Handle) LoopReady() int { return hd.l.ready }

// Handle is one registered descriptor and its Handler. The handle owns the
// descriptor: Close closes it, once no Read, Writev or epoll call is using
// it, so that a descriptor number is never used after it was reused.
type Handle struct {
	l     *loop
	h     Handler
	token uint64
	fd    int32 // -1: no descriptor (Trigger and timers only)
	tidx  int32 // index in l.timers; -1: no timer (loop-owned)
	when  int64 // the timer's due time, unix nanos (loop-owned)
	refs  refCount

	mu      sync.Mutex    // guards the fields below
	want    uint32        // events armed in the kernel, EPOLLIN and/or EPOLLOUT
	added   bool          // in the epoll set (and in a slot)
	done    bool          // Deregister was called: no more readiness reports for the Handler
	closing bool          // Close was called
	wch     chan struct{} // signalled when writable (or closing); made by the first writer to wait
}

// Now reads the clock of the Poller's timers (see Handle.SetTimer).
func (p *Poller) Now() int64 { return p.clock.Now() }

// New starts a poller with n loops (n < 1 means 1) whose timers follow clk
// (nil: a new runtime clock).
func New(n int, clk *clock.Clock) (*Poller, error) {
	n = max(n, 1)
	if clk == nil {
		clk = clock.New()
	}
	p := &Poller{clock: clk}
	for range n {
		l, err := newLoop(clk)
		if err != nil {
			_ = p.closeLoops()
			return nil, err
		}
		p.loops = append(p.loops, l)
	}
	for _, l := range p.loops {
		p.wg.Go(l.run)
	}
	return p, nil
}

func newLoop(clk *clock.Clock) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("netpoll: epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("netpoll: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setToken(&ev, wakeToken)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(wakefd)
		return nil, fmt.Errorf("netpoll: epoll_ctl: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(wakefd)
		return nil, fmt.Errorf("netpoll: nonblock: %w", err)
	}
	// Non-blocking, so os.NewFile registers it with the runtime poller.
	l := &loop{clock: clk, epfd: epfd, file: os.NewFile(uintptr(epfd), "epoll"), wakefd: wakefd}
	l.iovecs.New = func() any {
		v := make([]unix.Iovec, 0, 64)
		return &v
	}
	return l, nil
}

func setToken(ev *unix.EpollEvent, t uint64) {
	ev.Fd = int32(uint32(t))
	ev.Pad = int32(uint32(t >> 32))
}

func token(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// Detach takes over tc's descriptor: it is duplicated, tc is closed (net's
// own state for it, its runtime poller registration and deadline timers,
// is freed), and the returned handle owns the copy. Bytes tc had buffered
// in user space, if any, are the caller's to keep; the kernel's are read
// through the handle.
func (p *Poller) Detach(tc *net.TCPConn, h Handler) (*Handle, error) {
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("netpoll: dup: %w", derr)
	}
	hd, err := p.NewHandle(nfd, h)
	if err != nil {
		_ = unix.Close(nfd)
		return nil, err
	}
	_ = tc.Close()
	return hd, nil
}

// NewHandle returns a handle that owns fd, which it makes non-blocking, and
// is served by one of the loops (round robin). It is not in the epoll set
// until Arm. A negative fd makes a handle without a descriptor, for Trigger
// and SetTimer only.
func (p *Poller) NewHandle(fd int, h Handler) (*Handle, error) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if fd >= 0 {
		if err := unix.SetNonblock(fd, true); err != nil {
			return nil, fmt.Errorf("netpoll: nonblock: %w", err)
		}
	}
	l := p.loops[int(p.next.Add(1))%len(p.loops)]
	return &Handle{l: l, h: h, fd: int32(fd), tidx: -1}, nil
}

// acquire takes a reference on the descriptor for one system call; false
// means it is closed (or the handle has none).
func (hd *Handle) acquire() bool { return hd.fd >= 0 && hd.refs.acquire() }

func (hd *Handle) release() {
	if hd.refs.release() {
		_ = unix.Close(int(hd.fd))
	}
}

// ctlLocked registers hd.want with the kernel, level-triggered: while
// EPOLLIN is wanted, every wait reports the descriptor as long as it has
// bytes, so a Handler needs to re-register nothing between turns. With
// nothing wanted the registration is empty and one-shot, so that a hang-up
// or error (which epoll reports whatever is asked) is reported once rather
// than by every wait. hd.mu must be held.
func (hd *Handle) ctlLocked() error {
	if !hd.acquire() {
		return net.ErrClosed
	}
	defer hd.release()
	op := unix.EPOLL_CTL_MOD
	if !hd.added {
		op = unix.EPOLL_CTL_ADD
		hd.l.add(hd)
	}
	events := hd.want | unix.EPOLLRDHUP
	if hd.want == 0 {
		events = unix.EPOLLONESHOT
	}
	ev := unix.EpollEvent{Events: events}
	setToken(&ev, hd.token)
	if err := unix.EpollCtl(hd.l.epfd, op, int(hd.fd), &ev); err != nil {
		if op == unix.EPOLL_CTL_ADD {
			hd.l.remove(hd)
		}
		return fmt.Errorf("netpoll: epoll_ctl: %w", err)
	}
	hd.added = true
	return nil
}

// Arm asks for readiness reports (readable, peer hang-up or error): the
// Handler runs after each wait of its loop that finds the descriptor
// readable, until Disarm or Deregister. A Handler that returns with bytes
// left unread is run again by the next wait. Arming an armed handle costs
// no system call. Call it from the Handler, or before the handle is first
// triggered.
func (hd *Handle) Arm() error {
	hd.mu.Lock()
	defer hd.mu.Unlock()
	if hd.closing || hd.done {
		return net.ErrClosed
	}
	if hd.added && hd.want&unix.EPOLLIN != 0 {
		return nil
	}
	hd.want |= unix.EPOLLIN
	return hd.ctlLocked()
}

// Disarm stops readiness reports until the next Arm: a Handler that
// leaves bytes unread on purpose (its reader is paused) disarms, or every
// wait would run it again. A Trigger or timer still runs it. Call it from
// the Handler.
func (hd *Handle) Disarm() {
	hd.mu.Lock()
	defer hd.mu.Unlock()
	if hd.want&unix.EPOLLIN == 0 || hd.closing {
		return
	}
	hd.want &^= unix.EPOLLIN
	if hd.added {
		_ = hd.ctlLocked()
	}
}

// event handles one readiness report for hd on its loop.
func (hd *Handle) event(ev uint32) {
	hd.mu.Lock()
	want := hd.want
	rd := want&unix.EPOLLIN != 0 && ev&readable != 0 && !hd.done
	wr := want&unix.EPOLLOUT != 0 && ev&writable != 0
	if wr && !hd.closing {
		// A writer waited for room: it has it. Level-triggered, the
		// registration would report it again on every wait.
		hd.want &^= unix.EPOLLOUT
		_ = hd.ctlLocked()
	}
	wch := hd.wch
	hd.mu.Unlock()
	if wr && wch != nil {
		notify(wch)
	}
	if rd {
		hd.h.Ready()
	}
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Deregister ends the Handler's part: no readiness report or timer runs it
// any more (a Trigger still may; the Handler must ignore it), and Arm
// fails. A writer may still wait in Writev until Close, which removes the
// descriptor from the loop. Call it from the Handler.
func (hd *Handle) Deregister() {
	hd.l.stopTimer(hd)
	hd.mu.Lock()
	hd.done = true
	if hd.want&unix.EPOLLIN != 0 {
		hd.want &^= unix.EPOLLIN
		if hd.added && !hd.closing {
			_ = hd.ctlLocked() // level-triggered: unread bytes would be reported on every wait
		}
	}
	hd.mu.Unlock()
}

// A handle's token is its slot index + 1 (0 is wakeToken) in the low 32
// bits and the loop's generation count when it was added in the high 32,
// so a report still queued for a removed handle never reaches the handle
// that took its slot.

// add puts hd in a slot and gives it its token.
func (l *loop) add(hd *Handle) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var i uint32
	if n := len(l.free); n > 0 {
		i = l.free[n-1]
		l.free = l.free[:n-1]
	} else {
		i = uint32(len(l.slots))
		l.slots = append(l.slots, nil)
	}
	l.gen++
	l.slots[i] = hd
	hd.token = uint64(l.gen)<<32 | uint64(i+1)
}

// remove empties hd's slot.
func (l *loop) remove(hd *Handle) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := uint32(hd.token) - 1
	if int(i) < len(l.slots) && l.slots[i] == hd {
		l.slots[i] = nil
		l.free = append(l.free, i)
	}
}

// lookup returns the handle a report's token names, or nil if it is gone.
func (l *loop) lookup(t uint64) *Handle {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := uint32(t) - 1
	if int(i) < len(l.slots) {
		if hd := l.slots[i]; hd != nil && hd.token == t {
			return hd
		}
	}
	return nil
}

// Close removes the descriptor from its loop, closes it (at once, or when
// the system call using it returns) and wakes a writer waiting in Writev.
// Safe from any goroutine; idempotent. A Handler still runs for a Trigger
// until Deregister.
func (hd *Handle) Close() error {
	hd.mu.Lock()
	if hd.closing {
		hd.mu.Unlock()
		return nil
	}
	hd.closing = true
	if hd.added {
		if hd.acquire() {
			_ = unix.EpollCtl(hd.l.epfd, unix.EPOLL_CTL_DEL, int(hd.fd), nil)
			hd.release()
		}
		hd.added, hd.want = false, 0
		hd.l.remove(hd)
	}
	wch := hd.wch
	hd.mu.Unlock()
	if wch != nil {
		notify(wch)
	}
	if hd.fd >= 0 && hd.refs.close() {
		_ = unix.Close(int(hd.fd))
	}
	return nil
}

// Trigger runs the Handler on its loop soon. Safe from any goroutine; it
// never blocks. Ignored after Close.
func (hd *Handle) Trigger() {
	l := hd.l
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.queue = append(l.queue, hd)
	l.wakeLocked()
	l.mu.Unlock()
}

// wakeLocked makes the loop run its queue and timers. l.mu must be held:
// Close closes wakefd only after setting closed.
func (l *loop) wakeLocked() {
	if l.woken.CompareAndSwap(false, true) {
		one := [eventfdLen]byte{1}
		_, _ = rawsys.Write(l.wakefd, one[:])
	}
}

// Read reads what is available on the handle's descriptor into b without
// waiting. It returns ErrWouldBlock when nothing is, io.EOF when the peer
// closed, and net.ErrClosed once the handle is closed. Call it from the
// Handler.
func (hd *Handle) Read(b []byte) (int, error) {
	if !hd.acquire() {
		return 0, net.ErrClosed
	}
	n, err := rawsys.Read(int(hd.fd), b)
	hd.release()
	switch {
	case err == unix.EAGAIN:
		return 0, ErrWouldBlock
	case err != nil:
		return 0, os.NewSyscallError("read", err)
	case n == 0 && len(b) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// Writev writes all of v in as few system calls as it can (writev),
// consuming v as net.Buffers.WriteTo does. When the socket is full it
// waits for the loop to report it writable, until deadline (zero: no
// deadline); past it, it returns os.ErrDeadlineExceeded. Safe from any
// goroutine, one writer at a time.
func (hd *Handle) Writev(v *net.Buffers, deadline time.Time) (int64, error) {
	ivp := hd.l.iovecs.Get().(*[]unix.Iovec)
	defer hd.l.iovecs.Put(ivp)
	var total int64
	for len(*v) > 0 {
		iov := (*ivp)[:0]
		for _, b := range *v {
			if len(iov) == maxIovec {
				break
			}
			if len(b) == 0 {
				continue
			}
			var e unix.Iovec
			e.Base = &b[0]
			e.SetLen(len(b))
			iov = append(iov, e)
		}
		*ivp = iov[:0]
		if len(iov) == 0 {
			consume(v, 0) // only empty buffers were left
			break
		}
		n, err := hd.writev(iov)
		clear(iov) // the pooled scratch must not keep buffers alive
		if n > 0 {
			total += int64(n)
			consume(v, int64(n))
		}
		switch {
		case err == nil:
		case err == unix.EAGAIN:
			if err := hd.waitWritable(deadline); err != nil {
				return total, err
			}
		default:
			return total, err
		}
	}
	return total, nil
}

func (hd *Handle) writev(iov []unix.Iovec) (int, error) {
	if !hd.acquire() {
		return 0, net.ErrClosed
	}
	defer hd.release()
	n, err := rawsys.Writev(int(hd.fd), iov)
	switch {
	case err == nil:
		return n, nil
	case err == unix.EAGAIN:
		return 0, unix.EAGAIN
	}
	return 0, os.NewSyscallError("writev", err)
}

// waitWritable arms EPOLLOUT and waits for the report, Close or deadline.
func (hd *Handle) waitWritable(deadline time.Time) error {
	hd.mu.Lock()
	if hd.closing {
		hd.mu.Unlock()
		return net.ErrClosed
	}
	if hd.wch == nil {
		hd.wch = make(chan struct{}, 1)
	}
	wch := hd.wch
	hd.want |= unix.EPOLLOUT
	err := hd.ctlLocked()
	hd.mu.Unlock()
	if err != nil {
		return err
	}
	if deadline.IsZero() {
		<-wch
		return nil
	}
	d := time.Until(deadline)
	if d <= 0 {
		return os.ErrDeadlineExceeded
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-wch:
		return nil
	case <-t.C:
		return os.ErrDeadlineExceeded
	}
}

// consume drops the first n bytes of v.
func consume(v *net.Buffers, n int64) {
	for len(*v) > 0 {
		ln0 := int64(len((*v)[0]))
		if ln0 > n {
			(*v)[0] = (*v)[0][n:]
			return
		}
		n -= ln0
		(*v)[0] = nil
		*v = (*v)[1:]
	}
}

func (l *loop) run() {
	rc, err := l.file.SyscallConn()
	if err != nil {
		return
	}
	events := make([]unix.EpollEvent, maxEvents)
	var (
		n    int
		werr error
	)
	wait := func(fd uintptr) bool {
		n, werr = rawsys.EpollPoll(int(fd), events)
		return n > 0 || werr != nil // nothing ready: park until the epoll fd is readable
	}
	for {
		err := rc.Read(wait)
		if err != nil || werr != nil {
			if l.timer != nil {
				l.timer.Stop()
			}
			return // closed
		}
		woken := false
		l.ready = n
		for i := range events[:n] {
			t := token(&events[i])
			if t == wakeToken {
				woken = true
				continue
			}
			if hd := l.lookup(t); hd != nil {
				hd.event(events[i].Events)
			}
		}
		if woken {
			l.runQueue()
			if l.timerDue.Swap(false) {
				l.runTimers()
			}
		}
		// Let what the handlers made runnable (a dispatcher's workers, the
		// connections' writers) run before the next wait. Otherwise, while
		// some descriptor is always ready, they would run only when a wait
		// found nothing, and answers would leave in bursts of everything
		// read meanwhile.
		runtime.Gosched()
	}
}

// runQueue drains the eventfd and runs the triggered handlers.
func (l *loop) runQueue() {
	// Drain first, then clear woken: a Trigger in between finds woken set
	// and does not write, but its handle is in the queue taken below; one
	// after it writes again. (Clearing first could drain that write and
	// leave woken set with nothing to wake the loop: a lost Trigger.)
	var buf [eventfdLen]byte
	_, _ = rawsys.Read(l.wakefd, buf[:])
	l.woken.Store(false)
	l.mu.Lock()
	q := l.queue
	l.queue, l.spare = l.spare[:0], nil
	l.mu.Unlock()
	for i, hd := range q {
		hd.h.Ready()
		q[i] = nil
	}
	l.mu.Lock()
	if l.spare == nil {
		l.spare = q[:0]
	}
	l.mu.Unlock()
}

// Close stops the loops and waits for them. Idempotent.
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.closeLoops()
	p.wg.Wait()
	return err
}

// closeLoops closes every loop's epoll file, which ends its run, and its
// eventfd once no Trigger can write to it.
func (p *Poller) closeLoops() error {
	var errs []error
	for _, l := range p.loops {
		l.mu.Lock()
		l.closed = true
		err := unix.Close(l.wakefd)
		l.mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
		if err := l.file.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

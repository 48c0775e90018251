//go:build linux

package netpoll

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Supported reports whether New can work on this platform.
const Supported = true

// wakeToken marks the loop's own eventfd in its epoll set; handle tokens
// start at 1.
const wakeToken = 0

const (
	armEvents  = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT
	maxEvents  = 128
	eventfdLen = 8
)

// Poller is a fixed set of epoll loops. Create with New; stop with Close.
type Poller struct {
	loops  []*loop
	next   atomic.Uint32
	tokens atomic.Uint64
	wg     sync.WaitGroup

	mu     sync.Mutex // guards closed
	closed bool
}

type loop struct {
	epfd   int
	file   *os.File // epfd, for parking in the runtime poller
	wakefd int

	mu      sync.Mutex // guards handles, queue, spare, closed and writes to wakefd
	handles map[uint64]*Handle
	queue   []*Handle
	spare   []*Handle
	closed  bool
	woken   atomic.Bool // wakefd has been written and not yet drained
}

// Handle is one registered descriptor and its Handler.
type Handle struct {
	l     *loop
	rc    syscall.RawConn
	h     Handler
	token uint64
	added atomic.Bool // in the epoll set

	// Read's and Arm's state, bound once so that they allocate nothing.
	rbuf   []byte
	rn     int
	rerr   error
	readFn func(uintptr) bool
	armOp  int
	armErr error
	armFn  func(uintptr)
}

// New starts a poller with n loops (n < 1 means 1).
func New(n int) (*Poller, error) {
	n = max(n, 1)
	p := &Poller{}
	for range n {
		l, err := newLoop()
		if err != nil {
			p.closeLoops()
			return nil, err
		}
		p.loops = append(p.loops, l)
	}
	for _, l := range p.loops {
		p.wg.Go(l.run)
	}
	return p, nil
}

func newLoop() (*loop, error) {
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
	return &loop{
		epfd: epfd, file: os.NewFile(uintptr(epfd), "epoll"), wakefd: wakefd,
		handles: make(map[uint64]*Handle),
	}, nil
}

func setToken(ev *unix.EpollEvent, t uint64) {
	ev.Fd = int32(uint32(t))
	ev.Pad = int32(uint32(t >> 32))
}

func token(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// NewHandle returns a handle for the descriptor behind rc, served by one of
// the loops (round robin). It is not in the epoll set until Arm.
func (p *Poller) NewHandle(rc syscall.RawConn, h Handler) (*Handle, error) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	l := p.loops[int(p.next.Add(1))%len(p.loops)]
	hd := &Handle{l: l, rc: rc, h: h, token: p.tokens.Add(1)}
	hd.readFn = hd.read
	hd.armFn = hd.ctl
	return hd, nil
}

func (hd *Handle) ctl(fd uintptr) {
	ev := unix.EpollEvent{Events: armEvents}
	setToken(&ev, hd.token)
	hd.armErr = unix.EpollCtl(hd.l.epfd, hd.armOp, int(fd), &ev)
}

func (hd *Handle) read(fd uintptr) bool {
	for {
		hd.rn, hd.rerr = unix.Read(int(fd), hd.rbuf)
		if hd.rerr != unix.EINTR {
			return true // never wait in the runtime poller
		}
	}
}

// Arm asks for one readiness report (readable, peer hang-up or error): the
// Handler runs once when it comes. Call it from the Handler, or before the
// handle is first triggered.
func (hd *Handle) Arm() error {
	l := hd.l
	add := !hd.added.Load()
	if add {
		l.mu.Lock()
		l.handles[hd.token] = hd
		l.mu.Unlock()
		hd.added.Store(true) // before the Handler can run
	}
	hd.armOp = unix.EPOLL_CTL_MOD
	if add {
		hd.armOp = unix.EPOLL_CTL_ADD
	}
	err := hd.rc.Control(hd.armFn)
	if err == nil {
		err = hd.armErr
	}
	if err != nil && add {
		hd.added.Store(false)
	}
	return err
}

// Deregister removes the handle from its loop: no readiness report runs the
// Handler any more (a Trigger still may; the Handler must ignore it). Call
// it from the Handler, before the descriptor is closed.
func (hd *Handle) Deregister() {
	l := hd.l
	if hd.added.Swap(false) {
		_ = hd.rc.Control(func(fd uintptr) {
			_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
		})
	}
	l.mu.Lock()
	delete(l.handles, hd.token)
	l.mu.Unlock()
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
	if l.woken.CompareAndSwap(false, true) {
		// Under mu: Close closes wakefd only after setting closed.
		one := [eventfdLen]byte{1}
		_, _ = unix.Write(l.wakefd, one[:])
	}
	l.mu.Unlock()
}

// Read reads what is available on the handle's descriptor into b without
// waiting. It returns ErrWouldBlock when nothing is, io.EOF when the peer
// closed, and the connection's error once it is closed. Call it from the
// Handler.
func (hd *Handle) Read(b []byte) (int, error) {
	hd.rbuf = b
	err := hd.rc.Read(hd.readFn)
	n, rerr := hd.rn, hd.rerr
	hd.rbuf, hd.rerr = nil, nil
	switch {
	case err != nil:
		return 0, err
	case rerr == unix.EAGAIN:
		return 0, ErrWouldBlock
	case rerr != nil:
		return 0, rerr
	case n == 0 && len(b) > 0:
		return 0, io.EOF
	}
	return n, nil
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
		n, werr = unix.EpollWait(int(fd), events, 0)
		if werr == unix.EINTR {
			n, werr = 0, nil
		}
		return n > 0 || werr != nil // nothing ready: park until the epoll fd is readable
	}
	for {
		err := rc.Read(wait)
		if err != nil || werr != nil {
			return // closed
		}
		woken := false
		for i := range events[:n] {
			t := token(&events[i])
			if t == wakeToken {
				woken = true
				continue
			}
			l.mu.Lock()
			hd := l.handles[t]
			l.mu.Unlock()
			if hd != nil {
				hd.h.Ready()
			}
		}
		if woken {
			l.runQueue()
		}
	}
}

// runQueue drains the eventfd and runs the triggered handlers.
func (l *loop) runQueue() {
	// Drain first, then clear woken: a Trigger in between finds woken set
	// and does not write, but its handle is in the queue taken below; one
	// after it writes again. (Clearing first could drain that write and
	// leave woken set with nothing to wake the loop: a lost Trigger.)
	var buf [eventfdLen]byte
	_, _ = unix.Read(l.wakefd, buf[:])
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

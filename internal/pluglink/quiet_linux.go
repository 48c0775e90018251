//go:build linux

package pluglink

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strandws/strand/internal/rawsys"
)

// quiet takes a Unix socket out of the runtime's poller and returns it as
// a quietConn; any other connection (or one it cannot take) is returned as
// it is.
//
// Why: the runtime registers every socket for readable and writable
// readiness, edge-triggered. A Unix stream socket reports "writable" to
// its poll waiters each time the peer reads data it sent (the kernel's
// unix_write_space runs whenever a sent buffer is freed, unlike TCP,
// which wakes only a writer that found the socket full). So every frame
// one side reads woke the other side's poller for nothing: on a one-core
// host, two context switches and the runtime's scheduling per frame, on
// the critical path of the next answer (seen with perf sched: a short
// wake of strand between the plugin's read of an event and its answer). A
// quietConn waits for readability through its own epoll instance, which
// asks for EPOLLIN only, and asks for writability only while a write
// waits, so those reports wake no one.
func quiet(conn net.Conn) net.Conn {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return conn
	}
	q, err := newQuietConn(uc)
	if err != nil {
		return conn // keep the runtime's way: slower, still correct
	}
	return q
}

// quietConn is a Unix socket read and written with non-blocking system
// calls; a read or write that must wait parks in the runtime's poller on
// an epoll instance of its own (rd: EPOLLIN, peer hang-up; wr: EPOLLOUT,
// registered only while a write waits). Deadlines are those instances'.
type quietConn struct {
	fd     int          // the socket, a duplicate of the net.UnixConn's
	mu     sync.RWMutex // read-held by every use of fd, held by the close of fd
	closed atomic.Bool
	once   sync.Once

	rd, wr   *os.File // epoll instances in the runtime's poller
	rrc, wrc syscall.RawConn
	wmu      sync.Mutex // one waiting writer at a time owns wr's registration

	local, remote net.Addr
}

func newQuietConn(uc *net.UnixConn) (*quietConn, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) {
		fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, derr
	}
	q := &quietConn{fd: fd, local: uc.LocalAddr(), remote: uc.RemoteAddr()}
	fail := func(err error) (*quietConn, error) {
		if q.rd != nil {
			_ = q.rd.Close()
		}
		if q.wr != nil {
			_ = q.wr.Close()
		}
		_ = unix.Close(fd)
		return nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return fail(err)
	}
	if q.rd, err = newEpollFile("pluglink-read"); err != nil {
		return fail(err)
	}
	if q.wr, err = newEpollFile("pluglink-write"); err != nil {
		return fail(err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
	if err := q.ctl(q.rd, unix.EPOLL_CTL_ADD, &ev); err != nil {
		return fail(err)
	}
	if q.rrc, err = q.rd.SyscallConn(); err != nil {
		return fail(err)
	}
	if q.wrc, err = q.wr.SyscallConn(); err != nil {
		return fail(err)
	}
	// The original leaves the runtime's poller (and closes its descriptor;
	// the duplicate keeps the socket open).
	if err := uc.Close(); err != nil {
		return fail(err)
	}
	return q, nil
}

// newEpollFile returns a non-blocking epoll instance as an *os.File, which
// the runtime's poller then watches (an epoll descriptor is readable while
// it has events ready).
func newEpollFile(name string) (*os.File, error) {
	efd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(efd, true); err != nil {
		_ = unix.Close(efd)
		return nil, err
	}
	return os.NewFile(uintptr(efd), name), nil
}

// ctl runs epoll_ctl on f's instance for the socket.
func (q *quietConn) ctl(f *os.File, op int, ev *unix.EpollEvent) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	if err := rc.Control(func(efd uintptr) { cerr = unix.EpollCtl(int(efd), op, q.fd, ev) }); err != nil {
		return err
	}
	return cerr
}

// mapErr turns an error from a closed instance into net.ErrClosed, which
// the callers test for.
func (q *quietConn) mapErr(err error) error {
	if err == nil {
		return nil
	}
	if q.closed.Load() || errors.Is(err, os.ErrClosed) {
		return net.ErrClosed
	}
	return err
}

// Read reads as the link's reader does (link_unix.go), waiting on the
// read instance.
func (q *quietConn) Read(b []byte) (int, error) { return rawReader{q.SyscallConnRaw()}.Read(b) }

func (q *quietConn) Write(b []byte) (int, error) {
	n := 0
	var werr error
	err := q.SyscallConnRaw().Write(func(fd uintptr) bool {
		for n < len(b) {
			m, e := rawsys.Write(int(fd), b[n:])
			n += max(m, 0)
			if e == syscall.EAGAIN {
				return false
			}
			if e != nil {
				werr = e
				return true
			}
		}
		return true
	})
	if err != nil {
		return n, err
	}
	return n, werr
}

// Close shuts the socket down (the peer sees the end at once, whatever
// still holds it), wakes every waiting read and write, then closes the
// descriptor once no call uses it. Idempotent.
func (q *quietConn) Close() error {
	first := false
	q.once.Do(func() {
		first = true
		q.closed.Store(true)
		_ = unix.Shutdown(q.fd, unix.SHUT_RDWR)
		_ = q.rd.Close()
		_ = q.wr.Close()
		q.mu.Lock()
		_ = unix.Close(q.fd)
		q.fd = -1
		q.mu.Unlock()
	})
	if !first {
		return net.ErrClosed
	}
	return nil
}

func (q *quietConn) LocalAddr() net.Addr  { return q.local }
func (q *quietConn) RemoteAddr() net.Addr { return q.remote }

func (q *quietConn) SetDeadline(t time.Time) error {
	return errors.Join(q.SetReadDeadline(t), q.SetWriteDeadline(t))
}

func (q *quietConn) SetReadDeadline(t time.Time) error { return q.mapErr(q.rd.SetReadDeadline(t)) }

// SetWriteDeadline bounds a write's wait: a waiting write waits for its
// instance to become readable.
func (q *quietConn) SetWriteDeadline(t time.Time) error { return q.mapErr(q.wr.SetReadDeadline(t)) }

// SyscallConn lets link_unix.go read and write it as any socket.
func (q *quietConn) SyscallConn() (syscall.RawConn, error) { return q.SyscallConnRaw(), nil }

// SyscallConnRaw is SyscallConn without the error.
func (q *quietConn) SyscallConnRaw() syscall.RawConn { return quietRaw{q} }

// quietRaw is the socket's RawConn: each call holds the descriptor open
// (it cannot be closed and reused under it), and a function that returns
// false waits for the readiness it asked for.
type quietRaw struct{ q *quietConn }

func (r quietRaw) Control(f func(fd uintptr)) error {
	q := r.q
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.fd < 0 {
		return net.ErrClosed
	}
	f(uintptr(q.fd))
	return nil
}

func (r quietRaw) Read(f func(fd uintptr) bool) error {
	q := r.q
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.fd < 0 {
		return net.ErrClosed
	}
	fd := uintptr(q.fd)
	err := q.rrc.Read(func(uintptr) bool { return f(fd) })
	if q.closed.Load() {
		// Close began while this read waited: its shutdown may have woken
		// the read with an end of file first. Say what a net.Conn says to
		// a read its own Close ended.
		return net.ErrClosed
	}
	return q.mapErr(err)
}

func (r quietRaw) Write(f func(fd uintptr) bool) error {
	q := r.q
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.fd < 0 {
		return net.ErrClosed
	}
	fd := uintptr(q.fd)
	if f(fd) {
		return nil
	}
	// Full: ask for writability while this write waits, and only then
	// (see quiet).
	q.wmu.Lock()
	defer q.wmu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLOUT, Fd: int32(q.fd)}
	if err := q.ctl(q.wr, unix.EPOLL_CTL_ADD, &ev); err != nil {
		return q.mapErr(fmt.Errorf("pluglink: waiting to write: %w", err))
	}
	defer func() { _ = q.ctl(q.wr, unix.EPOLL_CTL_DEL, nil) }()
	return q.mapErr(q.wrc.Read(func(uintptr) bool { return f(fd) }))
}

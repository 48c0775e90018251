//go:build linux

// Package rawsys holds the system calls of Strand's hot paths that never
// wait (reads, writes and epoll_wait with a zero timeout on non-blocking
// descriptors), made without the Go runtime's syscall bookkeeping.
//
// Why: every syscall.Syscall enters the scheduler's "in a system call"
// state, and when the runtime's monitor thread (sysmon) is asleep because
// the process was idle, the first such call wakes it: one futex call and two
// context switches. A server answering one message at a time is idle
// between messages, so it pays that on every message, on the critical path
// (measured on a two-core VM: a quarter of the context switches of the
// out-of-process echo). A call that cannot block gains nothing from that
// bookkeeping, so these use RawSyscall, as cloudwego/netpoll does for the
// same calls. Never use them on a descriptor in blocking mode.
package rawsys

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Read is read(2) on a non-blocking descriptor, retried on EINTR.
func Read(fd int, b []byte) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	for {
		n, _, e := syscall.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(p), uintptr(len(b)))
		switch e {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

// Write is write(2) on a non-blocking descriptor, retried on EINTR.
func Write(fd int, b []byte) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	for {
		n, _, e := syscall.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(p), uintptr(len(b)))
		switch e {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

// Writev is writev(2) on a non-blocking descriptor, retried on EINTR.
func Writev(fd int, iov []unix.Iovec) (int, error) {
	var p unsafe.Pointer
	if len(iov) > 0 {
		p = unsafe.Pointer(&iov[0])
	}
	for {
		n, _, e := syscall.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(p), uintptr(len(iov)))
		switch e {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

// EpollPoll is epoll_wait(2) with a zero timeout: the events ready now.
func EpollPoll(epfd int, events []unix.EpollEvent) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	for {
		n, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
		switch e {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

// Yield is sched_yield(2).
func Yield() { syscall.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

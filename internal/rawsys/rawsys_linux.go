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
//
// Under the race detector, Read and Write are the syscall package's
// (rawsys_race_linux.go): those tell the detector that a write to a
// descriptor happens before a read of what it wrote, as every read and
// write of the standard library does; raw calls would hide that order and
// report races between goroutines that a socket orders.
package rawsys

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// EpollPoll is epoll_wait(2) with a zero timeout: the events ready now.
func EpollPoll(epfd int, events []unix.EpollEvent) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	// epoll_pwait (every architecture has it): timeout 0, no signal mask.
	return call(unix.SYS_EPOLL_PWAIT, epfd, first(events), len(events))
}

// Yield is sched_yield(2).
func Yield() { syscall.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

// call makes the raw system call trap(fd, p, n, 0, 0, 0), retried on
// EINTR. p stays an unsafe.Pointer until the call expression itself, so
// that what it points to stays alive and is found if the stack moves.
func call(trap uintptr, fd int, p unsafe.Pointer, n int) (int, error) {
	for {
		r, _, e := syscall.RawSyscall6(trap, uintptr(fd), uintptr(p), uintptr(n), 0, 0, 0)
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

// first returns the address of s's first element, or nil when s is empty.
func first[T any](s []T) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}

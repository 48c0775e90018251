//go:build !linux

package rawsys

import "syscall"

// Read is read(2), retried on EINTR (with the runtime's bookkeeping: the
// raw form is Linux-only here).
func Read(fd int, b []byte) (int, error) {
	for {
		n, err := syscall.Read(fd, b)
		if err == syscall.EINTR {
			continue
		}
		if n < 0 {
			n = 0
		}
		return n, err
	}
}

// Write is write(2), retried on EINTR.
func Write(fd int, b []byte) (int, error) {
	for {
		n, err := syscall.Write(fd, b)
		if err == syscall.EINTR {
			continue
		}
		if n < 0 {
			n = 0
		}
		return n, err
	}
}

// Yield does nothing here: sched_yield(2) is used on Linux only.
func Yield() {}

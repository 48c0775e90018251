//go:build unix && !linux

package rawsys

import "syscall"

// Read is read(2), retried on EINTR (with the runtime's bookkeeping: the
// raw form is Linux-only here).
func Read(fd int, b []byte) (int, error) { return retry(syscall.Read, fd, b) }

// Write is write(2), retried on EINTR.
func Write(fd int, b []byte) (int, error) { return retry(syscall.Write, fd, b) }

// Yield does nothing here: sched_yield(2) is used on Linux only.
func Yield() {}

func retry(op func(int, []byte) (int, error), fd int, b []byte) (int, error) {
	for {
		n, err := op(fd, b)
		if err == syscall.EINTR {
			continue
		}
		return max(n, 0), err
	}
}

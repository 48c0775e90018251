//go:build linux && !race

package rawsys

import "golang.org/x/sys/unix"

// Read is read(2) on a non-blocking descriptor, retried on EINTR.
func Read(fd int, b []byte) (int, error) {
	return call(unix.SYS_READ, fd, first(b), len(b))
}

// Write is write(2) on a non-blocking descriptor, retried on EINTR.
func Write(fd int, b []byte) (int, error) {
	return call(unix.SYS_WRITE, fd, first(b), len(b))
}

// Writev is writev(2) on a non-blocking descriptor, retried on EINTR.
func Writev(fd int, iov []unix.Iovec) (int, error) {
	return call(unix.SYS_WRITEV, fd, first(iov), len(iov))
}

//go:build linux && race

package rawsys

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Read is syscall.Read, retried on EINTR: under the race detector, a read
// must acquire what the writes before it released (see the package doc).
func Read(fd int, b []byte) (int, error) {
	for {
		n, err := syscall.Read(fd, b)
		if err == syscall.EINTR {
			continue
		}
		return max(n, 0), err
	}
}

// Write is syscall.Write, retried on EINTR.
func Write(fd int, b []byte) (int, error) {
	for {
		n, err := syscall.Write(fd, b)
		if err == syscall.EINTR {
			continue
		}
		return max(n, 0), err
	}
}

// Writev writes the buffers iov describes in order with syscall.Write,
// stopping at the first short or failed write: the bytes a writev(2)
// would have written, through the annotated call.
func Writev(fd int, iov []unix.Iovec) (int, error) {
	total := 0
	for _, v := range iov {
		if v.Len == 0 {
			continue
		}
		b := unsafe.Slice(v.Base, int(v.Len))
		n, err := Write(fd, b)
		total += n
		if err != nil {
			if total > 0 && err == syscall.EAGAIN {
				return total, nil
			}
			return total, err
		}
		if n < len(b) {
			return total, nil
		}
	}
	return total, nil
}

//go:build unix

package pluglink

import (
	"io"
	"net"
	"syscall"

	"github.com/strandws/strand/internal/rawsys"
)

// rawOf returns conn's RawConn and a reader over it that reads with
// rawsys.Read, when conn has one (a Unix socket does); else nil and conn
// itself, and every batch then goes through the writer goroutine.
func rawOf(conn net.Conn) (syscall.RawConn, io.Reader) {
	if sc, ok := conn.(syscall.Conn); ok {
		if r, err := sc.SyscallConn(); err == nil {
			return r, rawReader{r}
		}
	}
	return nil, conn
}

// tryWrite writes as much of b as the socket takes now.
func (l *Link) tryWrite(b []byte) (int, error) {
	n := 0
	var werr error
	err := l.raw.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, e := rawsys.Write(int(fd), b[n:])
			n += m
			if e != nil {
				if e != syscall.EAGAIN {
					werr = e
				}
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

// rawReader reads a socket through its RawConn with rawsys.Read (no
// runtime syscall bookkeeping: see package rawsys), parking in the
// runtime's poller while nothing is there.
type rawReader struct{ rc syscall.RawConn }

func (r rawReader) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var n int
	var rerr error
	err := r.rc.Read(func(fd uintptr) bool {
		n, rerr = rawsys.Read(int(fd), b)
		return rerr != syscall.EAGAIN
	})
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

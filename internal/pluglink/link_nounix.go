//go:build !unix

package pluglink

import (
	"errors"
	"io"
	"net"
	"syscall"
)

// rawOf returns no RawConn off Unix: the non-blocking raw reads and writes
// of link_unix.go are Unix system calls, so every batch goes through the
// writer goroutine and reads go through conn.
func rawOf(conn net.Conn) (syscall.RawConn, io.Reader) { return nil, conn }

// tryWrite is never called off Unix: it is only used when rawOf returned a
// RawConn.
func (l *Link) tryWrite([]byte) (int, error) {
	return 0, errors.New("pluglink: no raw writes off Unix")
}

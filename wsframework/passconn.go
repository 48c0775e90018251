package wsframework

import (
	"errors"
	"io"
	"net"
	"sync"
)

// prefixConn is a connection handed to net/http: it reads the bytes the
// acceptor already read first.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite and ReadFrom reach the TCP connection, so that net/http can
// half-close before it closes (no reset for a pipelining client) and
// answer with sendfile.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

func (c *prefixConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(onlyWriter{c.Conn}, r)
}

// onlyWriter hides a writer's ReadFrom from io.Copy.
type onlyWriter struct{ io.Writer }

// passListener is the listener the http.Server behind an acceptor serves:
// its connections come from the acceptor.
type passListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newPassListener(addr net.Addr) *passListener {
	return &passListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *passListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// push hands c to the http.Server; false once the listener is closed.
func (l *passListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *passListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *passListener) Addr() net.Addr { return l.addr }

//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/strandws/strand/bench/internal/peer"
)

const (
	readBufSize = 64 << 10
	// maxOut bounds what a broadcast member may have queued and not yet
	// taken; a member past it is closed (an echo connection is not read
	// while it has anything queued, so it never gets there).
	maxOut = 64 << 20
	// keepOut is the largest out buffer kept for reuse once drained.
	keepOut = 64 << 10

	opCont  = 0x0
	opText  = 0x1
	opBin   = 0x2
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xa
)

// server owns the loops and the broadcast room.
type server struct {
	loops []*loop
	room  peer.Set[*conn]
	next  int // accept goroutine only
}

// loop is one epoll instance and the goroutine that waits on it.
type loop struct {
	s     *server
	epfd  int
	mu    sync.Mutex // guards conns: registration comes from other goroutines
	conns map[int32]*conn
	buf   []byte
	dirty []*conn // connections given output this turn, to flush once
	evs   []unix.EpollEvent
	ready []*conn
}

// conn is one upgraded connection. fd, lp and bcast never change; carry
// and the message assembly fields belong to the owning loop; the rest is
// guarded by mu (broadcast appends come from any loop).
type conn struct {
	fd    int
	lp    *loop
	bcast bool

	carry []byte // unparsed bytes: a partial frame
	msgOp byte   // opcode of the fragmented message being assembled, or 0
	msg   []byte // its payload so far

	mu      sync.Mutex
	out     []byte
	pending bool // in some loop's dirty list
	waitOut bool // EPOLLOUT armed: the socket did not take everything
	closing bool // a close frame is queued: close once out drains
	closed  bool
	broken  bool // a write failed: the owning loop closes
}

func newServer(n int) (*server, error) {
	if n < 1 {
		n = 1
	}
	s := &server{}
	for range n {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return nil, err
		}
		lp := &loop{s: s, epfd: epfd, conns: make(map[int32]*conn),
			buf: make([]byte, readBufSize), evs: make([]unix.EpollEvent, 1024)}
		s.loops = append(s.loops, lp)
		go lp.run()
	}
	return s, nil
}

// serve accepts until ln is closed; each connection is upgraded in its own
// short-lived goroutine, then handed to a loop.
func (s *server) serve(ln net.Listener) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return
		}
		lp := s.loops[s.next%len(s.loops)]
		s.next++
		go s.upgrade(nc, lp)
	}
}

func (s *server) upgrade(nc net.Conn, lp *loop) {
	var bcast bool
	u := ws.Upgrader{
		OnRequest: func(uri []byte) error {
			if i := bytes.IndexByte(uri, '?'); i >= 0 {
				uri = uri[:i]
			}
			switch string(uri) {
			case "/echo":
			case "/broadcast":
				bcast = true
			default:
				return ws.RejectConnectionError(ws.RejectionStatus(404))
			}
			return nil
		},
	}
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	// The client sends no frame before it has the 101 response, so the
	// upgrader's read buffer holds nothing past the request.
	if _, err := u.Upgrade(nc); err != nil {
		_ = nc.Close()
		return
	}
	fd, err := dupFD(nc)
	_ = nc.Close() // the dup keeps the socket open
	if err != nil {
		return
	}
	c := &conn{fd: fd, lp: lp, bcast: bcast}
	lp.mu.Lock()
	lp.conns[int32(fd)] = c
	lp.mu.Unlock()
	if bcast {
		s.room.Add(c)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
	if err := unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		lp.mu.Lock()
		delete(lp.conns, int32(fd))
		lp.mu.Unlock()
		s.room.Remove(c)
		_ = unix.Close(fd)
	}
}

// dupFD returns a non-blocking duplicate of nc's descriptor.
func dupFD(nc net.Conn) (int, error) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return -1, errors.New("not a TCP connection")
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(f uintptr) {
		fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func (lp *loop) run() {
	for {
		n, err := unix.EpollWait(lp.epfd, lp.evs, -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		lp.ready = lp.ready[:0]
		lp.mu.Lock()
		for i := range n {
			lp.ready = append(lp.ready, lp.conns[lp.evs[i].Fd])
		}
		lp.mu.Unlock()
		for i, c := range lp.ready {
			if c == nil {
				continue
			}
			e := lp.evs[i].Events
			if e&unix.EPOLLOUT != 0 {
				lp.writable(c)
			}
			if e&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP|unix.EPOLLRDHUP) != 0 {
				lp.readable(c)
			}
		}
		for i, c := range lp.dirty {
			lp.dirty[i] = nil
			c.flush()
		}
		lp.dirty = lp.dirty[:0]
		// A connection this loop owns may now be finished (close frame
		// sent, or a write failed in a flush).
		for i, c := range lp.ready {
			lp.ready[i] = nil
			if c != nil {
				c.mu.Lock()
				done := c.broken || (c.closing && len(c.out) == 0)
				c.mu.Unlock()
				if done {
					lp.close(c)
				}
			}
		}
	}
}

// readable reads everything the socket has buffered and handles every
// complete frame in it.
func (lp *loop) readable(c *conn) {
	for {
		n, err := unix.Read(c.fd, lp.buf)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		if err != nil || n == 0 {
			lp.close(c)
			return
		}
		data := lp.buf[:n]
		if len(c.carry) > 0 {
			c.carry = append(c.carry, data...)
			data = c.carry
		}
		rest, ok := lp.frames(c, data)
		if !ok {
			return // closed or closing
		}
		if len(rest) > 0 {
			if len(c.carry) > 0 {
				c.carry = c.carry[:copy(c.carry, rest)]
			} else {
				c.carry = append(c.carry[:0], rest...)
			}
		} else {
			c.carry = c.carry[:0]
			if cap(c.carry) > keepOut {
				c.carry = nil
			}
		}
		if n < len(lp.buf) {
			return
		}
		c.mu.Lock()
		stop := c.waitOut && !c.bcast
		c.mu.Unlock()
		if stop {
			return // backpressure: read again once the out buffer drains
		}
	}
}

// frames handles every complete frame at the start of data and returns the
// bytes of a trailing partial frame; ok is false once c is closing.
func (lp *loop) frames(c *conn, data []byte) (rest []byte, ok bool) {
	for len(data) >= 2 {
		b0, b1 := data[0], data[1]
		fin, op := b0&0x80 != 0, b0&0x0f
		if b0&0x70 != 0 || b1&0x80 == 0 {
			lp.fail(c, ws.StatusProtocolError) // no extensions; clients mask
			return nil, false
		}
		hdr := 2
		plen := uint64(b1 & 0x7f)
		switch plen {
		case 126:
			if len(data) < 4 {
				return data, true
			}
			plen = uint64(binary.BigEndian.Uint16(data[2:]))
			hdr = 4
		case 127:
			if len(data) < 10 {
				return data, true
			}
			plen = binary.BigEndian.Uint64(data[2:])
			hdr = 10
		}
		if plen > peer.MaxMessageSize {
			lp.fail(c, ws.StatusMessageTooBig)
			return nil, false
		}
		if len(data) < hdr+4+int(plen) {
			return data, true
		}
		var mask [4]byte
		copy(mask[:], data[hdr:hdr+4])
		p := data[hdr+4 : hdr+4+int(plen)]
		data = data[hdr+4+int(plen):]
		ws.Cipher(p, mask, 0)

		switch op {
		case opText, opBin:
			if c.msgOp != 0 {
				lp.fail(c, ws.StatusProtocolError)
				return nil, false
			}
			if fin {
				lp.message(c, op, p)
			} else {
				c.msgOp = op
				c.msg = append(c.msg[:0], p...)
			}
		case opCont:
			if c.msgOp == 0 {
				lp.fail(c, ws.StatusProtocolError)
				return nil, false
			}
			if len(c.msg)+len(p) > peer.MaxMessageSize {
				lp.fail(c, ws.StatusMessageTooBig)
				return nil, false
			}
			c.msg = append(c.msg, p...)
			if fin {
				op := c.msgOp
				c.msgOp = 0
				lp.message(c, op, c.msg)
				c.msg = c.msg[:0]
				if cap(c.msg) > keepOut {
					c.msg = nil
				}
			}
		case opPing, opPong, opClose:
			if !fin || len(p) > 125 {
				lp.fail(c, ws.StatusProtocolError)
				return nil, false
			}
			switch op {
			case opPing:
				lp.send(c, opPong, p)
			case opClose:
				// Echo the status code, as RFC 6455 section 5.5.1 asks.
				if len(p) >= 2 {
					p = p[:2]
				} else {
					p = nil
				}
				lp.closeWith(c, p)
				return nil, false
			}
		default:
			lp.fail(c, ws.StatusProtocolError)
			return nil, false
		}
	}
	return data, true
}

// message answers one complete data message.
func (lp *loop) message(c *conn, op byte, p []byte) {
	if !c.bcast {
		lp.send(c, op, p)
		return
	}
	var h [10]byte
	hdr := header(h[:], op, len(p))
	for _, m := range lp.s.room.Snapshot() {
		lp.queue(m, hdr, p)
	}
}

// send queues one frame for c.
func (lp *loop) send(c *conn, op byte, p []byte) {
	var h [10]byte
	lp.queue(c, header(h[:], op, len(p)), p)
}

// queue appends a frame to c's out buffer and puts c on this loop's dirty
// list unless some loop already has it there.
func (lp *loop) queue(c *conn, hdr, p []byte) {
	c.mu.Lock()
	if c.closed || c.closing || c.broken {
		c.mu.Unlock()
		return
	}
	if len(c.out)+len(hdr)+len(p) > maxOut {
		c.breakOff() // a reader that does not keep up
		c.mu.Unlock()
		return
	}
	c.out = append(c.out, hdr...)
	c.out = append(c.out, p...)
	add := !c.pending
	c.pending = true
	c.mu.Unlock()
	if add {
		lp.dirty = append(lp.dirty, c)
	}
}

// header writes an unmasked final-frame header into h.
func header(h []byte, op byte, n int) []byte {
	h[0] = 0x80 | op
	switch {
	case n < 126:
		h[1] = byte(n)
		return h[:2]
	case n <= 0xffff:
		h[1] = 126
		binary.BigEndian.PutUint16(h[2:], uint16(n))
		return h[:4]
	default:
		h[1] = 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
		return h[:10]
	}
}

// flush writes c's out buffer once; what the socket does not take waits for
// EPOLLOUT.
func (c *conn) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = false
	if c.closed || c.broken || c.waitOut || len(c.out) == 0 {
		return
	}
	c.write()
}

// write is flush's and writable's single write; c.mu is held.
func (c *conn) write() {
	n, err := unix.Write(c.fd, c.out)
	if err == unix.EINTR {
		n, err = unix.Write(c.fd, c.out)
	}
	if err != nil && err != unix.EAGAIN {
		c.breakOff()
		c.out = c.out[:0]
		return
	}
	if n < 0 {
		n = 0
	}
	if n == len(c.out) {
		c.out = c.out[:0]
		if cap(c.out) > keepOut {
			c.out = nil
		}
		if c.waitOut {
			c.waitOut = false
			c.arm(unix.EPOLLIN | unix.EPOLLRDHUP)
		}
		return
	}
	c.out = c.out[:copy(c.out, c.out[n:])]
	if !c.waitOut {
		c.waitOut = true
		if c.bcast {
			c.arm(unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP)
		} else {
			c.arm(unix.EPOLLOUT | unix.EPOLLRDHUP) // stop reading: backpressure
		}
	}
}

// breakOff marks c broken and shuts its socket down, so that the owning
// loop gets an event and closes it; c.mu is held and c is not closed.
func (c *conn) breakOff() {
	c.broken = true
	_ = unix.Shutdown(c.fd, unix.SHUT_RDWR)
}

// arm sets c's epoll events; c.mu is held and c is not closed.
func (c *conn) arm(events uint32) {
	ev := unix.EpollEvent{Events: events, Fd: int32(c.fd)}
	if err := unix.EpollCtl(c.lp.epfd, unix.EPOLL_CTL_MOD, c.fd, &ev); err != nil {
		c.breakOff()
	}
}

// writable writes what c still has queued.
func (lp *loop) writable(c *conn) {
	c.mu.Lock()
	if !c.closed && !c.broken && len(c.out) > 0 {
		c.write()
	} else if c.waitOut && !c.closed && len(c.out) == 0 {
		c.waitOut = false
		c.arm(unix.EPOLLIN | unix.EPOLLRDHUP)
	}
	c.mu.Unlock()
}

// fail closes c with a close frame carrying code.
func (lp *loop) fail(c *conn, code ws.StatusCode) {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], uint16(code))
	lp.closeWith(c, b[:])
}

// closeWith queues a close frame with body p and marks c closing: the loop
// closes it once the frame is written.
func (lp *loop) closeWith(c *conn, p []byte) {
	lp.send(c, opClose, p)
	c.mu.Lock()
	c.closing = true
	if !c.closed && !c.broken && !c.waitOut {
		// Stop reading; EPOLLOUT tells the loop when the frame has gone.
		c.arm(unix.EPOLLOUT | unix.EPOLLRDHUP)
	}
	c.mu.Unlock()
}

// close releases c; only the owning loop calls it.
func (lp *loop) close(c *conn) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.out = nil
	c.mu.Unlock()
	if c.bcast {
		lp.s.room.Remove(c)
	}
	lp.mu.Lock()
	delete(lp.conns, int32(c.fd))
	lp.mu.Unlock()
	_ = unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	_ = unix.Close(c.fd)
	c.carry, c.msg = nil, nil
}

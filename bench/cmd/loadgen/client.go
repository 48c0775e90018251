package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
)

// maxFrame bounds what the client accepts from a server: the largest payload
// it sends plus slack, so a broken server cannot make it allocate without
// bound.
const maxFrame = 1<<20 + 1024

var (
	errProtocol     = errors.New("protocol error")
	errClosedByPeer = errors.New("server sent a close frame")
)

// client is one WebSocket client connection: a small hand-rolled RFC 6455
// client on top of gobwas/ws frame helpers. Frames it sends are masked;
// frames it receives must not be. Fragmented messages are reassembled;
// pings are answered. permessage-deflate is offered with -compress
// (deflate.go); no other extension.
//
// The reader goroutine alone calls readMessage; writes go through wmu so the
// writer goroutine and the reader's pong replies never interleave.
type client struct {
	id uint32
	nc net.Conn
	br *bufio.Reader

	cc               *countingConn // nc's bytes on the wire
	readBase, wrBase uint64        // cc's counts after the handshake
	flate            *flateState   // nil: permessage-deflate not negotiated

	hdrIn [ws.MaxHeaderSize - 2]byte // ReadHeaderBuffer scratch
	rbuf  []byte                     // message reassembly; valid until the next readMessage
	ctrl  [125]byte                  // control frame payloads

	wmu    sync.Mutex
	bw     *bufio.Writer
	hdrOut [ws.MaxHeaderSize]byte
	wbuf   []byte // encoded + masked outgoing payload

	pendingPong atomic.Pointer[[]byte] // a pong the reader could not send because the writer held wmu

	tokens  chan struct{} // one per message the connection may still put in flight
	seq     uint64        // last sequence number sent; writer goroutine only
	closing atomic.Bool   // set before the load generator closes the connection
	dead    atomic.Bool   // set when the connection failed
}

// dialed is an open WebSocket connection before it becomes a client.
type dialed struct {
	nc    net.Conn      // the connection to read and write: cc, or TLS over it
	cc    *countingConn // the TCP connection, counting the bytes on the wire
	br    *bufio.Reader
	flate *flateState
}

// dial opens one WebSocket connection to url from source address src (nil
// means the kernel's choice), offering exts; a wss:// one with tlsCfg.
func dial(ctx context.Context, url string, src net.IP, bufSize int, tlsCfg *tls.Config, exts []httphead.Option) (dialed, error) {
	nd := &net.Dialer{}
	if src != nil {
		nd.LocalAddr = &net.TCPAddr{IP: src}
	}
	var cc *countingConn
	d := ws.Dialer{
		ReadBufferSize: bufSize,
		TLSConfig:      tlsCfg,
		Extensions:     exts,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := nd.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			cc = &countingConn{Conn: nc}
			return cc, nil
		},
	}
	conn, br, hs, err := d.Dial(ctx, url)
	if err != nil {
		return dialed{}, err
	}
	fs, err := negotiated(hs.Extensions)
	if err != nil {
		_ = conn.Close()
		return dialed{}, err
	}
	if br == nil {
		br = bufio.NewReaderSize(conn, bufSize)
	}
	return dialed{nc: conn, cc: cc, br: br, flate: fs}, nil
}

// clientTLS returns the TLS configuration of wss:// connections: the
// certificates in the PEM file ca as roots, or the system's without one.
func clientTLS(ca string) (*tls.Config, error) {
	if ca == "" {
		return nil, nil
	}
	b, err := os.ReadFile(ca)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate", ca)
	}
	return &tls.Config{RootCAs: pool}, nil
}

func newClient(id uint32, d dialed, bufSize, payloadSize, depth int) *client {
	c := &client{
		id:       id,
		nc:       d.nc,
		br:       d.br,
		cc:       d.cc,
		readBase: d.cc.read.Load(),
		wrBase:   d.cc.written.Load(),
		flate:    d.flate,
		bw:       bufio.NewWriterSize(d.nc, bufSize),
		wbuf:     make([]byte, payloadSize),
		tokens:   make(chan struct{}, depth),
	}
	for range depth {
		c.tokens <- struct{}{}
	}
	return c
}

// writeFrameLocked appends one masked frame to the write buffer; the caller
// holds wmu and flushes. p is masked in place.
func (c *client) writeFrameLocked(op ws.OpCode, p []byte) error {
	h := ws.Header{Fin: true, OpCode: op, Masked: true, Mask: ws.NewMask(), Length: int64(len(p))}
	if err := ws.WriteHeaderBuffer(c.bw, h, c.hdrOut[:]); err != nil {
		return err
	}
	ws.Cipher(p, h.Mask, 0)
	_, err := c.bw.Write(p)
	return err
}

// writeDataLocked appends one data message, compressed if the connection
// negotiated permessage-deflate; the caller holds wmu and flushes. p may be
// masked in place.
func (c *client) writeDataLocked(op ws.OpCode, p []byte) error {
	if c.flate == nil {
		return c.writeFrameLocked(op, p)
	}
	z, err := c.flate.compress(p)
	if err != nil {
		return err
	}
	h := ws.Header{Fin: true, Rsv: rsv1, OpCode: op, Masked: true, Mask: ws.NewMask(), Length: int64(len(z))}
	if err := ws.WriteHeaderBuffer(c.bw, h, c.hdrOut[:]); err != nil {
		return err
	}
	ws.Cipher(z, h.Mask, 0)
	_, err = c.bw.Write(z)
	return err
}

// wireBytes returns the bytes read and written since the handshake.
func (c *client) wireBytes() (read, written uint64) {
	return c.cc.read.Load() - c.readBase, c.cc.written.Load() - c.wrBase
}

// writeControl sends one control frame right away.
func (c *client) writeControl(op ws.OpCode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeControlLocked(op, p)
}

// writeControlLocked sends one control frame; the caller holds wmu.
func (c *client) writeControlLocked(op ws.OpCode, p []byte) error {
	buf := append([]byte(nil), p...)
	if err := c.writeFrameLocked(op, buf); err != nil {
		return err
	}
	return c.bw.Flush()
}

// flushLocked sends a pong the reader left behind, then flushes; the caller
// holds wmu.
func (c *client) flushLocked() error {
	if p := c.pendingPong.Swap(nil); p != nil {
		if err := c.writeFrameLocked(ws.OpPong, *p); err != nil {
			return err
		}
	}
	return c.bw.Flush()
}

// readMessage returns the next data message. The payload is valid until the
// next call.
func (c *client) readMessage() (ws.OpCode, []byte, error) {
	var op ws.OpCode
	var compressed bool
	buf := c.rbuf[:0]
	for {
		h, err := ws.ReadHeaderBuffer(c.br, c.hdrIn[:])
		if err != nil {
			return 0, nil, err
		}
		if h.Rsv == rsv1 && c.flate != nil && !h.OpCode.IsControl() && h.OpCode != ws.OpContinuation {
			compressed = true // RFC 7692: RSV1 on a message's first frame only
			h.Rsv = 0
		}
		switch {
		case h.Masked:
			return 0, nil, fmt.Errorf("%w: server frame is masked", errProtocol)
		case h.Rsv != 0:
			return 0, nil, fmt.Errorf("%w: reserved bits %#x set on a %v frame (deflate negotiated: %v)", errProtocol, h.Rsv, h.OpCode, c.flate != nil)
		case h.Length > maxFrame || int64(len(buf))+h.Length > maxFrame:
			return 0, nil, fmt.Errorf("%w: frame of %d bytes exceeds %d", errProtocol, h.Length, maxFrame)
		}
		if h.OpCode.IsControl() {
			if h.Length > int64(len(c.ctrl)) || !h.Fin {
				return 0, nil, fmt.Errorf("%w: bad control frame", errProtocol)
			}
			p := c.ctrl[:h.Length]
			if _, err := io.ReadFull(c.br, p); err != nil {
				return 0, nil, err
			}
			switch h.OpCode {
			case ws.OpPing:
				// Never block the reader on the writer: a writer stuck on a
				// full socket would then stop us draining ours. If the
				// writer is busy it sends the pong after its batch.
				if c.wmu.TryLock() {
					err := c.writeControlLocked(ws.OpPong, p)
					c.wmu.Unlock()
					if err != nil {
						return 0, nil, err
					}
				} else {
					pong := append([]byte(nil), p...)
					c.pendingPong.Store(&pong)
				}
			case ws.OpClose:
				code, reason := ws.ParseCloseFrameData(p)
				return 0, nil, fmt.Errorf("%w: code %d %q", errClosedByPeer, code, reason)
			}
			continue
		}
		switch {
		case h.OpCode == ws.OpContinuation && op == 0:
			return 0, nil, fmt.Errorf("%w: continuation frame without a message", errProtocol)
		case h.OpCode != ws.OpContinuation && op != 0:
			return 0, nil, fmt.Errorf("%w: new message inside a fragmented one", errProtocol)
		case h.OpCode != ws.OpContinuation:
			op = h.OpCode
		}
		n := len(buf)
		need := n + int(h.Length)
		if cap(buf) < need {
			nb := make([]byte, n, need)
			copy(nb, buf)
			buf = nb
		}
		buf = buf[:need]
		if _, err := io.ReadFull(c.br, buf[n:]); err != nil {
			return 0, nil, err
		}
		if h.Fin {
			if compressed {
				p, err := c.flate.inflate(buf, maxFrame)
				c.rbuf = buf[:0]
				return op, p, err
			}
			c.rbuf = buf
			return op, buf, nil
		}
	}
}

// shutdown sends a normal close frame (best effort, bounded by a deadline)
// and closes the TCP connection.
func (c *client) shutdown() {
	c.closing.Store(true)
	_ = c.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	// The connection is going away either way; a failed close frame changes nothing.
	_ = c.writeControl(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	_ = c.nc.Close()
}

// randomPhase spreads fixed-rate senders over one interval so they do not
// fire in lockstep.
func randomPhase(interval time.Duration) time.Duration {
	if interval <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(interval)))
}

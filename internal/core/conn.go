package core

import (
	"context"
	"sync/atomic"

	"github.com/strandws/strand/sdk/bufpool"
)

// MessageType is a WebSocket data message type. Its values are the
// WebSocket opcodes.
type MessageType uint8

// Message types.
const (
	Text   MessageType = 1
	Binary MessageType = 2
)

func (t MessageType) String() string {
	switch t {
	case Text:
		return "text"
	case Binary:
		return "binary"
	}
	return "invalid"
}

// valid reports whether t is a data message type: Text or Binary.
func (t MessageType) valid() bool { return t == Text || t == Binary }

// Message is one WebSocket message handed to OnMessage. Data is valid only
// until the handler returns; copy it to keep it.
type Message struct {
	Type MessageType
	Data []byte
}

// ConnHost is the host end of one connection as the runtime sees it: the
// in-process host (package wsframework), a transport to a host in another
// process, or the in-memory test kit implement it.
type ConnHost interface {
	// Write queues one message for the peer in call order and takes
	// ownership of b: the host releases it once written, or at once on
	// error. It never blocks. It returns ErrMessageType for a type other
	// than Text and Binary, ErrTooBig for a message larger than the host's
	// write queue holds on its own (the connection stays open), ErrClosed
	// once the connection is closing, and ErrSlowConsumer when the message
	// does not fit behind what is queued (the host then applies its
	// slow-consumer policy).
	Write(typ MessageType, b *bufpool.Buffer) error
	// Close starts the close handshake with code and reason, because the
	// plugin asked to (Conn.Close): a host reports it as the plugin's own
	// close, whatever the code, 1011 included. Idempotent: only the first
	// call's code (of Close or ClosePanic) is sent.
	Close(code CloseCode, reason string) error
	// ClosePanic starts the close handshake with CloseInternalError and
	// reason because a handler panicked. Only the runtime calls it (a
	// plugin's Conn has no such method), so a host can tell a panic from a
	// plugin's own Close(CloseInternalError, ...) when it counts closes.
	// Idempotent, with Close.
	ClosePanic(reason string) error
}

// ConnInfo describes a connection the host opens on a Runtime.
type ConnInfo struct {
	ID          uint64             // unique, never reused by the host
	Request     *Request           // the upgrade request's snapshot (copied: the host may reuse it)
	Values      map[string]any     // values set by request filters (read-only from now on)
	Subprotocol string             // the negotiated subprotocol, or ""
	Handlers    *WebSocketHandlers // the handlers of the entry that upgraded
}

// Conn is a WebSocket connection as a plugin sees it. All methods are safe
// for concurrent use from any goroutine and never block on the network.
type Conn struct {
	id          uint64
	rt          *Runtime
	host        ConnHost
	h           *WebSocketHandlers
	req         Request // a copy of ConnInfo.Request: one allocation less per connection
	values      map[string]any
	subprotocol string

	pending atomic.Int64 // inbound bytes accepted but not yet handled
	drain   chan struct{}
	ctx     atomic.Pointer[connContext] // made on first use
	waiting atomic.Bool                 // the host waits for pending to drop
	closing atomic.Bool                 // Close event submitted
	ctxDone atomic.Bool                 // OnClose ran (or never will): the context is cancelled

	sampleLeft uint32 // messages before the next one an Observer times (observe.go); the delivering goroutine's
}

// connContext is a Conn's context, made by the first Context call, so that
// a connection whose handlers never ask for one holds none.
type connContext struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// ID returns the connection's ID, unique for the host's lifetime.
func (c *Conn) ID() uint64 { return c.id }

// Request returns the upgrade request's snapshot. The host keeps it for the
// connection's lifetime without the handshake's own headers (Connection,
// Upgrade, Sec-WebSocket-Key, -Version and -Extensions): Header holds the
// rest, or is nil. The negotiated subprotocol is Subprotocol.
func (c *Conn) Request() *Request { return &c.req }

// Value returns a value set by a request filter before the upgrade, or nil.
func (c *Conn) Value(key string) any { return c.values[key] }

// Subprotocol returns the negotiated subprotocol, or "".
func (c *Conn) Subprotocol() string { return c.subprotocol }

// RouteNamer is implemented by a ConnHost that knows the route its
// connection was upgraded on.
type RouteNamer interface {
	// Route returns the route's pattern.
	Route() string
}

// Route returns the pattern of the route the connection was upgraded on,
// from its host (RouteNamer), or "" if the host does not say. Log lines
// about the connection carry it as "route". (Asked of the host, not kept
// here: only log lines need it, and an idle connection's bytes count.)
func (c *Conn) Route() string {
	if r, ok := c.host.(RouteNamer); ok {
		return r.Route()
	}
	return ""
}

// Context returns a context cancelled when the connection has closed (after
// OnClose) or the runtime shuts down. It is created on first use.
func (c *Conn) Context() context.Context {
	if cc := c.ctx.Load(); cc != nil {
		return cc.ctx
	}
	cc := &connContext{}
	cc.ctx, cc.cancel = context.WithCancel(c.rt.ctx)
	if !c.ctx.CompareAndSwap(nil, cc) {
		cc.cancel() // another call made it first
		return c.ctx.Load().ctx
	}
	// cancelContext sets ctxDone before it looks at ctx: one of the two
	// sees the other and cancels.
	if c.ctxDone.Load() {
		cc.cancel()
	}
	return cc.ctx
}

func (c *Conn) cancelContext() {
	c.ctxDone.Store(true)
	if cc := c.ctx.Load(); cc != nil {
		cc.cancel()
	}
}

// Send queues a copy of data as one message of type typ. It never blocks;
// messages sent from one goroutine are written in call order. It returns
// ErrMessageType for a type other than Text and Binary and ErrTooBig for a
// message larger than the host's write queue holds on its own (nothing is
// sent; the connection stays open), ErrClosed after the connection began
// closing, and ErrSlowConsumer when the write queue is too full to take the
// message: the peer is not reading, and the connection is then closed with
// ClosePolicyViolation.
func (c *Conn) Send(typ MessageType, data []byte) error {
	if !typ.valid() {
		return ErrMessageType
	}
	b := c.rt.bufs.Get(len(data))
	copy(b.B, data)
	return c.host.Write(typ, b)
}

// SendText queues a copy of text as a text message. See Send.
func (c *Conn) SendText(text string) error {
	b := c.rt.bufs.Get(len(text))
	copy(b.B, text)
	return c.host.Write(Text, b)
}

// SendBinary queues a copy of data as a binary message. See Send.
func (c *Conn) SendBinary(data []byte) error { return c.Send(Binary, data) }

// SendBuffer queues b as one message without copying and takes ownership of
// b, which must come from Buffers and hold exactly one reference: it is
// released once written or on error. Do not touch b afterwards.
func (c *Conn) SendBuffer(typ MessageType, b *bufpool.Buffer) error {
	if !typ.valid() {
		b.Release()
		return ErrMessageType
	}
	return c.host.Write(typ, b)
}

// UncompressedWriter is the optional part of a ConnHost that can send a
// message uncompressed whatever the connection negotiated
// (permessage-deflate). Conn.SendUncompressed on a host without it falls
// back to Write, which may compress: a host that compresses, or that
// passes messages on to one that does (a plugin process's link to its
// host), must implement it.
type UncompressedWriter interface {
	WriteUncompressed(typ MessageType, b *bufpool.Buffer) error
}

// SendUncompressed is Send for a message that must not be compressed.
func (c *Conn) SendUncompressed(typ MessageType, data []byte) error {
	if !typ.valid() {
		return ErrMessageType
	}
	b := c.rt.bufs.Get(len(data))
	copy(b.B, data)
	if uw, ok := c.host.(UncompressedWriter); ok {
		return uw.WriteUncompressed(typ, b)
	}
	return c.host.Write(typ, b)
}

// Buffers returns the buffer pool to take SendBuffer buffers from.
func (c *Conn) Buffers() *bufpool.Pool { return c.rt.bufs }

// Close starts the close handshake with code and reason. OnClose still runs
// (with this code) once the connection has closed. Idempotent.
func (c *Conn) Close(code CloseCode, reason string) error {
	return c.host.Close(code, reason)
}

// PendingBytes returns the inbound bytes delivered to the runtime but not yet
// handled. Hosts use it to pause reading.
func (c *Conn) PendingBytes() int64 { return c.pending.Load() }

// Host returns the host end the connection was opened with. Hosts and
// transports use it to find their own state from a *Conn.
func (c *Conn) Host() ConnHost { return c.host }

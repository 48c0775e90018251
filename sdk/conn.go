package sdk

import (
	"context"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk/bufpool"
)

// Conn is a WebSocket connection as a plugin sees it. All methods are safe
// for concurrent use from any goroutine. On a host of its own, in process,
// none waits on the network; with a cluster Adapter or out of process some
// do, as the package doc ("Calls from other goroutines") and each method
// say.
type Conn core.Conn

func (c *Conn) core() *core.Conn { return (*core.Conn)(c) }

// ID returns the connection's ID, unique for the host's lifetime.
func (c *Conn) ID() uint64 { return c.core().ID() }

// Request returns the upgrade request's snapshot. The host keeps it for the
// connection's lifetime without the handshake's own headers (Connection,
// Upgrade, Sec-WebSocket-Key, -Version and -Extensions): Header holds the
// rest, or is nil. The negotiated subprotocol is Subprotocol.
func (c *Conn) Request() *Request { return (*Request)(c.core().Request()) }

// Value returns a value set by a request filter before the upgrade
// (RequestContext.Set), or nil.
func (c *Conn) Value(key string) any { return c.core().Value(key) }

// Subprotocol returns the negotiated subprotocol, or "".
func (c *Conn) Subprotocol() string { return c.core().Subprotocol() }

// Context returns a context cancelled when the connection has closed (after
// OnClose) or the host shuts down. It is created on first use.
func (c *Conn) Context() context.Context { return c.core().Context() }

// Send queues a copy of data as one message of type typ. It does not wait
// for the peer (out of process it may wait for the host to read; see the
// package doc); messages sent from one goroutine are written in call
// order. It returns
// ErrMessageType for a type other than Text and Binary, ErrTooBig for a
// message larger than the host's write queue holds on its own (nothing is
// sent; the connection stays open), ErrClosed after the connection began
// closing, and ErrSlowConsumer when the write queue is too full to take the
// message: the peer is not reading, and the connection is then closed with
// ClosePolicyViolation.
func (c *Conn) Send(typ MessageType, data []byte) error {
	return c.core().Send(core.MessageType(typ), data)
}

// SendUncompressed is Send for one message that must go uncompressed even
// when the connection negotiated compression (permessage-deflate): data
// already compressed, or a secret next to data the client controls in one
// message (compressed sizes can leak such secrets, as in the CRIME and
// BREACH attacks).
func (c *Conn) SendUncompressed(typ MessageType, data []byte) error {
	return c.core().SendUncompressed(core.MessageType(typ), data)
}

// SendText queues a copy of text as a text message. See Send.
func (c *Conn) SendText(text string) error { return c.core().SendText(text) }

// SendBinary queues a copy of data as a binary message. See Send.
func (c *Conn) SendBinary(data []byte) error { return c.core().Send(core.Binary, data) }

// SendBuffer queues b as one message without copying and takes ownership of
// b, which must come from Buffers and hold exactly one reference: it is
// released once written or on error. Do not touch b afterwards.
func (c *Conn) SendBuffer(typ MessageType, b *bufpool.Buffer) error {
	return c.core().SendBuffer(core.MessageType(typ), b)
}

// Buffers returns the buffer pool to take SendBuffer and BroadcastBuffer
// buffers from.
func (c *Conn) Buffers() *bufpool.Pool { return c.core().Buffers() }

// Close starts the close handshake with code and reason (a code that may
// not be sent, see CloseCode.ValidOnWire, is sent as CloseNormal; the
// reason is cut to 123 bytes). OnClose still runs, with this code, once the
// connection has closed. Idempotent: only the first call's code is sent.
func (c *Conn) Close(code CloseCode, reason string) error {
	return c.core().Close(core.CloseCode(code), reason)
}

// BroadcastOptions are optional settings of a broadcast. The zero value
// delivers to every member, the sender included.
type BroadcastOptions struct {
	// ExcludeSelf leaves out the sending connection, if it is a member.
	ExcludeSelf bool
}

// Join makes c a member of room, so that broadcasts to room reach it, until
// Leave or until c closes. Idempotent: joining a room c is in is not an
// error and does not count twice. It returns ErrRoomsUnsupported when the
// host has no rooms, ErrInvalidRoom for a bad name, ErrTooManyRooms when c
// is already in as many rooms as the host allows (DefaultMaxRoomsPerConn
// unless configured; Leave one first) and ErrClosed once c is closing.
// With a cluster Adapter, the first Join of a room on a node waits for the
// adapter to subscribe; out of process, Join waits for the host's answer.
func (c *Conn) Join(room string) error { return c.core().Join(room) }

// Leave ends c's membership of room. Leaving a room c is not in, or after c
// closed, is not an error. With a cluster Adapter, the last Leave of a room
// on a node waits for the adapter to unsubscribe; out of process, Leave
// waits for the host's answer.
func (c *Conn) Leave(room string) error { return c.core().Leave(room) }

// Broadcast queues a copy of data as one message of type typ to every member
// of room, c included unless an option says ExcludeSelf. It never waits for
// a member: a member whose write queue is full is closed by its own
// slow-consumer policy. With a cluster Adapter it returns once the adapter
// has published the message (the Redis adapter waits for Redis's answer).
// Messages c broadcasts one after another reach each member in that
// order, and every member sees a room's messages in one order. c need not
// be a member, and may broadcast from OnClose. The bytes
// are encoded once and shared by every receiver. It returns ErrMessageType
// for a type other than Text and Binary, ErrInvalidRoom for a bad name and
// ErrTooBig for a message larger than a write queue holds (see Send):
// nothing is then delivered.
func (c *Conn) Broadcast(room string, typ MessageType, data []byte, opts ...BroadcastOptions) error {
	return c.core().Broadcast(room, core.MessageType(typ), data, broadcastOptions(opts))
}

// BroadcastBuffer is Broadcast without the copy: it takes ownership of b,
// which must come from Buffers and hold exactly one reference. b is released
// once every member's copy was written, or on error. Do not touch b
// afterwards.
func (c *Conn) BroadcastBuffer(room string, typ MessageType, b *bufpool.Buffer, opts ...BroadcastOptions) error {
	return c.core().BroadcastBuffer(room, core.MessageType(typ), b, broadcastOptions(opts))
}

// broadcastOptions merges optional options: any that excludes self does.
func broadcastOptions(opts []BroadcastOptions) core.BroadcastOptions {
	var o core.BroadcastOptions
	for _, x := range opts {
		o.ExcludeSelf = o.ExcludeSelf || x.ExcludeSelf
	}
	return o
}

package serve

import (
	"sync"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk/bufpool"
	"github.com/strandws/strand/sdk/frame"
)

// conn is the host end of one connection as the plugin's runtime sees it:
// every call becomes a frame to the host, in call order.
type conn struct {
	s     *session
	id    uint64
	c     *core.Conn
	route string // the host's route pattern, for log lines

	mu   sync.Mutex // held around the done check and the send: after done, nothing more goes out
	done bool
}

var (
	_ core.UncompressedWriter = (*conn)(nil)
	_ core.RouteNamer         = (*conn)(nil)
)

// Route implements core.RouteNamer: the route the host upgraded the
// connection on.
func (pc *conn) Route() string { return pc.route }

func connHostOf(c *core.Conn) (*conn, bool) {
	pc, ok := c.Host().(*conn)
	return pc, ok
}

// send sends f for this connection unless its OnClose already ran.
func (c *conn) send(f *frame.Frame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return core.ErrClosed
	}
	if err := c.s.link.SendWait(f); err != nil {
		return core.ErrClosed
	}
	return nil
}

func (c *conn) Write(typ core.MessageType, b *bufpool.Buffer) error {
	return c.write(typ, b, false)
}

// WriteUncompressed implements core.UncompressedWriter: the send carries
// the frame's uncompressed flag (ABI 1.2), and the host writes the message
// without compression whatever the connection negotiated. A host older
// than ABI 1.2 ignores the flag and compresses it as it would a Write.
func (c *conn) WriteUncompressed(typ core.MessageType, b *bufpool.Buffer) error {
	return c.write(typ, b, true)
}

func (c *conn) write(typ core.MessageType, b *bufpool.Buffer, uncompressed bool) error {
	defer b.Release()
	m, ok := byType(typ, frame.MethodWebSocketSendText, frame.MethodWebSocketSendBinary)
	if !ok {
		return core.ErrMessageType
	}
	return c.send(&frame.Frame{Kind: frame.KindCall, Method: m, SessionID: c.id, Payload: b.B, Uncompressed: uncompressed})
}

func (c *conn) Close(code core.CloseCode, reason string) error {
	return c.send(&frame.Frame{Kind: frame.KindCall, Method: frame.MethodWebSocketClose, SessionID: c.id, CloseCode: uint16(code), CloseReason: reason})
}

func (c *conn) ClosePanic(reason string) error { return c.Close(core.CloseInternalError, reason) }

func (c *conn) Broadcast(room string, typ core.MessageType, b *bufpool.Buffer, opts core.BroadcastOptions) error {
	defer b.Release()
	m, ok := byType(typ, frame.MethodRoomBroadcastText, frame.MethodRoomBroadcastBinary)
	if !ok {
		return core.ErrMessageType
	}
	return c.send(&frame.Frame{Kind: frame.KindCall, Method: m, SessionID: c.id, Room: room, Payload: b.B, ExcludeSelf: opts.ExcludeSelf})
}

// Join and Leave wait for the host's answer, so that their errors
// (ErrTooManyRooms, ErrClosed) are the host's.
func (c *conn) Join(room string) error  { return c.roomCall(frame.MethodRoomJoin, room) }
func (c *conn) Leave(room string) error { return c.roomCall(frame.MethodRoomLeave, room) }

func (c *conn) roomCall(m frame.Method, room string) error {
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		if m == frame.MethodRoomLeave {
			return nil
		}
		return core.ErrClosed
	}
	// The call is queued under the lock (so it is ordered with this
	// connection's sends and before its close acknowledgement); the wait
	// for the answer is not.
	ch, err := c.s.startCall(&frame.Frame{Kind: frame.KindCall, Method: m, SessionID: c.id, Room: room})
	c.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = c.s.wait(ch)
	return err
}

// byType picks the method of a text or a binary message; ok is false for
// any other type.
func byType(typ core.MessageType, text, binary frame.Method) (frame.Method, bool) {
	switch typ {
	case core.Text:
		return text, true
	case core.Binary:
		return binary, true
	}
	return 0, false
}

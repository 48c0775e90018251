package sdk

import (
	"errors"
	"fmt"

	"github.com/strandws/strand/internal/core"
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

// Message is one WebSocket message handed to OnMessage. Data is valid only
// until the handler returns; copy it to keep it.
type Message struct {
	Type MessageType
	Data []byte
}

// CloseCode is a WebSocket close status code (RFC 6455, section 7.4).
type CloseCode uint16

// Close codes Strand sends or reports.
const (
	CloseNormal          CloseCode = 1000 // normal closure
	CloseGoingAway       CloseCode = 1001 // server shutdown or client navigating away
	CloseProtocolError   CloseCode = 1002 // protocol violation
	CloseUnsupportedData CloseCode = 1003 // a data type the endpoint cannot accept
	CloseNoStatus        CloseCode = 1005 // a close frame without a code (never sent)
	CloseAbnormal        CloseCode = 1006 // TCP ended without a close frame (never sent)
	CloseInvalidPayload  CloseCode = 1007 // invalid UTF-8 in a text message
	ClosePolicyViolation CloseCode = 1008 // policy: slow consumer, rate limit, origin
	CloseMessageTooBig   CloseCode = 1009 // message over the configured limit
	CloseMandatoryExt    CloseCode = 1010 // client expected an extension
	CloseInternalError   CloseCode = 1011 // handler panic or server error (a plugin may send it too)
	CloseServiceRestart  CloseCode = 1012 // the server restarts: reconnect
	CloseTryAgainLater   CloseCode = 1013 // overloaded: reconnect later
	CloseBadGateway      CloseCode = 1014 // an upstream failed
)

// ValidOnWire reports whether c may appear in a close frame: 1000-1003,
// 1007-1014 and 3000-4999. Conn.Close sends CloseNormal for any other.
func (c CloseCode) ValidOnWire() bool { return core.CloseCode(c).ValidOnWire() }

// CloseError reports that a connection closed, with its code and reason.
// Use errors.As to get one, or CloseStatus for the code.
type CloseError struct {
	Code   CloseCode
	Reason string
}

func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("sdk: connection closed: %d", e.Code)
	}
	return fmt.Sprintf("sdk: connection closed: %d %s", e.Code, e.Reason)
}

// CloseStatus returns the close code carried by err, or 0 when err is not
// (and does not wrap) a *CloseError.
func CloseStatus(err error) CloseCode {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}

// Errors of the send, close and room methods. Test for them with
// errors.Is.
var (
	// ErrClosed is returned by the send methods once the connection is
	// closing or closed.
	ErrClosed = core.ErrClosed
	// ErrSlowConsumer is returned by a send when the connection's write
	// queue was full: the message would fit an empty queue, but not behind
	// what the peer has not taken yet. The connection is then closed with
	// ClosePolicyViolation.
	ErrSlowConsumer = core.ErrSlowConsumer
	// ErrTooBig is returned by a send for a message larger than the host's
	// write queue holds on its own (the server's Config.WriteQueueBytes): it
	// could never be queued, so it is refused, nothing is sent, and the
	// connection stays open.
	ErrTooBig = core.ErrTooBig
	// ErrMessageType is returned by the send and broadcast methods for a
	// message type other than Text and Binary; nothing is sent and the
	// connection stays open.
	ErrMessageType = core.ErrMessageType
	// ErrRoomsUnsupported is returned by Join, Leave and Broadcast when the
	// connection's host has no rooms.
	ErrRoomsUnsupported = core.ErrRoomsUnsupported
	// ErrInvalidRoom is returned for an empty room name or one longer than
	// MaxRoomNameBytes.
	ErrInvalidRoom = core.ErrInvalidRoom
	// ErrTooManyRooms is returned by Join when the connection is already a
	// member of as many rooms as the host allows (DefaultMaxRoomsPerConn
	// unless configured). The connection stays open and in its rooms.
	ErrTooManyRooms = core.ErrTooManyRooms
	// ErrCallTimeout is returned by a context's host calls (ReadBody, the
	// Stream methods) when the host did not answer within the phase
	// timeout.
	ErrCallTimeout = core.ErrCallTimeout
	// ErrBodyTooLarge is returned by ReadBody when the request body is over
	// the host's cap; the host answers the request with 413.
	ErrBodyTooLarge = core.ErrBodyTooLarge
	// ErrPhaseOver is returned by a context's host call made after the
	// phase ended (decided, timed out, or the request is gone).
	ErrPhaseOver = core.ErrPhaseOver
)

// MaxRoomNameBytes is the longest room name, in bytes (256).
const MaxRoomNameBytes = core.MaxRoomNameBytes

// DefaultMaxRoomsPerConn is the default cap (64) on the rooms one
// connection is a member of at once (wsframework's Config.MaxRoomsPerConn,
// strandtest's Options.MaxRoomsPerConn).
const DefaultMaxRoomsPerConn = core.DefaultMaxRoomsPerConn

// ValidRoomName reports whether room is a valid room name: 1 to
// MaxRoomNameBytes bytes.
func ValidRoomName(room string) bool { return core.ValidRoomName(room) }

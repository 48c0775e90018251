package core

import "errors"

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
	CloseServiceRestart  CloseCode = 1012
	CloseTryAgainLater   CloseCode = 1013
	CloseBadGateway      CloseCode = 1014
)

// ValidOnWire reports whether c may appear in a close frame sent by a peer.
func (c CloseCode) ValidOnWire() bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1014, c >= 3000 && c <= 4999:
		return true
	}
	return false
}

// Errors returned by the sdk.
var (
	// ErrClosed is returned by Send and Close on a connection that is
	// closing or closed.
	ErrClosed = errors.New("sdk: connection closed")
	// ErrSlowConsumer is returned by Send when the connection's write queue
	// was full: the message would fit an empty queue, but not behind what
	// the peer has not taken yet. The connection is then closed with
	// ClosePolicyViolation.
	ErrSlowConsumer = errors.New("sdk: write queue full (slow consumer)")
	// ErrTooBig is returned by Send (and the other send methods) for a
	// message larger than the host's write queue holds on its own (the
	// server's Config.WriteQueueBytes): it could never be queued, so it is
	// refused, nothing is sent, and the connection stays open.
	ErrTooBig = errors.New("sdk: message too big")
	// ErrMessageType is returned by Send, SendBuffer, Broadcast and
	// BroadcastBuffer for a message type other than Text and Binary; nothing
	// is sent and the connection stays open.
	ErrMessageType = errors.New("sdk: invalid message type")
	// ErrRuntimeClosed is returned when events are delivered to a closed Runtime.
	ErrRuntimeClosed = errors.New("sdk: runtime closed")
)

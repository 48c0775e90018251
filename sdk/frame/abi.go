package frame

import (
	"fmt"

	"github.com/strandws/strand/sdk/frame/wire"
)

// ABI version of the wire schema (strand.fbs). A peer with a different
// major is refused at the handshake; minors only add fields and enum values,
// so a reader ignores what it does not know.
const (
	ABIMajor uint16 = 1
	ABIMinor uint16 = 2
)

// Magic opens every handshake: the bytes "STRN" read as a little-endian
// uint32.
const Magic uint32 = 0x4e525453

// CheckHandshake returns nil if v is a handshake frame with Magic and this
// package's ABIMajor (any minor), and otherwise an error wrapping
// ErrHandshake that says what differs.
func CheckHandshake(v *View) error {
	hs, ok := v.Handshake()
	switch {
	case v.Kind() != KindHandshake || !ok:
		return fmt.Errorf("%w: first frame is %v, not a handshake", ErrHandshake, v.Kind())
	case hs.Magic != Magic:
		return fmt.Errorf("%w: magic %#x, want %#x", ErrHandshake, hs.Magic, Magic)
	case hs.ABIMajor != ABIMajor:
		return fmt.Errorf("%w: peer ABI %d.%d, this side %d.%d", ErrHandshake, hs.ABIMajor, hs.ABIMinor, ABIMajor, ABIMinor)
	}
	return nil
}

// fileIdentifier is the schema's file_identifier, at bytes 4..8 of every
// encoded frame.
const fileIdentifier = "STRW"

// The enums below are the generated schema types (package wire), so their
// String methods print the schema's names. Their values are part of the ABI:
// only appended, never renumbered or reused.
type (
	// Kind says what a frame is.
	Kind = wire.Kind
	// Phase is the HTTP phase (or WebSocket) an event belongs to.
	Phase = wire.Phase
	// Method identifies an event or a call (Nylon's numbering).
	Method = wire.Method
	// Status is the outcome carried by a reply.
	Status = wire.Status
	// HeaderOp is the operation of a [HeaderEdit].
	HeaderOp = wire.HeaderOp
)

// Frame kinds.
const (
	KindNone      = wire.KindNone
	KindHandshake = wire.KindHandshake // first frame each way: Magic and ABI version
	KindEvent     = wire.KindEvent     // host to plugin: an HTTP phase or a WebSocket event
	KindCall      = wire.KindCall      // a request for the peer to act, identified by Method and CallID
	KindReply     = wire.KindReply     // the answer to a call or event with the same CallID, with a Status
)

// Phases.
const (
	PhaseNone               = wire.PhaseNone
	PhaseRequestFilter      = wire.PhaseRequestFilter
	PhaseResponseFilter     = wire.PhaseResponseFilter
	PhaseResponseBodyFilter = wire.PhaseResponseBodyFilter
	PhaseLogging            = wire.PhaseLogging
	PhaseWebSocket          = wire.PhaseWebSocket
)

// Method IDs.
const (
	MethodNone                 = wire.MethodNone
	MethodNext                 = wire.MethodNext
	MethodEnd                  = wire.MethodEnd
	MethodGetPayload           = wire.MethodGetPayload
	MethodSetResponseHeader    = wire.MethodSetResponseHeader
	MethodRemoveResponseHeader = wire.MethodRemoveResponseHeader
	MethodSetResponseStatus    = wire.MethodSetResponseStatus
	MethodSetResponseFullBody  = wire.MethodSetResponseFullBody
	MethodResponseStreamData   = wire.MethodResponseStreamData
	MethodResponseStreamEnd    = wire.MethodResponseStreamEnd
	MethodResponseStreamHeader = wire.MethodResponseStreamHeader
	MethodReadResponseFullBody = wire.MethodReadResponseFullBody
	MethodReadResponseStatus   = wire.MethodReadResponseStatus
	MethodReadResponseBytes    = wire.MethodReadResponseBytes
	MethodReadResponseHeaders  = wire.MethodReadResponseHeaders
	MethodReadResponseDuration = wire.MethodReadResponseDuration
	MethodReadResponseError    = wire.MethodReadResponseError
	MethodReadRequestFullBody  = wire.MethodReadRequestFullBody
	MethodReadRequestHeader    = wire.MethodReadRequestHeader
	MethodReadRequestHeaders   = wire.MethodReadRequestHeaders
	MethodReadRequestURL       = wire.MethodReadRequestURL
	MethodReadRequestPath      = wire.MethodReadRequestPath
	MethodReadRequestQuery     = wire.MethodReadRequestQuery
	MethodReadRequestParams    = wire.MethodReadRequestParams
	MethodReadRequestHost      = wire.MethodReadRequestHost
	MethodReadRequestClientIP  = wire.MethodReadRequestClientIP
	MethodReadRequestMethod    = wire.MethodReadRequestMethod
	MethodReadRequestBytes     = wire.MethodReadRequestBytes
	MethodReadRequestTimestamp = wire.MethodReadRequestTimestamp
	MethodWebSocketUpgrade     = wire.MethodWebSocketUpgrade
	MethodWebSocketSendText    = wire.MethodWebSocketSendText
	MethodWebSocketSendBinary  = wire.MethodWebSocketSendBinary
	MethodWebSocketClose       = wire.MethodWebSocketClose
	MethodRoomJoin             = wire.MethodRoomJoin
	MethodRoomLeave            = wire.MethodRoomLeave
	MethodRoomBroadcastText    = wire.MethodRoomBroadcastText
	MethodRoomBroadcastBinary  = wire.MethodRoomBroadcastBinary
	MethodEventWebSocketOpen   = wire.MethodEventWebSocketOpen
	MethodEventTextMessage     = wire.MethodEventTextMessage
	MethodEventBinaryMessage   = wire.MethodEventBinaryMessage
	MethodEventClose           = wire.MethodEventClose
	MethodEventError           = wire.MethodEventError
	MethodHello                = wire.MethodHello   // ABI 1.1: the plugin's handshake
	MethodAccept               = wire.MethodAccept  // ABI 1.1: the host accepts, with settings
	MethodRefuse               = wire.MethodRefuse  // ABI 1.1: the host refuses, with a reason
	MethodPing                 = wire.MethodPing    // ABI 1.1
	MethodPong                 = wire.MethodPong    // ABI 1.1
	MethodGoodbye              = wire.MethodGoodbye // ABI 1.1: finish and close
	MethodCredits              = wire.MethodCredits // ABI 1.1: more events may be sent
)

// Reply statuses.
const (
	StatusOk           = wire.StatusOk
	StatusError        = wire.StatusError
	StatusInvalid      = wire.StatusInvalid
	StatusUnsupported  = wire.StatusUnsupported
	StatusStreamEnd    = wire.StatusStreamEnd
	StatusPanic        = wire.StatusPanic
	StatusBackpressure = wire.StatusBackpressure
	StatusTimeout      = wire.StatusTimeout
	StatusPluginGone   = wire.StatusPluginGone
)

// Header edit operations.
const (
	HeaderSet    = wire.HeaderOpSet    // replace all values of the name
	HeaderAdd    = wire.HeaderOpAdd    // add a value
	HeaderRemove = wire.HeaderOpRemove // remove all values of the name
)

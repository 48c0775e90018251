package wsframework

import (
	"sync/atomic"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/sdk"
)

// CloseReason is why a connection closed. It is the one place that maps a
// cause to the close code sent, and it indexes the close counters in Stats.
type CloseReason uint8

// Close reasons.
const (
	ReasonPeer         CloseReason = iota // the peer sent a close frame (its code is reported)
	ReasonLocal                           // a handler called Conn.Close (its code is sent, 1011 included)
	ReasonAbnormal                        // TCP ended without a close frame: 1006
	ReasonTooBig                          // message over MaxMessageBytes: 1009
	ReasonBadUTF8                         // invalid UTF-8 in a text message or close reason: 1007
	ReasonProtocol                        // protocol violation: 1002
	ReasonPanic                           // a handler panicked : 1011
	ReasonSlowConsumer                    // write queue full, or a write blocked past WriteTimeout: 1008
	ReasonShutdown                        // server shutdown: 1001
	ReasonIdle                            // nothing received within IdleTimeout: 1001
	ReasonReadTimeout                     // a frame stalled mid-way: 1008
	ReasonWriteFailed                     // a write failed (reset, broken pipe): 1006
	ReasonMessageLimit                    // too many fragments, a message assembled too slowly, or over MessageRate: 1008
	ReasonInternal                        // the server's own reading or writing of the connection panicked: 1011
	ReasonBadDeflate                      // a compressed message's data is not valid DEFLATE (permessage-deflate): 1007
	numReasons
)

var reasonNames = [numReasons]string{
	"peer", "local", "abnormal", "too_big", "bad_utf8", "protocol",
	"panic", "slow_consumer", "shutdown", "idle", "read_timeout", "write_failed",
	"message_limit", "internal", "bad_deflate",
}

func (r CloseReason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Code returns the close code sent for r; ReasonPeer and ReasonLocal carry
// their own code and return 0.
func (r CloseReason) Code() sdk.CloseCode { return sdk.CloseCode(r.code()) }

func (r CloseReason) code() core.CloseCode {
	switch r {
	case ReasonAbnormal, ReasonWriteFailed:
		return core.CloseAbnormal
	case ReasonTooBig:
		return core.CloseMessageTooBig
	case ReasonBadUTF8, ReasonBadDeflate:
		return core.CloseInvalidPayload
	case ReasonProtocol:
		return core.CloseProtocolError
	case ReasonPanic, ReasonInternal:
		return core.CloseInternalError
	case ReasonSlowConsumer, ReasonReadTimeout, ReasonMessageLimit:
		return core.ClosePolicyViolation
	case ReasonShutdown, ReasonIdle:
		return core.CloseGoingAway
	}
	return 0
}

type reasonCounters [numReasons]atomic.Uint64

func (rc *reasonCounters) snapshot() map[string]uint64 {
	m := make(map[string]uint64, numReasons)
	for i := range rc {
		if n := rc[i].Load(); n > 0 {
			m[CloseReason(i).String()] = n
		}
	}
	return m
}

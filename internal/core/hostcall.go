package core

import (
	"errors"
	"time"
)

// MethodID numbers a host call. Its values are the wire schema's Method
// values (sdk/frame, strand.fbs), which a test checks, so the numbering has
// one source while this package (and so package sdk) needs no FlatBuffers.
type MethodID uint16

// Host call methods used by the channel context.
const (
	MethodNext               MethodID = 1
	MethodEnd                MethodID = 2
	MethodResponseStreamData MethodID = 104
	MethodResponseStreamEnd  MethodID = 105
	MethodResponseStreamHead MethodID = 106
	MethodReadRequestBody    MethodID = 200
)

// Errors of the channel context.
var (
	// ErrCallTimeout is returned by a host call that got no reply in time.
	ErrCallTimeout = errors.New("sdk: host call timed out")
	// ErrBodyTooLarge is returned by ReadBody when the request body is over
	// the host's cap; the host answers the request with 413.
	ErrBodyTooLarge = errors.New("sdk: request body too large")
	// ErrPhaseOver is returned by a host call made after the phase ended
	// (decided, timed out, or the request is gone).
	ErrPhaseOver = errors.New("sdk: phase is over")
)

// DefaultCallTimeout bounds a host call made through the channel context.
const DefaultCallTimeout = 5 * time.Second

// HostCall is one call from a phase handler to the host, sent over the
// phase's channel with a call ID. The host answers it exactly once with
// Reply. Data is valid until the call is answered.
type HostCall struct {
	ID     uint64
	Method MethodID
	Int    int    // status for MethodResponseStreamHead
	Data   []byte // chunk for MethodResponseStreamData

	reply chan HostReply
}

// HostReply answers a HostCall.
type HostReply struct {
	Data []byte // for MethodReadRequestBody: the body, owned by the plugin
	Err  error
}

// Reply answers the call. It never blocks.
func (c *HostCall) Reply(r HostReply) { c.reply <- r }

// call sends a host call and waits for its reply, the phase's end, or the
// call timeout.
func (p *phase) call(m MethodID, n int, data []byte) ([]byte, error) {
	if p.decided.Load() {
		return nil, ErrPhaseOver
	}
	hc := &HostCall{ID: p.callID.Add(1), Method: m, Int: n, Data: data, reply: make(chan HostReply, 1)}
	t := time.NewTimer(p.timeout)
	defer t.Stop()
	select {
	case p.ch <- hc:
	case <-p.ctx.Done():
		return nil, ErrPhaseOver
	case <-t.C:
		return nil, ErrCallTimeout
	}
	select {
	case r := <-hc.reply:
		return r.Data, r.Err
	case <-p.ctx.Done():
		return nil, ErrPhaseOver
	case <-t.C:
		return nil, ErrCallTimeout
	}
}

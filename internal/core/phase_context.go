package core

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// phase is the part every phase context shares: the request snapshot, the
// per-request values, the decision signal and the channel for host calls.
type phase struct {
	ctx      context.Context
	req      *Request
	vals     map[string]any
	ch       chan *HostCall // nil message: decided
	decided  atomic.Bool
	deferred atomic.Bool // the handler said it decides after returning (Defer)
	running  atomic.Bool
	panic    any
	callID   atomic.Uint64
	timeout  time.Duration
	entry    *Entry
	rt       *Runtime

	// refs counts the owners of a recycled context: the host, the worker
	// running the handler, and a handler that called Defer until it
	// decides; inPool once recycled. Zero for a context that is not pooled
	// (recycle nil).
	refs    atomic.Int32
	recycle func()
}

func (p *phase) init(ctx context.Context, req *Request, values map[string]any) {
	p.ctx, p.req, p.vals = ctx, req, values
	if p.ch == nil {
		p.ch = make(chan *HostCall, 1)
	}
	p.timeout = DefaultCallTimeout
}

// pooledPhase is a phase context type that can be recycled.
type pooledPhase[T any] interface {
	*T
	base() *phase
	reset()
}

// reset zeroes p for the pool, keeping its channel and recycle function.
// A context in the pool reads as decided, so that a stray late decision
// (a handler that broke the rule not to touch its context after deciding)
// is a no-op until the context is handed out again.
//
// An atomic store is a locked instruction on amd64: flags already right
// are only read.
func (p *phase) reset() {
	if len(p.ch) > 0 {
		select { // a decision, call or deadline mark never read by a host that gave up
		case <-p.ch:
		default:
		}
	}
	p.ctx, p.req, p.vals, p.panic, p.entry, p.rt = nil, nil, nil, nil, nil, nil
	if p.deferred.Load() {
		p.deferred.Store(false)
	}
	if p.running.Load() {
		p.running.Store(false)
	}
	if p.callID.Load() != 0 {
		p.callID.Store(0)
	}
	if !p.decided.Load() {
		p.decided.Store(true)
	}
}

// reuse readies a context taken from its pool: undecided, and without a
// Defer that a stray caller made while it was pooled.
func (p *phase) reuse() {
	if p.deferred.Load() {
		p.deferred.Store(false)
	}
	p.decided.Store(false)
}

// inPool is refs of a context in its pool: a stray release there cannot
// reach zero and recycle it twice.
const inPool = -1

// acquirePooled takes a context from pool, or makes one whose recycle
// resets it and puts it back. The caller initializes it and sets refs.
func acquirePooled[T any, P pooledPhase[T]](pool *sync.Pool) P {
	if c, ok := pool.Get().(P); ok {
		c.base().reuse()
		return c
	}
	c := P(new(T))
	c.base().recycle = func() {
		c.reset()
		c.base().refs.Store(inPool) // last: a reader that sees it sees the reset
		pool.Put(c)
	}
	return c
}

// release drops one owner's reference of a pooled context; the last one
// recycles it.
func (p *phase) release() {
	if p.recycle != nil && p.refs.Add(-1) == 0 {
		p.recycle()
	}
}

// Context returns the request's context, cancelled when the client goes
// away or the request is over.
func (p *phase) Context() context.Context { return p.ctx }

// Request returns the request snapshot (read-only).
func (p *phase) Request() *Request { return p.req }

// Value returns a per-request value set by a request filter, or nil.
func (p *phase) Value(key string) any { return p.vals[key] }

// Defer says that the handler decides after it returns, from another
// goroutine, within the phase timeout. Without it, a handler that returns
// without deciding lets the request go on (Next).
//
// A pooled context stays out of its pool until a deferred handler decides:
// the decision may come long after the host gave up waiting.
func (p *phase) Defer() {
	if !p.deferred.Swap(true) && p.recycle != nil {
		p.refs.Add(1) // released by the decision (send)
	}
}

// claim reserves the one decision of the phase; the caller then records it
// and calls send.
func (p *phase) claim() bool { return p.decided.CompareAndSwap(false, true) }

// send reports the recorded decision to the host, unless the request is
// already over (the host gave up waiting). The channel is empty when a
// handler decides (its host calls were answered), so the first try
// succeeds unless the host left a call unread. A deferred handler's
// reference ends here: p may be reused after send returns.
func (p *phase) send() {
	select {
	case p.ch <- nil:
	default:
		select {
		case p.ch <- nil:
		case <-p.ctx.Done():
		}
	}
	if p.deferred.Load() {
		p.release()
	}
}

// signal claims and sends a decision that carries no extra state.
func (p *phase) signal() {
	if p.claim() {
		p.send()
	}
}

// Signal returns the channel the host waits on: a nil *HostCall means the
// handler decided (or panicked: see Panicked); a non-nil one is a host call
// to answer. Hosts and test kits use it.
func (p *phase) Signal() <-chan *HostCall { return p.ch }

// Interrupt puts mark, a value of the host's own (not a call to answer),
// on the signal channel unless something is already pending there, and
// reports whether it did. A host uses it to end its wait on Signal from
// another goroutine (a deadline) without a second channel to select on.
func (p *phase) Interrupt(mark *HostCall) bool {
	select {
	case p.ch <- mark:
		return true
	default:
		return false
	}
}

// Panicked returns the value the handler panicked with, or nil. Valid once
// the host received the decision signal.
func (p *phase) Panicked() any { return p.panic }

// Running reports whether the handler has not returned yet.
func (p *phase) Running() bool { return p.running.Load() }

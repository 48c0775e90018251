package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Phase is an HTTP phase a plugin entry may handle.
type Phase uint8

// Phases, in the order they run for a request.
const (
	PhaseRequestFilter      Phase = iota + 1 // before the terminal: answer, upgrade or Next
	PhaseResponseFilter                      // status and headers of the answer
	PhaseResponseBodyFilter                  // the whole answer body
	PhaseLogging                             // after the answer
)

func (p Phase) String() string {
	switch p {
	case PhaseRequestFilter:
		return "request_filter"
	case PhaseResponseFilter:
		return "response_filter"
	case PhaseResponseBodyFilter:
		return "response_body_filter"
	case PhaseLogging:
		return "logging"
	}
	return "unknown"
}

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

func (c *ResponseContext) base() *phase { return &c.phase }
func (c *BodyContext) base() *phase     { return &c.phase }
func (c *RequestContext) base() *phase  { return &c.phase }

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

// reset keeps the edits' backing array: the host has applied (or dropped)
// the edits before it released the context.
func (e *editor) reset() { e.status, e.edits = 0, e.edits[:0] }

func (c *ResponseContext) reset() {
	c.phase.reset()
	c.editor.reset()
	c.respStatus, c.header = 0, nil
}

func (c *BodyContext) reset() {
	c.phase.reset()
	c.editor.reset()
	c.body, c.replaced = nil, false
	c.chainRF, c.chainNow, c.chainAt = nil, nil, 0
	if c.stage.Load() != chainFirst {
		c.stage.Store(chainFirst)
	}
}

func (c *RequestContext) reset() {
	c.phase.reset()
	c.editor.reset()
	c.decision, c.body, c.ws = DecisionNone, nil, nil
}

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

// editor collects status and header edits.
type editor struct {
	status int
	edits  []HeaderEdit
}

// SetStatus sets the response status.
func (e *editor) SetStatus(code int) { e.status = code }

// SetHeader sets a response header.
func (e *editor) SetHeader(name, value string) {
	e.edits = append(e.edits, HeaderEdit{Op: HeaderSet, Name: name, Value: value})
}

// AddHeader adds a response header value.
func (e *editor) AddHeader(name, value string) {
	e.edits = append(e.edits, HeaderEdit{Op: HeaderAdd, Name: name, Value: value})
}

// RemoveHeader removes a response header.
func (e *editor) RemoveHeader(name string) {
	e.edits = append(e.edits, HeaderEdit{Op: HeaderRemove, Name: name})
}

// Status returns the collected status (0: unchanged).
func (e *editor) Status() int { return e.status }

// HeaderEdits returns the collected header edits in call order.
func (e *editor) HeaderEdits() []HeaderEdit { return e.edits }

// ResponseFilterFunc handles the ResponseFilter phase.
type ResponseFilterFunc func(ctx *ResponseContext)

// ResponseContext is handed to a ResponseFilter: the answer's status and
// headers (read-only) and the edits the filter collects. The handler
// decides with Next (returning without deciding means Next). Do not touch
// the context after deciding.
type ResponseContext struct {
	phase      phase  // the request, values, decision signal and host calls
	editor     editor // the status and header edits
	respStatus int
	header     http.Header
}

// AcquireResponseContext is NewResponseContext from the runtime's pool of
// contexts. The host must call Release once it has read the result (or
// given up on it); the context is reused when both the host and the
// handler are done with it.
func (rt *Runtime) AcquireResponseContext(ctx context.Context, req *Request, values map[string]any, status int, header http.Header) *ResponseContext {
	c := acquirePooled[ResponseContext](&rt.respCtxs)
	c.respStatus, c.header = status, header
	c.phase.init(ctx, req, values)
	c.phase.refs.Store(1) // the host's; startPhase adds the worker's
	return c
}

// Release hands a context from AcquireResponseContext back; see there.
func (c *ResponseContext) Release() { c.phase.release() }

// NewResponseContext returns a context for a response with status and
// header (read-only). Hosts call it.
func NewResponseContext(ctx context.Context, req *Request, values map[string]any, status int, header http.Header) *ResponseContext {
	c := &ResponseContext{respStatus: status, header: header}
	c.phase.init(ctx, req, values)
	return c
}

// ResponseStatus returns the answer's status as the filter received it.
func (c *ResponseContext) ResponseStatus() int { return c.respStatus }

// ResponseHeader returns the answer's headers: read-only (edit with
// SetHeader and friends) and valid only until the handler decides or the
// phase times out; copy what you keep.
func (c *ResponseContext) ResponseHeader() http.Header { return c.header }

// Next hands the edits back to the host.
func (c *ResponseContext) Next() { c.phase.signal() }

// BodyFilterFunc handles the ResponseBodyFilter phase.
type BodyFilterFunc func(ctx *BodyContext)

// BodyContext is handed to a ResponseBodyFilter: the whole answer body,
// which the filter may replace. The host keeps Content-Length right.
type BodyContext struct {
	phase    phase  // the request, values, decision signal and host calls
	editor   editor // the status and header edits
	body     []byte
	replaced bool

	// A response chain (StartResponseChain).
	chainRF  *ResponseContext
	chainNow func() int64
	chainAt  int64
	stage    atomic.Int32
}

// AcquireBodyContext is NewBodyContext from the runtime's pool of contexts;
// see AcquireResponseContext.
func (rt *Runtime) AcquireBodyContext(ctx context.Context, req *Request, values map[string]any, status int, body []byte) *BodyContext {
	c := acquirePooled[BodyContext](&rt.bodyCtxs)
	c.body, c.editor.status = body, status
	c.phase.init(ctx, req, values)
	c.phase.refs.Store(1) // the host's; startPhase adds the worker's
	return c
}

// Release hands a context from AcquireBodyContext back; see
// AcquireResponseContext.
func (c *BodyContext) Release() { c.phase.release() }

// NewBodyContext returns a context for body. Hosts call it.
func NewBodyContext(ctx context.Context, req *Request, values map[string]any, status int, body []byte) *BodyContext {
	c := &BodyContext{body: body}
	c.editor.status = status
	c.phase.init(ctx, req, values)
	return c
}

// Body returns the body as it stands (read-only; valid until the phase ends).
func (c *BodyContext) Body() []byte { return c.body }

// SetBody replaces the body. The slice is kept: do not modify it afterwards.
func (c *BodyContext) SetBody(b []byte) { c.body, c.replaced = b, true }

// SetJSON replaces the body with v encoded as JSON and sets Content-Type.
func (c *BodyContext) SetJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("sdk: SetJSON: %w", err)
	}
	c.SetBody(b)
	c.SetHeader("Content-Type", "application/json")
	return nil
}

// Replaced reports whether SetBody was called.
func (c *BodyContext) Replaced() bool { return c.replaced }

// Next hands the body and edits back to the host.
func (c *BodyContext) Next() { c.phase.signal() }

// LoggingFunc handles the Logging phase. It runs after the answer was sent
// and cannot change it. The *LogEntry is valid until it returns (it is
// recycled): keep a copy, not the pointer.
type LoggingFunc func(entry *LogEntry)

// LogEntry describes a finished request for the Logging phase.
type LogEntry struct {
	Request  *Request
	Status   int           // 101 for an upgrade
	BytesIn  int64         // request body bytes read
	BytesOut int64         // response body bytes written
	Duration time.Duration // from the request's arrival to the answer's end
	Err      error         // why the host failed the request, if it did
	Values   map[string]any
}

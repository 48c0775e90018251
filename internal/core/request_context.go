package core

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// Decision is what a request filter decided.
type Decision uint8

// Decisions.
const (
	DecisionNone    Decision = iota // not decided yet
	DecisionNext                    // continue with the next entry or the terminal
	DecisionEnd                     // answer with the collected status, headers and body
	DecisionUpgrade                 // upgrade to a WebSocket
)

// RequestContext is handed to a RequestFilter. It carries the request
// snapshot and collects the filter's decision and edits; they travel back to
// the host together when the handler decides with Next, End, Reject or
// Upgrade. A filter may decide after returning, from another goroutine,
// within the host's phase timeout. Do not touch the context after deciding.
type RequestContext struct {
	phase    phase  // the request, values, decision signal and host calls
	editor   editor // the status and header edits
	decision Decision
	body     []byte
	ws       *WebSocketHandlers
}

// NewRequestContext returns a context for req. Hosts and test kits call it;
// values is the per-request value map shared along the chain (may be nil).
func NewRequestContext(ctx context.Context, req *Request, values map[string]any) *RequestContext {
	c := &RequestContext{}
	c.phase.init(ctx, req, values)
	return c
}

// AcquireRequestContext is NewRequestContext from the runtime's pool of
// contexts. The host must call Release once it has read the decision, the
// edits and the values (or given up on them); the context is reused when
// the host, the worker and a deferring handler are all done with it.
func (rt *Runtime) AcquireRequestContext(ctx context.Context, req *Request, values map[string]any) *RequestContext {
	c := acquirePooled[RequestContext](&rt.reqCtxs)
	c.phase.init(ctx, req, values)
	c.phase.refs.Store(1) // the host's; startPhase adds the worker's
	return c
}

// Release hands a context from AcquireRequestContext or
// AcquireContinue back; see AcquireRequestContext. It does nothing for a
// context from NewRequestContext.
func (c *RequestContext) Release() { c.phase.release() }

// AcquireContinue is Continue with a context from rt's pool (rt is the
// runtime of the entry the new context is for); see AcquireRequestContext.
// Like Continue, call it only once prev has decided.
func (rt *Runtime) AcquireContinue(prev *RequestContext) *RequestContext {
	n := acquirePooled[RequestContext](&rt.reqCtxs)
	n.body = prev.body
	n.editor.status = prev.editor.status
	n.editor.edits = append(n.editor.edits, prev.editor.edits...)
	n.phase.init(prev.phase.ctx, prev.phase.req, maps.Clone(prev.phase.vals))
	n.phase.refs.Store(1)
	return n
}

// Set stores a per-request value (for example auth claims). Values set here
// are readable by later entries and phases and, after an upgrade, by every
// WebSocket handler through Conn.Value.
func (c *RequestContext) Set(key string, v any) {
	if c.phase.vals == nil {
		c.phase.vals = make(map[string]any)
	}
	c.phase.vals[key] = v
}

// Values returns the per-request values (may be nil). Hosts read it.
func (c *RequestContext) Values() map[string]any { return c.phase.vals }

// SetBody sets the response body used by End. The slice is kept: do not
// modify it afterwards.
func (c *RequestContext) SetBody(b []byte) { c.body = b }

// SetJSON sets the response body used by End to v as JSON, and Content-Type.
func (c *RequestContext) SetJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("sdk: SetJSON: %w", err)
	}
	c.body = b
	c.SetHeader("Content-Type", "application/json")
	return nil
}

// Next lets the request continue to the next entry or the terminal.
func (c *RequestContext) Next() { c.decide(DecisionNext) }

// End answers the request with the collected status (200 if unset),
// headers and body; later entries and the terminal do not run.
func (c *RequestContext) End() { c.decide(DecisionEnd) }

// Reject answers the request with status and a text body.
func (c *RequestContext) Reject(status int, body string) {
	if !c.phase.claim() {
		return
	}
	c.editor.status = status
	c.body = []byte(body)
	c.SetHeader("Content-Type", "text/plain; charset=utf-8")
	c.decision = DecisionEnd
	c.phase.send()
}

// Upgrade accepts a WebSocket handshake with h, or with the entry's own
// WebSocket handlers when h is nil. Collected header edits are sent with the
// handshake response.
func (c *RequestContext) Upgrade(h *WebSocketHandlers) {
	if !c.phase.claim() {
		return
	}
	c.ws = h
	c.decision = DecisionUpgrade
	c.phase.send()
}

func (c *RequestContext) decide(d Decision) {
	if !c.phase.claim() {
		return
	}
	c.decision = d
	c.phase.send()
}

// ReadBody asks the host for the whole request body through the channel
// context (a call with its own call ID, answered within the call timeout).
// A body over the host's cap returns ErrBodyTooLarge and the host answers
// 413. The returned slice belongs to the caller.
func (c *RequestContext) ReadBody() ([]byte, error) {
	return c.phase.call(MethodReadRequestBody, 0, nil)
}

// StreamHeader starts a streamed answer with status and the collected
// header edits. Follow with StreamWrite calls and StreamEnd, which ends the
// phase like End.
func (c *RequestContext) StreamHeader(status int) error {
	c.editor.status = status
	_, err := c.phase.call(MethodResponseStreamHead, status, nil)
	return err
}

// StreamWrite sends one chunk of a streamed answer and flushes it. The host
// is done with p when StreamWrite returns.
func (c *RequestContext) StreamWrite(p []byte) error {
	_, err := c.phase.call(MethodResponseStreamData, 0, p)
	return err
}

// StreamEnd ends a streamed answer and the phase.
func (c *RequestContext) StreamEnd() error {
	_, err := c.phase.call(MethodResponseStreamEnd, 0, nil)
	c.decide(DecisionEnd)
	return err
}

// Continue prepares the context for the next entry of a chain: a fresh
// decision signal, the same request, values and edits. Hosts call it.
//
// Call it only once c has decided: the new context has its own copies of
// the values and edits, so a handler that lingers on c cannot race with the
// next entry.
func (c *RequestContext) Continue() *RequestContext {
	n := &RequestContext{body: c.body}
	n.editor.status = c.editor.status
	n.editor.edits = slices.Clone(c.editor.edits)
	n.phase.init(c.phase.ctx, c.phase.req, maps.Clone(c.phase.vals))
	return n
}

// Decision returns the decision made (valid once the host got the signal).
// A handler that returned without deciding (and without Defer) decided
// DecisionNext.
func (c *RequestContext) Decision() Decision {
	if c.decision == DecisionNone && c.phase.decided.Load() && c.phase.panic == nil {
		return DecisionNext
	}
	return c.decision
}

// Body returns the collected response body.
func (c *RequestContext) Body() []byte { return c.body }

// UpgradeHandlers returns the handlers passed to Upgrade (nil means the
// entry's own).
func (c *RequestContext) UpgradeHandlers() *WebSocketHandlers { return c.ws }

func (c *RequestContext) base() *phase { return &c.phase }

func (c *RequestContext) reset() {
	c.phase.reset()
	c.editor.reset()
	c.decision, c.body, c.ws = DecisionNone, nil, nil
}

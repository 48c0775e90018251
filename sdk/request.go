package sdk

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Request is the snapshot of an HTTP request that a plugin sees: taken once
// by the host, read-only afterwards, and safe to read from any goroutine.
type Request struct {
	Method     string
	Path       string
	RawQuery   string
	Host       string
	RemoteAddr string      // the socket's peer address, host:port
	ClientIP   string      // the client's IP (the socket's, unless a trusted proxy says otherwise)
	Header     http.Header // do not modify
	Params     map[string]string
	Time       time.Time // when the host received the request
}

// Query parses RawQuery. It allocates on every call; keep the result.
func (r *Request) Query() url.Values {
	v, _ := url.ParseQuery(r.RawQuery)
	return v
}

// Param returns the value of a route wildcard, or "".
func (r *Request) Param(name string) string { return r.Params[name] }

// Decision is what a request filter decided.
type Decision uint8

// Decisions.
const (
	DecisionNone    Decision = iota // not decided yet
	DecisionNext                    // continue with the next entry or the terminal
	DecisionEnd                     // answer with the collected status, headers and body
	DecisionUpgrade                 // upgrade to a WebSocket
)

// HeaderEditOp says what a header edit does.
type HeaderEditOp uint8

// Header edit operations.
const (
	HeaderSet HeaderEditOp = iota + 1
	HeaderAdd
	HeaderRemove
)

// HeaderEdit is one response header change collected in a context.
type HeaderEdit struct {
	Op    HeaderEditOp
	Name  string
	Value string
}

// RequestContext is handed to a RequestFilter. It carries the request
// snapshot and collects the filter's decision and edits; they travel back to
// the host together when the handler decides. It implements context.Context
// through Context(). A RequestContext is used by one handler at a time and
// must not be kept after the handler returns.
type RequestContext struct {
	ctx      context.Context
	req      *Request
	values   map[string]any
	decision Decision
	status   int
	edits    []HeaderEdit
	body     []byte
	ws       *WebSocketHandlers
}

// NewRequestContext returns a context for req. Hosts and test kits call it;
// values is the per-request value map (may be nil).
func NewRequestContext(ctx context.Context, req *Request, values map[string]any) *RequestContext {
	return &RequestContext{ctx: ctx, req: req, values: values}
}

// Context returns the request's context, cancelled when the client goes away.
func (c *RequestContext) Context() context.Context { return c.ctx }

// Request returns the request snapshot.
func (c *RequestContext) Request() *Request { return c.req }

// Set stores a per-request value (for example auth claims). Values set here
// are readable by later entries and, after an upgrade, by every WebSocket
// handler through Conn.Value.
func (c *RequestContext) Set(key string, v any) {
	if c.values == nil {
		c.values = make(map[string]any)
	}
	c.values[key] = v
}

// Value returns a per-request value, or nil.
func (c *RequestContext) Value(key string) any { return c.values[key] }

// Values returns the per-request values (may be nil). Hosts read it.
func (c *RequestContext) Values() map[string]any { return c.values }

// SetStatus sets the response status used by End.
func (c *RequestContext) SetStatus(code int) { c.status = code }

// SetHeader sets a response header.
func (c *RequestContext) SetHeader(name, value string) {
	c.edits = append(c.edits, HeaderEdit{Op: HeaderSet, Name: name, Value: value})
}

// AddHeader adds a response header value.
func (c *RequestContext) AddHeader(name, value string) {
	c.edits = append(c.edits, HeaderEdit{Op: HeaderAdd, Name: name, Value: value})
}

// RemoveHeader removes a response header.
func (c *RequestContext) RemoveHeader(name string) {
	c.edits = append(c.edits, HeaderEdit{Op: HeaderRemove, Name: name})
}

// SetBody sets the response body used by End. The slice is kept: do not
// modify it afterwards.
func (c *RequestContext) SetBody(b []byte) { c.body = b }

// Next lets the request continue to the next entry or the terminal.
func (c *RequestContext) Next() { c.decide(DecisionNext) }

// End answers the request with the collected status (200 if unset),
// headers and body; later entries and the terminal do not run.
func (c *RequestContext) End() { c.decide(DecisionEnd) }

// Reject answers the request with status and a text body.
func (c *RequestContext) Reject(status int, body string) {
	c.status = status
	c.body = []byte(body)
	c.SetHeader("Content-Type", "text/plain; charset=utf-8")
	c.decide(DecisionEnd)
}

// Upgrade accepts a WebSocket handshake with h, or with the entry's own
// WebSocket handlers when h is nil. Collected header edits are sent with the
// handshake response.
func (c *RequestContext) Upgrade(h *WebSocketHandlers) {
	c.ws = h
	c.decide(DecisionUpgrade)
}

func (c *RequestContext) decide(d Decision) {
	if c.decision == DecisionNone {
		c.decision = d
	}
}

// Continue clears the decision (keeping values and edits) so the next
// entry of a chain can decide, and returns c. Hosts call it.
func (c *RequestContext) Continue() *RequestContext {
	c.decision = DecisionNone
	c.ws = nil
	return c
}

// Decision returns the decision made so far.
func (c *RequestContext) Decision() Decision { return c.decision }

// Status returns the collected response status (0 if unset).
func (c *RequestContext) Status() int { return c.status }

// HeaderEdits returns the collected header edits in call order.
func (c *RequestContext) HeaderEdits() []HeaderEdit { return c.edits }

// Body returns the collected response body.
func (c *RequestContext) Body() []byte { return c.body }

// UpgradeHandlers returns the handlers passed to Upgrade (nil means the
// entry's own).
func (c *RequestContext) UpgradeHandlers() *WebSocketHandlers { return c.ws }

// ApplyHeaderEdits applies edits to h in order.
func ApplyHeaderEdits(h http.Header, edits []HeaderEdit) {
	for _, e := range edits {
		switch e.Op {
		case HeaderSet:
			h.Set(e.Name, e.Value)
		case HeaderAdd:
			h.Add(e.Name, e.Value)
		case HeaderRemove:
			h.Del(e.Name)
		}
	}
}

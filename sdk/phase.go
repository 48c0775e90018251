package sdk

import (
	"context"
	"net/http"
	"time"

	"github.com/strandws/strand/internal/core"
)

// RequestContext is handed to a RequestFilter. It carries the request
// snapshot and collects the filter's decision and edits, which travel back
// to the host together when the filter decides with Next, End, Reject or
// Upgrade. Returning without deciding means Next. A filter that decides
// later, from another goroutine, calls Defer before it returns and then
// decides within the host's phase timeout. Do not touch the context after
// deciding: the host recycles it for another request once the handler has
// returned and decided (a deferring handler: once it decided, even after
// the host stopped waiting). The Request snapshot is not recycled.
type RequestContext core.RequestContext

func (c *RequestContext) core() *core.RequestContext { return (*core.RequestContext)(c) }

// Context returns the request's context: cancelled when the client goes
// away or the phase ends.
func (c *RequestContext) Context() context.Context { return c.core().Context() }

// Request returns the request snapshot.
func (c *RequestContext) Request() *Request { return (*Request)(c.core().Request()) }

// Value returns a per-request value set by an earlier entry, or nil.
func (c *RequestContext) Value(key string) any { return c.core().Value(key) }

// Set stores a per-request value (for example auth claims). Values set here
// are readable by later entries and phases and, after an upgrade, by every
// WebSocket handler through Conn.Value.
func (c *RequestContext) Set(key string, v any) { c.core().Set(key, v) }

// SetStatus sets the status End answers with (200 if unset).
func (c *RequestContext) SetStatus(code int) { c.core().SetStatus(code) }

// SetHeader sets a response header: on End's answer, on the terminal
// handler's answer after Next, or on the handshake response after Upgrade.
func (c *RequestContext) SetHeader(name, value string) { c.core().SetHeader(name, value) }

// AddHeader adds a response header value. See SetHeader.
func (c *RequestContext) AddHeader(name, value string) { c.core().AddHeader(name, value) }

// RemoveHeader removes a response header. See SetHeader.
func (c *RequestContext) RemoveHeader(name string) { c.core().RemoveHeader(name) }

// SetBody sets the response body used by End. The slice is kept: do not
// modify it afterwards.
func (c *RequestContext) SetBody(b []byte) { c.core().SetBody(b) }

// SetJSON sets the response body used by End to v as JSON, and Content-Type.
func (c *RequestContext) SetJSON(v any) error { return c.core().SetJSON(v) }

// Next lets the request continue to the next entry or the terminal.
func (c *RequestContext) Next() { c.core().Next() }

// End answers the request with the collected status (200 if unset),
// headers and body; later entries and the terminal do not run.
func (c *RequestContext) End() { c.core().End() }

// Reject answers the request with status and a text body.
func (c *RequestContext) Reject(status int, body string) { c.core().Reject(status, body) }

// Upgrade accepts a WebSocket handshake with h, or with the entry's own
// WebSocket handlers when h is nil. Collected header edits are sent with the
// handshake response. It panics (the host answers 500) when h sets both
// OnMessage and OnText or OnBinary.
func (c *RequestContext) Upgrade(h *WebSocketHandlers) {
	var ch *core.WebSocketHandlers
	if h != nil {
		ch = h.core()
		if err := ch.Validate(); err != nil {
			panic("sdk: Upgrade: " + err.Error())
		}
	}
	c.core().Upgrade(ch)
}

// Defer says that the filter decides after it returns, from another
// goroutine; the host's phase timeout then applies. Call it before
// returning.
func (c *RequestContext) Defer() { c.core().Defer() }

// ReadBody asks the host for the whole request body (a call with its own
// call ID, answered within the phase timeout). A body over the host's cap
// returns an error and the host answers 413. The returned slice belongs to
// the caller.
func (c *RequestContext) ReadBody() ([]byte, error) { return c.core().ReadBody() }

// StreamHeader starts a streamed answer with status and the collected
// header edits. Follow with StreamWrite calls and StreamEnd, which ends the
// phase like End.
func (c *RequestContext) StreamHeader(status int) error { return c.core().StreamHeader(status) }

// StreamWrite sends one chunk of a streamed answer and flushes it. The host
// is done with p when StreamWrite returns.
func (c *RequestContext) StreamWrite(p []byte) error { return c.core().StreamWrite(p) }

// StreamEnd ends a streamed answer and the phase.
func (c *RequestContext) StreamEnd() error { return c.core().StreamEnd() }

// ResponseContext is handed to a ResponseFilter: the request, and the
// answer's status and headers, which it may edit before deciding with Next.
// Returning without deciding means Next; see Defer. Do not touch the
// context after deciding: it is recycled, as a RequestContext is.
type ResponseContext core.ResponseContext

func (c *ResponseContext) core() *core.ResponseContext { return (*core.ResponseContext)(c) }

// Context returns the request's context.
func (c *ResponseContext) Context() context.Context { return c.core().Context() }

// Request returns the request snapshot.
func (c *ResponseContext) Request() *Request { return (*Request)(c.core().Request()) }

// Value returns a per-request value, or nil.
func (c *ResponseContext) Value(key string) any { return c.core().Value(key) }

// ResponseStatus returns the answer's status.
func (c *ResponseContext) ResponseStatus() int { return c.core().ResponseStatus() }

// ResponseHeader returns the answer's headers as the terminal set them. Do
// not modify the map: edit with SetHeader, AddHeader and RemoveHeader.
func (c *ResponseContext) ResponseHeader() http.Header { return c.core().ResponseHeader() }

// SetStatus replaces the answer's status.
func (c *ResponseContext) SetStatus(code int) { c.core().SetStatus(code) }

// SetHeader sets an answer header.
func (c *ResponseContext) SetHeader(name, value string) { c.core().SetHeader(name, value) }

// AddHeader adds an answer header value.
func (c *ResponseContext) AddHeader(name, value string) { c.core().AddHeader(name, value) }

// RemoveHeader removes an answer header.
func (c *ResponseContext) RemoveHeader(name string) { c.core().RemoveHeader(name) }

// Next lets the (edited) answer go on.
func (c *ResponseContext) Next() { c.core().Next() }

// Defer says that the filter decides after it returns, from another
// goroutine; the host's phase timeout then applies.
func (c *ResponseContext) Defer() { c.core().Defer() }

// BodyContext is handed to a ResponseBodyFilter: the request, the answer's
// status and its whole body, which it may replace before deciding with
// Next. Returning without deciding means Next; see Defer. Do not touch the
// context after deciding: it is recycled, as a RequestContext is.
type BodyContext core.BodyContext

func (c *BodyContext) core() *core.BodyContext { return (*core.BodyContext)(c) }

// Context returns the request's context.
func (c *BodyContext) Context() context.Context { return c.core().Context() }

// Request returns the request snapshot.
func (c *BodyContext) Request() *Request { return (*Request)(c.core().Request()) }

// Value returns a per-request value, or nil.
func (c *BodyContext) Value(key string) any { return c.core().Value(key) }

// Body returns the answer body, valid until the filter decides.
func (c *BodyContext) Body() []byte { return c.core().Body() }

// SetBody replaces the answer body (Content-Length follows). The slice is
// kept: do not modify it afterwards.
func (c *BodyContext) SetBody(b []byte) { c.core().SetBody(b) }

// SetJSON replaces the answer body with v as JSON, and Content-Type.
func (c *BodyContext) SetJSON(v any) error { return c.core().SetJSON(v) }

// SetStatus replaces the answer's status.
func (c *BodyContext) SetStatus(code int) { c.core().SetStatus(code) }

// SetHeader sets an answer header.
func (c *BodyContext) SetHeader(name, value string) { c.core().SetHeader(name, value) }

// AddHeader adds an answer header value.
func (c *BodyContext) AddHeader(name, value string) { c.core().AddHeader(name, value) }

// RemoveHeader removes an answer header.
func (c *BodyContext) RemoveHeader(name string) { c.core().RemoveHeader(name) }

// Next lets the (replaced) body go on.
func (c *BodyContext) Next() { c.core().Next() }

// Defer says that the filter decides after it returns, from another
// goroutine; the host's phase timeout then applies.
func (c *BodyContext) Defer() { c.core().Defer() }

// LogEntry is what a Logging handler sees of a finished request.
type LogEntry struct {
	Request  *Request
	Status   int           // 101 for an upgrade
	BytesIn  int64         // request body bytes read
	BytesOut int64         // response body bytes written
	Duration time.Duration // from the request's arrival to the answer's end
	Err      error         // why the host failed the request, if it did
	Values   map[string]any
}

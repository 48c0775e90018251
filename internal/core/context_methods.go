package core

import "context"

// The phase contexts hold their phase and editor as named fields, not
// embedded ones: methods promoted from an embedded field would carry over
// to sdk's defined types (type RequestContext core.RequestContext) and
// hand a plugin the host's side of the phase (Signal, Interrupt, Panicked,
// Running, Status, HeaderEdits). Methods declared on the context types
// themselves, as below, do not carry over: sdk wraps the author's ones,
// and the host's stay out of its reach. sdk's surface test fails if one
// leaks.

// RequestContext's own methods over its phase and editor.

// Context returns the request's context.
func (c *RequestContext) Context() context.Context { return c.phase.Context() }

// Request returns the request snapshot.
func (c *RequestContext) Request() *Request { return c.phase.Request() }

// Value returns a per-request value, or nil.
func (c *RequestContext) Value(key string) any { return c.phase.Value(key) }

// Defer says the handler decides after it returns; see phase.Defer.
func (c *RequestContext) Defer() { c.phase.Defer() }

// SetStatus sets the response status.
func (c *RequestContext) SetStatus(code int) { c.editor.SetStatus(code) }

// SetHeader sets a response header.
func (c *RequestContext) SetHeader(name, value string) { c.editor.SetHeader(name, value) }

// AddHeader adds a response header value.
func (c *RequestContext) AddHeader(name, value string) { c.editor.AddHeader(name, value) }

// RemoveHeader removes a response header.
func (c *RequestContext) RemoveHeader(name string) { c.editor.RemoveHeader(name) }

// Status returns the collected status (0: unchanged). Hosts read it.
func (c *RequestContext) Status() int { return c.editor.Status() }

// HeaderEdits returns the collected header edits in call order. Hosts
// read them.
func (c *RequestContext) HeaderEdits() []HeaderEdit { return c.editor.HeaderEdits() }

// Signal returns the channel the host waits on; see phase.Signal.
func (c *RequestContext) Signal() <-chan *HostCall { return c.phase.Signal() }

// Interrupt puts the host's mark on the signal channel; see
// phase.Interrupt.
func (c *RequestContext) Interrupt(mark *HostCall) bool { return c.phase.Interrupt(mark) }

// Panicked returns the value the handler panicked with, or nil.
func (c *RequestContext) Panicked() any { return c.phase.Panicked() }

// Running reports whether the handler has not returned yet.
func (c *RequestContext) Running() bool { return c.phase.Running() }

// ResponseContext's own methods over its phase and editor.

// Context returns the request's context.
func (c *ResponseContext) Context() context.Context { return c.phase.Context() }

// Request returns the request snapshot.
func (c *ResponseContext) Request() *Request { return c.phase.Request() }

// Value returns a per-request value, or nil.
func (c *ResponseContext) Value(key string) any { return c.phase.Value(key) }

// Defer says the handler decides after it returns; see phase.Defer.
func (c *ResponseContext) Defer() { c.phase.Defer() }

// SetStatus sets the response status.
func (c *ResponseContext) SetStatus(code int) { c.editor.SetStatus(code) }

// SetHeader sets a response header.
func (c *ResponseContext) SetHeader(name, value string) { c.editor.SetHeader(name, value) }

// AddHeader adds a response header value.
func (c *ResponseContext) AddHeader(name, value string) { c.editor.AddHeader(name, value) }

// RemoveHeader removes a response header.
func (c *ResponseContext) RemoveHeader(name string) { c.editor.RemoveHeader(name) }

// Status returns the collected status (0: unchanged). Hosts read it.
func (c *ResponseContext) Status() int { return c.editor.Status() }

// HeaderEdits returns the collected header edits in call order. Hosts
// read them.
func (c *ResponseContext) HeaderEdits() []HeaderEdit { return c.editor.HeaderEdits() }

// Signal returns the channel the host waits on; see phase.Signal.
func (c *ResponseContext) Signal() <-chan *HostCall { return c.phase.Signal() }

// Interrupt puts the host's mark on the signal channel; see
// phase.Interrupt.
func (c *ResponseContext) Interrupt(mark *HostCall) bool { return c.phase.Interrupt(mark) }

// Panicked returns the value the handler panicked with, or nil.
func (c *ResponseContext) Panicked() any { return c.phase.Panicked() }

// Running reports whether the handler has not returned yet.
func (c *ResponseContext) Running() bool { return c.phase.Running() }

// BodyContext's own methods over its phase and editor.

// Context returns the request's context.
func (c *BodyContext) Context() context.Context { return c.phase.Context() }

// Request returns the request snapshot.
func (c *BodyContext) Request() *Request { return c.phase.Request() }

// Value returns a per-request value, or nil.
func (c *BodyContext) Value(key string) any { return c.phase.Value(key) }

// Defer says the handler decides after it returns; see phase.Defer.
func (c *BodyContext) Defer() { c.phase.Defer() }

// SetStatus sets the response status.
func (c *BodyContext) SetStatus(code int) { c.editor.SetStatus(code) }

// SetHeader sets a response header.
func (c *BodyContext) SetHeader(name, value string) { c.editor.SetHeader(name, value) }

// AddHeader adds a response header value.
func (c *BodyContext) AddHeader(name, value string) { c.editor.AddHeader(name, value) }

// RemoveHeader removes a response header.
func (c *BodyContext) RemoveHeader(name string) { c.editor.RemoveHeader(name) }

// Status returns the collected status (0: unchanged). Hosts read it.
func (c *BodyContext) Status() int { return c.editor.Status() }

// HeaderEdits returns the collected header edits in call order. Hosts
// read them.
func (c *BodyContext) HeaderEdits() []HeaderEdit { return c.editor.HeaderEdits() }

// Signal returns the channel the host waits on; see phase.Signal.
func (c *BodyContext) Signal() <-chan *HostCall { return c.phase.Signal() }

// Interrupt puts the host's mark on the signal channel; see
// phase.Interrupt.
func (c *BodyContext) Interrupt(mark *HostCall) bool { return c.phase.Interrupt(mark) }

// Panicked returns the value the handler panicked with, or nil.
func (c *BodyContext) Panicked() any { return c.phase.Panicked() }

// Running reports whether the handler has not returned yet.
func (c *BodyContext) Running() bool { return c.phase.Running() }

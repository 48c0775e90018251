package core

import (
	"context"
	"net/http"
)

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

func (c *ResponseContext) base() *phase { return &c.phase }

func (c *ResponseContext) reset() {
	c.phase.reset()
	c.editor.reset()
	c.respStatus, c.header = 0, nil
}

package core

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
)

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

func (c *BodyContext) base() *phase { return &c.phase }

func (c *BodyContext) reset() {
	c.phase.reset()
	c.editor.reset()
	c.body, c.replaced = nil, false
	c.chainRF, c.chainNow, c.chainAt = nil, nil, 0
	if c.stage.Load() != chainFirst {
		c.stage.Store(chainFirst)
	}
}

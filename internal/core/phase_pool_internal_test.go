package core

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// poolRuntime returns a runtime for one entry whose request filter is f.
func poolRuntime(t *testing.T, f RequestFilterFunc) (*Runtime, *Entry) {
	t.Helper()
	p := NewPlugin("pool")
	e := p.Entry("e").RequestFilter(f)
	rt, err := NewRuntime(p, RuntimeConfig{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, rt.Close(context.Background())) })
	return rt, e
}

// waitRefs waits until c has n references left (the worker drops its
// reference just after the handler returns).
func waitRefs(t *testing.T, c *RequestContext, n int32) {
	t.Helper()
	require.Eventually(t, func() bool { return c.phase.refs.Load() == n }, 5*time.Second, time.Millisecond)
}

// recycled reports whether c is back in its pool (reset: refs is stored
// last, so its other fields may be read once this is true).
func recycled(c *RequestContext) bool {
	if c.phase.refs.Load() != inPool {
		return false
	}
	return c.phase.req == nil && c.phase.vals == nil && len(c.editor.edits) == 0 && c.phase.decided.Load()
}

func TestPooledContextWaitsForADeferredDecision(t *testing.T) {
	kept := make(chan *RequestContext, 1)
	rt, e := poolRuntime(t, func(c *RequestContext) {
		c.Defer()
		kept <- c
	})
	req := &Request{Path: "/late"}
	c := rt.AcquireRequestContext(context.Background(), req, map[string]any{"k": "v"})
	require.NoError(t, rt.StartRequestFilter(e, c))
	late := <-kept
	waitRefs(t, c, 2) // the host's and the deferring handler's
	// The host gives up (its phase timed out) and releases its reference.
	c.Release()
	assert.EqualValues(t, 1, c.phase.refs.Load(), "the deferring handler still owns the context")
	assert.False(t, recycled(c))

	// The late decision sees its own request and values, then recycles.
	assert.Same(t, req, late.Request())
	assert.Equal(t, "v", late.Value("k"))
	late.SetHeader("X-Late", "1")
	late.Next()
	assert.True(t, recycled(c), "recycled once the deferred handler decided")

	// A stray decision on a recycled context is a no-op: no signal, no panic.
	late.Next()
	late.Reject(500, "no")
	select {
	case hc := <-c.Signal():
		t.Fatalf("a recycled context signalled %v", hc)
	default:
	}
	_, err := late.ReadBody()
	assert.ErrorIs(t, err, ErrPhaseOver)
	// A stray Defer does not carry over to the context's next use.
	late.Defer()
	c.phase.reuse()
	assert.False(t, c.phase.deferred.Load())
	assert.False(t, c.phase.decided.Load())
}

func TestPooledContextWaitsForABlockedHandler(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	rt, e := poolRuntime(t, func(c *RequestContext) {
		close(entered)
		<-release
		c.SetHeader("X-After", "1") // the host gave up long ago
		c.Next()
	})
	c := rt.AcquireRequestContext(context.Background(), &Request{}, nil)
	require.NoError(t, rt.StartRequestFilter(e, c))
	<-entered
	c.Release()
	assert.False(t, recycled(c), "the worker still holds it")
	close(release)
	require.Eventually(t, func() bool { return recycled(c) }, 5*time.Second, time.Millisecond)
}

func TestPooledContextDeferThenPanicReleasesBoth(t *testing.T) {
	rt, e := poolRuntime(t, func(c *RequestContext) {
		c.Defer()
		panic("boom")
	})
	c := rt.AcquireRequestContext(context.Background(), &Request{}, nil)
	require.NoError(t, rt.StartRequestFilter(e, c))
	require.Nil(t, <-c.Signal())
	assert.Equal(t, "boom", c.Panicked())
	waitRefs(t, c, 1) // only the host's is left
	c.Release()
	assert.True(t, recycled(c))
}

func TestPooledContextRefusedStartKeepsOnlyTheHost(t *testing.T) {
	rt, e := poolRuntime(t, func(c *RequestContext) { c.Next() })
	require.NoError(t, rt.Close(context.Background()))
	c := rt.AcquireRequestContext(context.Background(), &Request{}, nil)
	require.Error(t, rt.StartRequestFilter(e, c))
	assert.EqualValues(t, 1, c.phase.refs.Load())
	c.Release()
	assert.True(t, recycled(c))
}

func TestAcquireContinueCopiesAndReusesEdits(t *testing.T) {
	rt, e := poolRuntime(t, func(c *RequestContext) {
		c.Set("n", 1)
		c.SetHeader("X-A", "1")
		c.Next()
	})
	c := rt.AcquireRequestContext(context.Background(), &Request{}, nil)
	require.NoError(t, rt.StartRequestFilter(e, c))
	require.Nil(t, <-c.Signal())
	n := rt.AcquireContinue(c)
	c.Release()
	assert.Equal(t, []HeaderEdit{{Op: HeaderSet, Name: "X-A", Value: "1"}}, n.HeaderEdits())
	assert.Equal(t, 1, n.Value("n"))
	n.Set("n", 2)
	assert.Equal(t, 2, n.Value("n"))
	// The first context may be recycled and reused: n's copies stay.
	m := rt.AcquireRequestContext(context.Background(), &Request{}, nil)
	m.SetHeader("X-B", "2")
	m.Set("n", 3)
	assert.Equal(t, []HeaderEdit{{Op: HeaderSet, Name: "X-A", Value: "1"}}, n.HeaderEdits())
	assert.Equal(t, 2, n.Value("n"))
	n.Release()
	m.Release()
}

package core

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/strandws/strand/dispatcher"
)

// phasePool returns the runtime's phase pool, starting it if start is set.
func (rt *Runtime) phasePool(start bool) *dispatcher.Pool {
	if start {
		rt.poolOnce.Do(func() {
			rt.pool, rt.poolErr = dispatcher.NewPool(rt.poolCfg)
			rt.poolSet.Store(true)
		})
	} else if !rt.poolSet.Load() {
		// Not started (or being started by another goroutine): pool and
		// poolErr may not be read yet.
		return nil
	}
	if rt.poolErr != nil {
		return nil
	}
	return rt.pool
}

func (rt *Runtime) submitPhase(fn func(any), arg any) error {
	p := rt.phasePool(true)
	if p == nil {
		if rt.poolErr != nil && !errors.Is(rt.poolErr, ErrRuntimeClosed) {
			return fmt.Errorf("sdk: phase pool: %w", rt.poolErr)
		}
		return ErrRuntimeClosed
	}
	if err := p.Submit(dispatcher.Task{Fn: fn, Arg: arg}); err != nil {
		return rt.submitErr(err)
	}
	return nil
}

// StartRequestFilter hands c to e's request filter on the phase pool and
// returns at once; the host then waits on c.Signal() for the decision,
// answering host calls meanwhile. It fails when e has no request filter or
// the pool refuses the task.
func (rt *Runtime) StartRequestFilter(e *Entry, c *RequestContext) error {
	if e.requestFilter == nil {
		return fmt.Errorf("sdk: %s has no request filter", e)
	}
	return rt.startPhase(&c.phase, e, runRequestFilter, c)
}

// startPhase hands a phase context to the pool, with the worker's
// reference of a pooled context; if the pool refuses it, that reference is
// dropped: it will never run.
func (rt *Runtime) startPhase(p *phase, e *Entry, fn func(any), arg any) error {
	p.entry, p.rt = e, rt
	if p.recycle != nil {
		p.refs.Add(1) // the worker's, released by finish
	}
	p.running.Store(true)
	if err := rt.submitPhase(fn, arg); err != nil {
		p.running.Store(false)
		p.release()
		return err
	}
	return nil
}

// StartResponseFilter is StartRequestFilter for the ResponseFilter phase.
func (rt *Runtime) StartResponseFilter(e *Entry, c *ResponseContext) error {
	if e.responseFilter == nil {
		return fmt.Errorf("sdk: %s has no response filter", e)
	}
	return rt.startPhase(&c.phase, e, runResponseFilter, c)
}

// StartBodyFilter is StartRequestFilter for the ResponseBodyFilter phase.
func (rt *Runtime) StartBodyFilter(e *Entry, c *BodyContext) error {
	if e.bodyFilter == nil {
		return fmt.Errorf("sdk: %s has no response body filter", e)
	}
	return rt.startPhase(&c.phase, e, runBodyFilter, c)
}

type logJob struct {
	rt    *Runtime
	entry *Entry
	log   LogEntry
}

// StartLogging runs e's Logging handler with l on the phase pool; nothing
// waits for it.
func (rt *Runtime) StartLogging(e *Entry, l LogEntry) error {
	if e.logging == nil {
		return fmt.Errorf("sdk: %s has no logging handler", e)
	}
	j, _ := rt.logJobs.Get().(*logJob)
	if j == nil {
		j = new(logJob)
	}
	j.rt, j.entry, j.log = rt, e, l
	if err := rt.submitPhase(runLogging, j); err != nil {
		rt.putLogJob(j)
		return err
	}
	return nil
}

func (rt *Runtime) putLogJob(j *logJob) {
	*j = logJob{}
	rt.logJobs.Put(j)
}

func runRequestFilter(arg any) {
	c := arg.(*RequestContext)
	defer c.phase.finish()
	c.phase.entry.requestFilter(c)
}

func runResponseFilter(arg any) {
	c := arg.(*ResponseContext)
	defer c.phase.finish()
	c.phase.entry.responseFilter(c)
}

func runBodyFilter(arg any) {
	c := arg.(*BodyContext)
	defer c.phase.finish()
	c.phase.entry.bodyFilter(c)
}

// runLogging runs a Logging handler. The *LogEntry it is given is recycled
// when it returns: a handler keeps a copy, not the pointer.
func runLogging(arg any) {
	j := arg.(*logJob)
	rt := j.rt
	defer func() {
		if v := recover(); v != nil {
			rt.panics.Add(1)
			rt.log.Error("strand: logging handler panic", "entry", j.entry.String(), "panic", v)
		}
		rt.putLogJob(j)
	}()
	j.entry.logging(&j.log)
}

// finish marks the handler returned: a panic becomes a signalled failure
// the host answers with 500, and a handler that returned without deciding
// and without Defer decided Next.
func (p *phase) finish() {
	p.settle(recover())
	p.release() // the worker's reference, last: p may be reused after this
}

// settle is finish without the release: v is what the handler panicked
// with (nil if it returned). It reports whether the handler decided by the
// time it returned, without panicking.
func (p *phase) settle(v any) bool {
	if v != nil {
		p.rt.panics.Add(1)
		p.rt.log.Error("strand: phase handler panic", "entry", p.entry.String(), "panic", v, "stack", string(debug.Stack()))
		if p.claim() {
			p.panic = v
			p.send()
		}
	} else if !p.deferred.Load() && p.claim() {
		p.send() // Next (RequestContext.Decision reads an undecided decided phase as Next)
	}
	p.running.Store(false)
	return v == nil && p.decided.Load()
}

// RequestFilter runs e's request filter and waits up to timeout for its
// decision, handing each host call to serve (nil: answered with
// ErrPhaseOver). serve answers the call and returns true when the host
// answered the request itself (as a server does with 413 for a body over
// its cap): RequestFilter then stops waiting and returns DecisionNone. It
// is for test kits and tools; hosts use StartRequestFilter and serve calls
// on their own paths. An entry without a request filter upgrades when it
// has WebSocket handlers and lets the request through otherwise.
func (rt *Runtime) RequestFilter(e *Entry, c *RequestContext, timeout time.Duration, serve func(*HostCall) (stop bool)) (Decision, error) {
	if e.requestFilter == nil {
		if e.ws != nil {
			return DecisionUpgrade, nil
		}
		return DecisionNext, nil
	}
	if err := rt.StartRequestFilter(e, c); err != nil {
		return DecisionNone, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case hc := <-c.Signal():
			if hc != nil {
				if serve == nil {
					hc.Reply(HostReply{Err: ErrPhaseOver})
				} else if serve(hc) {
					return DecisionNone, nil
				}
				continue
			}
			if v := c.Panicked(); v != nil {
				return DecisionNone, fmt.Errorf("sdk: request filter %s panicked: %v", e, v)
			}
			return c.Decision(), nil
		case <-t.C:
			return DecisionNone, context.DeadlineExceeded
		}
	}
}

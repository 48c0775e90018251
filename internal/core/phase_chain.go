package core

import "fmt"

// Chain stages of a response chain (StartResponseChain), in BodyContext.
const (
	chainFirst   int32 = iota // the response filter runs
	chainBody                 // it decided in its handler; the body filter runs
	chainPending              // it did not (Defer, panic): the body filter did not run
	chainLeft                 // the host gave up before the body filter started
)

// ChainStage says how a response chain stands (BodyContext.ChainStage).
type ChainStage uint8

// Chain stages, as the host sees them.
const (
	ChainBoth    ChainStage = iota + 1 // both filters ran; bc's signal is the body filter's decision
	ChainPending                       // the response filter did not decide in its handler (or panicked): wait on rc, then run the body filter apart
)

// StartResponseChain runs e's ResponseFilter with rc and then, on the same
// worker and without handing back to the host in between, its
// ResponseBodyFilter with bc: one hand-off for both phases. The body
// filter runs only if the response filter decided by the time its handler
// returned (the common case) and did not panic; bc starts with the status
// the response filter set (or its own, when it set none).
//
// The host waits on bc.Signal(). On the decision signal, bc.ChainStage
// says whether both ran (ChainBoth: read rc's results, then bc's) or the
// body filter did not run (ChainPending: wait on rc.Signal() as for
// StartResponseFilter, then run the body filter with another context). If
// the host stops waiting (its timeout), it calls bc.LeaveChain, which
// says which of the two was running then. now reads the host's clock; the
// worker stamps the body filter's start with it (ChainedAt).
//
// The host releases both contexts (Release) as for the single phases.
func (rt *Runtime) StartResponseChain(e *Entry, rc *ResponseContext, bc *BodyContext, now func() int64) error {
	if e.responseFilter == nil || e.bodyFilter == nil {
		return fmt.Errorf("sdk: %s has no response filter and body filter to chain", e)
	}
	rc.phase.entry, rc.phase.rt = e, rt
	if rc.phase.recycle != nil {
		rc.phase.refs.Add(1) // the worker's
	}
	rc.phase.running.Store(true)
	bc.chainRF, bc.chainNow = rc, now
	bc.stage.Store(chainFirst)
	if err := rt.startPhase(&bc.phase, e, runResponseChain, bc); err != nil {
		bc.chainRF = nil
		rc.phase.running.Store(false)
		rc.phase.release()
		return err
	}
	return nil
}

func runResponseChain(arg any) {
	bc := arg.(*BodyContext)
	rc := bc.chainRF
	decided := runChainedResponseFilter(rc)
	st := 0
	if decided { // else a deferring handler may still write its status
		st = rc.editor.status
	}
	rc.phase.release()
	if decided {
		bc.chainAt = bc.chainNow() // before the stage: LeaveChain reads it
		if st != 0 {
			bc.editor.status = st
		}
		if bc.stage.CompareAndSwap(chainFirst, chainBody) {
			runBodyFilter(bc) // its finish signals and releases bc
			return
		}
	}
	// The body filter does not run here.
	if bc.stage.CompareAndSwap(chainFirst, chainPending) {
		bc.phase.signal() // the host now waits on rc
	}
	bc.phase.running.Store(false)
	bc.phase.release()
}

// runChainedResponseFilter runs rc's handler and settles it (see finish),
// keeping the worker's reference; it reports whether the handler decided
// before returning.
func runChainedResponseFilter(rc *ResponseContext) (decided bool) {
	defer func() { decided = rc.phase.settle(recover()) }()
	rc.phase.entry.responseFilter(rc)
	return false
}

// ChainStage says, once the host received bc's decision signal, how the
// response chain went. It is 0 for a context not started as a chain.
func (c *BodyContext) ChainStage() ChainStage {
	switch c.stage.Load() {
	case chainBody:
		return ChainBoth
	case chainPending:
		return ChainPending
	}
	return 0
}

// LeaveChain is called by a host that stops waiting on a chain. It reports
// whether the body filter had started (then ChainedAt says when); if not,
// it never will, and the response filter is the phase that was running.
func (c *BodyContext) LeaveChain() (bodyStarted bool) {
	if c.stage.CompareAndSwap(chainFirst, chainLeft) {
		return false
	}
	return c.stage.Load() == chainBody
}

// ChainedAt returns the host clock's reading when the body filter of a
// chain started (valid once ChainStage is ChainBoth or LeaveChain reported
// it started).
func (c *BodyContext) ChainedAt() int64 { return c.chainAt }

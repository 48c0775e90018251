package wsframework

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/strandws/strand/internal/core"
)

var errBodyOverCap = errors.New("wsframework: answer body over MaxBodyFilterBytes")

// respWriter sits between the terminal (or a plugin's answer) and the
// server's ResponseWriter when the route has response phases: it runs the
// ResponseFilters before the status goes out, buffers the body for
// ResponseBodyFilters (up to MaxBodyFilterBytes), and counts bytes for
// Logging. Without body filters it streams and flushes as usual, and the
// ResponseFilters run when the status is written; with body filters the
// status goes out with the filtered body, and the ResponseFilters run just
// before the body filters (one hand-off runs an entry's two: see
// exchange.responseChain), or when the body overflows the buffer.
type respWriter struct {
	x           *exchange
	w           http.ResponseWriter
	status      int
	wroteHeader bool // the status was set (filters ran)
	sentHeader  bool // the status went to w
	buffering   bool
	failed      bool // an error answer replaced the response
	buf         []byte
	bytesOut    int64
}

func (rw *respWriter) Header() http.Header { return rw.w.Header() }

// Unwrap lets http.ResponseController reach the server's writer.
func (rw *respWriter) Unwrap() http.ResponseWriter { return rw.w }

func (rw *respWriter) WriteHeader(code int) {
	if rw.wroteHeader || rw.failed {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		rw.w.WriteHeader(code) // informational: pass through
		return
	}
	rw.wroteHeader = true
	rw.status = code
	if rw.buffering {
		return // the filters run in finish (or on overflow), before the header goes out
	}
	if rw.x.rt.anyResponseFilter && !rw.x.responseFilters(-1) {
		return
	}
	rw.sendHeader()
}

func (rw *respWriter) sendHeader() {
	rw.sentHeader = true
	rw.w.WriteHeader(rw.status)
}

func (rw *respWriter) Write(p []byte) (int, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.failed {
		return 0, errResponseReplaced
	}
	if rw.buffering {
		if int64(len(rw.buf)+len(p)) <= rw.x.srv.cfg.MaxBodyFilterBytes {
			rw.buf = append(rw.buf, p...)
			return len(p), nil
		}
		if rw.x.bodyFiltersFailClosed() {
			rw.x.srv.stats.bodyRefused.Add(1)
			rw.x.err = errBodyOverCap
			rw.fail(http.StatusBadGateway)
			return 0, errBodyOverCap
		}
		// Fail open: pass the body through unfiltered, after the response
		// filters.
		rw.x.srv.stats.bodyPassed.Add(1)
		rw.buffering = false
		if rw.x.rt.anyResponseFilter && !rw.x.responseFilters(-1) {
			rw.buf = nil
			return 0, errResponseReplaced
		}
		rw.sendHeader()
		buffered := rw.buf
		rw.buf = nil
		if _, err := rw.write(buffered); err != nil {
			return 0, err
		}
	}
	return rw.write(p)
}

func (rw *respWriter) write(p []byte) (int, error) {
	n, err := rw.w.Write(p)
	rw.bytesOut += int64(n)
	return n, err
}

// Flush implements http.Flusher; it is a no-op while the body is buffered
// for a body filter.
func (rw *respWriter) Flush() {
	if rw.failed || rw.buffering {
		return
	}
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(rw.w).Flush()
}

// fail replaces the response with an error answer when the status has not
// gone out yet.
func (rw *respWriter) fail(status int) {
	if rw.failed {
		return
	}
	rw.failed = true
	rw.status = status
	rw.buf = nil
	if rw.sentHeader {
		return // too late to change the answer; Logging sees the error
	}
	rw.sentHeader = true
	h := rw.w.Header()
	for k := range h {
		delete(h, k)
	}
	text := http.StatusText(status)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(text)+1))
	rw.w.WriteHeader(status)
	n, _ := rw.w.Write([]byte(text + "\n"))
	rw.bytesOut += int64(n)
}

// finish runs the body filters over a buffered body and sends it.
func (rw *respWriter) finish() {
	if rw.failed {
		return
	}
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
		if rw.failed {
			return
		}
	}
	if !rw.buffering {
		return
	}
	rw.buffering = false
	body, ok := rw.x.bufferedPhases(rw.buf)
	if !ok {
		return
	}
	if rw.status != http.StatusNoContent && rw.status != http.StatusNotModified {
		rw.w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	rw.sendHeader()
	_, _ = rw.write(body)
	rw.buf = nil
}

// bufferedPhases runs the response filters and then the body filters over
// a buffered body, in the order of the single phases (last entry first,
// every response filter before any body filter), and returns the final
// body. When the last response filter to run and the first body filter are
// the same entry's, as with a single entry that has both, they run in one
// hand-off.
func (x *exchange) bufferedPhases(body []byte) ([]byte, bool) {
	chain := x.chainable()
	if x.rt.anyResponseFilter && !x.responseFilters(chain) {
		return nil, false
	}
	done := -1
	if chain >= 0 {
		var ok bool
		if body, done, ok = x.responseChain(chain, body); !ok {
			return nil, false
		}
	}
	return x.bodyFilters(body, done)
}

// chainable returns the entry whose response filter runs last and whose
// body filter runs first, or -1 when they are different entries.
func (x *exchange) chainable() int {
	rf, bf := -1, -1
	for i := 0; i < x.ran; i++ {
		e := x.rt.chain[i].entry
		if rf < 0 && e.Has(core.PhaseResponseFilter) {
			rf = i
		}
		if e.Has(core.PhaseResponseBodyFilter) {
			bf = i
		}
	}
	if rf >= 0 && rf == bf {
		return rf
	}
	return -1
}

// responseFilters runs the ResponseFilters of the entries whose request
// filter ran, last first, except entry skip (-1: none). It reports false
// when a failure answered the request.
func (x *exchange) responseFilters(skip int) bool {
	rw := x.rw
	for i := x.ran - 1; i >= 0; i-- {
		re := x.rt.chain[i]
		if i == skip || !re.entry.Has(core.PhaseResponseFilter) {
			continue
		}
		// The handler borrows the live headers, read-only, until the phase
		// ends (as with every buffer Strand lends a handler).
		c := re.rt.AcquireResponseContext(x.r.Context(), x.req, x.values, rw.status, rw.w.Header())
		out := outRejected
		start := re.metrics.phaseStart()
		if re.rt.StartResponseFilter(re.entry, c) == nil {
			out = x.wait(c, nil)
		}
		re.metrics.phaseDone(core.PhaseResponseFilter, out, start)
		if out != outDecided {
			c.Release()
			if x.fail(re, out) {
				return false
			}
			continue
		}
		x.applyResponse(c)
	}
	return true
}

// applyResponse applies a decided response filter's edits and releases it.
func (x *exchange) applyResponse(c *core.ResponseContext) {
	if st := c.Status(); st != 0 {
		x.rw.status = st
	}
	core.ApplyHeaderEdits(x.rw.w.Header(), c.HeaderEdits())
	c.Release()
}

// applyBody applies a decided body filter's result to body and releases it.
func (x *exchange) applyBody(c *core.BodyContext, body []byte) []byte {
	if c.Replaced() {
		body = c.Body()
	}
	if st := c.Status(); st != 0 {
		x.rw.status = st
	}
	core.ApplyHeaderEdits(x.rw.w.Header(), c.HeaderEdits())
	c.Release()
	return body
}

// responseChain runs entry i's response filter and body filter in one
// hand-off (core.Runtime.StartResponseChain). It returns the body, whether
// the body filter ran here (i) or is left to bodyFilters (-1), and false
// when a failure answered the request. Each filter keeps its own timeout,
// outcome, failure mode and metrics.
func (x *exchange) responseChain(i int, body []byte) ([]byte, int, bool) {
	re := x.rt.chain[i]
	rw := x.rw
	ctx := x.r.Context()
	rc := re.rt.AcquireResponseContext(ctx, x.req, x.values, rw.status, rw.w.Header())
	bc := re.rt.AcquireBodyContext(ctx, x.req, x.values, rw.status, body)
	start := re.metrics.phaseStart()
	dl := x.srv.phaseDeadlines
	t0 := dl.now()
	if err := re.rt.StartResponseChain(re.entry, rc, bc, dl.now); err != nil {
		rc.Release()
		bc.Release()
		re.metrics.phaseDone(core.PhaseResponseFilter, outRejected, start)
		return body, -1, !x.fail(re, outRejected)
	}
	rfOut, bfOut, bfRan := x.waitChain(rc, bc)
	if bfRan {
		// The response filter ended when the body filter started.
		mid := start
		if !start.IsZero() {
			mid = start.Add(time.Duration(bc.ChainedAt() - t0))
		}
		re.metrics.phaseDoneAt(core.PhaseResponseFilter, outDecided, start, mid)
		re.metrics.phaseDone(core.PhaseResponseBodyFilter, bfOut, mid)
		x.applyResponse(rc)
		if bfOut != outDecided {
			bc.Release()
			return body, i, !x.fail(re, bfOut)
		}
		return x.applyBody(bc, body), i, true
	}
	bc.Release() // never ran: the body filter runs apart
	re.metrics.phaseDone(core.PhaseResponseFilter, rfOut, start)
	if rfOut != outDecided {
		rc.Release()
		return body, -1, !x.fail(re, rfOut)
	}
	x.applyResponse(rc)
	return body, -1, true
}

// waitChain waits for a response chain: the response filter's outcome,
// and, when the body filter ran in the same hand-off, its outcome.
func (x *exchange) waitChain(rc *core.ResponseContext, bc *core.BodyContext) (rfOut, bfOut outcome, bfRan bool) {
	dl := x.srv.phaseDeadlines
	if !dl.arm(&x.dl, bc) {
		bc.LeaveChain()
		return outRejected, 0, false
	}
	sig, gone := bc.Signal(), x.r.Context().Done()
	for {
		hc, ok := receive(sig, gone)
		if !ok {
			dl.disarm(&x.dl)
			bc.LeaveChain()
			return outGone, 0, false
		}
		switch {
		case hc == nil:
			if bc.ChainStage() == core.ChainBoth {
				dl.disarm(&x.dl)
				if bc.Panicked() != nil {
					return outDecided, outPanic, true
				}
				return outDecided, outDecided, true
			}
			// The response filter deferred (or panicked): wait for it
			// within its own deadline, still running. (An expiry on bc's
			// channel since is not lost: past the deadline, the scanner
			// interrupts rc at its next tick.)
			if !dl.armAt(&x.dl, x.dl.at, rc) {
				return outRejected, 0, false
			}
			return x.waitArmed(rc, nil), 0, false
		case hc == dl.mark:
			if !dl.expired(&x.dl) {
				continue
			}
			if !bc.LeaveChain() {
				dl.disarm(&x.dl)
				x.timedOut(rc)
				return outTimeout, 0, false
			}
			// The body filter has its own timeout, from its start.
			if at := bc.ChainedAt() + int64(dl.timeout); at > dl.now() && dl.armAt(&x.dl, at, bc) {
				continue
			}
			dl.disarm(&x.dl)
			x.timedOut(bc)
			return outDecided, outTimeout, true
		default: // a body filter makes no host calls
			hc.Reply(core.HostReply{Err: errors.New("wsframework: no host calls in a response chain")})
		}
	}
}

// bodyFilters runs the ResponseBodyFilters of the entries whose request
// filter ran, last first, except entry skip (-1: none), and returns the
// final body.
func (x *exchange) bodyFilters(body []byte, skip int) ([]byte, bool) {
	rw := x.rw
	for i := x.ran - 1; i >= 0; i-- {
		re := x.rt.chain[i]
		if i == skip || !re.entry.Has(core.PhaseResponseBodyFilter) {
			continue
		}
		c := re.rt.AcquireBodyContext(x.r.Context(), x.req, x.values, rw.status, body)
		out := outRejected
		start := re.metrics.phaseStart()
		if re.rt.StartBodyFilter(re.entry, c) == nil {
			out = x.wait(c, nil)
		}
		re.metrics.phaseDone(core.PhaseResponseBodyFilter, out, start)
		if out != outDecided {
			c.Release()
			if x.fail(re, out) {
				return nil, false
			}
			continue
		}
		body = x.applyBody(c, body)
	}
	return body, true
}

// bodyFiltersFailClosed reports whether an oversize body must be refused:
// true when any body-filtering entry that ran fails closed.
func (x *exchange) bodyFiltersFailClosed() bool {
	for i := 0; i < x.ran; i++ {
		re := x.rt.chain[i]
		if re.entry.Has(core.PhaseResponseBodyFilter) && !re.failOpen {
			return true
		}
	}
	return false
}

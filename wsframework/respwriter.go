package wsframework

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/strandws/strand/internal/core"
)

var errBodyOverCap = errors.New("wsframework: answer body over MaxBodyFilterBytes")

// respWriter sits between the terminal (or a plugin's answer) and the
// server's ResponseWriter when the route has response phases: it runs the
// ResponseFilters when the status is written, buffers the body for
// ResponseBodyFilters (up to MaxBodyFilterBytes), and counts bytes for
// Logging. Without body filters it streams and flushes as usual.
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
	if rw.x.rt.anyResponseFilter && !rw.x.responseFilters() {
		return
	}
	if !rw.buffering {
		rw.sendHeader()
	}
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
		// Fail open: pass the body through unfiltered.
		rw.x.srv.stats.bodyPassed.Add(1)
		rw.buffering = false
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
	body, ok := rw.x.bodyFilters(rw.buf)
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

// responseFilters runs the ResponseFilters of the entries whose request
// filter ran, last first. It reports false when a failure answered the
// request.
func (x *exchange) responseFilters() bool {
	rw := x.rw
	for i := x.ran - 1; i >= 0; i-- {
		re := x.rt.chain[i]
		if !re.entry.Has(core.PhaseResponseFilter) {
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
		if st := c.Status(); st != 0 {
			rw.status = st
		}
		core.ApplyHeaderEdits(rw.w.Header(), c.HeaderEdits())
		c.Release()
	}
	return true
}

// bodyFilters runs the ResponseBodyFilters of the entries whose request
// filter ran, last first, and returns the final body.
func (x *exchange) bodyFilters(body []byte) ([]byte, bool) {
	rw := x.rw
	for i := x.ran - 1; i >= 0; i-- {
		re := x.rt.chain[i]
		if !re.entry.Has(core.PhaseResponseBodyFilter) {
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
		if c.Replaced() {
			body = c.Body()
		}
		if st := c.Status(); st != 0 {
			rw.status = st
		}
		core.ApplyHeaderEdits(rw.w.Header(), c.HeaderEdits())
		c.Release()
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

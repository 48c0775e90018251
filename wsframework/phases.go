package wsframework

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/strandws/strand/internal/core"
)

// phaseSignal is what the host waits on for every phase context.
type phaseSignal interface {
	Signal() <-chan *core.HostCall
	Interrupt(mark *core.HostCall) bool
	Panicked() any
	Running() bool
}

// outcome is how waiting for a phase ended.
type outcome uint8

const (
	outDecided  outcome = iota
	outTimeout          // no decision within PhaseTimeout
	outPanic            // the handler panicked
	outRejected         // the runtime's pool refused the phase
	outGone             // the client went away
	outTooLarge         // the request body is over MaxRequestBodyBytes (413)
)

var errResponseReplaced = errors.New("wsframework: the answer was replaced after a plugin failure")

// exchange is one HTTP request going through a route's chain.
type exchange struct {
	rt    *route
	srv   *Server
	w     http.ResponseWriter // the server's writer
	rw    *respWriter         // wraps w when a response phase is registered (points at rwMem)
	rwMem respWriter
	r     *http.Request
	req   *core.Request
	start time.Time
	ran   int // entries whose request filter ran (or was skipped over)

	last    *core.RequestContext // the last context that decided Next (held until the terminal)
	values  map[string]any
	counted *countingBody // the request body, counted for Logging

	body     []byte
	bodyRead bool
	tooLarge bool
	streamed bool
	status   int // the answer's status when the host answered itself
	err      error

	dl deadlineWait
}

// out returns the writer answers go through.
func (x *exchange) out() http.ResponseWriter {
	if x.rw != nil {
		return x.rw
	}
	return x.w
}

func (rt *route) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(rt.chain) == 0 {
		rt.terminal.ServeHTTP(w, r)
		return
	}
	now := time.Now()
	x := rt.getExchange()
	x.w, x.r, x.start = w, r, now
	x.req = rt.snapshot(r, now)
	if rt.anyResponseFilter || rt.anyBodyFilter || rt.anyLogging {
		x.rwMem = respWriter{x: x, w: w, buffering: rt.anyBodyFilter}
		x.rw = &x.rwMem
	}
	if rt.anyLogging && r.Body != nil && r.Body != http.NoBody {
		x.counted = &countingBody{ReadCloser: r.Body}
		r.Body = x.counted
	}
	c, info := x.run()
	rt.putExchange(x)
	if c != nil {
		c.route = rt
		rt.metrics.opened(c)
		c.serve(rt.srv.hardCtx, info)
	}
}

// getExchange takes an exchange from the route's pool. Nothing outside the
// request's goroutine keeps a pointer to an exchange: phase contexts get
// the request snapshot and the values map, never the exchange itself.
func (rt *route) getExchange() *exchange {
	if x, ok := rt.exchanges.Get().(*exchange); ok {
		return x
	}
	return &exchange{rt: rt, srv: rt.srv}
}

// putExchange recycles x once its request is answered and logged (its
// deadline disarmed).
func (rt *route) putExchange(x *exchange) {
	rt.srv.phaseDeadlines.disarm(&x.dl)
	*x = exchange{rt: rt, srv: rt.srv}
	rt.exchanges.Put(x)
}

// run takes the request through the chain and the terminal. It returns
// the connection to serve when an entry upgraded (with the handshake
// answered and logged).
func (x *exchange) run() (*conn, core.ConnInfo) {
	r := x.r
	for i, re := range x.rt.chain {
		x.ran = i + 1
		e := re.entry
		if !e.Has(core.PhaseRequestFilter) {
			if h := e.WebSocketHandlers(); h != nil && isWebSocketHandshake(r) {
				return x.upgrade(re, x.nextContext(re), h)
			}
			continue
		}
		rc := x.nextContext(re)
		out := outRejected
		start := re.metrics.phaseStart()
		if re.rt.StartRequestFilter(e, rc) == nil {
			out = x.wait(rc, rc)
		}
		re.metrics.phaseDone(core.PhaseRequestFilter, out, start)
		if out != outDecided {
			rc.Release() // the handler may still hold it: the pool waits for it
			if x.fail(re, out) {
				x.finish()
				return nil, core.ConnInfo{}
			}
			continue // fail open: skip the entry and whatever it collected
		}
		x.values = rc.Values()
		switch rc.Decision() {
		case core.DecisionEnd:
			x.answer(rc)
			rc.Release()
			x.finish()
			return nil, core.ConnInfo{}
		case core.DecisionUpgrade:
			h := rc.UpgradeHandlers()
			if h == nil {
				h = e.WebSocketHandlers()
			}
			if h == nil {
				rc.Release()
				x.err = errors.New("wsframework: upgrade by an entry without WebSocket handlers")
				x.srv.cfg.Logger.Error("strand: upgrade without handlers", "route", x.rt.pattern, "entry", e.String())
				x.answerError(http.StatusInternalServerError)
				x.finish()
				return nil, core.ConnInfo{}
			}
			return x.upgrade(re, rc, h)
		}
		x.setLast(rc)
	}
	out := x.out()
	if x.last != nil {
		core.ApplyHeaderEdits(out.Header(), x.last.HeaderEdits())
		x.setLast(nil)
	}
	if x.rt.terminal == nil {
		http.NotFound(out, r)
	} else {
		x.rt.terminal.ServeHTTP(out, r)
	}
	x.finish()
	return nil, core.ConnInfo{}
}

// setLast makes rc the last context that decided Next, releasing the one
// before.
func (x *exchange) setLast(rc *core.RequestContext) {
	if x.last != nil {
		x.last.Release()
	}
	x.last = rc
}

// nextContext returns the context for re's request filter: it carries the
// values and edits of the last entry that decided Next, never anything
// from an entry that failed (its handler may still be running).
func (x *exchange) nextContext(re routeEntry) *core.RequestContext {
	if x.last != nil {
		return re.rt.AcquireContinue(x.last)
	}
	return re.rt.AcquireRequestContext(x.r.Context(), x.req, nil)
}

// answer writes a request filter's End answer (unless it streamed one).
func (x *exchange) answer(rc *core.RequestContext) {
	if x.streamed {
		return
	}
	out := x.out()
	h := out.Header()
	core.ApplyHeaderEdits(h, rc.HeaderEdits())
	body := rc.Body()
	h.Set("Content-Length", strconv.Itoa(len(body)))
	status := rc.Status()
	if status == 0 {
		status = http.StatusOK
	}
	out.WriteHeader(status)
	_, _ = out.Write(body)
}

// upgrade completes the handshake, releases rc and runs Logging (status
// 101). It returns the connection the caller serves, if any.
func (x *exchange) upgrade(re routeEntry, rc *core.RequestContext, h *core.WebSocketHandlers) (*conn, core.ConnInfo) {
	c, info, status := x.srv.upgrade(x.w, x.r, re.rt, rc, h, x.rt.compress)
	x.status = status
	x.values = rc.Values()
	rc.Release()
	x.setLast(nil)
	x.log()
	return c, info
}

// fail applies the failing entry's failure mode. It reports whether the
// request was answered (fail closed); false means the entry is skipped.
func (x *exchange) fail(re routeEntry, out outcome) bool {
	st := &x.srv.stats
	status := http.StatusInternalServerError
	switch out {
	case outGone:
		x.err = x.r.Context().Err()
		return true
	case outTooLarge:
		st.bodyTooLarge.Add(1)
		x.err = core.ErrBodyTooLarge
		x.answerError(http.StatusRequestEntityTooLarge)
		return true
	case outTimeout:
		st.phaseTimeouts.Add(1)
		status = http.StatusGatewayTimeout
		x.err = errors.New("wsframework: " + re.entry.String() + ": phase timed out")
	case outPanic:
		st.phasePanics.Add(1)
		x.err = errors.New("wsframework: " + re.entry.String() + ": phase handler panicked")
	case outRejected:
		st.phaseRejected.Add(1)
		status = http.StatusServiceUnavailable
		x.err = errors.New("wsframework: " + re.entry.String() + ": phase pool refused the task")
	}
	if re.failOpen {
		st.failOpenSkips.Add(1)
		return false
	}
	x.answerError(status)
	return true
}

// answerError answers with status and its text, bypassing response phases.
func (x *exchange) answerError(status int) {
	x.status = status
	if x.rw != nil {
		x.rw.fail(status)
		return
	}
	if !x.streamed {
		http.Error(x.w, http.StatusText(status), status)
	}
}

// wait waits for a phase's decision, serving its host calls meanwhile.
// rc is the request context when the phase is a request filter (for
// streaming), else nil.
func (x *exchange) wait(p phaseSignal, rc *core.RequestContext) outcome {
	if !x.srv.phaseDeadlines.arm(&x.dl, p) {
		return outRejected // shut down
	}
	return x.waitArmed(p, rc)
}

// waitArmed is wait with the phase's deadline already armed (for p); it
// disarms it. It receives from the phase's signal channel alone (the
// deadline interrupts it there) unless the request's context can end.
func (x *exchange) waitArmed(p phaseSignal, rc *core.RequestContext) outcome {
	dl := x.srv.phaseDeadlines
	defer dl.disarm(&x.dl)
	sig, gone := p.Signal(), x.r.Context().Done()
	for {
		hc, ok := receive(sig, gone)
		if !ok {
			return outGone
		}
		switch {
		case hc == nil:
			if p.Panicked() != nil {
				return outPanic
			}
			return outDecided
		case hc == dl.mark:
			if !dl.expired(&x.dl) {
				continue // stale: from before a served call re-armed it
			}
			x.timedOut(p)
			return outTimeout
		}
		if out := x.serveCall(hc, rc); out != outDecided {
			return out
		}
		dl.arm(&x.dl, p) // each served call restarts the phase timeout
	}
}

// receive takes the next signal of a phase from sig; ok is false when gone
// (the request's context; nil when it cannot end) ended first. Without a
// gone channel it is a plain receive, cheaper than a select.
func receive(sig <-chan *core.HostCall, gone <-chan struct{}) (hc *core.HostCall, ok bool) {
	if gone == nil {
		return <-sig, true
	}
	select {
	case hc = <-sig:
		return hc, true
	case <-gone:
		return nil, false
	}
}

// timedOut reports a phase whose handler is still running at its timeout.
func (x *exchange) timedOut(p phaseSignal) {
	if p.Running() {
		x.srv.stats.phaseStuck.Add(1)
		x.srv.cfg.Logger.Warn("strand: phase handler still running after its timeout",
			"route", x.rt.pattern, "path", x.req.Path, "timeout", x.srv.cfg.PhaseTimeout)
	}
}

// serveCall answers one host call of the channel context.
func (x *exchange) serveCall(hc *core.HostCall, rc *core.RequestContext) outcome {
	switch hc.Method {
	case core.MethodReadRequestBody:
		x.readBody()
		if x.tooLarge {
			hc.Reply(core.HostReply{Err: core.ErrBodyTooLarge})
			return outTooLarge
		}
		hc.Reply(core.HostReply{Data: x.body})
	case core.MethodResponseStreamHead, core.MethodResponseStreamData, core.MethodResponseStreamEnd:
		if rc == nil {
			hc.Reply(core.HostReply{Err: errors.New("wsframework: streaming is only for request filters")})
			return outDecided
		}
		out := x.out()
		if !x.streamed {
			x.streamed = true
			status := http.StatusOK
			if hc.Method == core.MethodResponseStreamHead && hc.Int != 0 {
				status = hc.Int
			}
			// The plugin waits for this reply, so its edits are stable.
			core.ApplyHeaderEdits(out.Header(), rc.HeaderEdits())
			out.WriteHeader(status)
		}
		var err error
		if hc.Method == core.MethodResponseStreamData {
			_, err = out.Write(hc.Data)
		}
		if hc.Method != core.MethodResponseStreamEnd {
			_ = http.NewResponseController(out).Flush()
		}
		hc.Reply(core.HostReply{Err: err})
	default:
		hc.Reply(core.HostReply{Err: errors.New("wsframework: unsupported host call " + strconv.Itoa(int(hc.Method)))})
	}
	return outDecided
}

// readBody reads the request body once, up to MaxRequestBodyBytes, and puts
// it back so the terminal can read it too.
func (x *exchange) readBody() {
	if x.bodyRead {
		return
	}
	x.bodyRead = true
	if x.r.Body == nil || x.r.Body == http.NoBody {
		return
	}
	b, err := io.ReadAll(http.MaxBytesReader(x.w, x.r.Body, x.srv.cfg.MaxRequestBodyBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		x.tooLarge = true
		return
	}
	x.body = b
	x.r.Body = io.NopCloser(bytes.NewReader(b))
}

// finish completes the answer (body filters) and runs Logging.
func (x *exchange) finish() {
	if x.rw != nil {
		x.rw.finish()
	}
	x.log()
}

// log hands a LogEntry to every entry of the chain with a Logging handler.
func (x *exchange) log() {
	if !x.rt.anyLogging {
		return
	}
	status := x.status
	var out int64
	if x.rw != nil {
		if status == 0 || status == http.StatusSwitchingProtocols && x.rw.wroteHeader {
			status = x.rw.status
		}
		out = x.rw.bytesOut
	}
	le := core.LogEntry{
		Request: x.req, Status: status, BytesIn: x.bytesIn(),
		BytesOut: out, Duration: time.Since(x.start), Err: x.err, Values: x.values,
	}
	for _, re := range x.rt.chain {
		if re.entry.Has(core.PhaseLogging) {
			if err := re.rt.StartLogging(re.entry, le); err != nil {
				x.srv.stats.phaseRejected.Add(1)
				re.metrics.phaseDone(core.PhaseLogging, outRejected, time.Time{})
			}
		}
	}
}

// bytesIn returns the request body bytes read so far.
func (x *exchange) bytesIn() int64 {
	if x.counted == nil {
		return 0
	}
	return x.counted.n
}

// countingBody counts request body bytes read by the terminal. It is the
// request's, not the exchange's: it keeps no pointer into a recycled
// exchange.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

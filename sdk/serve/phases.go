package serve

import (
	"errors"
	"net/http"
	"time"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/internal/pluglink"
	"github.com/strandws/strand/sdk/frame"
)

// phaseTimeout bounds how long the plugin waits for its own phase handler
// to decide; the host's call timeout applies on the other side.
const phaseTimeout = 30 * time.Second

// phaseEvent runs an HTTP phase of the host's on the plugin's runtime, on
// a goroutine of its own, and answers with a reply of the same call ID.
func (s *session) phaseEvent(v *frame.View) error {
	e, ok := s.plugin.Lookup(string(v.Entry()))
	if !ok {
		return s.link.Send(&frame.Frame{Kind: frame.KindReply, CallID: v.CallID(), SessionID: v.SessionID(),
			Status: frame.StatusInvalid, Error: "no entry " + string(v.Entry())})
	}
	var req *core.Request
	if r, ok := v.Request(); ok {
		req = pluglink.DecodeRequest(&r)
	} else {
		req = &core.Request{}
	}
	id := v.CallID()
	switch v.Phase() {
	case frame.PhaseRequestFilter:
		s.goPhase(func() { s.requestFilter(e, id, req) })
	case frame.PhaseResponseFilter:
		status := int(v.ResponseStatus())
		hdr := make(http.Header, v.NumResponseHeaders())
		for i := range v.NumResponseHeaders() {
			k, val := v.ResponseHeader(i)
			hdr[string(k)] = append(hdr[string(k)], string(val))
		}
		s.goPhase(func() { s.responseFilter(e, id, req, status, hdr) })
	case frame.PhaseResponseBodyFilter:
		status, body := int(v.ResponseStatus()), clone(v.Payload())
		s.goPhase(func() { s.bodyFilter(e, id, req, status, body) })
	case frame.PhaseLogging:
		le := core.LogEntry{Request: req, Status: int(v.ResponseStatus()), BytesIn: v.BytesIn(), BytesOut: v.BytesOut(),
			Duration: time.Duration(v.DurationNanos())}
		if msg := v.Error(); len(msg) > 0 {
			le.Err = errors.New(string(msg))
		}
		if e.Has(core.PhaseLogging) {
			_ = s.rt.StartLogging(e, le)
		}
	default:
		return errors.New("serve: event for unknown phase " + v.Phase().String())
	}
	return nil
}

func (s *session) goPhase(fn func()) {
	s.mu.Lock()
	if s.goodbye {
		s.mu.Unlock()
		return // the host gets no reply and fails the phase: the plugin is leaving
	}
	s.phases.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.phases.Done()
		fn()
	}()
}

func edits(in []core.HeaderEdit) []frame.HeaderEdit {
	if len(in) == 0 {
		return nil
	}
	out := make([]frame.HeaderEdit, len(in))
	for i, e := range in {
		op := frame.HeaderSet
		switch e.Op {
		case core.HeaderAdd:
			op = frame.HeaderAdd
		case core.HeaderRemove:
			op = frame.HeaderRemove
		}
		out[i] = frame.HeaderEdit{Op: op, Name: e.Name, Value: e.Value}
	}
	return out
}

// failed answers a phase that did not decide.
func (s *session) failed(id uint64, err error) {
	st := frame.StatusError
	if errors.Is(err, errPanic) {
		st = frame.StatusPanic
	} else if errors.Is(err, errTimeout) {
		st = frame.StatusTimeout
	}
	_ = s.link.Send(&frame.Frame{Kind: frame.KindReply, CallID: id, SessionID: id, Status: st, Error: err.Error()})
}

var (
	errPanic   = errors.New("serve: phase handler panicked")
	errTimeout = errors.New("serve: phase handler did not decide in time")
)

func (s *session) requestFilter(e *core.Entry, id uint64, req *core.Request) {
	rc := core.NewRequestContext(s.ctx, req, nil)
	err := s.rt.StartRequestFilter(e, rc)
	if err == nil {
		err = s.waitPhase(rc, func(hc *core.HostCall) bool {
			data, err := s.call(&frame.Frame{Kind: frame.KindCall, Method: frame.Method(hc.Method), SessionID: id,
				ResponseStatus: uint16(hc.Int), Payload: hc.Data})
			hc.Reply(core.HostReply{Data: data, Err: err})
			return errors.Is(err, core.ErrBodyTooLarge) // the host answered 413
		})
	}
	if err != nil {
		if s.ctx.Err() == nil {
			s.failed(id, err)
		}
		return
	}
	d := rc.Decision()
	f := frame.Frame{Kind: frame.KindReply, CallID: id, SessionID: id, ResponseStatus: uint16(rc.Status()), HeaderEdits: edits(rc.HeaderEdits())}
	switch d {
	case core.DecisionNext:
		f.Method = frame.MethodNext
	case core.DecisionEnd:
		f.Method, f.Payload = frame.MethodEnd, rc.Body()
	case core.DecisionUpgrade:
		h := rc.UpgradeHandlers()
		if h == nil {
			h = e.WebSocketHandlers()
		}
		s.putUpgrade(id, &upgrade{h: h, values: rc.Values(), req: core.ConnSnapshot(req), at: time.Now()})
		f.Method = frame.MethodWebSocketUpgrade
	default: // the host answered itself (413)
		f.Status, f.Error = frame.StatusError, "answered by the host"
	}
	_ = s.link.Send(&f)
}

// phaseSignal is what every phase context offers to wait on.
type phaseSignal interface {
	Signal() <-chan *core.HostCall
	Panicked() any
}

// errStopped: the phase's wait ended because the host answered itself or
// the session ended.
var errStopped = errors.New("serve: phase stopped")

// waitPhase waits for a started phase to decide, handing its host calls
// to serve (nil: none are allowed), until phaseTimeout or the session's end.
func (s *session) waitPhase(p phaseSignal, serve func(*core.HostCall) bool) error {
	t := time.NewTimer(phaseTimeout)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return errStopped
		case hc := <-p.Signal():
			if hc != nil {
				if serve == nil {
					hc.Reply(core.HostReply{Err: core.ErrPhaseOver})
				} else if serve(hc) {
					return errStopped
				}
				continue
			}
			if p.Panicked() != nil {
				return errPanic
			}
			return nil
		case <-t.C:
			return errTimeout
		}
	}
}

func (s *session) responseFilter(e *core.Entry, id uint64, req *core.Request, status int, hdr http.Header) {
	rc := core.NewResponseContext(s.ctx, req, nil, status, hdr)
	err := s.rt.StartResponseFilter(e, rc)
	if err == nil {
		err = s.waitPhase(rc, nil)
	}
	if err != nil {
		s.failed(id, err)
		return
	}
	_ = s.link.Send(&frame.Frame{Kind: frame.KindReply, Method: frame.MethodNext, CallID: id, SessionID: id,
		ResponseStatus: uint16(rc.Status()), HeaderEdits: edits(rc.HeaderEdits())})
}

func (s *session) bodyFilter(e *core.Entry, id uint64, req *core.Request, status int, body []byte) {
	bc := core.NewBodyContext(s.ctx, req, nil, status, body)
	err := s.rt.StartBodyFilter(e, bc)
	if err == nil {
		err = s.waitPhase(bc, nil)
	}
	if err != nil {
		s.failed(id, err)
		return
	}
	f := frame.Frame{Kind: frame.KindReply, Method: frame.MethodNext, CallID: id, SessionID: id,
		ResponseStatus: uint16(bc.Status()), HeaderEdits: edits(bc.HeaderEdits())}
	if bc.Replaced() {
		f.Method, f.Payload = frame.MethodSetResponseFullBody, bc.Body()
	}
	_ = s.link.Send(&f)
}

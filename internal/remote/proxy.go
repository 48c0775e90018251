package remote

import (
	"time"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/internal/pluglink"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/frame"
)

// newProxy builds the proxy plugin: one entry per declared entry, with a
// forwarding handler for each phase it declared.
func (h *Host) newProxy(decl []frame.EntryDecl) *sdk.Plugin {
	p := sdk.NewPlugin(h.cfg.Name)
	for _, d := range decl {
		e := p.Entry(d.Name)
		name := d.Name
		if d.Phases&pluglink.BitRequestFilter != 0 {
			e.RequestFilter(func(c *sdk.RequestContext) { h.requestFilter(name, (*core.RequestContext)(c)) })
		}
		if d.Phases&pluglink.BitResponse != 0 {
			e.ResponseFilter(func(c *sdk.ResponseContext) { h.responseFilter(name, (*core.ResponseContext)(c)) })
		}
		if d.Phases&pluglink.BitBody != 0 {
			e.ResponseBodyFilter(func(c *sdk.BodyContext) { h.bodyFilter(name, (*core.BodyContext)(c)) })
		}
		if d.Phases&pluglink.BitLogging != 0 {
			e.Logging(func(l *sdk.LogEntry) { h.logging(name, l) })
		}
		if d.Phases&pluglink.BitWebSocket != 0 {
			e.WebSocket(sdk.WebSocketHandlers{
				OnOpen:    func(c *sdk.Conn) { h.onOpen(name, c) },
				OnMessage: h.onMessage,
				OnClose:   h.onClose,
			})
		}
	}
	return p
}

func (h *Host) onOpen(entry string, c *sdk.Conn) {
	s := h.live.Load()
	if s == nil || !s.addConn(c) {
		_ = c.Close(sdk.CloseServiceRestart, "plugin restarting")
		return
	}
	f := frame.Frame{
		Kind: frame.KindEvent, Phase: frame.PhaseWebSocket, Method: frame.MethodEventWebSocketOpen,
		SessionID: c.ID(), Entry: entry, Subprotocol: c.Subprotocol(), Route: (*core.Conn)(c).Route(),
	}
	if id, ok := c.Value(upgradeKey).(uint64); ok {
		f.CallID = id // the plugin's filter upgraded: it has the request
	} else {
		var req frame.Request
		pluglink.EncodeRequest(&req, (*core.Request)(c.Request()), h.headers)
		f.Request = &req
	}
	s.event(c, &f)
}

func (h *Host) onMessage(c *sdk.Conn, m sdk.Message) {
	s := h.live.Load()
	if s == nil {
		return
	}
	if _, ok := s.conns.Load(c.ID()); !ok {
		return // served by an ended session: it is being closed with 1012
	}
	method := frame.MethodEventTextMessage
	if m.Type == sdk.Binary {
		method = frame.MethodEventBinaryMessage
	}
	f := frame.Frame{Kind: frame.KindEvent, Phase: frame.PhaseWebSocket, Method: method, SessionID: c.ID(), Payload: m.Data}
	s.event(c, &f)
}

func (h *Host) onClose(c *sdk.Conn, code sdk.CloseCode, reason string) {
	s := h.live.Load()
	if s == nil {
		return
	}
	if _, ok := s.conns.Load(c.ID()); !ok {
		return
	}
	// Not credited: a close must reach the plugin whatever its window.
	_ = s.link.Send(&frame.Frame{
		Kind: frame.KindEvent, Phase: frame.PhaseWebSocket, Method: frame.MethodEventClose,
		SessionID: c.ID(), CloseCode: uint16(code), CloseReason: reason,
	})
}

// phaseEvent sends a phase event for pc, or fails pc.
func (h *Host) phaseEvent(entry string, pc *phaseCall, req *core.Request, fill func(*frame.Frame)) bool {
	s := h.live.Load()
	if s == nil || !s.startCall(pc) {
		return false
	}
	var fr frame.Request
	pluglink.EncodeRequest(&fr, req, h.headers)
	f := frame.Frame{Kind: frame.KindEvent, Phase: pc.phase, SessionID: pc.id, CallID: pc.id, Entry: entry, Request: &fr}
	if fill != nil {
		fill(&f)
	}
	if err := s.link.Send(&f); err != nil {
		if s.takeCall(pc.id) != nil {
			pc.timer.Stop()
			s.failCall(pc, err.Error())
		}
	}
	return true
}

func (h *Host) requestFilter(entry string, c *core.RequestContext) {
	c.Defer()
	pc := &phaseCall{phase: frame.PhaseRequestFilter, req: c}
	if !h.phaseEvent(entry, pc, c.Request(), nil) {
		h.failRequest(c, "not connected")
	}
}

func (h *Host) responseFilter(entry string, c *core.ResponseContext) {
	c.Defer()
	pc := &phaseCall{phase: frame.PhaseResponseFilter, resp: c}
	ok := h.phaseEvent(entry, pc, c.Request(), func(f *frame.Frame) {
		f.ResponseStatus = uint16(c.ResponseStatus())
		for k, vs := range c.ResponseHeader() {
			for _, v := range vs {
				f.ResponseHeaders = append(f.ResponseHeaders, frame.Header{Name: k, Value: v})
			}
		}
	})
	if !ok {
		h.failResponse(c)
	}
}

func (h *Host) bodyFilter(entry string, c *core.BodyContext) {
	c.Defer()
	pc := &phaseCall{phase: frame.PhaseResponseBodyFilter, body: c}
	ok := h.phaseEvent(entry, pc, c.Request(), func(f *frame.Frame) {
		f.ResponseStatus = uint16(c.Status())
		f.Payload = c.Body()
	})
	if !ok {
		h.failBody(c, "not connected")
	}
}

// logging forwards a finished request; nothing answers it.
func (h *Host) logging(entry string, l *sdk.LogEntry) {
	s := h.live.Load()
	if s == nil {
		return
	}
	var fr frame.Request
	pluglink.EncodeRequest(&fr, (*core.Request)(l.Request), h.headers)
	f := frame.Frame{
		Kind: frame.KindEvent, Phase: frame.PhaseLogging, Entry: entry, Request: &fr,
		ResponseStatus: uint16(l.Status), BytesIn: l.BytesIn, BytesOut: l.BytesOut,
		DurationNanos: int64(l.Duration / time.Nanosecond),
	}
	if l.Err != nil {
		f.Error = l.Err.Error()
	}
	_ = s.link.Send(&f)
}

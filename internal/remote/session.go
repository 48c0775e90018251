package remote

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/puzpuzpuz/xsync/v3"

	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/internal/pluglink"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/frame"
)

// ErrProtocol wraps every out-of-protocol frame a plugin sends: the session
// ends with it.
var ErrProtocol = errors.New("remote: plugin broke the protocol")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// session is one plugin connection past its handshake.
type session struct {
	h    *Host
	link *pluglink.Link

	credits *credits // events the plugin still takes

	conns *xsync.MapOf[uint64, *sdk.Conn] // WebSocket connections this session serves

	callMu  sync.Mutex
	calls   map[uint64]*phaseCall // phase calls waiting for their reply
	dead    bool                  // ended: no more conns or calls
	deadCh  chan struct{}
	endErr  error
	endOnce sync.Once
	heard   atomic.Uint64 // frames received from the plugin: any of them shows it alive (pinger)
	pingSeq atomic.Uint64
	pings   map[uint64]chan struct{} // Host.Ping calls waiting, under callMu

	hostCalls sync.WaitGroup // goroutines serving the plugin's host calls
}

func newSession(h *Host, link *pluglink.Link, credits uint32) *session {
	s := &session{
		h: h, link: link, credits: newCredits(credits),
		conns:  xsync.NewMapOf[uint64, *sdk.Conn](),
		calls:  make(map[uint64]*phaseCall),
		deadCh: make(chan struct{}),
	}
	return s
}

// run serves the session until it ends and returns why.
func (s *session) run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.pinger()
	}()
	err := s.read()
	s.end(err)
	wg.Wait()
	s.hostCalls.Wait()
	return s.endErr
}

// end tears the session down once: the link closes, every WebSocket
// connection it served is closed with 1012, every phase waiting for it
// fails.
func (s *session) end(err error) {
	s.endOnce.Do(func() {
		if err == nil {
			err = ErrSessionClosed
		}
		s.h.live.CompareAndSwap(s, nil)
		s.callMu.Lock()
		s.dead = true
		s.endErr = err
		calls := s.calls
		s.calls = nil
		s.callMu.Unlock()
		close(s.deadCh)
		_ = s.link.Close()
		for _, pc := range calls {
			pc.timer.Stop()
			s.failCall(pc, "session ended")
		}
		s.conns.Range(func(id uint64, c *sdk.Conn) bool {
			_ = c.Close(sdk.CloseServiceRestart, "plugin restarting")
			s.conns.Delete(id)
			return true
		})
	})
}

// ping sends a ping and waits for its pong.
func (s *session) ping(ctx context.Context) error {
	id := s.pingSeq.Add(1)
	ch := make(chan struct{})
	s.callMu.Lock()
	if s.dead {
		s.callMu.Unlock()
		return ErrSessionClosed
	}
	if s.pings == nil {
		s.pings = make(map[uint64]chan struct{})
	}
	s.pings[id] = ch
	s.callMu.Unlock()
	defer func() {
		s.callMu.Lock()
		delete(s.pings, id)
		s.callMu.Unlock()
	}()
	if err := s.link.Send(&frame.Frame{Kind: frame.KindCall, Method: frame.MethodPing, CallID: id}); err != nil {
		return err
	}
	select {
	case <-ch:
		return nil
	case <-s.deadCh:
		return ErrSessionClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// addConn registers c, unless the session ended.
func (s *session) addConn(c *sdk.Conn) bool {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	if s.dead {
		return false
	}
	s.conns.Store(c.ID(), c)
	return true
}

// take takes one credit, waiting in turn while the plugin grants more. It
// reports false when the session ended, or when the plugin granted nothing
// for a call timeout: a plugin that is busy but progressing (its credits go
// to other connections' events) keeps this connection waiting, paused like
// a full local queue, not closed.
func (s *session) take() bool { return s.credits.take(s.h.cfg.CallTimeout, s.deadCh) }

// grant adds n credits from the plugin.
func (s *session) grant(n uint32) error {
	if n == 0 {
		return protoErr("a credits frame grants 0")
	}
	if !s.credits.grant(n) {
		return protoErr("credits overflow: %d available and %d granted, window %d", s.credits.available(), n, s.credits.window)
	}
	return nil
}

// event sends a credited event for connection c; when the plugin grants no
// credit at all for a call timeout, c is closed with 1013 (its event is not
// delivered, and not lost silently either).
func (s *session) event(c *sdk.Conn, f *frame.Frame) {
	if !s.take() {
		select {
		case <-s.deadCh:
		default:
			s.h.log.Warn("strand: plugin granted no credit in time; closing the connection",
				"conn", c.ID(), "route", (*core.Conn)(c).Route(), "timeout", s.h.cfg.CallTimeout) // plugin: h.log's
			_ = c.Close(sdk.CloseTryAgainLater, "plugin overloaded")
		}
		return
	}
	if err := s.link.Send(f); err != nil {
		s.credits.giveBack()
		if errors.Is(err, frame.ErrTooLarge) {
			_ = c.Close(sdk.CloseMessageTooBig, "message too big for the plugin")
		}
	}
}

func (s *session) pinger() {
	iv, to := s.h.cfg.PingInterval, s.h.cfg.PingTimeout
	tick := min(iv, to/2)
	if tick <= 0 {
		tick = iv
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	var (
		sent  time.Time        // when the unanswered ping went out (zero: none)
		heard = s.heard.Load() // frames received, as of alive
		alive = time.Now()     // when this loop last saw a frame arrive
	)
	for {
		select {
		case <-s.deadCh:
			return
		case now := <-t.C:
			if h := s.heard.Load(); h != heard {
				// Any frame shows the plugin alive, not only the pong: a
				// busy plugin's pong waits behind the data it sends first.
				heard, alive, sent = h, now, time.Time{}
			}
			if !sent.IsZero() {
				if now.Sub(sent) > to {
					s.end(ErrPingTimeout)
					return
				}
				continue
			}
			if now.Sub(alive) >= iv {
				sent = now
				_ = s.link.Send(&frame.Frame{Kind: frame.KindCall, Method: frame.MethodPing, CallID: s.pingSeq.Add(1)})
			}
		}
	}
}

// read is the session's one reader: it applies the plugin's frames in
// arrival order until the link fails or a frame breaks the protocol.
func (s *session) read() error {
	for {
		v, err := s.link.Next()
		if err != nil {
			if errors.Is(err, frame.ErrMalformed) || errors.Is(err, frame.ErrTooLarge) {
				return fmt.Errorf("%w: %w", ErrProtocol, err)
			}
			return err
		}
		s.heard.Add(1)
		if err := s.apply(&v); err != nil {
			return err
		}
		s.link.Yield()
	}
}

func (s *session) apply(v *frame.View) error {
	switch v.Kind() {
	case frame.KindCall:
		return s.call(v)
	case frame.KindReply:
		return s.reply(v)
	}
	return protoErr("a %v frame (method %v) from the plugin", v.Kind(), v.Method())
}

// conn returns the connection a call names, or a protocol error.
func (s *session) conn(v *frame.View) (*sdk.Conn, error) {
	c, ok := s.conns.Load(v.SessionID())
	if !ok {
		return nil, protoErr("%v for unknown connection %d", v.Method(), v.SessionID())
	}
	return c, nil
}

func (s *session) call(v *frame.View) error {
	switch m := v.Method(); m {
	case frame.MethodCredits:
		return s.grant(v.Credits())
	case frame.MethodWebSocketSendText, frame.MethodWebSocketSendBinary:
		c, err := s.conn(v)
		if err != nil {
			return err
		}
		typ := sdk.Text
		if m == frame.MethodWebSocketSendBinary {
			typ = sdk.Binary
		}
		if v.Uncompressed() {
			_ = c.SendUncompressed(typ, v.Payload())
		} else {
			_ = c.Send(typ, v.Payload())
		}
	case frame.MethodWebSocketClose:
		c, err := s.conn(v)
		if err != nil {
			return err
		}
		_ = c.Close(sdk.CloseCode(v.CloseCode()), string(v.CloseReason()))
	case frame.MethodRoomBroadcastText, frame.MethodRoomBroadcastBinary:
		c, err := s.conn(v)
		if err != nil {
			return err
		}
		typ := sdk.Text
		if m == frame.MethodRoomBroadcastBinary {
			typ = sdk.Binary
		}
		_ = c.Broadcast(string(v.Room()), typ, v.Payload(), sdk.BroadcastOptions{ExcludeSelf: v.ExcludeSelf()})
	case frame.MethodRoomJoin, frame.MethodRoomLeave:
		c, err := s.conn(v)
		if err != nil {
			return err
		}
		room := string(v.Room())
		if m == frame.MethodRoomJoin {
			err = c.Join(room)
		} else {
			err = c.Leave(room)
		}
		s.replyTo(v, nil, err)
	case frame.MethodReadRequestFullBody, frame.MethodResponseStreamHeader, frame.MethodResponseStreamData, frame.MethodResponseStreamEnd:
		return s.hostCall(v)
	default:
		return protoErr("unknown call %v", m)
	}
	return nil
}

// replyTo answers the plugin's call v.
func (s *session) replyTo(v *frame.View, data []byte, err error) {
	f := frame.Frame{Kind: frame.KindReply, Method: v.Method(), SessionID: v.SessionID(), CallID: v.CallID(), Payload: data}
	if err != nil {
		f.Status, f.Error = frame.StatusError, err.Error()
	}
	_ = s.link.Send(&f)
}

func (s *session) reply(v *frame.View) error {
	switch v.Method() {
	case frame.MethodPong:
		s.callMu.Lock()
		if ch := s.pings[v.CallID()]; ch != nil {
			delete(s.pings, v.CallID())
			close(ch)
		}
		s.callMu.Unlock()
		return nil
	case frame.MethodEventClose:
		// The plugin ran OnClose: it sends nothing more for this connection.
		if _, ok := s.conns.LoadAndDelete(v.SessionID()); !ok {
			return protoErr("close acknowledged for unknown connection %d", v.SessionID())
		}
		return nil
	}
	return s.phaseReply(v)
}

// phaseCall is an HTTP phase waiting for the plugin's reply.
type phaseCall struct {
	id    uint64
	phase frame.Phase
	req   *core.RequestContext
	resp  *core.ResponseContext
	body  *core.BodyContext
	timer *time.Timer

	// mu serializes the host's uses of the phase's context. Once done
	// (decided here, or by the end of a streamed answer) the context may
	// already be recycled for another request: it is not touched again,
	// and a late reply or host call finds the call over.
	mu   sync.Mutex
	done bool
}

// decide runs fn, which decides the phase, unless it is decided already.
func (pc *phaseCall) decide(fn func()) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if !pc.done {
		pc.done = true
		fn()
	}
}

// startCall registers a phase call and arms its timeout; it reports false
// when the session has ended.
func (s *session) startCall(pc *phaseCall) bool {
	pc.id = s.h.calls.Add(1)
	s.callMu.Lock()
	defer s.callMu.Unlock()
	if s.dead {
		return false
	}
	s.calls[pc.id] = pc
	pc.timer = time.AfterFunc(s.h.cfg.CallTimeout, func() {
		if s.takeCall(pc.id) != nil {
			s.h.log.Warn("strand: plugin phase call timed out", "phase", pc.phase.String(), "timeout", s.h.cfg.CallTimeout)
			s.failCall(pc, "timed out")
		}
	})
	return true
}

// takeCall removes and returns the pending call id, or nil.
func (s *session) takeCall(id uint64) *phaseCall {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	pc := s.calls[id]
	if pc != nil {
		delete(s.calls, id)
	}
	return pc
}

func (s *session) peekCall(id uint64) *phaseCall {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	return s.calls[id]
}

func (s *session) failCall(pc *phaseCall, why string) {
	pc.decide(func() {
		switch {
		case pc.req != nil:
			s.h.failRequest(pc.req, why)
		case pc.resp != nil:
			s.h.failResponse(pc.resp)
		case pc.body != nil:
			s.h.failBody(pc.body, why)
		}
	})
}

// phaseReply applies the plugin's decision of a phase.
func (s *session) phaseReply(v *frame.View) error {
	id := v.CallID()
	// Checked before anything is applied: net/http panics on a status
	// outside 100-999, and a header with a line break would split the
	// answer.
	if st := v.ResponseStatus(); st != 0 && (st < 100 || st > 599) {
		return protoErr("reply to call %d sets status %d", id, st)
	}
	for i := range v.NumHeaderEdits() {
		op, name, value := v.HeaderEdit(i)
		if op > frame.HeaderRemove || !validHeaderName(name) || !validHeaderValue(value) {
			return protoErr("reply to call %d has an invalid header edit (op %d, name %q)", id, op, name)
		}
	}
	if id == 0 || id > s.h.calls.Load() {
		return protoErr("reply %v to call %d, which was never made", v.Method(), id)
	}
	pc := s.takeCall(id)
	if pc == nil {
		return nil // it timed out, or the session ended: too late
	}
	pc.timer.Stop()
	if st := v.Status(); st != frame.StatusOk {
		s.failCall(pc, "plugin answered "+st.String()+": "+string(v.Error()))
		return nil
	}
	if m := v.Method(); pc.req != nil && m != frame.MethodNext && m != frame.MethodEnd && m != frame.MethodWebSocketUpgrade {
		s.failCall(pc, "bad decision")
		return protoErr("request filter decided %v", m)
	}
	pc.decide(func() {
		switch {
		case pc.req != nil:
			c := pc.req
			applyEdits(v, c.SetStatus, c.SetHeader, c.AddHeader, c.RemoveHeader)
			switch v.Method() {
			case frame.MethodNext:
				c.Next()
			case frame.MethodEnd:
				if b := v.Payload(); len(b) > 0 {
					c.SetBody(clone(b))
				}
				c.End()
			case frame.MethodWebSocketUpgrade:
				c.Set(upgradeKey, pc.id)
				c.Upgrade(nil)
			}
		case pc.resp != nil:
			c := pc.resp
			applyEdits(v, c.SetStatus, c.SetHeader, c.AddHeader, c.RemoveHeader)
			c.Next()
		case pc.body != nil:
			c := pc.body
			applyEdits(v, c.SetStatus, c.SetHeader, c.AddHeader, c.RemoveHeader)
			if v.Method() == frame.MethodSetResponseFullBody {
				c.SetBody(clone(v.Payload()))
			}
			c.Next()
		}
	})
	return nil
}

// validHeaderName reports whether b is an HTTP field name (RFC 9110 token).
func validHeaderName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether b holds no line break and no NUL.
func validHeaderValue(b []byte) bool {
	for _, c := range b {
		if c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}

func applyEdits(v *frame.View, status func(int), set, add func(string, string), del func(string)) {
	if st := v.ResponseStatus(); st != 0 {
		status(int(st))
	}
	for i := range v.NumHeaderEdits() {
		op, name, value := v.HeaderEdit(i)
		switch op {
		case frame.HeaderSet:
			set(string(name), string(value))
		case frame.HeaderAdd:
			add(string(name), string(value))
		case frame.HeaderRemove:
			del(string(name))
		}
	}
}

// hostCall serves a phase handler's call to the host (read the body,
// stream the answer) through the host's channel context, on its own
// goroutine: the reader never waits for a client.
func (s *session) hostCall(v *frame.View) error {
	pc := s.peekCall(v.SessionID())
	if pc == nil {
		if v.SessionID() == 0 || v.SessionID() > s.h.calls.Load() {
			return protoErr("%v for phase call %d, which was never made", v.Method(), v.SessionID())
		}
		s.replyTo(v, nil, core.ErrPhaseOver)
		return nil
	}
	if pc.req == nil {
		return protoErr("%v during a %v phase", v.Method(), pc.phase)
	}
	m, sid, cid := v.Method(), v.SessionID(), v.CallID()
	v0 := m // the method the reply names
	status, data := int(v.ResponseStatus()), clone(v.Payload())
	if status != 0 && (status < 100 || status > 599) {
		return protoErr("%v sets status %d", m, status)
	}
	var hdr []frame.HeaderEdit // a stream's header carries the edits made so far
	for i := range v.NumHeaderEdits() {
		op, name, value := v.HeaderEdit(i)
		if op > frame.HeaderRemove || !validHeaderName(name) || !validHeaderValue(value) {
			return protoErr("%v has an invalid header edit (op %d, name %q)", m, op, name)
		}
		hdr = append(hdr, frame.HeaderEdit{Op: op, Name: string(name), Value: string(value)})
	}
	rc := pc.req
	s.hostCalls.Add(1)
	go func() {
		defer s.hostCalls.Done()
		var out []byte
		var err error
		pc.mu.Lock()
		defer pc.mu.Unlock() // after the reply below: the plugin's next step waits for it anyway
		if pc.done {
			// Decided (timed out, or the streamed answer ended): the
			// context may serve another request by now.
			err = core.ErrPhaseOver
			m = 0
		}
		switch m {
		case frame.MethodReadRequestFullBody:
			out, err = rc.ReadBody()
		case frame.MethodResponseStreamHeader:
			for _, e := range hdr {
				switch e.Op {
				case frame.HeaderSet:
					rc.SetHeader(e.Name, e.Value)
				case frame.HeaderAdd:
					rc.AddHeader(e.Name, e.Value)
				case frame.HeaderRemove:
					rc.RemoveHeader(e.Name)
				}
			}
			err = rc.StreamHeader(status)
		case frame.MethodResponseStreamData:
			err = rc.StreamWrite(data)
		case frame.MethodResponseStreamEnd:
			if err = rc.StreamEnd(); err == nil {
				pc.done = true // the end decided the phase; the plugin's reply after it applies nothing
			}
		}
		f := frame.Frame{Kind: frame.KindReply, Method: v0, SessionID: sid, CallID: cid, Payload: out}
		if err != nil {
			f.Status, f.Error = frame.StatusError, err.Error()
		}
		_ = s.link.Send(&f)
	}()
	return nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

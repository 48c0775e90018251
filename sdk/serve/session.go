package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/strandws/strand/dispatcher"
	"github.com/strandws/strand/internal/core"
	"github.com/strandws/strand/internal/pluglink"
	"github.com/strandws/strand/sdk"
	"github.com/strandws/strand/sdk/frame"
)

// Defaults of the plugin side.
const (
	// DefaultCredits is the plugin's credit window: WebSocket events the
	// host may send before the plugin has handled any.
	DefaultCredits = 4096
	// callTimeout bounds a call the plugin waits on (Join, Leave, a phase's
	// host call).
	callTimeout = 5 * time.Second
	// upgradeTTL is how long a filter's upgrade waits for its open event.
	upgradeTTL = time.Minute
)

// RefusedError is the host's refusal of the handshake.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "serve: the host refused the plugin: " + e.Reason }

// Options are the plugin side's settings. The zero value is what Run,
// Dial and Listen use.
type Options struct {
	// Credits is the credit window: WebSocket events the host may send
	// before the plugin has handled any. Zero means DefaultCredits.
	Credits uint32
	// MaxFrameSize caps a frame from the host. Zero means
	// frame.DefaultMaxFrameSize (16 MiB).
	MaxFrameSize int
	// Logger receives the plugin runtime's handler panics and slow
	// handlers. Nil means slog.Default() (stderr, which a host started by
	// strand turns into its own log lines).
	Logger *slog.Logger
}

// Dial connects to the host's Unix socket at path and serves p until the
// socket closes (it then returns nil) or ctx ends.
func Dial(ctx context.Context, p *sdk.Plugin, path string) error {
	return DialWith(ctx, p, path, Options{})
}

// DialWith is Dial with options.
func DialWith(ctx context.Context, p *sdk.Plugin, path string, o Options) error {
	if err := mount(p); err != nil {
		return err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return fmt.Errorf("serve: dialing the host: %w", err)
	}
	return serveConn(ctx, p, conn, o)
}

// Conn serves p on a connection to the host that the caller made (any
// net.Conn: a Unix socket, one end of net.Pipe in a test) until it closes
// or ctx ends. It closes conn before returning.
func Conn(ctx context.Context, p *sdk.Plugin, conn net.Conn, o Options) error {
	if err := mount(p); err != nil {
		_ = conn.Close()
		return err
	}
	return serveConn(ctx, p, conn, o)
}

// mount refuses a plugin with an entry that an in-process host
// (wsframework's Route, strandtest.New) refuses, with the same error:
// one with no handlers, or WebSocket handlers that set both OnMessage
// and OnText or OnBinary. Dial, Conn and Listen call it before they
// reach the host, so such a plugin fails at start-up out of process too.
// It then marks every entry mounted, as Route does: registering a handler
// afterwards panics.
func mount(p *sdk.Plugin) error {
	es := (*core.Plugin)(p).Entries()
	for _, e := range es {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	for _, e := range es {
		e.Mount()
	}
	return nil
}

// Listen listens on the Unix socket path and serves p to one host
// connection at a time, until ctx ends. It removes a stale socket file at
// path first, and the socket file when it returns.
func Listen(ctx context.Context, p *sdk.Plugin, path string) error {
	return ListenWith(ctx, p, path, Options{})
}

// ListenWith is Listen with options.
func ListenWith(ctx context.Context, p *sdk.Plugin, path string, o Options) error {
	if err := mount(p); err != nil {
		return err
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	defer ln.Close()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("serve: %w", err)
		}
		if err := serveConn(ctx, p, conn, o); err != nil && ctx.Err() == nil {
			o.logger().Warn("serve: host session ended", "plugin", p.Name(), "err", err)
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// session is the plugin's end of one host connection.
type session struct {
	plugin *core.Plugin
	rt     *core.Runtime
	link   *pluglink.Link
	ctx    context.Context
	cancel context.CancelFunc

	window  uint32
	handled atomic.Uint32 // credited events handled, not yet returned

	conns map[uint64]*conn // the reader's: connections opened and not closed

	mu       sync.Mutex
	upgrades map[uint64]*upgrade // by phase call ID
	wraps    map[*core.WebSocketHandlers]*core.WebSocketHandlers
	calls    map[uint64]chan reply
	callID   uint64
	goodbye  bool

	phases sync.WaitGroup // phase goroutines
	bg     sync.WaitGroup // the goodbye goroutine
}

type upgrade struct {
	h      *core.WebSocketHandlers
	values map[string]any
	req    *core.Request
	at     time.Time
}

type reply struct {
	data []byte
	err  error
}

func (o Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

func serveConn(ctx context.Context, p *sdk.Plugin, nc net.Conn, o Options) error {
	cp := (*core.Plugin)(p)
	if o.Credits == 0 {
		o.Credits = DefaultCredits
	}
	if o.MaxFrameSize == 0 {
		o.MaxFrameSize = frame.DefaultMaxFrameSize
	}
	link, err := pluglink.New(nc, pluglink.Config{MaxFrameSize: o.MaxFrameSize, YieldCPU: true})
	if err != nil {
		_ = nc.Close()
		return err
	}
	defer link.Close()
	stop := context.AfterFunc(ctx, func() { _ = link.Close() })
	defer stop()

	hello := &frame.Hello{PluginName: cp.Name(), MaxFrameSize: uint32(o.MaxFrameSize), InitialCredits: o.Credits}
	for _, e := range cp.Entries() {
		hello.Entries = append(hello.Entries, frame.EntryDecl{Name: e.Name(), Phases: pluglink.Phases(e)})
	}
	if err := link.Send(&frame.Frame{
		Kind: frame.KindHandshake, Method: frame.MethodHello, Hello: hello,
		Handshake: &frame.Handshake{Magic: frame.Magic, ABIMajor: frame.ABIMajor, ABIMinor: frame.ABIMinor},
	}); err != nil {
		return err
	}
	v, err := link.Next()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("serve: reading the host's answer: %w", err)
	}
	if err := frame.CheckHandshake(&v); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	switch v.Method() {
	case frame.MethodRefuse:
		return &RefusedError{Reason: string(v.Error())}
	case frame.MethodAccept:
	default:
		return fmt.Errorf("serve: the host answered the hello with %v", v.Method())
	}
	if hh, ok := v.Hello(); ok {
		link.SetPeerMax(int(hh.MaxFrameSize()))
	}
	if err := p.Configure(clone(v.Payload())); err != nil {
		return fmt.Errorf("serve: plugin %s refused its settings: %w", cp.Name(), err)
	}

	// Credits bound the events accepted and not yet handled, so a shard's
	// queue never fills and the reader never waits on the runtime (which
	// could wait on a reply only the reader delivers).
	rt, err := core.NewRuntime(cp, core.RuntimeConfig{
		Dispatcher:      dispatcher.ShardedConfig{QueueSize: int(o.Credits) + 64},
		MaxPendingBytes: -1,
		Logger:          o.logger(),
	})
	if err != nil {
		return err
	}
	s := &session{
		plugin: cp, rt: rt, link: link,
		window: o.Credits, conns: make(map[uint64]*conn),
		upgrades: make(map[uint64]*upgrade), wraps: make(map[*core.WebSocketHandlers]*core.WebSocketHandlers),
		calls: make(map[uint64]chan reply),
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	err = s.read()
	s.shutdown()
	// The host closing the socket, even abruptly (a reset when it had
	// unread bytes), is the end of the session, not a failure.
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || ctx.Err() != nil {
		return nil
	}
	return err
}

// sayGoodbye finishes the session at the host's request: no new phase
// starts; the phases running and the events already accepted are answered,
// what they sent is flushed, then the link closes (and the reader returns).
// The reader keeps reading meanwhile, so that replies to the plugin's own
// calls still arrive.
func (s *session) sayGoodbye() {
	s.mu.Lock()
	if s.goodbye {
		s.mu.Unlock()
		return
	}
	s.goodbye = true
	s.mu.Unlock()
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.phases.Wait()
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		_ = s.rt.Close(ctx)
		cancel()
		s.link.Flush()
		_ = s.link.Close()
	}()
}

// shutdown closes what the session opened: every connection's OnClose
// runs (the host is gone: 1006), then the runtime drains.
func (s *session) shutdown() {
	s.cancel()
	_ = s.link.Close()
	for id, c := range s.conns {
		s.rt.Closed(c.c, core.CloseAbnormal, "host connection ended")
		delete(s.conns, id)
	}
	s.mu.Lock()
	for id, ch := range s.calls {
		ch <- reply{err: core.ErrClosed}
		delete(s.calls, id)
	}
	s.mu.Unlock()
	s.phases.Wait()
	s.bg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.rt.Close(ctx)
}

// read is the session's one reader: it hands the host's events to the
// runtime in arrival order.
func (s *session) read() error {
	for {
		v, err := s.link.Next()
		if err != nil {
			return err
		}
		if err := s.apply(&v); err != nil {
			return err
		}
		s.link.Yield()
	}
}

func (s *session) apply(v *frame.View) error {
	switch v.Kind() {
	case frame.KindEvent:
		if v.Phase() == frame.PhaseWebSocket {
			return s.wsEvent(v)
		}
		return s.phaseEvent(v)
	case frame.KindCall:
		switch v.Method() {
		case frame.MethodPing:
			return s.link.Send(&frame.Frame{Kind: frame.KindReply, Method: frame.MethodPong, CallID: v.CallID()})
		case frame.MethodGoodbye:
			s.sayGoodbye()
			return nil
		}
		return fmt.Errorf("serve: unknown call %v from the host", v.Method())
	case frame.KindReply:
		s.mu.Lock()
		ch := s.calls[v.CallID()]
		delete(s.calls, v.CallID())
		s.mu.Unlock()
		if ch != nil {
			r := reply{data: clone(v.Payload())}
			if v.Status() != frame.StatusOk {
				r.err = pluglink.ErrorFromText(string(v.Error()))
			}
			ch <- r
		}
		return nil
	}
	return fmt.Errorf("serve: unexpected %v frame from the host", v.Kind())
}

// credit counts one handled event and returns credits in batches.
func (s *session) credit() {
	n := s.handled.Add(1)
	if batch := max(1, s.window/4); n >= batch && s.handled.CompareAndSwap(n, 0) {
		_ = s.link.Send(&frame.Frame{Kind: frame.KindCall, Method: frame.MethodCredits, Credits: n})
	}
}

func (s *session) wsEvent(v *frame.View) error {
	id := v.SessionID()
	switch v.Method() {
	case frame.MethodEventWebSocketOpen:
		if _, dup := s.conns[id]; dup {
			return fmt.Errorf("serve: connection %d opened twice", id)
		}
		info := core.ConnInfo{ID: id, Subprotocol: string(v.Subprotocol())}
		var h *core.WebSocketHandlers
		if up := s.takeUpgrade(v.CallID()); up != nil {
			h, info.Values, info.Request = up.h, up.values, up.req
		} else {
			if e, ok := s.plugin.Lookup(string(v.Entry())); ok {
				h = e.WebSocketHandlers()
			}
			if r, ok := v.Request(); ok {
				info.Request = pluglink.DecodeRequest(&r)
			}
		}
		if h == nil {
			h = &core.WebSocketHandlers{}
		}
		pc := &conn{s: s, id: id, route: string(v.Route())}
		info.Handlers = s.wrap(h)
		c, err := s.rt.Open(s.ctx, pc, info)
		if err != nil {
			return err
		}
		pc.c = c
		s.conns[id] = pc
	case frame.MethodEventTextMessage, frame.MethodEventBinaryMessage:
		pc := s.conns[id]
		if pc == nil {
			s.credit()
			return nil
		}
		typ := core.Text
		if v.Method() == frame.MethodEventBinaryMessage {
			typ = core.Binary
		}
		data := v.Payload()
		b := s.rt.Buffers().Get(len(data))
		copy(b.B, data)
		if err := s.rt.Message(s.ctx, pc.c, typ, b); err != nil {
			return err
		}
	case frame.MethodEventClose:
		pc := s.conns[id]
		if pc == nil {
			// Never opened here (the host closed it before): acknowledge
			// so that the host forgets it.
			return s.link.Send(&frame.Frame{Kind: frame.KindReply, Method: frame.MethodEventClose, SessionID: id})
		}
		delete(s.conns, id)
		s.rt.Closed(pc.c, core.CloseCode(v.CloseCode()), string(v.CloseReason()))
	default:
		return fmt.Errorf("serve: unknown WebSocket event %v", v.Method())
	}
	return nil
}

// wrap returns h with each event counted for credits and OnClose
// acknowledged to the host; made once per handler set.
func (s *session) wrap(h *core.WebSocketHandlers) *core.WebSocketHandlers {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.wraps[h]; w != nil {
		return w
	}
	w := &core.WebSocketHandlers{
		OnOpen: func(c *core.Conn) {
			defer s.credit()
			if h.OnOpen != nil {
				h.OnOpen(c)
			}
		},
		OnMessage: func(c *core.Conn, m core.Message) {
			defer s.credit()
			switch {
			case h.OnMessage != nil:
				h.OnMessage(c, m)
			case m.Type == core.Text && h.OnText != nil:
				h.OnText(c, m.Data)
			case m.Type == core.Binary && h.OnBinary != nil:
				h.OnBinary(c, m.Data)
			}
		},
		OnClose: func(c *core.Conn, code core.CloseCode, reason string) {
			defer s.closed(c)
			if h.OnClose != nil {
				h.OnClose(c, code, reason)
			}
		},
		OnError: h.OnError,
	}
	s.wraps[h] = w
	return w
}

// closed tells the host that c's OnClose ran: nothing more will be sent for
// it, which conn's lock guarantees against other goroutines still sending.
func (s *session) closed(c *core.Conn) {
	// The ConnHost of c is its *conn.
	if pc, ok := connHostOf(c); ok {
		pc.mu.Lock()
		pc.done = true
		_ = s.link.SendWait(&frame.Frame{Kind: frame.KindReply, Method: frame.MethodEventClose, SessionID: pc.id})
		pc.mu.Unlock()
	}
}

func (s *session) takeUpgrade(id uint64) *upgrade {
	if id == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	up := s.upgrades[id]
	delete(s.upgrades, id)
	return up
}

func (s *session) putUpgrade(id uint64, up *upgrade) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, u := range s.upgrades { // upgrades whose handshake failed on the host
		if time.Since(u.at) > upgradeTTL {
			delete(s.upgrades, k)
		}
	}
	s.upgrades[id] = up
}

// startCall sends f as a call and returns where its reply arrives.
func (s *session) startCall(f *frame.Frame) (*pendingCall, error) {
	ch := make(chan reply, 1)
	s.mu.Lock()
	s.callID++
	f.CallID = s.callID
	s.calls[f.CallID] = ch
	s.mu.Unlock()
	if err := s.link.SendWait(f); err != nil {
		s.mu.Lock()
		delete(s.calls, f.CallID)
		s.mu.Unlock()
		return nil, core.ErrClosed
	}
	return &pendingCall{id: f.CallID, ch: ch}, nil
}

type pendingCall struct {
	id uint64
	ch chan reply
}

// wait waits for a call's reply, up to callTimeout.
func (s *session) wait(pc *pendingCall) ([]byte, error) {
	t := time.NewTimer(callTimeout)
	defer t.Stop()
	select {
	case r := <-pc.ch:
		return r.data, r.err
	case <-t.C:
		s.mu.Lock()
		delete(s.calls, pc.id)
		s.mu.Unlock()
		return nil, core.ErrCallTimeout
	}
}

// call sends f as a call and waits for its reply.
func (s *session) call(f *frame.Frame) ([]byte, error) {
	pc, err := s.startCall(f)
	if err != nil {
		return nil, err
	}
	return s.wait(pc)
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

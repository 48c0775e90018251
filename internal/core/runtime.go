package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/puzpuzpuz/xsync/v3"

	"github.com/strandws/strand/dispatcher"
	"github.com/strandws/strand/sdk/bufpool"
)

// DefaultMaxPendingBytes is the default bound on a connection's inbound bytes
// accepted by the runtime but not yet handled.
const DefaultMaxPendingBytes = 4 << 20

// RuntimeConfig configures a Runtime. The zero value is valid.
type RuntimeConfig struct {
	// Dispatcher configures the ordered executor of connection events.
	// Its zero value means dispatcher's defaults. OnPanic and OnSlow, when
	// nil, log through Logger.
	Dispatcher dispatcher.ShardedConfig
	// Buffers is the buffer pool for messages. Nil means a new pool.
	Buffers *bufpool.Pool
	// MaxPendingBytes bounds a connection's inbound bytes accepted but not
	// yet handled: Message blocks while the bound is exceeded, so the host
	// stops reading that connection. Zero means DefaultMaxPendingBytes;
	// negative means no bound (the dispatcher's queue bound still applies).
	MaxPendingBytes int64
	// Phases configures the worker pool that runs HTTP phase handlers.
	// Zero means dispatcher's defaults. It starts on first use.
	Phases dispatcher.PoolConfig
	// Logger receives handler panics and slow handlers. Nil means
	// slog.Default().
	Logger *slog.Logger
	// Observer receives handler timings for metrics (observe.go). Nil
	// means none: an event then costs one nil check more.
	Observer Observer
	// ObserveEvery samples the messages an Observer times: one in this
	// many per connection. Zero means DefaultObserveEvery; 1 times every
	// message.
	ObserveEvery int
	// ConnRoute names the route of an open connection, by ID, for the
	// lines of the dispatcher's reports (a task panic, a slow handler),
	// which give only the ID. A host that already finds its connections
	// by ID passes it; nil makes the runtime index its open connections
	// for them (a map entry per connection).
	ConnRoute func(id uint64) string
}

// RuntimeStats are a runtime's counters.
type RuntimeStats struct {
	Dispatcher dispatcher.ShardedStats
	Phases     dispatcher.PoolStats
	Open       int64  // connections opened and not yet closed
	Panics     uint64 // handler panics recovered (events and phases)
}

// Runtime runs one plugin's handlers. Hosts deliver a connection's events
// with Open, Message, Error and Closed; the runtime runs them in that order
// on its ordered executor, keyed by connection ID. For one connection, the
// host must call these methods from one goroutine at a time (its reader), so
// that submit order is event order. Different connections may be delivered
// concurrently. Create with NewRuntime; stop with Close.
type Runtime struct {
	plugin     *Plugin
	exec       *dispatcher.Sharded
	bufs       *bufpool.Pool
	maxPending int64
	log        *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	events sync.Pool

	respCtxs sync.Pool // *ResponseContext (AcquireResponseContext)
	bodyCtxs sync.Pool // *BodyContext
	logJobs  sync.Pool // *logJob

	open   atomic.Int64
	panics atomic.Uint64
	obs    observing  // RuntimeConfig.Observer (observe.go)
	conns  *connIndex // open connections by ID, for the dispatcher's reports; nil if the host handles them

	poolCfg  dispatcher.PoolConfig
	poolOnce sync.Once
	poolSet  atomic.Bool // pool and poolErr are set (poolOnce's function returned)
	pool     *dispatcher.Pool
	poolErr  error

	closeOnce sync.Once

	// Last, so that the fields the event path uses keep their offsets.
	reqCtxs sync.Pool // *RequestContext (AcquireRequestContext)
}

// NewRuntime returns a runtime for p.
func NewRuntime(p *Plugin, cfg RuntimeConfig) (*Runtime, error) {
	if p == nil {
		return nil, errors.New("sdk: NewRuntime: nil plugin")
	}
	rt := &Runtime{plugin: p, bufs: cfg.Buffers, maxPending: cfg.MaxPendingBytes, log: cfg.Logger, poolCfg: cfg.Phases}
	if rt.bufs == nil {
		rt.bufs = bufpool.New(bufpool.Config{})
	}
	if rt.maxPending == 0 {
		rt.maxPending = DefaultMaxPendingBytes
	}
	if rt.log == nil {
		rt.log = slog.Default()
	}
	dc := cfg.Dispatcher
	routeOf := cfg.ConnRoute
	if routeOf == nil && (dc.OnPanic == nil || dc.OnSlow == nil) {
		// The dispatcher names only a task's key (the connection's ID):
		// the index finds the connection's route for the line.
		rt.conns = newConnIndex()
		routeOf = rt.conns.route
	}
	if dc.OnPanic == nil {
		dc.OnPanic = func(key uint64, v any) {
			rt.log.Error("strand: task panic", "conn", key, "route", routeOf(key), "plugin", p.name, "panic", v)
		}
	}
	if dc.OnSlow == nil {
		dc.OnSlow = func(key uint64, running time.Duration) {
			rt.log.Warn("strand: slow handler", "conn", key, "route", routeOf(key), "plugin", p.name, "running", running)
		}
	}
	exec, err := dispatcher.NewSharded(dc)
	if err != nil {
		return nil, fmt.Errorf("sdk: NewRuntime: %w", err)
	}
	rt.exec = exec
	rt.ctx, rt.cancel = context.WithCancel(context.Background())
	rt.events.New = func() any { return new(event) }
	rt.obs.init(cfg)
	return rt, nil
}

// Plugin returns the runtime's plugin.
func (rt *Runtime) Plugin() *Plugin { return rt.plugin }

// Buffers returns the runtime's buffer pool.
func (rt *Runtime) Buffers() *bufpool.Pool { return rt.bufs }

// Stats returns the runtime's counters.
func (rt *Runtime) Stats() RuntimeStats {
	st := RuntimeStats{Dispatcher: rt.exec.Stats(), Open: rt.open.Load(), Panics: rt.panics.Load()}
	if p := rt.phasePool(false); p != nil {
		st.Phases = p.Stats()
	}
	return st
}

type eventKind uint8

const (
	evOpen eventKind = iota + 1
	evMessage
	evError
	evClose
	evSync
)

// event is one pooled connection event; it is the Arg of a dispatcher.Task,
// so delivering an event allocates nothing at steady state.
type event struct {
	conn   *Conn
	kind   eventKind
	typ    MessageType
	buf    *bufpool.Buffer
	code   CloseCode
	reason string
	err    error
	fn     func() // evSync
	enq    int64  // observing's reading at submit, for a timed message (0: not timed)
}

func (rt *Runtime) newEvent(c *Conn, k eventKind) *event {
	ev := rt.events.Get().(*event)
	ev.conn, ev.kind = c, k
	return ev
}

func runEvent(arg any) {
	ev := arg.(*event)
	rt := ev.conn.rt
	if rt.obs.fn != nil && rt.obs.timed(ev) {
		rt.runObserved(ev)
		return
	}
	rt.run(ev)
}

// Open creates the plugin-side connection for a new WebSocket and submits its
// OnOpen event. It blocks while the connection's queue is full and returns
// ctx's error if ctx ends first.
func (rt *Runtime) Open(ctx context.Context, host ConnHost, info ConnInfo) (*Conn, error) {
	h := info.Handlers
	if h == nil {
		h = &WebSocketHandlers{}
	}
	c := &Conn{
		id: info.ID, rt: rt, host: host, h: h,
		values: info.Values, subprotocol: info.Subprotocol,
	}
	if info.Request != nil {
		c.req = *info.Request
	}
	rt.conns.add(c)
	ev := rt.newEvent(c, evOpen)
	if err := rt.exec.Submit(ctx, c.id, dispatcher.Task{Fn: runEvent, Arg: ev}); err != nil {
		rt.putEvent(ev)
		rt.conns.remove(c)
		return nil, rt.submitErr(err)
	}
	rt.open.Add(1)
	return c, nil
}

// connIndex finds an open connection by ID for the lines of the
// dispatcher's reports (a task panic, a slow handler), which name only the
// task's key, so that they carry the connection's route like every other
// line about it: an insert at Open and a delete after OnClose, nothing on
// the event path. A nil index does nothing.
type connIndex struct{ m *xsync.MapOf[uint64, *Conn] }

func newConnIndex() *connIndex { return &connIndex{xsync.NewMapOf[uint64, *Conn]()} }

func (x *connIndex) add(c *Conn) {
	if x != nil {
		x.m.Store(c.id, c)
	}
}

func (x *connIndex) remove(c *Conn) {
	if x != nil {
		x.m.Delete(c.id) // IDs are never reused
	}
}

// route returns the route of the open connection id, or "".
func (x *connIndex) route(id uint64) string {
	if x == nil {
		return ""
	}
	if c, ok := x.m.Load(id); ok {
		return c.Route()
	}
	return ""
}

func (rt *Runtime) submitErr(err error) error {
	if errors.Is(err, dispatcher.ErrClosed) {
		return ErrRuntimeClosed
	}
	return err
}

// Message submits one message event and takes ownership of b (released
// after the handler returns, or at once on error). It blocks while the
// connection's queue (its shard's, or its own while one of its handlers is
// detached as blocked) is full or, after accepting the message, while the
// connection's pending bytes exceed the bound — so the host's reader pauses
// instead of dropping. It returns ctx's error if ctx ends first (the message
// was then accepted only if the error came from the pending-bytes wait).
func (rt *Runtime) Message(ctx context.Context, c *Conn, typ MessageType, b *bufpool.Buffer) error {
	ev := rt.newEvent(c, evMessage)
	ev.typ, ev.buf = typ, b
	if rt.obs.fn != nil {
		rt.obs.stamp(c, ev)
	}
	n := int64(len(b.B))
	c.pending.Add(n)
	if err := rt.exec.Submit(ctx, c.id, dispatcher.Task{Fn: runEvent, Arg: ev}); err != nil {
		c.pending.Add(-n)
		rt.putEvent(ev)
		b.Release()
		return rt.submitErr(err)
	}
	if rt.maxPending > 0 && c.pending.Load() > rt.maxPending {
		return rt.waitPending(ctx, c)
	}
	return nil
}

// TryMessage is Message for hosts that cannot block: when the connection's
// queue is full it returns dispatcher.ErrFull without taking b, and calls
// wake (if not nil) once when the queue has room again; ErrRuntimeClosed
// once the runtime closed (b not taken either).
func (rt *Runtime) TryMessage(c *Conn, typ MessageType, b *bufpool.Buffer, wake func()) error {
	ev := rt.newEvent(c, evMessage)
	ev.typ, ev.buf = typ, b
	if rt.obs.fn != nil {
		rt.obs.stamp(c, ev)
	}
	n := int64(len(b.B))
	c.pending.Add(n)
	if err := rt.exec.TrySubmit(c.id, dispatcher.Task{Fn: runEvent, Arg: ev}, wake); err != nil {
		c.pending.Add(-n)
		ev.buf = nil
		rt.putEvent(ev)
		return rt.submitErr(err)
	}
	return nil
}

// WaitPending blocks while c's pending bytes exceed the runtime's bound
// (RuntimeConfig.MaxPendingBytes), as Message does after accepting a
// message; hosts that submit with TryMessage call it to pause the same
// way. One caller at a time per connection.
func (rt *Runtime) WaitPending(ctx context.Context, c *Conn) error {
	if rt.maxPending <= 0 || c.pending.Load() <= rt.maxPending {
		return nil
	}
	return rt.waitPending(ctx, c)
}

func (rt *Runtime) waitPending(ctx context.Context, c *Conn) error {
	if c.drain == nil {
		c.drain = make(chan struct{}, 1)
	}
	c.waiting.Store(true)
	defer c.waiting.Store(false)
	for c.pending.Load() > rt.maxPending {
		select {
		case <-c.drain:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Error submits an OnError event. It is never refused for a full shard.
func (rt *Runtime) Error(c *Conn, err error) {
	ev := rt.newEvent(c, evError)
	ev.err = err
	if rt.exec.SubmitLast(c.id, dispatcher.Task{Fn: runEvent, Arg: ev}) != nil {
		rt.putEvent(ev)
	}
}

// Sync runs fn on the connection's serial queue after every event submitted
// for it before (including OnClose), without calling any handler: a barrier
// for hosts and test kits. Like Error and Closed it is never refused for a
// full queue; it fails with ErrRuntimeClosed once the runtime closed, and
// then fn does not run.
func (rt *Runtime) Sync(c *Conn, fn func()) error {
	ev := rt.newEvent(c, evSync)
	ev.fn = fn
	if err := rt.exec.SubmitLast(c.id, dispatcher.Task{Fn: runEvent, Arg: ev}); err != nil {
		rt.putEvent(ev)
		return rt.submitErr(err)
	}
	return nil
}

// Closed submits the connection's last event, OnClose with code and reason.
// It bypasses the queue bound so it is never lost, and is idempotent: only
// the first call counts.
func (rt *Runtime) Closed(c *Conn, code CloseCode, reason string) {
	if !c.closing.CompareAndSwap(false, true) {
		return
	}
	ev := rt.newEvent(c, evClose)
	ev.code, ev.reason = code, reason
	if rt.exec.SubmitLast(c.id, dispatcher.Task{Fn: runEvent, Arg: ev}) != nil {
		// The runtime is closed: nothing will run it, but the connection is gone.
		rt.putEvent(ev)
		rt.open.Add(-1)
		rt.conns.remove(c)
		c.cancelContext()
	}
}

func (rt *Runtime) putEvent(ev *event) {
	*ev = event{}
	rt.events.Put(ev)
}

func (rt *Runtime) run(ev *event) {
	c := ev.conn
	defer rt.finish(ev)
	h := c.h
	switch ev.kind {
	case evOpen:
		if h.OnOpen != nil {
			h.OnOpen(c)
		}
	case evMessage:
		switch {
		case h.OnMessage != nil:
			h.OnMessage(c, Message{Type: ev.typ, Data: ev.buf.B})
		case ev.typ == Text && h.OnText != nil:
			h.OnText(c, ev.buf.B)
		case ev.typ == Binary && h.OnBinary != nil:
			h.OnBinary(c, ev.buf.B)
		}
	case evError:
		if h.OnError != nil {
			h.OnError(c, ev.err)
		}
	case evClose:
		if h.OnClose != nil {
			h.OnClose(c, ev.code, ev.reason)
		}
	case evSync:
		ev.fn()
	}
}

// finish releases what the event held and turns a handler panic into a 1011
// close of that connection only.
func (rt *Runtime) finish(ev *event) {
	c := ev.conn
	v := recover()
	if ev.buf != nil {
		n := int64(len(ev.buf.B))
		ev.buf.Release()
		if c.pending.Add(-n) <= rt.maxPending && c.waiting.Load() {
			select {
			case c.drain <- struct{}{}:
			default:
			}
		}
	}
	kind := ev.kind
	rt.putEvent(ev)
	if v != nil {
		rt.panics.Add(1)
		rt.log.Error("strand: handler panic", "conn", c.id, "route", c.Route(), "plugin", rt.plugin.name,
			"panic", v, "stack", string(debug.Stack()))
		if kind != evClose {
			_ = c.host.ClosePanic("internal error")
			if h := c.h; h.OnError != nil && kind != evError {
				rt.safeOnError(c, fmt.Errorf("sdk: handler panic: %v", v))
			}
		}
	}
	if kind == evClose {
		rt.open.Add(-1)
		rt.conns.remove(c)
		c.cancelContext()
	}
}

func (rt *Runtime) safeOnError(c *Conn, err error) {
	defer func() {
		if v := recover(); v != nil {
			rt.panics.Add(1)
			rt.log.Error("strand: OnError panic", "conn", c.id, "route", c.Route(), "plugin", rt.plugin.name, "panic", v)
		}
	}()
	c.h.OnError(c, err)
}

// Close stops accepting events, runs every event already accepted, and
// cancels connection contexts. It returns ctx's error if the deadline passes
// first. Hosts close their connections (so OnClose events are submitted)
// before closing the runtime. Idempotent.
func (rt *Runtime) Close(ctx context.Context) error {
	err := rt.exec.Close(ctx)
	rt.poolOnce.Do(func() {
		rt.poolErr = ErrRuntimeClosed
		rt.poolSet.Store(true)
	})
	if rt.pool != nil {
		err = errors.Join(err, rt.pool.Close(ctx))
	}
	rt.closeOnce.Do(rt.cancel)
	return err
}

package core

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Plugin is a named set of entries. Create one with NewPlugin and register
// entries before handing it to a host; a Plugin is safe for concurrent use,
// but entries should be complete before the host serves traffic.
type Plugin struct {
	name string

	mu       sync.RWMutex
	entries  map[string]*Entry
	order    []*Entry
	onConfig func(raw []byte) error
}

// SetOnConfig registers the function that receives the plugin's settings
// (see sdk.Plugin.OnConfig).
func (p *Plugin) SetOnConfig(fn func(raw []byte) error) {
	p.mu.Lock()
	p.onConfig = fn
	p.mu.Unlock()
}

// OnConfigFunc returns the function registered with SetOnConfig, or nil.
func (p *Plugin) OnConfigFunc() func(raw []byte) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.onConfig
}

// NewPlugin returns a plugin with the given name.
func NewPlugin(name string) *Plugin {
	return &Plugin{name: name, entries: make(map[string]*Entry)}
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return p.name }

// Entry returns the entry with the given name, creating it on first use.
func (p *Plugin) Entry(name string) *Entry {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.entries[name]; ok {
		return e
	}
	e := &Entry{plugin: p, name: name}
	p.entries[name] = e
	p.order = append(p.order, e)
	return e
}

// Lookup returns the named entry, if registered.
func (p *Plugin) Lookup(name string) (*Entry, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	e, ok := p.entries[name]
	return e, ok
}

// Entries returns the entries in registration order.
func (p *Plugin) Entries() []*Entry {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return append([]*Entry(nil), p.order...)
}

// RequestFilterFunc is the RequestFilter phase handler. It decides with
// ctx.Next, ctx.End (or ctx.Reject) or ctx.Upgrade, before or after it
// returns; a handler that never decides is failed by the host's phase
// timeout.
type RequestFilterFunc func(ctx *RequestContext)

// Entry is a named handler set of a plugin: its phase handlers and the
// WebSocket handlers used when its request filter upgrades. Register handlers
// before the entry is mounted; an Entry is then read-only.
type Entry struct {
	plugin *Plugin
	name   string

	requestFilter  RequestFilterFunc
	responseFilter ResponseFilterFunc
	bodyFilter     BodyFilterFunc
	logging        LoggingFunc
	ws             *WebSocketHandlers

	// mounted is set once a host mounted the entry (Mount): registering a
	// handler after that panics, since the host reads the handlers
	// without locks while it serves.
	mounted atomic.Bool
}

// Plugin returns the plugin the entry belongs to.
func (e *Entry) Plugin() *Plugin { return e.plugin }

// Name returns the entry's name.
func (e *Entry) Name() string { return e.name }

// String returns "plugin/entry".
func (e *Entry) String() string { return fmt.Sprintf("%s/%s", e.plugin.name, e.name) }

// RequestFilter registers the RequestFilter phase handler and returns e.
func (e *Entry) RequestFilter(fn RequestFilterFunc) *Entry {
	e.registering("RequestFilter")
	e.requestFilter = fn
	return e
}

// ResponseFilter registers the ResponseFilter phase handler and returns e.
// It sees the answer's status and headers and decides with ctx.Next.
func (e *Entry) ResponseFilter(fn ResponseFilterFunc) *Entry {
	e.registering("ResponseFilter")
	e.responseFilter = fn
	return e
}

// ResponseBodyFilter registers the ResponseBodyFilter phase handler and
// returns e. It sees the whole answer body (the host buffers it, up to its
// cap) and decides with ctx.Next.
func (e *Entry) ResponseBodyFilter(fn BodyFilterFunc) *Entry {
	e.registering("ResponseBodyFilter")
	e.bodyFilter = fn
	return e
}

// Logging registers the Logging phase handler and returns e.
func (e *Entry) Logging(fn LoggingFunc) *Entry {
	e.registering("Logging")
	e.logging = fn
	return e
}

// Has reports whether the entry registered a handler for phase p. A phase
// with no handler costs nothing: the host skips it without a hand-off.
func (e *Entry) Has(p Phase) bool {
	switch p {
	case PhaseRequestFilter:
		return e.requestFilter != nil
	case PhaseResponseFilter:
		return e.responseFilter != nil
	case PhaseResponseBodyFilter:
		return e.bodyFilter != nil
	case PhaseLogging:
		return e.logging != nil
	}
	return false
}

// WebSocket registers the entry's WebSocket handlers and returns e. An entry
// with WebSocket handlers and no request filter upgrades every WebSocket
// handshake it sees; a request filter may upgrade with these handlers
// (ctx.Upgrade(nil)) or with another set.
func (e *Entry) WebSocket(h WebSocketHandlers) *Entry {
	e.registering("WebSocket")
	e.ws = &h
	return e
}

// registering panics when a handler is registered on a mounted entry,
// naming the entry and the method: a host reads the handlers while it
// serves, so a late registration would race with it (and, out of
// process, never reach the host's list of phases). The panic value is an
// error whose text says so; building it costs no call here, so the
// registration methods stay cheap enough to inline into sdk's wrappers
// (whose handler closures then allocate nothing per call where the
// compiler sees the handler, as in the phase benchmarks).
func (e *Entry) registering(method string) {
	if e.mounted.Load() {
		panic(lateRegistration{e, method})
	}
}

// lateRegistration is the panic value of a registration on a mounted
// entry.
type lateRegistration struct {
	e      *Entry
	method string
}

func (l lateRegistration) Error() string {
	return fmt.Sprintf("sdk: entry %s: %s after the entry was mounted on a host: register handlers before mounting it", l.e, l.method)
}

// Mount marks the entry as mounted on a host (a server's route, a plugin
// process's session, a test kit) after Validate accepted it: from then on
// registering a handler panics. Hosts call it.
func (e *Entry) Mount() { e.mounted.Store(true) }

// Validate reports the mistakes a host refuses an entry for at start-up:
// no handler at all (a misspelled or never registered entry, or one given
// only WebSocket handlers that are all nil), and WebSocket handlers that
// set both OnMessage and OnText or OnBinary.
func (e *Entry) Validate() error {
	if e.requestFilter == nil && e.responseFilter == nil && e.bodyFilter == nil && e.logging == nil {
		switch {
		case e.ws == nil:
			return fmt.Errorf("sdk: entry %s has no handlers: is the name misspelled, or was it never registered?", e)
		case e.ws.empty():
			return fmt.Errorf("sdk: entry %s has no handlers: its WebSocketHandlers are all nil", e)
		}
	}
	if e.ws != nil {
		if err := e.ws.Validate(); err != nil {
			return fmt.Errorf("sdk: entry %s: %w", e, err)
		}
	}
	return nil
}

// Validate reports handlers that cannot all run: OnMessage with OnText or
// OnBinary (OnMessage would shadow them).
func (h *WebSocketHandlers) Validate() error {
	if h.OnMessage != nil && (h.OnText != nil || h.OnBinary != nil) {
		return errors.New("WebSocket handlers set both OnMessage and OnText/OnBinary: OnMessage would shadow them; set one or the other")
	}
	return nil
}

// empty reports whether h sets no handler at all.
func (h *WebSocketHandlers) empty() bool {
	return h.OnOpen == nil && h.OnMessage == nil && h.OnText == nil && h.OnBinary == nil && h.OnClose == nil && h.OnError == nil
}

// RequestFilterHandler returns the registered request filter, or nil.
func (e *Entry) RequestFilterHandler() RequestFilterFunc { return e.requestFilter }

// WebSocketHandlers returns the registered WebSocket handlers, or nil.
func (e *Entry) WebSocketHandlers() *WebSocketHandlers { return e.ws }

// WebSocketHandlers are a WebSocket's event handlers. Every field may be nil.
// Handlers of one connection run one at a time in event order: OnOpen first,
// then one call per message in arrival order, then OnClose exactly once.
type WebSocketHandlers struct {
	// OnOpen runs first, after the handshake completed.
	OnOpen func(c *Conn)
	// OnMessage runs for every message. msg.Data is valid until it returns.
	OnMessage func(c *Conn, msg Message)
	// OnText runs for text messages when OnMessage is nil (Nylon style).
	// The slice is valid until it returns.
	OnText func(c *Conn, text []byte)
	// OnBinary runs for binary messages when OnMessage is nil (Nylon style).
	// The slice is valid until it returns.
	OnBinary func(c *Conn, data []byte)
	// OnClose runs last, exactly once, with the peer's close code and
	// reason, CloseAbnormal (1006) when TCP ended without a close frame, or
	// the code the server closed with.
	OnClose func(c *Conn, code CloseCode, reason string)
	// OnError reports an error on the connection that did not reach a
	// handler as an event, such as a handler panic (the connection is then
	// closed with CloseInternalError).
	OnError func(c *Conn, err error)
}

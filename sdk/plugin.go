package sdk

import (
	"github.com/strandws/strand/internal/core"
)

// Plugin is a named set of entries. Create one with NewPlugin and register
// its entries before handing them to a host; there is no package-level
// registry. A Plugin is safe for concurrent use, but entries must be
// complete before the host serves traffic.
type Plugin core.Plugin

// NewPlugin returns a plugin with the given name. A host refuses two
// plugins with one name.
func NewPlugin(name string) *Plugin { return (*Plugin)(core.NewPlugin(name)) }

func (p *Plugin) core() *core.Plugin { return (*core.Plugin)(p) }

// Name returns the plugin's name.
func (p *Plugin) Name() string { return p.core().Name() }

// Entry returns the entry with the given name, creating it on first use:
// register its handlers on the result. A host refuses, at start-up, an
// entry that registered no handler (a misspelled name ends up there), in
// process and out of process (sdk/serve) alike.
func (p *Plugin) Entry(name string) *Entry { return (*Entry)(p.core().Entry(name)) }

// Lookup returns the named entry, if it exists.
func (p *Plugin) Lookup(name string) (*Entry, bool) {
	e, ok := p.core().Lookup(name)
	return (*Entry)(e), ok
}

// Entries returns the entries in the order they were first named.
func (p *Plugin) Entries() []*Entry {
	es := p.core().Entries()
	out := make([]*Entry, len(es))
	for i, e := range es {
		out[i] = (*Entry)(e)
	}
	return out
}

// Entry is a named handler set of a plugin: its HTTP phase handlers and the
// WebSocket handlers used when it upgrades a request. Register handlers
// before the entry is mounted on a host (a server's Route, sdk/serve's
// Run, strandtest.New); registering one afterwards panics with a message
// that names the entry. Mounted with no handler at all (WebSocket handlers
// that are all nil count as none), or with WebSocket handlers that set
// both OnMessage and OnText or OnBinary, it is refused with an error that
// names it.
type Entry core.Entry

func (e *Entry) core() *core.Entry { return (*core.Entry)(e) }

// Plugin returns the plugin the entry belongs to.
func (e *Entry) Plugin() *Plugin { return (*Plugin)(e.core().Plugin()) }

// Name returns the entry's name.
func (e *Entry) Name() string { return e.core().Name() }

// String returns "plugin/entry".
func (e *Entry) String() string { return e.core().String() }

// RequestFilterFunc is the RequestFilter phase handler: it sees the request
// before the terminal handler (or the upgrade) and decides with ctx.Next,
// ctx.End, ctx.Reject or ctx.Upgrade. Returning without deciding means
// Next; to decide later, from another goroutine, call ctx.Defer before
// returning (the host's phase timeout then applies).
type RequestFilterFunc func(ctx *RequestContext)

// ResponseFilterFunc is the ResponseFilter phase handler: it sees the
// answer's status and headers, may edit them, and decides with ctx.Next.
// Returning without deciding means Next; see ctx.Defer to decide later. It
// runs before the status goes out: when the answer's status is written or,
// on a route with a body filter (where the answer is buffered), once the
// whole answer is, just before the body filters.
type ResponseFilterFunc func(ctx *ResponseContext)

// BodyFilterFunc is the ResponseBodyFilter phase handler: it sees the whole
// answer body (the host buffers it, up to its cap), may replace it, and
// decides with ctx.Next. Returning without deciding means Next; see
// ctx.Defer to decide later.
type BodyFilterFunc func(ctx *BodyContext)

// LoggingFunc is the Logging phase handler: it runs once the answer is
// complete, off the request's path. entry is valid until it returns.
type LoggingFunc func(entry *LogEntry)

// RequestFilter registers the RequestFilter phase handler and returns e.
func (e *Entry) RequestFilter(fn RequestFilterFunc) *Entry {
	var cf core.RequestFilterFunc
	if fn != nil {
		cf = func(c *core.RequestContext) { fn((*RequestContext)(c)) }
	}
	e.core().RequestFilter(cf)
	return e
}

// ResponseFilter registers the ResponseFilter phase handler and returns e.
func (e *Entry) ResponseFilter(fn ResponseFilterFunc) *Entry {
	var cf core.ResponseFilterFunc
	if fn != nil {
		cf = func(c *core.ResponseContext) { fn((*ResponseContext)(c)) }
	}
	e.core().ResponseFilter(cf)
	return e
}

// ResponseBodyFilter registers the ResponseBodyFilter phase handler and
// returns e.
func (e *Entry) ResponseBodyFilter(fn BodyFilterFunc) *Entry {
	var cf core.BodyFilterFunc
	if fn != nil {
		cf = func(c *core.BodyContext) { fn((*BodyContext)(c)) }
	}
	e.core().ResponseBodyFilter(cf)
	return e
}

// Logging registers the Logging phase handler and returns e.
func (e *Entry) Logging(fn LoggingFunc) *Entry {
	var cf core.LoggingFunc
	if fn != nil {
		cf = func(l *core.LogEntry) {
			le := LogEntry{
				Request: (*Request)(l.Request), Status: l.Status, BytesIn: l.BytesIn, BytesOut: l.BytesOut,
				Duration: l.Duration, Err: l.Err, Values: l.Values,
			}
			fn(&le)
		}
	}
	e.core().Logging(cf)
	return e
}

// WebSocket registers the entry's WebSocket handlers and returns e. An entry
// with WebSocket handlers and no request filter upgrades every WebSocket
// handshake it sees; a request filter may upgrade with these handlers
// (ctx.Upgrade(nil)) or with another set.
func (e *Entry) WebSocket(h WebSocketHandlers) *Entry {
	e.core().WebSocket(*h.core())
	return e
}

// WebSocketHandlers are a WebSocket's event handlers. Any field may be nil,
// but an entry whose only handlers are WebSocketHandlers with every field
// nil is refused as an entry with no handlers. Handlers of one connection
// run one at a time in event order: OnOpen first, then one call per
// message in arrival order, then OnClose exactly once. Set
// OnMessage, or OnText and/or OnBinary, not both: a host refuses such a set.
type WebSocketHandlers struct {
	// OnOpen runs first, after the handshake completed.
	OnOpen func(c *Conn)
	// OnMessage runs for every message. msg.Data is valid until it returns.
	OnMessage func(c *Conn, msg Message)
	// OnText runs for text messages (when OnMessage is nil). The slice is
	// valid until it returns.
	OnText func(c *Conn, text []byte)
	// OnBinary runs for binary messages (when OnMessage is nil). The slice
	// is valid until it returns.
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

// core returns the runtime's form of h: each handler wrapped once.
func (h *WebSocketHandlers) core() *core.WebSocketHandlers {
	ch := &core.WebSocketHandlers{}
	if f := h.OnOpen; f != nil {
		ch.OnOpen = func(c *core.Conn) { f((*Conn)(c)) }
	}
	if f := h.OnMessage; f != nil {
		ch.OnMessage = func(c *core.Conn, m core.Message) { f((*Conn)(c), Message{Type: MessageType(m.Type), Data: m.Data}) }
	}
	if f := h.OnText; f != nil {
		ch.OnText = func(c *core.Conn, b []byte) { f((*Conn)(c), b) }
	}
	if f := h.OnBinary; f != nil {
		ch.OnBinary = func(c *core.Conn, b []byte) { f((*Conn)(c), b) }
	}
	if f := h.OnClose; f != nil {
		ch.OnClose = func(c *core.Conn, code core.CloseCode, reason string) { f((*Conn)(c), CloseCode(code), reason) }
	}
	if f := h.OnError; f != nil {
		ch.OnError = func(c *core.Conn, err error) { f((*Conn)(c), err) }
	}
	return ch
}

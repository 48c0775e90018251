// Package sdk is what a Strand plugin author imports: the plugin and its
// entries, the handlers they register, the contexts and connections handed
// to those handlers, close codes and errors, and the plugin runtime that runs
// handlers in order.
//
// # Model
//
// A [Plugin] is a value with a name and named entries ([Plugin.Entry]); there
// is no package-level registry. An [Entry] registers a request filter (which
// may accept a request, answer it, or upgrade it to a WebSocket) and a
// default set of [WebSocketHandlers].
//
// The [Runtime] owns the executors that run one plugin's handlers: a
// connection's events go through an ordered executor keyed by connection ID
// (dispatcher.Sharded), so OnOpen runs first, messages run one at a time in
// arrival order, and OnClose runs last, exactly once. The host
// (package wsframework, or the in-memory kit in sdk/strandtest) owns the
// sockets and delivers events to the Runtime; the Runtime answers nothing by
// itself. Plugin code does not know how it is attached.
//
// # Concurrency and validity
//
// Handlers of one connection never run concurrently with each other; handlers
// of different connections do. [Conn] methods are safe for concurrent use from
// any goroutine. The Data of a [Message] is valid only until the handler it
// was passed to returns: the runtime then releases it to the buffer pool
// (with poisoning on, see sdk/bufpool, a kept slice shows 0xDB bytes). Copy
// what you keep. [Conn.Send] copies its argument, so Send(msg.Data) inside a
// handler is safe.
package sdk

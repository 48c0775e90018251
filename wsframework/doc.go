// Package wsframework is Strand's host: it serves HTTP and WebSocket
// (github.com/gobwas/ws), runs the plugin entries mounted on a route, and
// delivers every connection's events, in wire order, to the plugin's
// sdk.Runtime.
//
// # Connections
//
// One reader per connection turns frames into events and submits them to the
// runtime keyed by connection ID; when the runtime's queue for that
// connection is full, or the connection has too many inbound bytes queued,
// the reader stops reading (TCP backpressure) instead of dropping. Writes go
// through a bounded per-connection queue drained by at most one writer at a
// time, which sends everything queued in one vectored write; no goroutine
// waits while the queue is empty. A client that does not read fast enough
// fills its queue and is closed with 1008 (slow consumer).
//
// Why a connection closed is one CloseReason, which maps to the close code
// sent and to the counters in Stats.
//
// # Concurrency
//
// A Server is safe for concurrent use. Route must be called before serving.
// Shutdown and Close are idempotent and may be called from any goroutine.
//
// # Lock order
//
// Server.mu may be taken before conn.mu, never after. conn.mu is never held
// while calling plugin code or doing network I/O.
package wsframework

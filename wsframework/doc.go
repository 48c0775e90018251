// Package wsframework is Strand's host: it serves HTTP and WebSocket
// (github.com/gobwas/ws), runs the plugin entries mounted on a route, and
// delivers every connection's events, in wire order, to the plugin's
// handlers.
//
// # Connections
//
// One reader per connection turns frames into events and submits them to the
// runtime keyed by connection ID; when the runtime's queue for that
// connection is full, or the connection has too many inbound bytes queued,
// the reader stops reading (TCP backpressure) instead of dropping.
//
// Config.Reader chooses the reader. On Linux, for plain TCP connections, the
// default is the poll reader: after the upgrade a connection with nothing to
// read holds no goroutine and no read buffer; epoll (internal/netpoll, one
// loop per GOMAXPROCS) reports it readable, and its loop reads the
// available frames without waiting, parses them incrementally, and submits
// them in order; where the other reader would block (a full dispatcher
// queue, a high write queue, too many pending bytes) it pauses and is
// resumed. Elsewhere, and for TLS, each connection has a reader goroutine
// (Stats.TLS counts TLS connections, Stats.Polled the polled ones).
// Limits, deadlines, close codes and Stats are the same in both. Writes go
// through a bounded per-connection queue drained by at most one writer at a
// time, which sends everything queued in one vectored write; no goroutine
// waits while the queue is empty. A client that does not read fast enough
// fills its queue and is closed with 1008 (slow consumer); a message larger
// than the queue's byte bound on its own is refused with sdk.ErrTooBig and
// closes nothing (see Config.WriteQueueBytes).
//
// Serve and ListenAndServe read WebSocket handshakes themselves (a pooled
// 4 KiB reader for the request head, http.ReadRequest, the routes, the
// upgrade) and hand every other connection, with the bytes already read,
// to a net/http Server: plain HTTP keeps all of net/http's behaviour, and
// an upgrade leaves no hijacked net/http buffers behind. A refused
// handshake on that path is answered with "Connection: close". Until its
// request head is read a connection is a handshake in progress, bounded
// by HandshakeTimeout, MaxHeaderBytes (431), MaxHandshakesPerIP (503) and
// MaxHandshakes: at that cap a new connection evicts the handshake in
// progress longest, so clients stalling mid-head cannot lock others out.
// Mounted as an http.Handler elsewhere, a Server upgrades through
// net/http's Hijack.
//
// # TLS
//
// ServeTLS and ListenAndServeTLS serve the same over TLS (wss and https),
// shaped like net/http's: a base configuration in Config.TLS, the
// certificate from PEM files or from that configuration. ALPN offers
// http/1.1 only. The accept path runs each connection's TLS handshake
// itself, as the first part of its handshake in progress: HandshakeTimeout
// bounds the TLS handshake and the head together, MaxHandshakes counts a
// connection from its accept, MaxHeaderBytes answers 431 over TLS as over
// TCP, and a connection over MaxHandshakesPerIP is closed before any TLS
// work. A request handed on to net/http keeps its Request.TLS. Certificate
// files are read again when they change (modification time or size), looked
// at by a handshake at most every Config.CertCheckInterval, so a renewed
// certificate is served without a restart; a pair that does not load leaves
// the previous one in use. A connection over TLS is read by a reader
// goroutine in every reader mode.
//
// Both readers only move bytes: every framing rule lives in one
// incremental parser (internal/wsproto) that they feed — headers, masking,
// fragmentation, control frames, the message size and fragment budgets,
// UTF-8 checked as each byte arrives (1007 at the first invalid byte), close
// bodies. A frame's declared length reserves at most 4 KiB; its buffer grows
// as the payload arrives. When the peer's close frame or a violation ends
// reading, the messages read before it are still handled, and what their
// handlers send goes out before the server's close frame (within
// CloseTimeout). A panic while reading or writing one connection closes that
// connection with 1011 and nothing else (Stats.Panics). Every deadline reads
// a monotonic clock, so a step of the wall clock moves none.
//
// Why a connection closed is one CloseReason, which maps to the close code
// sent and to the counters in Stats. docs/security.md lists every limit, its
// default and what a client that reaches it sees.
//
// # Compression
//
// permessage-deflate (RFC 7692) is negotiated on both upgrade paths with
// every client that offers it (browsers do), unless Config.Compression
// turns it off, or RouteOptions.NoCompression for one route (RouteWith).
// Offers with parameters RFC 7692 does not allow are declined, and so is a
// server_max_window_bits below 15; by default neither side keeps context
// between messages. The parser inflates a compressed message when its
// last frame is in, with a pooled inflater, counting the inflated bytes
// against MaxMessageBytes as they come out (1009 at the first byte past
// it: a decompression bomb is cut short), checking a text message's UTF-8
// as it comes (1007), and answering data that is not DEFLATE with 1007;
// RSV1 where RFC 7692 forbids it is 1002. A data message of
// CompressionConfig.Threshold bytes (512) or more is sent compressed,
// with a pooled compressor, before it is queued; control frames never
// are, nor a message sent with the connection's WriteUncompressed. A
// broadcast is compressed once and the compressed frame shared by every
// member that negotiated the extension. So without context takeover an
// idle connection holds no compression state; with
// CompressionConfig.ContextTakeover each connection keeps a compressor
// (about 1.2 MiB) and up to 32 KiB of its client's data, and its writer
// compresses its messages in order.
//
// # Logging
//
// The Server logs through Config.Logger (log/slog), net/http's error log
// and its plugins' runtimes (handler panics, slow handlers) included. Every
// line about a connection carries its ID, route pattern and plugin first
// ("conn", "route", "plugin"); at debug level a line is
// written when a connection opens and when it closes (with why). The
// attributes are built only when a line is written: no connection keeps a
// logger, and nothing is logged per message.
//
// # Health and readiness
//
// HealthzHandler answers 200 while the Server is alive (until Shutdown has
// finished; draining is alive). ReadyzHandler answers 200 when Ready
// passes: the Server serves a listener, is not shutting down, and every
// check registered with AddReadinessCheck passes; 503 otherwise, naming
// the reason or the failing checks. Checks run on the goroutine asking,
// in registration order, with its context. Mount the handlers with Handle.
//
// # Rooms
//
// A connection joins and leaves rooms (sdk.Conn.Join, Leave, Broadcast, or
// Server.JoinRoom, LeaveRoom, Broadcast, SendTo from any goroutine), and
// leaves them all when it closes. A broadcast is encoded once into one
// pooled buffer that every member's write queue shares (one reference
// each); queuing never blocks, so a slow member only meets its own queue's
// policy. Deliveries to a room are serialised, so every member on a node
// sees one order, and each sender's order. Rooms travel between nodes
// through an Adapter: MemoryBus connects the Servers of one process.
//
// # Metrics
//
// With Config.Metrics set to a prometheus.Registerer (the application's own
// registry; nothing is ever registered globally), New registers one
// collector with the Server's Prometheus metrics: connections open and
// accepted per route pattern, closes by reason and code, messages and bytes
// each way, handshake rejections by reason, write-queue bytes, the buffer
// pool's hits and misses, compression bytes, and per plugin the dispatch
// delay, handler and HTTP phase durations and phase failures.
// docs/metrics.md lists every family with its type and labels. Labels are
// bounded: route patterns, plugin names, reasons and close codes (a
// client's own codes grouped by range), never connection IDs or room
// names.
//
// Nil Config.Metrics costs nothing but a few nil checks. With metrics on,
// most families are read at scrape time from counters the Server keeps
// anyway; a reader adds up the bytes it reads on a counter of its own and
// publishes them once per read, a writer once per write batch. Timing a
// handler takes clock reads, so one message in Config.MetricsSampleEvery
// (64) per connection is timed (open, error and close handlers always
// are): the message series of strand_handler_duration_seconds and
// strand_dispatch_delay_seconds count the sampled messages, about one in
// 64. BenchmarkEventPath/metrics=on measures the whole path against
// metrics=off (docs/benchmarks.md).
//
// # Concurrency
//
// A Server is safe for concurrent use. Route must be called before serving.
// Shutdown and Close are idempotent and may be called from any goroutine.
//
// # Lock order
//
// Server.mu may be taken before conn.mu, never after. conn.mu is never held
// while calling plugin code or doing network I/O. A poll loop's lock
// (netpoll, taken by Handle.Trigger) may be taken under conn.mu and takes
// nothing itself; a netpoll Handle's own lock (arming, closing) is never
// taken under conn.mu and is taken before its loop's. An acceptor's lock
// (accept.go) may be taken before the Server's list of handshakes in
// progress (handshakes.go), whose lock takes nothing.
//
// The metrics collector's lock (metrics.go) may be taken under
// Server.mu and takes nothing itself; a scrape takes each connection's
// conn.mu in turn, holding nothing else.
//
// Rooms (rooms.go): connRooms.mu → hub subscription lock → adapter locks
// (MemoryAdapter.mu → MemoryBus.mu → busRoom.mu) → room.mu → conn.mu. A
// subscription lock may be held while the adapter subscribes over the
// network; room.mu is held only while queuing to members, which never
// blocks.
package wsframework

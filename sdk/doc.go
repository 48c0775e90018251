// Package sdk is what a Strand plugin author imports, and all of it: the
// plugin and its entries, the handlers they register, the contexts and
// connections handed to those handlers, messages, close codes and errors.
// Test a plugin without a server with sdk/strandtest. How a host runs the
// handlers is not part of this package.
//
// # A plugin
//
// A [Plugin] is a value with a name and named entries ([Plugin.Entry]);
// there is no package-level registry. An [Entry] registers HTTP phase
// handlers — a request filter that may let the request go on, answer it, or
// upgrade it to a WebSocket; a response filter; a response body filter; a
// logging handler — and a default set of [WebSocketHandlers]. A host
// mounts entries on routes (wsframework.Server.Route; out of process,
// sdk/serve's Run mounts all of the plugin's entries) and refuses, when it
// starts, with an error that names the mistake: an entry that registered no
// handler (a misspelled name, or WebSocket handlers that are all nil),
// WebSocket handlers that set OnMessage and also OnText or OnBinary, and
// two plugins with one name. Registering a handler on an entry once it is
// mounted panics, naming the entry.
//
// # Where handlers run, and in what order
//
// Each plugin has its own executors: on the host, or in the plugin's own
// process when it runs as one (sdk/serve).
//
// WebSocket handlers run on an ordered executor keyed by connection ID: the
// plugin's connections are spread over 1024 serial queues (shards), run by
// a set of worker goroutines, growing while handlers block (see below).
// The base number of workers is 2×GOMAXPROCS by default; a server with a
// cluster Adapter (wsframework's Config.Adapter) gives the plugins it runs
// in process wsframework.ClusterWorkers (256), because there a broadcast
// waits for the adapter on the worker running its handler. For one connection, OnOpen runs first, then
// one handler call per message in arrival order, then OnClose, exactly
// once, last. Handlers of one connection never run concurrently with each
// other; handlers of different connections do. No order holds between
// different connections, even those that share a shard.
//
// HTTP phase handlers run on a separate worker pool: max(4, 2×NumCPU)
// workers by default, with a queue of 4 phases per worker. When the queue
// is full, a phase runs on an extra goroutine of its own, up to 16 per
// worker at once (dispatcher.PoolConfig's Overflow and MaxSpawn); past
// that the pool refuses it and the request is answered 503 (or the plugin
// is skipped, when the host runs it fail-open). A request's phases run one
// after the other, entry by entry along the route.
//
// # Blocking in a handler
//
// A WebSocket handler may block — on a database, another service, a lock,
// a sleep — and stall only its own connection: once one handler call has
// run for 10 ms (dispatcher.ShardedConfig.BlockThreshold), its
// connection's queued events move off the shard onto a bounded queue of
// their own, which the same worker runs in order when the handler returns;
// the other connections of the shard go on, and a worker is added so that
// the base number stay free. The connection goes back to its shard as soon as
// its handlers run fast again, and added workers exit once idle. The
// workers are capped at 1024 per plugin (ShardedConfig.MaxWorkers): with
// that many handlers blocked at once, the plugin's other connections wait
// until one returns. Before they are moved past a blocked handler,
// connections sharing its shard wait for it up to those 10 ms plus the
// monitor's period (2.5 ms while the plugin is busy, 20 ms after it was
// idle). Handlers that are slow without blocking for long (many calls of a
// few ms each) are not moved: they delay the connections of their shard.
// While a connection's events wait, the host stops reading it once its
// queue (256 events) or its pending bytes are full (TCP pushes back on the
// client); nothing is dropped. A handler that waits on something slow
// costs a goroutine for as long as it waits; for much slow work, hand it to
// goroutines of your own and Send the result when it is done (Send is safe
// from any goroutine). A phase handler that blocks
// holds a worker of the phase pool; it must decide within the host's phase
// timeout (5 s by default) or the request fails (504, or the plugin is
// skipped when the host runs it fail-open).
//
// # Deciding in a phase handler
//
// A phase handler decides with its context's Next (and, for a request
// filter, End, Reject or Upgrade). Returning without deciding means Next.
// A handler that wants to decide later, from another goroutine, calls
// Defer before it returns and then decides within the phase timeout.
//
// # How long data is valid
//
// The Data of a [Message] (and the slice given to OnText and OnBinary) is
// valid only until the handler returns: the host then reuses the buffer
// (with a poisoning pool, as strandtest uses by default, a kept slice reads
// 0xDB bytes). Copy what you keep. [Conn.Send] copies its argument, so
// Send(msg.Data) inside a handler is safe. A [LogEntry] is valid until the
// logging handler returns. The [Request] snapshot is read-only and valid
// for as long as you hold it.
//
// # Calls from other goroutines
//
// Every [Conn] method is safe from any goroutine. On a host of its own
// (one node, in process), none waits on the network: Send, Broadcast,
// Join, Leave and Close queue and return, and a write queue that is full
// is an error (ErrSlowConsumer), not a wait. Two setups add waits:
//
//   - With a cluster Adapter, Broadcast returns once the adapter has
//     published the message (the Redis adapter waits for Redis's answer, a
//     round trip shared by the broadcasts in flight), the first Join of a
//     room on a node waits for the adapter's Subscribe, and the last Leave
//     for its Unsubscribe.
//   - Out of process (sdk/serve), Join and Leave wait for the host's answer
//     (up to 5 s), and Send, Broadcast and Close wait while the frames the
//     plugin has not yet written to the host's socket are over 8 MiB (the
//     host is not reading).
//
// Phase contexts belong to their handler until it decides (after Defer,
// the goroutine that decides may use them); do not touch a context after
// deciding.
//
// # In another process
//
// The same Plugin runs in the host's process or in its own: a plugin
// binary's main passes it to sdk/serve's Run, which talks to the host over
// a Unix socket (docs/plugins.md says what changes at that boundary). A
// plugin reads its settings (the `config:` map of strand.yaml) through
// [Plugin.OnConfig] and [Settings]; in process, the program that builds it
// hands them over with [Plugin.Configure].
//
// # Off Linux
//
// In process, a plugin behaves the same everywhere. The host's poll reader
// (connections with nothing to read hold no goroutine) needs Linux's
// epoll; elsewhere the host reads each connection with a goroutine of its
// own, with the same limits, order and close codes.
//
// Running a plugin as a process (sdk/serve, and strand starting it) needs
// Unix sockets and process groups, and is tested on Linux only. It builds
// on the other Unix systems (macOS, the BSDs), where one thing is known to
// differ: Linux kills a plugin process the moment its host dies
// (Pdeathsig); elsewhere a plugin outlives a killed host until it sees its
// socket close, and Run returns. On Windows the packages build, so that a
// program importing them compiles, but running plugins as processes is not
// supported there: there are no process groups (what a plugin starts is
// not killed with it) and nothing of it is tested.
package sdk

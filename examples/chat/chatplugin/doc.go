// Package chatplugin is the chat example's plugin: named people talk in named
// rooms over a small JSON protocol (examples/chat/README.md). It imports
// only the sdk, so any Strand host can run it.
//
// # State and concurrency
//
// Rooms are the host's (Conn.Join, Conn.Broadcast); the plugin owns each
// room's sequence number and its history of the last messages. A room's
// state is guarded by its own mutex, held while a message gets its sequence
// number, enters the history and is broadcast: so the sequence is the order
// in which every member receives the room's messages, and a joining member
// gets, under the same mutex, the history and then everything after it,
// with no gap and no duplicate. Broadcast never blocks, so the mutex is
// held only for microseconds. Handlers of different connections run
// concurrently; handlers of one connection run one at a time, which is what
// lets a connection's own state (its rate limiter) go unguarded.
package chatplugin

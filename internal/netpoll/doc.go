// Package netpoll is a small readiness poller over epoll, for hosts that do
// not want a goroutine, a read buffer or net's per-connection state for an
// idle connection.
//
// A Poller owns a fixed set of loops; each loop is one goroutine with its own
// epoll instance. Instead of blocking in epoll_wait on a thread of its own, a
// loop parks in Go's runtime poller on its epoll descriptor (an epoll
// descriptor is itself pollable), so waking it costs what waking a reader
// goroutine costs.
//
// A Handle owns one descriptor: Detach takes it over from a *net.TCPConn
// (which is closed, freeing net's state for it), NewHandle from a raw
// descriptor. Arm registers it level-triggered: after each wait that finds
// it readable its Handler runs on its loop, with no system call to re-arm
// between turns (a Handler that leaves bytes unread runs again after the
// next wait); Disarm stops the reports while its reader is paused.
// Trigger runs a handle's Handler on its loop soon, from any goroutine,
// without readiness (a queue that has room again, a close). SetTimer runs it
// at a given time: each loop keeps its handles' timers in one heap behind
// one runtime timer. Writev writes from any goroutine; when the socket is
// full it waits for the loop to report it writable, up to a deadline.
//
// # Concurrency contract
//
// Poller.Detach, Poller.NewHandle, Handle.Trigger, Handle.Writev (one
// writer at a time), Handle.Close and Poller.Close are safe for concurrent
// use. A handle's Handler runs on its loop only, one call at a time, and
// must not block: it reads without waiting (Handle.Read) and returns. Arm,
// Disarm, SetTimer, Timer and Deregister are called from the handle's Handler (its
// loop). Every system call on a descriptor holds a reference to it, and
// Close closes it only when the last is gone, so no call ever acts on a
// descriptor number that was closed and reused. Poller.Close stops the
// loops and waits for them; Triggers after it are ignored.
//
// Only Linux is supported; elsewhere New returns ErrUnsupported and the
// caller reads with a goroutine per connection.
package netpoll

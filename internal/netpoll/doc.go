// Package netpoll is a small readiness poller over epoll, for hosts that do
// not want a goroutine per idle connection.
//
// A Poller owns a fixed set of loops; each loop is one goroutine with its own
// epoll instance. Instead of blocking in epoll_wait on a thread of its own, a
// loop parks in Go's runtime poller on its epoll descriptor (an epoll
// descriptor is itself pollable), so waking it costs what waking a reader
// goroutine costs. A connection is registered once (NewHandle, then Arm)
// with EPOLLONESHOT: after each readiness report its Handler runs on its
// loop and must Arm the handle again to hear of more. Trigger runs a
// handle's Handler on its loop soon, from any goroutine, without readiness
// (a timer, a queue that has room again).
//
// # Concurrency contract
//
// Poller.NewHandle, Handle.Trigger and Poller.Close are safe for concurrent
// use. A handle's Handler runs on its loop only, one call at a time, and
// must not block: it reads without waiting (Handle.Read) and returns. Arm and
// Deregister are called from the handle's Handler (its loop). Handle
// operations go through the connection's syscall.RawConn, so they never act
// on a descriptor number that was closed and reused. Close stops the loops
// and waits for them; Triggers after Close are ignored.
//
// Only Linux is supported; elsewhere New returns ErrUnsupported and the
// caller reads with a goroutine per connection.
package netpoll
